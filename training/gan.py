"""The GAN as one keras.Model with a two-tape train_step (the keras-io GAN guide's pattern).

Why not the articles' three compiled models with `discriminator.trainable = False`: Keras 3 fixes a
model's trainable variables when its train function is first traced, so that pattern silently
never trains the discriminator. Here each tape owns its network's variables explicitly.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from training.acceleration import Acceleration
from training.reformulation import reformulated_forward


class GAN(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 g_batch: int, real_label: float = 1.0, seed: int = 0, d_update: str = "split",
                 ema_decay: float = 0.0, reformulate: tuple[str, ...] = (), n_classes: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.g_batch = g_batch
        self.real_label = real_label  # 0.9 = one-sided label smoothing (article 001)
        self.seed = seed
        self.d_update = d_update  # "joint" | "split", see GANConfig.d_update
        # > 0: class-conditional; batches are (samples, labels), both networks take the label,
        # and generated samples get labels drawn uniformly, like latents, keyed by step.
        self.n_classes = n_classes
        # The averaged generator (an exponential moving average of its weights; Yazici et al.
        # 2019), updated inside the compiled step. ONLY_FIRST_REPLICA: after the synchronised
        # update every replica holds the same generator, so the first replica's average is it.
        self.ema_decay = ema_decay
        # generator(z, training=True), with the layers of `reformulate` computed another way
        # (training/reformulation.py), the others as Keras has them
        self._forward = reformulated_forward(generator, training=True, kinds=reformulate)
        self.ema_weights = [
            keras.Variable(v.numpy(), trainable=False, aggregation="only_first_replica",
                           name=f"ema_{i}")
            for i, v in enumerate(generator.trainable_variables)] if ema_decay else []
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_acc_tracker = keras.metrics.Mean(name="d_acc")
        # Both networks are built from their Input layers; this tells fit() under a strategy not
        # to trace the GAN on a data batch to build it.
        self.built = True

    def compile(self, d_optimizer, g_optimizer, loss_fn, jit_compile: bool = False):
        # No optimizer of Keras's own: train_step applies the two below (the default would be
        # an unused RMSprop, built with slots for every weight under a strategy).
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_acc_tracker]

    def latents(self, n_local, step, stream: int):
        """This replica's rows of the global batch of latents for `step`.

        Draws are stateless, keyed by (seed, stream, step), so a resumed run draws exactly what
        the uninterrupted run would have drawn, with no RNG state to carry. Every replica draws
        the whole global batch and keeps its own slice, in the order in which tf.distribute
        splits the real batch, so any replica count trains on the same numbers as one device.
        """
        return self._draw(n_local, step, stream, lambda shape, seed: tf.random.stateless_normal(
            (*shape, self.latent_dim), seed=seed))

    def fake_labels(self, n_local, step, stream: int):
        """This replica's labels for generated samples at `step`, uniform over the classes,
        drawn as `latents` are (streams 2 and 3, beside the latents' 0 and 1); None for an
        unconditional GAN."""
        if not self.n_classes:
            return None
        return self._draw(n_local, step, stream, lambda shape, seed: tf.random.stateless_uniform(
            shape, seed=seed, maxval=self.n_classes, dtype=tf.int32))

    def _draw(self, n_local, step, stream: int, draw):
        ctx = tf.distribute.get_replica_context()
        replicas, replica = ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.seed, tf.int64) * 4 + stream, tf.cast(step, tf.int64)])
        values = draw((n_local * replicas,), seed)
        return values[n_local * replica:n_local * (replica + 1)]

    def _generate(self, z, labels):
        """The train step's generator call (with its reformulated layers, if any)."""
        return self._forward(z) if labels is None else self.sample(z, labels, training=True)

    def sample(self, z, labels=None, training=False):
        """generator(z), or generator([z, labels]) for a conditional GAN."""
        return self.generator(z if labels is None else _tensors(z, labels), training=training)

    def discriminate(self, x, labels=None, training=False):
        """discriminator(x), or discriminator([x, labels]) for a conditional GAN."""
        return self.discriminator(x if labels is None else _tensors(x, labels), training=training)

    def train_step(self, data):
        # Under a strategy this runs once per replica, on its slice of the global batch of real
        # samples (and their class labels, for a conditional GAN). The generator's optimiser has
        # taken one step per train step, so its counter (saved in checkpoints) is the step
        # number, on every replica alike.
        real, real_classes = data if self.n_classes else (data, None)
        step = self.g_optimizer.iterations
        n_real = tf.shape(real)[0]

        # Discriminator: half real (label 1 or 0.9), half generated (label 0).
        fake_classes = self.fake_labels(n_real, step, 2)
        fake = self._generate(self.latents(n_real, step, 0), fake_classes)
        y_real = tf.fill((n_real, 1), self.real_label)
        y_fake = tf.zeros((n_real, 1))
        if self.d_update == "split":
            d_loss_real, p_real = self._d_update(real, real_classes, y_real)
            d_loss_fake, p_fake = self._d_update(fake, fake_classes, y_fake)
            d_loss = 0.5 * (d_loss_real + d_loss_fake)
            p = tf.concat([p_real, p_fake], axis=0)
        else:
            both_classes = None if real_classes is None else tf.concat(
                [tf.cast(real_classes, tf.int32), fake_classes], 0)
            d_loss, p = self._d_update(tf.concat([real, fake], 0), both_classes,
                                       tf.concat([y_real, y_fake], 0))
        y = tf.concat([y_real, y_fake], axis=0)
        d_acc = tf.reduce_mean(tf.cast(tf.equal(p > 0.5, y > 0.5), tf.float32))

        # Generator: a full batch of latents labelled "real", through the (not updated) D.
        g_local = self.g_batch // tf.distribute.get_replica_context().num_replicas_in_sync
        z = self.latents(g_local, step, 1)
        g_classes = self.fake_labels(g_local, step, 3)
        with tf.GradientTape() as tape:
            p = self.discriminate(self._generate(z, g_classes), g_classes, training=True)
            per_sample = self.loss_fn(tf.ones((g_local, 1)), p)
            g_grad_loss = tf.nn.compute_average_loss(per_sample)
        grads = tape.gradient(g_grad_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        self._update_average(self.g_optimizer.iterations - 1)  # this step's index

        # Trackers take this replica's mean; Keras averages them over replicas.
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(tf.reduce_mean(per_sample))
        self.d_acc_tracker.update_state(d_acc)
        # Shape [1], not scalars: with MultiWorkerMirroredStrategy Keras 3 averages step outputs
        # along axis 0, which scalars lack (tensorflow/tensorflow#72388).
        return {m.name: tf.reshape(m.result(), [1]) for m in self.metrics}

    def _update_average(self, n):
        """avg <- d avg + (1 - d) w after step n (from 0), d = min(decay, (1+n)/(10+n)) (as TF's
        ExponentialMovingAverage with num_updates), so the average covers roughly the last
        tenth of the steps until `ema_decay` caps it, and early weights fade out."""
        if not self.ema_weights:
            return
        n = tf.cast(n, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + n) / (10.0 + n))
        for avg, w in zip(self.ema_weights, self.generator.trainable_variables):
            avg.assign(decay * avg + (1.0 - decay) * w)

    def averaged_generator(self, into: keras.Model | None = None) -> keras.Model | None:
        """A generator model holding the averaged weights (`into`, or a new copy); None when
        the GAN keeps no average."""
        if not self.ema_weights:
            return None
        if into is None:
            into = keras.models.clone_model(self.generator)
        for target, avg in zip(into.trainable_variables, self.ema_weights):
            target.assign(avg.numpy())
        # Batch normalisation's moving statistics are not averaged: the trained generator's
        # describe the averaged one's activations closely (it averages the last ~1,000 steps).
        for target, source in zip(into.non_trainable_variables,
                                  self.generator.non_trainable_variables):
            target.assign(source.numpy())
        return into

    def _d_update(self, x, classes, y):
        """One discriminator step on samples `x` of `classes` (None: unconditional) with targets
        `y`; returns this replica's mean loss and its predictions."""
        with tf.GradientTape() as tape:
            p = self.discriminate(x, classes, training=True)
            per_sample = self.loss_fn(y, p)
            # Sum over the global batch / its size: the optimiser sums gradients over replicas.
            loss = tf.nn.compute_average_loss(per_sample)
        grads = tape.gradient(loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return tf.reduce_mean(per_sample), p

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)


def _tensors(*values):
    # Keras refuses a list of inputs that mixes tensors and numpy arrays.
    return [tf.convert_to_tensor(v) for v in values]


def build_gan(cfg, seed: int = 0, strategy=None, ema: float = 0.0,
              acceleration: Acceleration | None = None) -> GAN:
    """Both networks as the article builds them, compiled with its optimiser and loss, with
    every variable created under `strategy`'s scope (the default strategy when None); `ema` > 0
    also keeps an averaged generator with that decay. `acceleration`: XLA or not, and which of
    the generator's slow layers the train step reformulates; None: Acceleration.decide's
    default for `strategy`'s replicas."""
    from training.models import build_discriminator, build_generator
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    if acceleration is None:
        replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        acceleration = Acceleration.decide(cfg, replicas=replicas)
    with scope:
        gan = GAN(build_generator(cfg), build_discriminator(cfg), cfg.latent_dim, cfg.g_batch,
                  real_label=cfg.real_label, seed=seed, d_update=cfg.d_update, ema_decay=ema,
                  reformulate=acceleration.reformulated, n_classes=cfg.n_classes)
        gan.compile(d_optimizer=keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1),
                    g_optimizer=keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1),
                    loss_fn=keras.losses.BinaryCrossentropy(reduction=None),
                    jit_compile=acceleration.xla)
        # Slots now, under the scope: created lazily inside a replica's step they would not
        # be mirrored; built now, a checkpoint can also be restored into them before fit.
        gan.d_optimizer.build(gan.discriminator.trainable_variables)
        gan.g_optimizer.build(gan.generator.trainable_variables)
    return gan
