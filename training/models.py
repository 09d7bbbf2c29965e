"""Generator and discriminator builders, from a GANConfig: the articles' Sequential models, and
gan-edge's class-conditional functional models (inputs `z`/`x` and `label`)."""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from training.config import GANConfig


@keras.saving.register_keras_serializable(package="gan_edge")
class GlobalBatchDropout(layers.Dropout):
    """Keras's Dropout, with masks drawn for the whole global batch.

    Under tf.distribute every replica holds the same RNG state, so Keras's Dropout gives every
    replica's slice of the batch the same mask. This one draws the global batch's mask and
    keeps this replica's rows (as GAN.latents does). When a replica's batch is a contiguous
    slice of one device's (the split discriminator updates, the generator update) those are
    one device's masks; with one replica it draws exactly what Keras's Dropout draws.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        ctx = tf.distribute.get_replica_context()
        replicas, replica = ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group
        n = tf.shape(inputs)[0]
        ones = tf.ones(tf.concat([[n * replicas], tf.shape(inputs)[1:]], 0), inputs.dtype)
        mask = keras.random.dropout(ones, self.rate, seed=self.seed_generator)
        return inputs * mask[n * replica:n * (replica + 1)]


def _init(name: str | None):
    if name is None:
        return "glorot_uniform"  # Keras's default, what the articles get when they say nothing
    if name == "normal_0.02":
        return keras.initializers.RandomNormal(stddev=0.02)  # article 003, DCGAN-paper habit
    return name


def _activation(cfg: GANConfig, alpha: float):
    if cfg.hidden_activation == "relu":
        return layers.ReLU()
    return layers.LeakyReLU(negative_slope=alpha)


def _mlp_generator(cfg: GANConfig) -> keras.Sequential:
    model = keras.Sequential(name="generator")
    model.add(keras.Input((cfg.latent_dim,), name="z"))
    for units in cfg.g_widths:
        model.add(layers.Dense(units, kernel_initializer=_init(cfg.g_kernel_init)))
        model.add(_activation(cfg, cfg.g_alpha))
    n_out = 1
    for d in cfg.sample_shape:
        n_out *= d
    model.add(layers.Dense(n_out, activation=cfg.g_out_activation,
                           kernel_initializer=_init(cfg.g_kernel_init)))
    if len(cfg.sample_shape) > 1:
        model.add(layers.Reshape(cfg.sample_shape))
    return model


def _sequential_discriminator(cfg: GANConfig, hidden, before=(), after=()) -> keras.Sequential:
    """The articles' discriminators: the `before` layers, then per width of cfg.d_widths a
    `hidden(width)` layer, its activation and (with cfg.d_dropout) dropout, then the `after`
    layers and Dense(1, sigmoid)."""
    model = keras.Sequential(name="discriminator")
    model.add(keras.Input(cfg.sample_shape))
    for layer in before:
        model.add(layer)
    for width in cfg.d_widths:
        model.add(hidden(width))
        model.add(_activation(cfg, cfg.d_alpha))
        if cfg.d_dropout:
            model.add(GlobalBatchDropout(cfg.d_dropout))
    for layer in after:
        model.add(layer)
    model.add(layers.Dense(1, activation="sigmoid", kernel_initializer=_init(cfg.d_kernel_init)))
    return model


def _mlp_discriminator(cfg: GANConfig) -> keras.Sequential:
    flatten = [layers.Flatten()] if len(cfg.sample_shape) > 1 else []
    return _sequential_discriminator(
        cfg, lambda units: layers.Dense(units, kernel_initializer=_init(cfg.d_kernel_init)),
        before=flatten)


def _dcgan_generator(cfg: GANConfig) -> keras.Sequential:
    # z [N,100] -> Dense 7*7*128 -> [N,7,7,128] -> ConvT s2 [N,14,14,128] -> ConvT s2 [N,28,28,128]
    # -> Conv 7x7 [N,28,28,1] in [0,1] (article 000).
    model = keras.Sequential(name="generator")
    model.add(keras.Input((cfg.latent_dim,), name="z"))
    model.add(layers.Dense(7 * 7 * cfg.g_widths[0]))
    model.add(layers.LeakyReLU(negative_slope=cfg.g_alpha))
    model.add(layers.Reshape((7, 7, cfg.g_widths[0])))
    for filters in cfg.g_widths:
        model.add(layers.Conv2DTranspose(filters, (4, 4), strides=(2, 2), padding="same"))
        model.add(layers.LeakyReLU(negative_slope=cfg.g_alpha))
    model.add(layers.Conv2D(cfg.sample_shape[-1], (7, 7), padding="same",
                            activation=cfg.g_out_activation))
    return model


def _dcgan_discriminator(cfg: GANConfig) -> keras.Sequential:
    # [N,28,28,1] -> Conv s2 [N,14,14,64] -> Conv s2 [N,7,7,64] -> Dense 1 (article 000).
    return _sequential_discriminator(
        cfg, lambda filters: layers.Conv2D(filters, (3, 3), strides=(2, 2), padding="same"),
        after=[layers.Flatten()])


def _cdcgan_generator(cfg: GANConfig) -> keras.Model:
    # [z (N, latent), embed(label) (N, E)] -> Dense 7*7*g0 -> [N,7,7,g0] -> ConvT s2 g1
    # [N,14,14,g1] -> ConvT s2 g2 [N,28,28,g2] -> Conv 3x3 [N,28,28,1] tanh; each hidden
    # layer batch-normalised (when cfg.g_batchnorm) then ReLU, as in the DCGAN paper.
    z = keras.Input((cfg.latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(cfg.n_classes, cfg.label_embedding, name="label_embedding")(label)
    h = layers.Concatenate()([z, embedded])
    g0, *up = cfg.g_widths

    def norm_relu(x):
        if cfg.g_batchnorm:
            x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    h = norm_relu(layers.Dense(7 * 7 * g0, use_bias=not cfg.g_batchnorm)(h))
    h = layers.Reshape((7, 7, g0))(h)
    for filters in up:
        h = layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                   use_bias=not cfg.g_batchnorm)(h)
        h = norm_relu(h)
    out = layers.Conv2D(cfg.sample_shape[-1], 3, padding="same",
                        activation=cfg.g_out_activation)(h)
    return keras.Model([z, label], out, name="generator")


@keras.saving.register_keras_serializable(package="gan_edge")
class Projection(layers.Layer):
    """<embed(label), features>: the class term of a projection discriminator (Miyato and
    Koyama 2018), added to the unconditional logit."""

    def __init__(self, n_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes

    def build(self, input_shape):
        features_shape, _ = input_shape
        self.embedding = self.add_weight(shape=(self.n_classes, features_shape[-1]),
                                         initializer="glorot_uniform", name="embedding")

    def call(self, inputs):
        features, label = inputs
        return keras.ops.sum(keras.ops.take(self.embedding, label, axis=0) * features, axis=-1,
                             keepdims=True)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}


def _cdcgan_discriminator(cfg: GANConfig) -> keras.Model:
    # [x (N,28,28,1), label] -> Conv 4x4 s2 d0 [N,14,14,d0] -> Conv 4x4 s2 d1 [N,7,7,d1] ->
    # features [N, 49*d1] -> Dense 1 (+ the projection term) -> sigmoid.
    x = keras.Input(cfg.sample_shape, name="x")
    label = keras.Input((), dtype="int32", name="label")
    h = x
    if cfg.d_conditioning == "concat":  # the label as n_classes one-hot input channels
        onehot = layers.Reshape((1, 1, cfg.n_classes))(keras.ops.one_hot(label, cfg.n_classes))
        h = layers.Concatenate()([h, keras.ops.ones_like(x) * onehot])  # [N,28,28,1+n]
    for filters in cfg.d_widths:
        h = layers.Conv2D(filters, 4, strides=2, padding="same")(h)
        h = layers.LeakyReLU(negative_slope=cfg.d_alpha)(h)
        if cfg.d_dropout:
            h = GlobalBatchDropout(cfg.d_dropout)(h)
    features = layers.Flatten()(h)
    logit = layers.Dense(1)(features)
    if cfg.d_conditioning == "projection":
        logit = layers.Add()([logit, Projection(cfg.n_classes)([features, label])])
    out = layers.Activation("sigmoid")(logit)
    return keras.Model([x, label], out, name="discriminator")


_BUILDERS = {
    "mlp": (_mlp_generator, _mlp_discriminator),
    "dcgan": (_dcgan_generator, _dcgan_discriminator),
    "cdcgan": (_cdcgan_generator, _cdcgan_discriminator),
}


def build_generator(cfg: GANConfig) -> keras.Model:
    return _BUILDERS[cfg.family][0](cfg)


def build_discriminator(cfg: GANConfig) -> keras.Model:
    return _BUILDERS[cfg.family][1](cfg)
