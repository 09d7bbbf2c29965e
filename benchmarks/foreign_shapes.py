"""Generators gan-edge did not train, in the two shapes people most often bring, built with
fixed seeds and random weights: keras-io's face DCGAN as a Keras 3 model, and the PyTorch
examples' DCGAN as torch.onnx.export lays it out (built with onnx.helper: no PyTorch needed).
The benchmark of foreign generators (benchmarks/foreign.py) measures them at full width; the
tests build them narrow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KERAS_IO_WIDTH = 128  # the face DCGAN's first width in keras-io's example (then 256, 512)
PYTORCH_NGF = 64      # the PyTorch example's ngf (widths 512, 256, 128, 64)


def face_dcgan(width: int = 8):
    """The keras-io face DCGAN's generator (latent 128, Dense to 8x8, three Conv2DTranspose 4x4
    stride 2 'same' with LeakyReLU, a 5x5 Conv to 3 channels with sigmoid: 64x64x3), its
    widths (128/256/512 there) divided by 128 / `width`. Initialised so that random weights
    give samples spread over the range, as a trained generator's are."""
    import keras
    from keras import layers
    keras.utils.set_random_seed(0)
    he = {"kernel_initializer": "he_normal", "bias_initializer": "random_normal"}
    stack = [keras.Input((128,)), layers.Dense(8 * 8 * width, **he),
             layers.Reshape((8, 8, width))]
    for filters in (width, 2 * width, 4 * width):
        stack += [layers.Conv2DTranspose(filters, 4, strides=2, padding="same", **he),
                  layers.LeakyReLU(negative_slope=0.2)]
    stack.append(layers.Conv2D(3, 5, padding="same", activation="sigmoid", **he))
    model = keras.Sequential(stack, name="generator")
    last = model.layers[-1]  # Keras counts a transposed kernel's fan-in on its output axis,
    last.kernel.assign(last.kernel * 12)  # so the layers before shrink the signal: undo it here
    return model


def torch_dcgan(path: Path, nz: int = 100, ngf: int = 4, **kwargs) -> Path:
    """torch_dcgan_model(nz, ngf, ...) saved to `path`."""
    import onnx
    onnx.save(torch_dcgan_model(nz, ngf, **kwargs), str(path))
    return path


def torch_dcgan_model(nz: int = 100, ngf: int = 4, channels: int = 3, batch="batch_size",
                      output_dims=None, final="Tanh", names=("input.1", "onnx::Tanh_out_27"),
                      opset: int = 17):
    """An ONNX model laid out as torch.onnx.export writes the PyTorch examples' DCGAN generator
    (z [N, nz, 1, 1] named "input.1"; ConvTranspose 4x4 stride 1 to 4x4, then four stride 2
    pads 1 to 64x64, BatchNormalization and ReLU after each but the last, then Tanh; output
    [N, 3, 64, 64] NCHW with an "onnx::"-style name), its widths (ngf 64 there) smaller.
    Random He-initialised weights, and each batch normalisation's running statistics those of
    its input on seeded latents, as after training: samples spread over the range."""
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(3)
    probe = {names[0]: rng.standard_normal((64, nz, 1, 1)).astype(np.float32)}
    widths = [ngf * 8, ngf * 4, ngf * 2, ngf, channels]
    nodes, inits, x, c_in = [], [], names[0], nz
    for i, c_out in enumerate(widths):
        w = f"main.{3 * i}.weight"
        fan_in = c_in * (1 if i == 0 else 4)  # taps that reach one output pixel
        weight = rng.normal(0.0, np.sqrt(2 / fan_in), (c_in, c_out, 4, 4))
        inits.append(numpy_helper.from_array(weight.astype(np.float32), w))
        y = f"/main/main.{3 * i}/ConvTranspose_output_0"
        nodes.append(helper.make_node(
            "ConvTranspose", [x, w], [y], name=f"/main/main.{3 * i}/ConvTranspose",
            kernel_shape=[4, 4], strides=[1, 1] if i == 0 else [2, 2],
            pads=[0, 0, 0, 0] if i == 0 else [1, 1, 1, 1], dilations=[1, 1], group=1))
        x, c_in = y, c_out
        if i == len(widths) - 1:
            break
        seen = _run(nodes, inits, (names[0], nz), x, probe)
        bn = f"main.{3 * i + 1}"
        for name, value in (("weight", rng.normal(1.0, 0.1, c_out)),
                            ("bias", rng.normal(0.0, 0.1, c_out)),
                            ("running_mean", seen.mean(axis=(0, 2, 3))),
                            ("running_var", seen.var(axis=(0, 2, 3)))):
            inits.append(numpy_helper.from_array(value.astype(np.float32), f"{bn}.{name}"))
        normalised = f"/main/main.{3 * i + 1}/BatchNormalization_output_0"
        nodes += [helper.make_node("BatchNormalization",
                                   [x] + [f"{bn}.{n}" for n in ("weight", "bias", "running_mean",
                                                                "running_var")],
                                   [normalised], epsilon=1e-5, momentum=0.9),
                  helper.make_node("Relu", [normalised], [f"/main/main.{3 * i + 2}/Relu_output_0"])]
        x = f"/main/main.{3 * i + 2}/Relu_output_0"
    out = names[1]
    if final:
        nodes.append(helper.make_node(final, [x], [out]))
    else:
        out = x
    return _model(nodes, inits, (names[0], nz), batch, out,
                  output_dims or [batch, channels, 64, 64], opset)


def _model(nodes, inits, latent, batch, out, out_dims, opset=17):
    """A model of `nodes` from the latent input (name, size) [batch, size, 1, 1] to `out`."""
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        nodes, "main_graph", [helper.make_tensor_value_info(latent[0], TensorProto.FLOAT,
                                                            [batch, latent[1], 1, 1])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_dims)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="pytorch")
    model.ir_version = 8
    return model


def _run(nodes, inits, latent, out, feed) -> np.ndarray:
    """`out` of the graph so far, on `feed`."""
    import onnxruntime as ort
    model = _model(nodes, inits, latent, "N", out, None)
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
