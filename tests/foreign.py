"""Generators that gan-edge did not train, built with onnx.helper and fixed-seed random weights
(no TensorFlow, no PyTorch), in the file contract every exported file has: input z float32
[N, LATENT], for a conditional one label int64 [N], output sample [N, H, W, C] (NHWC) in the
declared range, and the gan.* metadata that runtime.generator.ModelInfo reads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from conftest import save_graph

LATENT = 8
FEATURES = 4  # channels of the coarse map that is resized to the image


def color_generator(path: Path, h: int, w: int, c: int, conditional: bool = False,
                    output_range: tuple[float, float] = (0.0, 1.0), seed: int = 0,
                    **metadata: str) -> Path:
    """A generator of [h, w, c] samples into `path`: z -> Gemm -> Reshape [N, 4, 4, 4] (NCHW)
    -> linear Resize to h x w, plus a fixed per-pixel pattern (so that neighbouring pixels
    differ) -> LeakyRelu -> 3x3 Conv to c channels -> Sigmoid (range 0..1) or Tanh (-1..1) ->
    Transpose to NHWC. A conditional one adds a class embedding (Gather) to z; its classes
    are named "class 0", "class 1", "class 2". `metadata`: more gan.* keys, "_" for "."."""
    rng = np.random.default_rng(seed)

    def const(name, array, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(array, dtype), name)
    n_classes = 3
    inits = [const("w1", rng.standard_normal((LATENT, FEATURES * 16)) / np.sqrt(LATENT)),
             const("b1", rng.standard_normal(FEATURES * 16) * 0.1),
             const("coarse", [-1, FEATURES, 4, 4], np.int64),
             const("first", [0], np.int64), const("second", [2], np.int64),
             const("size", [h, w], np.int64),
             const("pattern", rng.standard_normal((1, FEATURES, h, w)) * 0.7),
             const("w2", rng.standard_normal((c, FEATURES, 3, 3)) / np.sqrt(FEATURES * 9) * 2),
             const("b2", rng.standard_normal(c) * 0.2)]
    nodes, latent = [], "z"
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT])]
    if conditional:
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]))
        inits.append(const("embedding", rng.standard_normal((n_classes, LATENT)) * 2))
        nodes += [helper.make_node("Gather", ["embedding", "label"], ["class_z"]),
                  helper.make_node("Add", ["z", "class_z"], ["z_and_class"])]
        latent = "z_and_class"
    lo, hi = output_range
    squash = {(0.0, 1.0): "Sigmoid", (-1.0, 1.0): "Tanh"}[(lo, hi)]
    nodes += [
        helper.make_node("Gemm", [latent, "w1", "b1"], ["dense"]),
        helper.make_node("Reshape", ["dense", "coarse"], ["map"]),
        helper.make_node("Shape", ["map"], ["map_shape"]),
        helper.make_node("Slice", ["map_shape", "first", "second"], ["batch_and_channels"]),
        helper.make_node("Concat", ["batch_and_channels", "size"], ["sizes"], axis=0),
        helper.make_node("Resize", ["map", "", "", "sizes"], ["resized"], mode="linear"),
        helper.make_node("Add", ["resized", "pattern"], ["textured"]),
        helper.make_node("LeakyRelu", ["textured"], ["features"], alpha=0.2),
        helper.make_node("Conv", ["features", "w2", "b2"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node(squash, ["logits"], ["nchw"]),
        helper.make_node("Transpose", ["nchw"], ["sample"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes, "foreign", inputs,
        [helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch", h, w, c])], inits)
    meta = {"gan.arch": f"foreign-{h}x{w}x{c}", "gan.latent_dim": str(LATENT),
            "gan.sample_shape": f"{h},{w},{c}", "gan.output_range": f"{lo:g},{hi:g}",
            "gan.precision": "fp32"}
    if conditional:
        meta.update({"gan.conditional": "1", "gan.n_classes": str(n_classes),
                     "gan.class_names": json.dumps([f"class {k}" for k in range(n_classes)])})
    meta.update({k.replace("_", ".", 1): v for k, v in metadata.items()})
    return save_graph(graph, path, meta)
