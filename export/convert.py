"""Keras generator -> ONNX through tf2onnx, optionally with the sub-pixel rewrite.

tf2onnx's `from_keras` fails on Keras 3 models (onnx/tensorflow-onnx#2448), so we convert a
tf.function with a named input signature, returning a dict to name the output.
"""
from __future__ import annotations

import numpy as np

from training.config import GANConfig


def subpixel_weights(kernel: np.ndarray) -> np.ndarray:
    """Weights of a 2x2 convolution with 4*C_out channels that stands in for
    Conv2DTranspose(C_out, 4x4, strides 2, padding 'same') with `kernel` (see `subpixel_conv_transpose`).

    The transposed conv with its 1-pixel crop computes y[2m + r] = sum x[i] K[k] over
    2i + k - 1 = 2m + r, so each output phase r in {0, 1} takes two taps per axis. On the input
    padded by one pixel, a 2x2 window at q = m + r holds x[m + r + a - 1] for a in {0, 1}, and
    the tap it needs is k = 3 - r - 2a. One 2x2 conv computes all four phases (rh, rw) as
    channel groups 2*rh + rw; no zero taps, so the file stays as small as the original.

    kernel: Keras Conv2DTranspose layout [4, 4, C_out, C_in]; returns [2, 2, C_in, 4*C_out].
    """
    kh, kw, c_out, c_in = kernel.shape
    if (kh, kw) != (4, 4):
        raise ValueError("the sub-pixel rewrite covers 4x4 kernels with stride 2 only")
    out = np.zeros((2, 2, c_in, 4, c_out), kernel.dtype)
    for rh in (0, 1):
        for rw in (0, 1):
            for a in (0, 1):
                for b in (0, 1):
                    out[a, b, :, 2 * rh + rw, :] = kernel[3 - rh - 2 * a, 3 - rw - 2 * b].T
    return out.reshape(2, 2, c_in, 4 * c_out)


def subpixel_conv_transpose(x, w, b):
    """Stride-2 transposed conv as pad + 2x2 conv + per-phase crop + depth_to_space.
    x: [N, H, W, C_in] -> [N, 2H, 2W, C_out]. Phase (rh, rw) of output pixel (m, n) sits at
    window (m + rh, n + rw); depth_to_space (like ONNX DepthToSpace, DCR) then interleaves the
    phases, taking phase (rh, rw) of channel c from channel (2*rh + rw) * C_out + c."""
    import tensorflow as tf
    h, wd, c_out = x.shape[1], x.shape[2], b.shape[0] // 4  # static: fixed-size images
    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, 1, "VALID") + b
    phases = [y[:, rh:rh + h, rw:rw + wd, (2 * rh + rw) * c_out:(2 * rh + rw + 1) * c_out]
              for rh in (0, 1) for rw in (0, 1)]
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def forward_fn(generator, subpixel: bool = False):
    """The generator's forward pass as a plain function of z, with every stride-2 4x4
    Conv2DTranspose replaced by the sub-pixel form when `subpixel` is set."""
    import keras
    import tensorflow as tf

    steps = []
    for layer in generator.layers:
        if subpixel and isinstance(layer, keras.layers.Conv2DTranspose) \
                and tuple(layer.strides) == (2, 2) and layer.padding == "same":
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            # numpy here, tf.constant inside the trace: constants made outside a tf.function
            # become captured inputs of the converted graph.
            w = subpixel_weights(kernel)
            b = np.tile(bias, 4)  # the bias is the same in every phase
            act = layer.activation

            def step(x, w=w, b=b, act=act):
                return act(subpixel_conv_transpose(x, tf.constant(w), tf.constant(b)))
            steps.append(step)
        else:
            steps.append(lambda x, layer=layer: layer(x, training=False))

    def forward(z):
        x = z
        for s in steps:
            x = s(x)
        return x
    return forward


def to_onnx(generator, cfg: GANConfig, opset: int = 17, subpixel: bool = False):
    """An onnx.ModelProto with input z [N, latent_dim] and output sample [N, *sample_shape]."""
    import tensorflow as tf
    import tf2onnx

    forward = forward_fn(generator, subpixel)
    spec = [tf.TensorSpec((None, cfg.latent_dim), tf.float32, name="z")]

    @tf.function(input_signature=spec)
    def serve(z):
        return {"sample": tf.identity(forward(z), name="sample")}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    for value in (*model.graph.input, *model.graph.output):  # name the dynamic batch dimension
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model
