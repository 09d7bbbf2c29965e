"""Exact rewrites of an exported ONNX graph into forms that onnxruntime's CPU provider runs fast.

Each computes the same sums as the layer it replaces, in another order (so fp32 differs from
the original by rounding only), and each is there because a kernel is slow, measured with
`python -m benchmarks` (the DCGAN, batch 256), or because a step of rounding is one too many:
- A per-channel Mul and Add of constants after a Conv, ConvTranspose or MatMul (a batch
  normalisation in inference form, as tf2onnx writes it): folded into that layer's weights and
  bias. Left as they are, each is one more tensor rounded to 8 bits in the int8 file (or to 16
  in fp16), and the Mul's scale, which differs by channel, multiplies the rounding error of the
  layer's output channel by channel.
- ConvTranspose 4x4 with stride 2 (the DCGAN's upsampling): onnxruntime computes it as a GEMM
  and a scatter of each image, and has no int8 kernel for it. Here: the sub-pixel form, a 2x2
  Conv to 4x the channels (one group per output phase) with its activation, then the phases
  spread into the image (DepthToSpace) and a one-pixel crop. The Conv runs in onnxruntime's
  blocked kernels with the activation fused, and quantizes. The spreading is written as
  channels-last transposes: int8 Convs run channels-last, so onnxruntime cancels them against
  its own and moves runs of 128 channels, where ONNX's DepthToSpace moves single values.
- Conv to a single channel (the DCGAN's last layer, 7x7 over 128 channels): the blocked kernels
  need output channels in multiples of 16, so it falls back to a kernel that took half of the
  fp32 generator's time for a tenth of its multiply-adds. Here: a 1x1 Conv to the k*k taps and
  Col2Im, which adds each tap's plane where it lands (ONNX opset 18; left as it is below).
"""
from __future__ import annotations

import numpy as np

COL2IM_OPSET = 18  # the first opset with Col2Im
_ACTIVATIONS = ("LeakyRelu", "Relu")  # elementwise: commute with DepthToSpace and the crop


def rewrite(model, fold: bool = True):
    """Rewrite `model` (an onnx.ModelProto, NCHW as tf2onnx writes it) in place; return it.
    `fold`: fold per-channel scales and shifts into the layers before them (off only to
    compare, as `python -m benchmarks.int8_layers` does)."""
    graph = _Graph(model)
    for node in list(graph.nodes) if fold else ():
        if node.op_type in _OUT_AXIS:
            _fold_affine(node, graph)
    for node in list(graph.nodes):
        if _is_upsampling(node, graph):
            _subpixel(node, graph)
    if graph.opset >= COL2IM_OPSET:
        sizes = _image_sizes(model)
        for node in list(graph.nodes):
            if _is_single_channel_conv(node, graph) and node.input[0] in sizes:
                _taps_col2im(node, graph, sizes[node.input[0]])
    graph.save()
    return model


# The layers a per-channel scale and shift fold into, and their weights' output-channel axis.
_OUT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}


def _channel_constant(node, tensor: str, graph: "_Graph", op: str, channels: int, matmul: bool):
    """The 1-D per-channel constant of `node` (an `op` with `tensor` and a constant as inputs)
    if it broadcasts along the channel axis only (NCHW: [C, 1, 1] or [1, C, 1, 1]; a MatMul's
    output: [C] or [1, C]); else None."""
    if node.op_type != op or len(node.input) != 2 or tensor not in node.input:
        return None
    c = graph.array(node.input[1] if node.input[0] == tensor else node.input[0])
    if c is None or c.dtype != np.float32 or c.size != channels:
        return None
    aligned = c.ndim >= 1 and c.shape[-1] == channels if matmul else (
        c.ndim >= 3 and c.shape[-3] == channels)
    return c.reshape(channels) if aligned else None


def _sole_consumer(tensor: str, graph: "_Graph"):
    users = graph.consumers(tensor)
    return users[0] if len(users) == 1 and tensor not in _outputs(graph) else None


def _fold_affine(node, graph: "_Graph") -> None:
    """Fold the per-channel Mul, then Add, of constants that follow `node` (a Conv,
    ConvTranspose or MatMul with constant weights) into its weights and bias: the same sums
    to rounding. A MatMul has no bias, so its Add stays, after the MatMul."""
    w = graph.array(node.input[1]) if len(node.input) > 1 else None
    matmul = node.op_type == "MatMul"
    if w is None or w.dtype != np.float32 or w.ndim != (2 if matmul else 4):
        return
    if len(node.input) > 2 and node.input[2] and graph.array(node.input[2]) is None:
        return
    if node.op_type == "ConvTranspose" and _attrs(node).get("group", 1) != 1:
        return  # its weights hold C_out / group channels: left alone
    axis = _OUT_AXIS[node.op_type]
    channels = w.shape[axis]
    shape = [1] * w.ndim
    shape[axis] = -1
    bias = graph.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    mul = _sole_consumer(node.output[0], graph)
    scale = mul and _channel_constant(mul, node.output[0], graph, "Mul", channels, matmul)
    if scale is None:
        return
    node.input[1] = graph.const(w * scale.reshape(shape), "folded_w")
    if bias is not None:
        bias = bias * scale
    node.output[0] = mul.output[0]
    graph.nodes.remove(mul)
    add = _sole_consumer(node.output[0], graph)
    shift = add and _channel_constant(add, node.output[0], graph, "Add", channels, matmul)
    if shift is not None and not matmul:
        bias = shift if bias is None else bias + shift
        node.output[0] = add.output[0]
        graph.nodes.remove(add)
    if bias is not None:
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = graph.const(bias.astype(np.float32), "folded_b")


def _image_sizes(model) -> dict[str, tuple[int, int]]:
    """(H, W) of each 4-D tensor whose spatial size shape inference knows (the generators'
    sizes are all static; only the batch is not)."""
    from onnx import shape_inference
    inferred = shape_inference.infer_shapes(model).graph
    out = {}
    for v in (*inferred.value_info, *inferred.output, *inferred.input):
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
            out[v.name] = (dims[2].dim_value, dims[3].dim_value)
    return out


class _Graph:
    """The nodes of a graph as a list we edit, with its initializers by name."""

    def __init__(self, model):
        self.model, self.g = model, model.graph
        self.nodes = list(self.g.node)
        self.inits = {t.name: t for t in self.g.initializer}
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self._n = 0

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper
        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def const(self, array, hint: str) -> str:
        from onnx import numpy_helper
        name = self.fresh(hint)
        t = numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.g.initializer.append(t)
        self.inits[name] = t
        return name

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__rw{self._n}"

    def consumers(self, tensor: str) -> list:
        return [n for n in self.nodes if tensor in n.input]

    def replace(self, old: list, new: list) -> None:
        """Put `new` where the first of `old` was, and drop `old`."""
        at = self.nodes.index(old[0])
        self.nodes[at:at] = new
        for node in old:
            self.nodes.remove(node)

    def save(self) -> None:
        used = {name for n in self.nodes for name in n.input}
        del self.g.node[:]
        self.g.node.extend(self.nodes)
        for t in list(self.g.initializer):  # the weights of the replaced layers
            if t.name not in used:
                self.g.initializer.remove(t)


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_upsampling(node, graph: _Graph) -> bool:
    """ConvTranspose 4x4, stride 2, 1-pixel crop on each side, constant weights: the DCGAN's."""
    w = graph.array(node.input[1]) if node.op_type == "ConvTranspose" else None
    if w is None or w.ndim != 4 or w.shape[2:] != (4, 4):
        return False
    a = _attrs(node)
    return (list(a.get("strides", [])) == [2, 2] and list(a.get("pads", [])) == [1, 1, 1, 1]
            and a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
            and not a.get("output_padding") and not a.get("output_shape")
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and (len(node.input) < 3 or not node.input[2] or graph.array(node.input[2]) is not None))


def subpixel_weights(w: np.ndarray) -> np.ndarray:
    """The 2x2 Conv kernel [4*C_out, C_in, 2, 2] for a ConvTranspose kernel w [C_in, C_out, 4, 4]
    (stride 2, pads 1).

    The transposed conv gives y[2m + r] = sum of x[i] w[k] over 2i + k - 1 = 2m + r: output
    phase r = 0 takes x[m - 1] (k = 3) and x[m] (k = 1), phase 1 takes x[m] (k = 2) and
    x[m + 1] (k = 0). On x padded by one pixel, the 2x2 window at q holds x[q - 1 + a], a in
    {0, 1}, so phase r at window q = m + r needs tap k = 3 - r - 2a. DepthToSpace puts channel
    group s of window q at 2q + s; with s = 1 - r, phase r of window m + r lands at 2m + 1 + r,
    one pixel past y[2m + r] for both phases: crop one pixel from each side."""
    c_in, c_out = w.shape[:2]
    out = np.empty((2, 2, c_out, c_in, 2, 2), w.dtype)  # (s_h, s_w, C_out, C_in, a, b)
    for rh in (0, 1):
        for rw in (0, 1):
            for a in (0, 1):
                for b in (0, 1):
                    out[1 - rh, 1 - rw, :, :, a, b] = w[:, :, 3 - rh - 2 * a, 3 - rw - 2 * b].T
    return out.reshape(4 * c_out, c_in, 2, 2)


def _subpixel(node, graph: _Graph) -> None:
    from onnx import helper
    w = graph.array(node.input[1])
    conv_in = [node.input[0], graph.const(subpixel_weights(w), "subpixel_w")]
    if len(node.input) > 2 and node.input[2]:
        conv_in.append(graph.const(np.tile(graph.array(node.input[2]), 4), "subpixel_b"))
    out, old = node.output[0], [node]
    phases = graph.fresh("phases")
    new = [helper.make_node("Conv", conv_in, [phases], kernel_shape=[2, 2], pads=[1, 1, 1, 1])]
    users = graph.consumers(out)
    if len(users) == 1 and users[0].op_type in _ACTIVATIONS and out not in _outputs(graph):
        act = users[0]  # before the reordering, where onnxruntime fuses it into the Conv
        activated = graph.fresh("phases_act")
        new.append(helper.make_node(act.op_type, [phases], [activated], **_attrs(act)))
        phases, out, old = activated, act.output[0], [node, act]
    new += _spread(phases, out, w.shape[1], graph)
    graph.replace(old, new)


def _spread(phases: str, out: str, channels: int, graph: _Graph) -> list:
    """DepthToSpace (DCR) and the crop, channels-last: [N, 4C, H, W] -> [N, H, W, (s_h, s_w,
    C)] -> [N, H, s_h, W, s_w, C] -> [N, 2H, 2W, C], cropped, and back to NCHW."""
    from onnx import helper
    last, split, moved, merged, cropped = (graph.fresh(h) for h in (
        "phases_nhwc", "phases_split", "phases_moved", "spread_nhwc", "cropped_nhwc"))
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    return [helper.make_node("Transpose", [phases], [last], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [last, graph.const(i64(0, 0, 0, 2, 2, channels),
                                                           "split")], [split]),
            helper.make_node("Transpose", [split], [moved], perm=[0, 1, 3, 2, 4, 5]),
            # [N, H, 2, W, 2, C] -> [N, 2H, 2W, C]: -1 takes 2H, then 0 keeps the batch
            helper.make_node("Reshape", [moved, graph.const(i64(0, -1, 0, 0, channels),
                                                            "merge_h")], [merged + "_h"]),
            helper.make_node("Reshape", [merged + "_h", graph.const(i64(0, 0, -1, channels),
                                                                    "merge_w")], [merged]),
            helper.make_node("Slice", [merged, graph.const(i64(1, 1), "crop_start"),
                                       graph.const(i64(-1, -1), "crop_end"),
                                       graph.const(i64(1, 2), "crop_axes")], [cropped]),
            helper.make_node("Transpose", [cropped], [out], perm=[0, 3, 1, 2])]


def _outputs(graph: _Graph) -> set:
    return {o.name for o in graph.g.output}


def _is_single_channel_conv(node, graph: _Graph) -> bool:
    """Conv to one channel with an odd k x k kernel, stride 1, 'same' padding."""
    w = graph.array(node.input[1]) if node.op_type == "Conv" else None
    if w is None or w.ndim != 4 or w.shape[0] != 1:
        return False
    k_h, k_w = w.shape[2:]
    a = _attrs(node)
    return (k_h % 2 == 1 and k_w % 2 == 1 and list(a.get("strides", [1, 1])) == [1, 1]
            and list(a.get("dilations", [1, 1])) == [1, 1] and a.get("group", 1) == 1
            and list(a.get("pads", [])) == [k_h // 2, k_w // 2, k_h // 2, k_w // 2]
            and (len(node.input) < 3 or not node.input[2] or graph.array(node.input[2]) is not None))


def taps_weights(w: np.ndarray) -> np.ndarray:
    """The 1x1 Conv kernel [k_h*k_w, C_in, 1, 1] whose output Col2Im adds up to the Conv with
    kernel w [1, C_in, k_h, k_w]. The Conv is y[h] = sum_i p_i[h + i - k//2], p_i the input
    projected on tap i; Col2Im adds block row j at h' into h' + j - k//2, so row j = k-1-i:
    the taps flipped."""
    _, c_in, k_h, k_w = w.shape
    return np.ascontiguousarray(w[0, :, ::-1, ::-1].reshape(c_in, k_h * k_w).T
                                ).reshape(k_h * k_w, c_in, 1, 1)


def _taps_col2im(node, graph: _Graph, size: tuple[int, int]) -> None:
    """`size`: the image's (H, W), which Col2Im takes as an input."""
    from onnx import helper
    w = graph.array(node.input[1])
    k_h, k_w = w.shape[2:]
    taps_w = graph.const(taps_weights(w), "taps_w")
    cols = graph.fresh("taps")
    new = [helper.make_node("Conv", [node.input[0], taps_w], [cols], kernel_shape=[1, 1])]
    flat, summed = graph.fresh("taps_flat"), graph.fresh("summed")
    new += [helper.make_node("Reshape", [cols, graph.const(np.array([0, k_h * k_w, -1], np.int64),
                                                           "taps_shape")], [flat]),
            helper.make_node("Col2Im", [flat, graph.const(np.array(size, np.int64), "image_hw"),
                                        graph.const(np.array([k_h, k_w], np.int64), "block")],
                             [summed if len(node.input) > 2 and node.input[2] else node.output[0]],
                             pads=[k_h // 2, k_w // 2, k_h // 2, k_w // 2])]
    if len(node.input) > 2 and node.input[2]:
        new.append(helper.make_node("Add", [summed, node.input[2]], [node.output[0]]))
    graph.replace([node], new)
