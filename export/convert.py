"""Keras generator -> ONNX through tf2onnx, optionally with the sub-pixel rewrite
(training/fast_forward.py).

tf2onnx's `from_keras` fails on Keras 3 models (onnx/tensorflow-onnx#2448), so we convert a
tf.function with a named input signature, returning a dict to name the output.
"""
from __future__ import annotations

import numpy as np

from training.config import GANConfig


def forward_fn(generator, subpixel: bool = False):
    """The generator's forward pass as a plain function of z, with every stride-2 4x4
    Conv2DTranspose replaced by the sub-pixel form when `subpixel` is set."""
    import tensorflow as tf

    from training.fast_forward import (chain, is_subpixel_conv_transpose,
                                       subpixel_conv_transpose, subpixel_kernel)
    steps = []
    for layer in generator.layers:
        if subpixel and is_subpixel_conv_transpose(layer):
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            # numpy here, tf.constant inside the trace: constants made outside a tf.function
            # become captured inputs of the converted graph.
            w = subpixel_kernel(kernel).numpy()
            b = np.tile(bias, 4)  # the bias is the same in every phase
            act = layer.activation

            def step(x, w=w, b=b, act=act):
                return act(subpixel_conv_transpose(x, tf.constant(w), tf.constant(b)))
            steps.append(step)
        else:
            steps.append(lambda x, layer=layer: layer(x, training=False))
    return chain(steps)


def to_onnx(generator, cfg: GANConfig, opset: int = 17, subpixel: bool = False):
    """An onnx.ModelProto with input z [N, latent_dim] (and, for a conditional generator,
    label int64 [N]) and output sample [N, *sample_shape]."""
    import tensorflow as tf
    import tf2onnx

    z_spec = tf.TensorSpec((None, cfg.latent_dim), tf.float32, name="z")
    if cfg.conditional:
        # No sub-pixel form here: the conditional generator is a functional model, and at
        # its size (about 14 M multiply-adds a sample) the float ConvTranspose costs little.
        spec = [z_spec, tf.TensorSpec((None,), tf.int64, name="label")]

        @tf.function(input_signature=spec)
        def serve(z, label):
            sample = generator([z, tf.cast(label, tf.int32)], training=False)
            return {"sample": tf.identity(sample, name="sample")}
    else:
        spec = [z_spec]
        forward = forward_fn(generator, subpixel)

        @tf.function(input_signature=spec)
        def serve(z):
            return {"sample": tf.identity(forward(z), name="sample")}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    for value in (*model.graph.input, *model.graph.output):  # name the dynamic batch dimension
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model
