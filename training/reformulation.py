"""Two of the DCGAN generator's layers, computed another way: same sums, faster kernels.

TensorFlow's CPU kernels are slow for two layer shapes of article 000's generator:
- Conv2D with a single output channel (its last layer, 7x7 over 128 channels): a tenth of the
  generator's multiply-adds, but a quarter to a third of the time of its forward and backward
  pass (timed by hand, with XLA, on an AVX2 CPU). Here: one matmul from the C input
  channels to the k*k taps, then k*k shifted adds.
- Conv2DTranspose 4x4 with stride 2: here a 2x2 convolution to 4*C_out channels (one group per
  output phase) and a depth-to-space, the sub-pixel form. The export uses the same form for int8,
  since onnxruntime's CPU provider has no int8 ConvTranspose.
`reformulated_forward` applies both (or the ones named: training/acceleration.py's LAST_CONV and
UPSAMPLING) with the layers' own variables, in the train step and when thousands of samples are scored, so
the models, their checkpoints and their export are unchanged; only rounding differs. The gain in
training is measured in benchmarks/results/train-step-*.md (`python -m benchmarks.train_step`).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from training.acceleration import LAST_CONV, REFORMULATIONS, UPSAMPLING, Acceleration


def is_subpixel_conv_transpose(layer) -> bool:
    """A layer that the sub-pixel form computes exactly: Conv2DTranspose 4x4, stride 2, 'same'."""
    return (type(layer) is keras.layers.Conv2DTranspose and tuple(layer.kernel_size) == (4, 4)
            and tuple(layer.strides) == (2, 2) and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and layer.output_padding is None
            and layer.data_format == "channels_last")


# Sub-pixel taps. The transposed conv with its 1-pixel crop computes y[2m + r] = sum x[i] K[k]
# over 2i + k - 1 = 2m + r, so each output phase r in {0, 1} takes two taps per axis. On the
# input padded by one pixel, a 2x2 window at q = m + r holds x[m + r + a - 1] for a in {0, 1},
# and the tap it needs is k = 3 - r - 2a. Rows in the order (a, b, rh, rw).
_SUBPIXEL_TAPS = np.array([(3 - rh - 2 * a, 3 - rw - 2 * b)
                           for a in (0, 1) for b in (0, 1) for rh in (0, 1) for rw in (0, 1)])


def subpixel_kernel(kernel):
    """The 2x2 convolution's kernel [2, 2, C_in, 4*C_out] that stands in for a Conv2DTranspose
    kernel [4, 4, C_out, C_in] (Keras layout); channel group 2*rh + rw is output phase (rh, rw).
    No zero taps, so it has as many weights as the original. Differentiable (a gather)."""
    kh, kw, c_out, c_in = kernel.shape
    taps = tf.gather_nd(tf.convert_to_tensor(kernel), _SUBPIXEL_TAPS)  # [16, C_out, C_in]
    taps = tf.transpose(tf.reshape(taps, (2, 2, 2, 2, c_out, c_in)), (0, 1, 5, 2, 3, 4))
    return tf.reshape(taps, (2, 2, c_in, 4 * c_out))


def subpixel_conv_transpose(x, w, b):
    """Stride-2 transposed conv as pad + 2x2 conv + per-phase crop + depth_to_space.
    x: [N, H, W, C_in] -> [N, 2H, 2W, C_out]; w from `subpixel_kernel`, b the bias tiled 4 times.
    Phase (rh, rw) of output pixel (m, n) sits at window (m + rh, n + rw); depth_to_space (like
    ONNX DepthToSpace, DCR) then interleaves the phases, taking phase (rh, rw) of channel c from
    channel (2*rh + rw) * C_out + c."""
    h, wd, c_out = x.shape[1], x.shape[2], b.shape[0] // 4  # static: fixed-size images
    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, 1, "VALID") + b
    phases = [y[:, rh:rh + h, rw:rw + wd, (2 * rh + rw) * c_out:(2 * rh + rw + 1) * c_out]
              for rh in (0, 1) for rw in (0, 1)]
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


def is_single_channel_conv(layer) -> bool:
    """A layer that `single_channel_conv` computes: Conv2D(1, odd k x k, stride 1, 'same')."""
    return (type(layer) is keras.layers.Conv2D and layer.filters == 1
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1 and layer.padding == "same"
            and layer.data_format == "channels_last"
            and all(k % 2 == 1 for k in layer.kernel_size))


def _shift_add(kh: int, kw: int):
    """The function y[n, h, w] = sum_ij p[n, h + i - kh//2, w + j - kw//2, i*kw + j] (zero
    outside) of p [N, H, W, kh*kw]. Its gradient is written out: autodiff of the kh*kw channel
    slices builds kh*kw full-size tensors of zeros, slower than the convolution it replaces."""
    pad = [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2]]

    @tf.custom_gradient
    def shift_add(p):
        h, w = p.shape[1], p.shape[2]
        padded = tf.pad(p, pad + [[0, 0]])
        y = tf.add_n([padded[:, i:i + h, j:j + w, i * kw + j]
                      for i in range(kh) for j in range(kw)])

        def grad(dy):  # dp[n, a, b, i*kw + j] = dy[n, a - i + kh//2, b - j + kw//2], or 0
            dy = tf.pad(dy, pad)
            return tf.stack([dy[:, kh - 1 - i:kh - 1 - i + h, kw - 1 - j:kw - 1 - j + w]
                             for i in range(kh) for j in range(kw)], axis=-1)
        return y, grad
    return shift_add


def single_channel_conv(x, kernel, bias=None):
    """Conv2D(1, kh x kw, stride 1, 'same', odd kernel) of x [N, H, W, C] with kernel
    [kh, kw, C, 1]: per pixel, project the C channels onto the kh*kw taps (a matmul), then add
    each tap's plane shifted to where it lands (cross-correlation, as Conv2D)."""
    kh, kw, c_in, _ = kernel.shape
    taps = tf.reshape(tf.convert_to_tensor(kernel), (kh * kw, c_in))  # row i*kw + j: tap (i, j)
    y = _shift_add(kh, kw)(tf.einsum("nhwc,kc->nhwk", x, taps))[..., None]
    return y if bias is None else y + bias


def _reformulation(layer) -> str | None:
    """Which of REFORMULATIONS computes `layer`, if any."""
    if is_single_channel_conv(layer):
        return LAST_CONV
    if is_subpixel_conv_transpose(layer):
        return UPSAMPLING
    return None


def _fast_step(layer, training: bool, kinds: tuple[str, ...]):
    """The layer as a function of x, reformulated if its kind is among `kinds`."""
    kind = _reformulation(layer)
    if kind == LAST_CONV and kind in kinds:
        return lambda x: layer.activation(single_channel_conv(
            x, layer.kernel, layer.bias if layer.use_bias else None))
    if kind == UPSAMPLING and kind in kinds:
        def step(x):
            w = subpixel_kernel(layer.kernel)
            y = subpixel_conv_transpose(x, w, tf.tile(tf.convert_to_tensor(layer.bias), [4])
                                        if layer.use_bias else tf.zeros(w.shape[-1]))
            return layer.activation(y)
        return step
    return lambda x: layer(x, training=training)


def _reformulates(generator, kinds: tuple[str, ...]) -> bool:
    unknown = set(kinds) - set(REFORMULATIONS)
    if unknown:
        raise ValueError(f"unknown reformulations {sorted(unknown)}; known: {REFORMULATIONS}")
    return any(_reformulation(layer) in kinds for layer in generator.layers)


def reformulated_forward(generator: keras.Sequential, training: bool, kinds: tuple[str, ...]):
    """generator(z, training=training), with the layers of `kinds` reformulated; the
    generator itself when it has none of them (the MLPs) or `kinds` is empty."""
    if not _reformulates(generator, kinds):
        return lambda z: generator(z, training=training)
    return chain([_fast_step(layer, training, kinds) for layer in generator.layers])


def chain(steps):
    """The function that applies `steps` (functions of one tensor) in order."""
    def forward(z):
        x = z
        for step in steps:
            x = step(x)
        return x
    return forward


def sampler(generator: keras.Sequential, acceleration: Acceleration | None = None):
    """generator(z, training=False) for scoring thousands of samples: with the layers that
    `acceleration` names reformulated and compiled (with XLA if it says so) where there is
    something to reformulate, else (and with `acceleration` None) the plain eager call. For the
    DCGAN's 10,000 evaluation samples with XLA, about twice as fast as the eager call on an AVX2
    CPU; on AVX-512 without XLA, the last layer alone takes about 0.7 of the time of both (an
    Intel Xeon with AMX). Both timed by hand, not benchmarks of the repo."""
    if len(generator.inputs) > 1:  # a conditional generator: (z, labels), nothing to reformulate
        return lambda z, labels: generator([z, labels], training=False)
    kinds = acceleration.reformulated if acceleration else ()
    if not _reformulates(generator, kinds):
        return lambda z: generator(z, training=False)
    return tf.function(reformulated_forward(generator, training=False, kinds=kinds),
                       jit_compile=acceleration.xla)
