"""The GAN's train step: both networks learn in every step (the Keras 3 trainable trap)."""
import numpy as np
import pytest

from training.config import REGISTRY, get_config


def _gan(name):
    import keras

    from training.gan import build_gan
    cfg = get_config(name)
    keras.utils.set_random_seed(0)
    return cfg, build_gan(cfg, seed=0)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_step_moves_every_weight_of_both_networks(name):
    import tensorflow as tf
    cfg, gan = _gan(name)
    rng = np.random.default_rng(0)
    lo, hi = cfg.output_range
    step_fn = tf.function(gan.train_step)
    for step in range(2):
        real = rng.uniform(lo, hi, (cfg.d_half_batch, *cfg.sample_shape)).astype("float32")
        before = {id(v): v.numpy().copy() for v in gan.generator.trainable_variables
                  + gan.discriminator.trainable_variables}
        batch = tf.constant(real)
        if cfg.conditional:
            batch = (batch, tf.constant(rng.integers(0, cfg.n_classes, len(real)), tf.int32))
        logs = step_fn(batch)
        for net in (gan.generator, gan.discriminator):
            for v in net.trainable_variables:
                assert not np.array_equal(before[id(v)], v.numpy()), f"{net.name} {v.path} did not move"
        assert all(np.isfinite(x.numpy()).all() for x in logs.values())


def _keyed_by_step_and_stream_alone(draw, n: int, stream: int) -> np.ndarray:
    """draw(n, step, stream) twice with the same keys gives the same numbers, and another step
    or another stream gives others: no hidden RNG state. Returns the first draw."""
    a = draw(n, 7, stream).numpy()
    assert np.array_equal(a, draw(n, 7, stream).numpy())
    assert not np.array_equal(a, draw(n, 8, stream).numpy())
    assert not np.array_equal(a, draw(n, 7, stream + 1).numpy())
    return a


def test_latents_are_a_function_of_seed_and_step_only():
    _keyed_by_step_and_stream_alone(_gan("gan-1d")[1].latents, 4, 0)


def test_averaged_weights_equal_a_hand_computed_moving_average():
    import keras
    import tensorflow as tf

    from training.gan import build_gan
    cfg, decay = get_config("gan-1d"), 0.9  # a small decay, reached after 80 steps
    keras.utils.set_random_seed(0)
    gan = build_gan(cfg, seed=0, ema=decay)
    want = [v.numpy().astype(np.float64) for v in gan.generator.trainable_variables]
    step_fn = tf.function(gan.train_step)
    rng = np.random.default_rng(0)
    for n in range(100):
        step_fn(tf.constant(rng.uniform(-1, 1, (cfg.d_half_batch, 2)).astype("float32")))
        d = min(decay, (1 + n) / (10 + n))  # the warm-up, then the decay
        want = [d * a + (1 - d) * w.numpy() for a, w in zip(want, gan.generator.trainable_variables)]
    got = [v.numpy() for v in gan.averaged_generator().trainable_variables]
    for g, w, raw in zip(got, want, gan.generator.trainable_variables, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)
        assert not np.allclose(g, raw.numpy(), atol=1e-4)  # an average, not the last weights
    off = build_gan(cfg, seed=0, ema=0.0)
    assert off.averaged_generator() is None and off.ema_weights == []


@pytest.mark.parametrize("xla", [False, True])
def test_the_reformulated_generator_computes_what_the_keras_layers_do(xla):
    """fast_forward reformulates the DCGAN's single-channel conv and stride-2 transposed
    convs (training/fast_forward.py), both or the last conv only: same samples and same
    gradients as the Keras layers, to float rounding, with and without XLA; so does the sampler
    that evaluations use."""
    import tensorflow as tf

    from training.config import LAST_CONV, REFORMULATIONS
    from training.fast_forward import (fast_forward, is_single_channel_conv,
                                       is_subpixel_conv_transpose, sampler)
    cfg, gan = _gan("dcgan-mnist")
    g = gan.generator
    kinds = [is_single_channel_conv(la) or is_subpixel_conv_transpose(la) for la in g.layers]
    assert sum(kinds) == 3  # Conv2DTranspose x2 and the last Conv2D
    z = tf.constant(np.random.default_rng(1).standard_normal((8, cfg.latent_dim)), tf.float32)
    weight = tf.constant(np.random.default_rng(2).standard_normal((8, *cfg.sample_shape)),
                         tf.float32)  # a loss whose gradient is not uniform over the pixels

    @tf.function(jit_compile=xla)
    def samples_and_grads(forward):
        with tf.GradientTape() as tape:
            x = forward(z)
            loss = tf.reduce_sum(x * weight)
        return x, tape.gradient(loss, g.trainable_variables)

    want_x, want_grads = samples_and_grads(lambda z: g(z, training=True))
    for kinds in (REFORMULATIONS, (LAST_CONV,)):
        np.testing.assert_allclose(sampler(g, xla, kinds)(z).numpy(),
                                   g(z, training=False).numpy(), atol=1e-6)  # what evals score
        got_x, got_grads = samples_and_grads(fast_forward(g, training=True, kinds=kinds))
        np.testing.assert_allclose(got_x.numpy(), want_x.numpy(), atol=1e-6)
        for got, want, v in zip(got_grads, want_grads, g.trainable_variables, strict=True):
            scale = np.abs(want.numpy()).max()
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5 * scale,
                                       err_msg=f"{kinds}: {v.path}")

    def op_types(kinds):
        graph = tf.function(fast_forward(g, training=True, kinds=kinds)).get_concrete_function(
            z).graph
        return {op.type for op in graph.get_operations()}
    assert "DepthToSpace" in op_types(REFORMULATIONS)  # the sub-pixel upsampling
    last_only = op_types((LAST_CONV,))  # the transposed convs stay Keras's own
    assert "DepthToSpace" not in last_only and "Conv2DBackpropInput" in last_only


def test_a_conditional_gans_averaged_generator_carries_the_batch_norm_statistics():
    """The averaged weights alone would leave batch normalisation's moving statistics at their
    initial values, and the averaged generator would draw noise at inference."""
    import tensorflow as tf
    from training.gan import build_gan
    cfg = get_config("cgan-mnist")
    gan = build_gan(cfg, seed=0, ema=0.999)
    rng = np.random.default_rng(0)
    step_fn = tf.function(gan.train_step)
    for _ in range(3):
        step_fn((tf.constant(rng.uniform(-1, 1, (cfg.d_half_batch, *cfg.sample_shape)), tf.float32),
                 tf.constant(rng.integers(0, 10, cfg.d_half_batch), tf.int32)))
    moving = [v.numpy() for v in gan.generator.non_trainable_variables]
    assert moving and not all(np.allclose(m, 0) or np.allclose(m, 1) for m in moving)
    averaged = gan.averaged_generator()
    for got, want in zip(averaged.non_trainable_variables, moving, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


def test_fake_labels_are_uniform_and_a_function_of_seed_and_step_only():
    a = _keyed_by_step_and_stream_alone(_gan("cgan-mnist")[1].fake_labels, 4000, 2)
    assert set(a) == set(range(10)) and np.bincount(a).min() > 300
    assert _gan("gan-1d")[1].fake_labels(4, 7, 2) is None
