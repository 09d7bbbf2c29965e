"""export/rewrite.py's rules against the graphs they replace, both run by onnxruntime, on random
and on named layer shapes (built with onnx.helper: no PyTorch, no TensorFlow); and the output
layer that int8 files keep in float, found on graphs of other makers."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.rewrite import rewrite, uncovered

ACTIVATIONS = {"Relu": {}, "LeakyRelu": {"alpha": 0.2}, "Tanh": {}, "Sigmoid": {}}


def _model(nodes, inputs, output, arrays, opset=18):
    """A model of `nodes` with float inputs {name: shape}, one float output (its shape as
    inferred) and initializers {name: array}."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model).graph.output[0]
    model.graph.output[0].CopyFrom(inferred)
    return model


def _run(model, feeds: dict) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _assert_same_sums(original, feeds: dict):
    """Rewrites a copy of `original`; both compute the same to fp32 rounding. Returns the
    rewritten model."""
    rewritten = rewrite(onnx.ModelProto.FromString(original.SerializeToString()))
    onnx.checker.check_model(rewritten, full_check=True)
    want, got = _run(original, feeds), _run(rewritten, feeds)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0) <= 1e-5 * max(1.0, np.abs(want).max(initial=0))
    return rewritten


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _conv_transpose(rng, c_in, c_out, kernel, bias=True, activation=None, **attrs):
    """Nodes and weights of x -> ConvTranspose [-> activation] -> y, random weights."""
    arrays = {"w": rng.standard_normal((c_in, c_out, *kernel)).astype(np.float32)}
    if bias:
        arrays["b"] = rng.standard_normal(c_out).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", *(["b"] if bias else [])],
                              ["up" if activation else "y"], **attrs)]
    if activation:
        nodes.append(helper.make_node(activation, ["up"], ["y"], **ACTIVATIONS[activation]))
    return nodes, arrays


def _random_layer(rng):
    """A random 2-D ConvTranspose with one group and no dilation: kernel 1..5, stride 1..3,
    pads 0..k-1 (explicit, SAME_UPPER, SAME_LOWER, VALID or through output_shape), output
    padding below the stride (with explicit pads or VALID), 1..6 channels, input 1..6 pixels a
    side, batch 1..3."""
    k, s = rng.integers(1, 6, 2), rng.integers(1, 4, 2)
    size = rng.integers(1, 7, 2)
    mode = rng.choice(["pads", "pads", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape"])
    extra = [int(rng.integers(0, si)) if mode in ("pads", "VALID") else 0 for si in s]
    attrs = {"strides": [int(v) for v in s], "output_padding": extra}
    full = s * (size - 1) + k + extra
    if mode == "pads":
        begin, end = (np.array([rng.integers(0, ki) for ki in k]) for _ in range(2))
        end = np.minimum(end, full - begin - 1)  # at least one output pixel
        attrs["pads"] = [int(v) for v in (*begin, *end)]
    elif mode == "output_shape":
        attrs["output_shape"] = [int(rng.integers(max(1, f - ki + 1), f + 1))
                                 for f, ki in zip(full, k)]
    else:
        if mode != "VALID":  # SAME needs k >= s, as onnxruntime computes it
            k = np.maximum(k, s)
        attrs["auto_pad"] = str(mode)
    return {"c_in": int(rng.integers(1, 7)), "c_out": int(rng.integers(1, 7)),
            "kernel": [int(v) for v in k], "size": [int(v) for v in size],
            "batch": int(rng.integers(1, 4)), "bias": bool(rng.integers(2)),
            "activation": rng.choice([None, *ACTIVATIONS]), **attrs}


@pytest.mark.parametrize("seed", range(8))
def test_any_conv_transpose_becomes_convs_with_the_same_sums(seed):
    """Random shapes, 12 per seed: after the rewrite no ConvTranspose is left, nothing is
    reported as uncovered, and the graph computes what the layer computes."""
    rng = np.random.default_rng(seed)
    for _ in range(12):
        layer = _random_layer(rng)
        c_in, c_out, kernel, size, batch, bias, activation = (layer.pop(key) for key in (
            "c_in", "c_out", "kernel", "size", "batch", "bias", "activation"))
        nodes, arrays = _conv_transpose(rng, c_in, c_out, kernel, bias, activation, **layer)
        original = _model(nodes, {"x": ["n", c_in, *size]}, "y", arrays)
        x = rng.standard_normal((batch, c_in, *size)).astype(np.float32)
        rewritten = _assert_same_sums(original, {"x": x})
        case = (c_in, c_out, kernel, size, layer)
        assert "ConvTranspose" not in _ops(rewritten) and uncovered(rewritten) == [], case
        ops = _ops(rewritten)
        if activation and "Transpose" in ops:  # moved before the spreading
            assert ops.index(activation) < ops.index("Transpose"), case


def test_random_conv_transposes_on_images_of_unknown_size():
    """The same with the input's height and width dynamic: nothing in the rewritten graph
    depends on them (output_shape aside, which needs them)."""
    rng = np.random.default_rng(100)
    done = 0
    while done < 12:
        layer = _random_layer(rng)
        if "output_shape" in layer:
            continue
        c_in, c_out, kernel, _, batch, bias, activation = (layer.pop(key) for key in (
            "c_in", "c_out", "kernel", "size", "batch", "bias", "activation"))
        nodes, arrays = _conv_transpose(rng, c_in, c_out, kernel, bias, activation, **layer)
        original = _model(nodes, {"x": ["n", c_in, "h", "w"]}, "y", arrays)
        rewritten = rewrite(onnx.ModelProto.FromString(original.SerializeToString()))
        assert "ConvTranspose" not in _ops(rewritten) and uncovered(rewritten) == []
        pads = np.array(layer.get("pads", [0] * 4))
        for size in ((1, 1), (3, 5), (6, 2)):  # one rewritten graph for every size
            full = np.array(layer["strides"]) * (np.array(size) - 1) + kernel + np.array(
                layer["output_padding"])
            if (full - pads[:2] - pads[2:] < 1).any():  # no output pixel: refused by both
                continue
            x = rng.standard_normal((batch, c_in, *size)).astype(np.float32)
            want, got = _run(original, {"x": x}), _run(rewritten, {"x": x})
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) <= 1e-5 * max(1.0, np.abs(want).max())
        done += 1


# The named layer shapes: PyTorch's DCGAN (its first layer from 1x1 to 4x4, then 4x4 stride 2
# pad 1), and Keras's padding="same" as tf2onnx writes it (pads explicit, the odd one at the end).
NAMED = {
    "pytorch-first-1x1-to-4x4": dict(c_in=100, c_out=64, kernel=[4, 4], size=[1, 1], bias=False,
                                     strides=[1, 1], pads=[0, 0, 0, 0]),
    "pytorch-4x4-s2-p1": dict(c_in=32, c_out=16, kernel=[4, 4], size=[4, 4], bias=False,
                              strides=[2, 2], pads=[1, 1, 1, 1]),
    "pytorch-last-to-rgb": dict(c_in=16, c_out=3, kernel=[4, 4], size=[8, 8], bias=False,
                                strides=[2, 2], pads=[1, 1, 1, 1], activation="Tanh"),
    "keras-same-4x4-s2": dict(c_in=12, c_out=8, kernel=[4, 4], size=[8, 8], bias=True,
                              strides=[2, 2], pads=[1, 1, 1, 1], activation="LeakyRelu"),
    "keras-same-5x5-s2": dict(c_in=12, c_out=8, kernel=[5, 5], size=[8, 8], bias=True,
                              strides=[2, 2], pads=[1, 1, 2, 2], activation="LeakyRelu"),
    "keras-same-3x3-s2": dict(c_in=6, c_out=5, kernel=[3, 3], size=[5, 5], bias=True,
                              strides=[2, 2], pads=[0, 0, 1, 1]),
    "keras-same-3x3-s1": dict(c_in=6, c_out=5, kernel=[3, 3], size=[5, 5], bias=True,
                              strides=[1, 1], pads=[1, 1, 1, 1], activation="Relu"),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_conv_transposes(name):
    layer = dict(NAMED[name])
    rng = np.random.default_rng(len(name))
    c_in, c_out, kernel, size, bias = (layer.pop(k) for k in ("c_in", "c_out", "kernel",
                                                               "size", "bias"))
    nodes, arrays = _conv_transpose(rng, c_in, c_out, kernel, bias, layer.pop("activation", None),
                                    **layer)
    original = _model(nodes, {"x": ["n", c_in, *size]}, "y", arrays)
    x = rng.standard_normal((3, c_in, *size)).astype(np.float32)
    rewritten = _assert_same_sums(original, {"x": x})
    ops = _ops(rewritten)
    assert "ConvTranspose" not in ops
    if size == [1, 1]:  # one input pixel: the matrix product, a Gemm to 4*4 phases, no crop
        assert ops[:2] == ["Flatten", "Gemm"] and "Conv" not in ops and "Slice" not in ops
        return
    conv = next(n for n in rewritten.graph.node if n.op_type == "Conv")
    kernel_shape = list(next(a.ints for a in conv.attribute if a.name == "kernel_shape"))
    if layer["strides"] == [1, 1]:  # a plain Conv, flipped kernel, no spreading
        assert "Transpose" not in ops and kernel_shape == kernel
    else:  # one window position per tap of each phase
        assert kernel_shape == [-(-k // 2) for k in kernel]


def test_an_op_across_channels_stays_after_the_spreading():
    """Softmax over the channels (not elementwise) after a ConvTranspose: not moved before the
    spreading, where the channels are the phases' too."""
    rng = np.random.default_rng(4)
    nodes, arrays = _conv_transpose(rng, 3, 4, [4, 4], strides=[2, 2], pads=[1, 1, 1, 1])
    nodes[0].output[0] = "up"
    nodes.append(helper.make_node("Softmax", ["up"], ["y"], axis=1))
    original = _model(nodes, {"x": ["n", 3, 5, 5]}, "y", arrays)
    ops = _ops(_assert_same_sums(original, {"x": rng.standard_normal((2, 3, 5, 5)).astype(
        np.float32)}))
    assert ops[-1] == "Softmax" and "ConvTranspose" not in ops


def _unsupported(rng, **attrs):
    nodes, arrays = _conv_transpose(rng, 4, 4, [3, 3], bias=False, activation="Relu", **attrs)
    return _model(nodes, {"x": ["n", 4, 5, 5]}, "y", arrays)


@pytest.mark.parametrize("attrs,why", [
    ({"group": 2, "strides": [2, 2]}, "groups"),
    ({"dilations": [2, 2], "strides": [2, 2]}, "dilations"),
    ({"dilations": [1, 2]}, "dilations"),
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2], "output_padding": [1, 0]}, "output_padding"),
    ({"output_shape": [10, 10], "strides": [2, 2], "output_padding": [1, 1]}, "output_padding")])
def test_layers_no_rule_covers_stay_and_are_reported(attrs, why):
    rng = np.random.default_rng(5)
    original = _unsupported(rng, **attrs)
    notes = uncovered(original)
    assert len(notes) == 1 and "ConvTranspose" in notes[0] and why in notes[0]
    rewritten = _assert_same_sums(original, {"x": rng.standard_normal((2, 4, 5, 5)).astype(
        np.float32)})
    assert _ops(rewritten) == ["ConvTranspose", "Relu"] and uncovered(rewritten) == notes


def test_output_shape_needs_a_static_input_size():
    rng = np.random.default_rng(6)
    nodes, arrays = _conv_transpose(rng, 3, 2, [4, 4], strides=[2, 2], output_shape=[9, 9])
    dynamic = _model(nodes, {"x": ["n", 3, "h", "w"]}, "y", arrays)
    assert "output_shape" in " ".join(uncovered(dynamic))
    assert "ConvTranspose" in _ops(rewrite(dynamic))
    static = _model(nodes, {"x": ["n", 3, 5, 5]}, "y", arrays)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    assert "ConvTranspose" not in _ops(_assert_same_sums(static, {"x": x}))


@pytest.mark.parametrize("seed", range(3))
def test_a_conv_to_a_few_channels_becomes_taps_and_col2im_with_the_same_sums(seed):
    """Random 'same' Convs with odd kernels 3..7 a side to 1..5 channels: those to 1 to 4
    become a 1x1 Conv and Col2Im, the graph computing what the Conv computes; 5 stay."""
    rng = np.random.default_rng(200 + seed)
    for _ in range(8):
        c_in, c_out = int(rng.integers(1, 9)), int(rng.integers(1, 6))
        k_h, k_w = (int(v) for v in rng.choice([1, 3, 5, 7], 2))
        size, bias = [int(v) for v in rng.integers(1, 9, 2)], bool(rng.integers(2))
        arrays = {"w": rng.standard_normal((c_out, c_in, k_h, k_w)).astype(np.float32)}
        if bias:
            arrays["b"] = rng.standard_normal(c_out).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w", *(["b"] if bias else [])], ["y"],
                                pads=[k_h // 2, k_w // 2, k_h // 2, k_w // 2])
        original = _model([node], {"x": ["n", c_in, *size]}, "y", arrays)
        x = rng.standard_normal((int(rng.integers(1, 4)), c_in, *size)).astype(np.float32)
        ops = _ops(_assert_same_sums(original, {"x": x}))
        assert ("Col2Im" in ops) == (c_out <= 4 and k_h * k_w > 1), (c_in, c_out, k_h, k_w)


# ---- batch normalisation ------------------------------------------------------------------

def _batch_norm(rng, name: str, channels: int, into: str, out: str):
    """A BatchNormalization node in inference form (as torch.onnx.export writes it), and its
    random parameters; the variances far from 1 and epsilon not the default, so that each
    counts."""
    arrays = {f"{name}_scale": rng.uniform(0.5, 2, channels), f"{name}_bias": rng.standard_normal(
        channels), f"{name}_mean": rng.standard_normal(channels),
        f"{name}_var": rng.uniform(0.01, 4, channels)}
    node = helper.make_node("BatchNormalization", [into, *arrays], [out], epsilon=1e-3)
    return node, {k: v.astype(np.float32) for k, v in arrays.items()}


@pytest.mark.parametrize("layer", ["ConvTranspose", "Conv", "Gemm", "MatMul"])
def test_batch_normalization_folds_into_the_layer_before_it(layer):
    rng = np.random.default_rng(7)
    if layer == "ConvTranspose":
        nodes, arrays = _conv_transpose(rng, 5, 6, [4, 4], bias=False, strides=[2, 2],
                                        pads=[1, 1, 1, 1])
        x_shape = [5, 4, 4]
    elif layer == "Conv":
        arrays = {"w": rng.standard_normal((6, 5, 3, 3)).astype(np.float32),
                  "b": rng.standard_normal(6).astype(np.float32)}
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
        x_shape = [5, 4, 4]
    elif layer == "Gemm":
        arrays = {"w": rng.standard_normal((6, 5)).astype(np.float32),
                  "b": rng.standard_normal(6).astype(np.float32)}
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.7, beta=1.3)]
        x_shape = [5]
    else:
        arrays = {"w": rng.standard_normal((5, 6)).astype(np.float32)}
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        x_shape = [5]
    nodes[0].output[0] = "pre"
    bn, params = _batch_norm(rng, "bn", 6, "pre", "normed")
    nodes += [bn, helper.make_node("Relu", ["normed"], ["y"])]
    original = _model(nodes, {"x": ["n", *x_shape]}, "y", {**arrays, **params})
    x = rng.standard_normal((3, *x_shape)).astype(np.float32)
    rewritten = _assert_same_sums(original, {"x": x})
    ops = _ops(rewritten)
    assert "BatchNormalization" not in ops and uncovered(rewritten) == []
    assert ops.count("Add") == (layer == "MatMul")  # a MatMul has no bias: its shift is an Add


@pytest.mark.parametrize("trans_b,bias_shape", [(0, (6,)), (1, (1, 6)), (0, None), (1, (3, 6))])
def test_per_channel_mul_and_add_fold_into_a_gemm(trans_b, bias_shape):
    """Gemm with transB 0 or 1, alpha and beta, its C of any broadcastable shape or none."""
    rng = np.random.default_rng(8)
    arrays = {"w": rng.standard_normal((6, 5) if trans_b else (5, 6)).astype(np.float32),
              "s": rng.uniform(0.5, 2, (1, 6)).astype(np.float32),
              "t": rng.standard_normal(6).astype(np.float32)}
    inputs = ["x", "w"]
    if bias_shape:
        arrays["c"] = rng.standard_normal(bias_shape).astype(np.float32)
        inputs.append("c")
    nodes = [helper.make_node("Gemm", inputs, ["g"], transB=trans_b, alpha=0.5, beta=2.0),
             helper.make_node("Mul", ["g", "s"], ["m"]), helper.make_node("Add", ["t", "m"], ["y"])]
    original = _model(nodes, {"x": [3, 5]}, "y", arrays)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert _ops(_assert_same_sums(original, {"x": x})) == ["Gemm"]


def test_batch_normalization_that_cannot_fold_stays_and_is_reported():
    """After an Add (no layer), and after a Conv whose output has another use: both stay,
    the graph unchanged in what it computes, and each gets a line."""
    rng = np.random.default_rng(9)
    arrays = {"w": rng.standard_normal((4, 3, 1, 1)).astype(np.float32)}
    first, p1 = _batch_norm(rng, "a", 3, "sum", "n1")
    second, p2 = _batch_norm(rng, "b", 4, "c", "n2")
    nodes = [helper.make_node("Add", ["x", "x"], ["sum"]), first,
             helper.make_node("Conv", ["n1", "w"], ["c"]), second,
             helper.make_node("Add", ["n2", "c"], ["y"])]
    original = _model(nodes, {"x": ["n", 3, 2, 2]}, "y", {**arrays, **p1, **p2})
    notes = uncovered(original)
    assert len(notes) == 2 and all("BatchNormalization" in n for n in notes)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    rewritten = _assert_same_sums(original, {"x": x})
    assert _ops(rewritten).count("BatchNormalization") == 2 and uncovered(rewritten) == notes


# ---- a generator shaped like the PyTorch examples' DCGAN ----------------------------------

def dcgan_onnx(latent: int, ngf: int):
    """The PyTorch examples' DCGAN as torch.onnx.export lays it out (benchmarks/foreign_shapes.py),
    narrow, with input z [N, latent, 1, 1] and output sample [N, 3, 64, 64] (NCHW)."""
    from benchmarks.foreign_shapes import torch_dcgan_model
    return torch_dcgan_model(latent, ngf, names=("z", "sample"))


def test_a_pytorch_shaped_dcgan_loses_every_conv_transpose_and_batch_norm():
    original = dcgan_onnx(latent=20, ngf=4)
    z = np.random.default_rng(1).standard_normal((2, 20, 1, 1)).astype(np.float32)
    rewritten = _assert_same_sums(original, {"z": z})
    ops = _ops(rewritten)
    assert "ConvTranspose" not in ops and "BatchNormalization" not in ops
    assert ops.count("Gemm") == 1 and ops.count("Conv") == 4 and uncovered(rewritten) == []
    assert _run(rewritten, {"z": z}).shape == (2, 3, 64, 64)


# ---- the output layer that int8 files keep in float ---------------------------------------

def _nhwc_sample(model):
    """`model` with a Transpose of its NCHW output to NHWC `sample`."""
    graph = model.graph
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["nchw" if o == old else o for o in node.output]
    graph.node.append(helper.make_node("Transpose", ["nchw"], [old], perm=[0, 2, 3, 1]))
    return model


def _gemm_sigmoid():
    """z -> Gemm -> Sigmoid -> Reshape to an image, the shape from a Constant node."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(
                 np.array([-1, 2, 2, 1], np.int64))),
             helper.make_node("Gemm", ["z", "w", "b"], ["g"], transB=1),
             helper.make_node("Sigmoid", ["g"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["sample"])]
    return _model(nodes, {"z": ["batch", 3]}, "sample", {
        "w": rng.standard_normal((4, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32)})


def _conv_tanh():
    """A Conv, its bias as an Add with a Constant node's output first, Tanh."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(
                 rng.standard_normal((1, 3, 1, 1)).astype(np.float32))),
             helper.make_node("Add", ["bias", "c"], ["a"]),
             helper.make_node("Tanh", ["a"], ["sample"])]
    return _model(nodes, {"x": ["batch", 2, 4, 4]}, "sample",
                  {"w": rng.standard_normal((3, 2, 3, 3)).astype(np.float32)})


@pytest.mark.parametrize("make,last,first", [
    (lambda: rewrite(_nhwc_sample(dcgan_onnx(8, 2))), "Conv", "Transpose"),
    (lambda: rewrite(dcgan_onnx(8, 2)), "Conv", "Transpose"),
    (_gemm_sigmoid, "Gemm", "Reshape"),
    (_conv_tanh, "Conv", "Tanh")])
def test_output_layer_runs_from_the_output_back_to_the_last_weighted_layer(make, last, first):
    """From `sample` back to the last Conv, Gemm or MatMul, through what follows it (bias,
    activation, the rewrite's spreading, reshapes and transposes), over constants from
    initializers and Constant nodes alike, and no further."""
    from export.quantize import output_layer
    graph = make().graph
    layer = output_layer(graph)
    assert layer[0].output[0] == "sample" and layer[0].op_type == first
    assert layer[-1].op_type == last and [n.op_type for n in layer[:-1]].count(last) == 0
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert layer[-1] is weighted[-1]  # the last one in the graph's order


def test_int8_of_a_pytorch_shaped_dcgan_keeps_its_output_layer_in_float(tmp_path):
    """quantize_int8 on the rewritten graph with z [N, L] reshaped to [N, L, 1, 1] and the
    output transposed to NHWC: every Conv quantized but the output layer's, which no
    QuantizeLinear touches, and the result near the fp32 one."""
    from export.quantize import output_layer, quantize_int8
    from runtime.core.spec import Spec
    # ngf 8: the output layer's 384 weights are enough to be stored as int8 (int8_weights_only)
    model = _nhwc_sample(dcgan_onnx(latent=16, ngf=8))
    graph = model.graph
    del graph.input[0].type.tensor_type.shape.dim[2:]
    graph.initializer.append(numpy_helper.from_array(np.array([0, 16, 1, 1], np.int64), "z4"))
    graph.node.insert(0, helper.make_node("Reshape", ["z", "z4"], ["z_img"]))
    for node in graph.node[1:]:
        node.input[:] = ["z_img" if i == "z" else i for i in node.input]
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(rewrite(model), str(fp32))
    spec = Spec("dcgan", 16, (64, 64, 3), (-1.0, 1.0))  # calibration draws z from its prior
    quantize_int8(fp32, tmp_path / "int8.onnx", spec, calibration=64)
    int8 = onnx.load(str(tmp_path / "int8.onnx"))
    layer = output_layer(int8.graph)
    tensors = {out for n in layer for out in n.output}
    assert layer[-1].op_type == "Conv" and layer[0].output[0] == "sample"
    assert not [n for n in int8.graph.node if n.op_type == "QuantizeLinear"
                and n.input[0] in tensors]
    made_by = {out: n for n in int8.graph.node for out in n.output}
    layers = [n for n in int8.graph.node if n.op_type in ("Gemm", "Conv")]
    assert [n.op_type for n in layers] == ["Gemm"] + ["Conv"] * 4
    assert all(made_by[n.input[i]].op_type == "DequantizeLinear" for n in layers for i in (0, 1))
    z = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    want, got = _run(onnx.load(str(fp32)), {"z": z}), _run(int8, {"z": z})
    assert got.shape == want.shape == (8, 64, 64, 3)
    assert np.abs(got - want).mean() <= 0.03 * 2  # the README's int8 promise, range [-1, 1]


def test_a_keras_generator_through_tf2onnx_loses_every_conv_transpose():
    """Keras's padding="same" as tf2onnx writes it (4x4 and 5x5 stride 2, 3x3 stride 1), with
    batch normalisations: the rewritten graph computes what tf2onnx's graph and Keras's call
    compute."""
    import keras
    import tensorflow as tf

    from export.convert import function_to_onnx
    keras.utils.set_random_seed(0)
    layers = keras.layers
    generator = keras.Sequential([
        keras.Input((8,)), layers.Dense(4 * 4 * 16), layers.Reshape((4, 4, 16)),
        layers.Conv2DTranspose(12, 4, strides=2, padding="same"), layers.BatchNormalization(),
        layers.LeakyReLU(0.2), layers.Conv2DTranspose(8, 5, strides=2, padding="same"),
        layers.BatchNormalization(), layers.ReLU(),
        layers.Conv2DTranspose(6, 3, padding="same", activation="relu"),
        layers.Conv2D(3, 5, padding="same", activation="sigmoid")])
    rng = np.random.default_rng(0)
    for layer in generator.layers:  # statistics other than a fresh layer's 0 and 1
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.standard_normal(beta.shape),
                               rng.standard_normal(mean.shape), rng.uniform(0.1, 3, var.shape)])
    original = function_to_onnx(lambda z: generator(z, training=False),
                                [tf.TensorSpec((None, 8), tf.float32, name="z")], "sample", 18)
    assert _ops(original).count("ConvTranspose") == 3
    z = rng.standard_normal((5, 8)).astype(np.float32)
    rewritten = _assert_same_sums(original, {"z": z})
    assert "ConvTranspose" not in _ops(rewritten) and uncovered(rewritten) == []
    want = generator(z, training=False).numpy()
    assert np.max(np.abs(_run(rewritten, {"z": z}) - want)) <= 1e-5
