"""Exact rewrites of an exported ONNX graph into forms that onnxruntime's CPU provider runs fast.

Each computes the same sums as the layer it replaces, in another order (so fp32 differs from
the original by rounding only), and each is there because a kernel is slow, measured with
`python -m benchmarks` (the DCGAN, batch 256), or because a step of rounding is one too many:
- A batch normalisation in inference form after a Conv, ConvTranspose, Gemm or MatMul with
  constant weights, as a per-channel Mul and Add of constants (as tf2onnx writes it) or as a
  BatchNormalization node (as torch.onnx.export writes it): folded into that layer's weights
  and bias. Left as it is, it is one more tensor rounded to 8 bits in the int8 file (or to 16
  in fp16), and its scale, which differs by channel, multiplies the rounding error of the
  layer's output channel by channel.
- ConvTranspose (2-D, one group, no dilation; any kernel, stride, pads and output padding):
  onnxruntime computes it as a GEMM and a scatter of each image, and has no int8 kernel for it.
  Here: the sub-pixel form, one Conv to stride_h * stride_w times the channels (one group per
  output phase) with its activation, then the phases spread into the image (DepthToSpace) and
  a crop; with stride 1, the Conv alone. The Conv runs in onnxruntime's blocked kernels with
  the activation fused, and quantizes. The spreading is written as channels-last transposes:
  int8 Convs run channels-last, so onnxruntime cancels them against its own and moves runs of
  channels, where ONNX's DepthToSpace moves single values.
- Conv to one to four channels, an image's (the DCGAN's last layer, 7x7 over 128 channels to
  one; keras-io's face DCGAN's, 5x5 over 512 to three): the blocked kernels compute output
  channels in multiples of 16, so the DCGAN's took half of the fp32 generator's time for a tenth
  of its multiply-adds. Here: a 1x1 Conv to the C*k*k taps and Col2Im, which adds each tap's
  plane where it lands (ONNX opset 18; left as it is below). Measured on 5x5 over 512 channels
  of 64x64 images, batch 16: 3.6x faster to one channel, 3x to three, 1.7x to eight.
A layer that no rule covers stays as it is; `uncovered` says which, and why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COL2IM_OPSET = 18  # the first opset with Col2Im
NARROW = 4  # the most output channels the taps rewrite takes (gray, RGB, RGBA)
# Elementwise, so they commute with the spreading and the crop; onnxruntime fuses each into
# the Conv before them.
_ACTIVATIONS = ("LeakyRelu", "Relu", "Sigmoid", "Tanh")


# What rewrite() does, by name: manifests list these (export.exporter.EXPORT_RULES).
RULES = ("fold-batch-norm", "conv-transpose-sub-pixel", "few-channel-conv-taps")


def rewrite(model, fold: bool = True):
    """Rewrite `model` (an onnx.ModelProto, NCHW as tf2onnx and torch.onnx.export write it) in
    place; return it. `fold`: fold batch normalisations into the layers before them (off only
    to compare, as `python -m benchmarks.int8_layers` does). `uncovered` lists what it left."""
    graph, shapes = _Graph(model), _shapes(model)
    for node in list(graph.nodes) if fold else ():
        if node.op_type in _FOLD_TARGETS:
            _fold(node, graph, shapes)
    for node in list(graph.nodes):
        if node.op_type == "ConvTranspose":
            plan = _subpixel_plan(node, graph, shapes)
            if not isinstance(plan, str):
                _subpixel(node, plan, graph)
    if graph.opset >= COL2IM_OPSET:
        for node in list(graph.nodes):
            size = shapes.get(node.input[0], (None,))[2:]
            if _is_narrow_conv(node, graph) and len(size) == 2 and None not in size:
                _taps_col2im(node, graph, size)
    graph.save()
    return model


def uncovered(model) -> list[str]:
    """One line for each layer of `model` that is slow or stays in float in an int8 file and
    that no rule of `rewrite` covers, saying why: each ConvTranspose, and each
    BatchNormalization that does not fold. On a rewritten graph: what the rewrite left."""
    graph, shapes = _Graph(model), _shapes(model)
    made_by = {out: node for node in graph.nodes for out in node.output}
    notes = []
    for node in graph.nodes:
        why = None
        if node.op_type == "ConvTranspose":
            why = _subpixel_plan(node, graph, shapes)
        elif node.op_type == "BatchNormalization":
            layer = made_by.get(node.input[0])
            why = (_batch_norm_fold(layer, node, graph, shapes) if layer is not None
                   else "it follows no layer")
        if isinstance(why, str):
            notes.append(f"{node.op_type} {node.name or node.output[0]!r}: {why}")
    return notes


# ---- batch normalisation folding ----------------------------------------------------------

_FOLD_TARGETS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _weight_axis(node, graph: "_Graph") -> int | str:
    """The output-channel axis of the constant weights of `node` (one of _FOLD_TARGETS), or
    why they have none that a per-channel scale folds into."""
    w = graph.array(node.input[1]) if len(node.input) > 1 else None
    if w is None or w.dtype != np.float32:
        return f"the {node.op_type}'s weights are not a float32 constant"
    if _bias(node) is not None and graph.array(_bias(node)) is None:
        return f"the {node.op_type}'s bias is not a constant"
    a = _attrs(node)
    if node.op_type in ("Conv", "ConvTranspose"):
        if w.ndim != 4:
            return f"the {node.op_type} is not 2-D"
        if node.op_type == "ConvTranspose" and a.get("group", 1) != 1:
            return "the ConvTranspose has groups"  # its weights hold C_out / group channels
        return 0 if node.op_type == "Conv" else 1
    if w.ndim != 2:
        return f"the {node.op_type}'s weights are not 2-D"
    return 0 if node.op_type == "Gemm" and a.get("transB", 0) else 1


def _bias(node) -> str | None:
    """The name of a Conv's, ConvTranspose's or Gemm's bias (Gemm: C) input, if it has one."""
    return node.input[2] if len(node.input) > 2 and node.input[2] else None


def _channel_constant(node, tensor: str, graph: "_Graph", op: str, channels: int, matmul: bool):
    """The 1-D per-channel constant of `node` (an `op` with `tensor` and a constant as inputs)
    if it broadcasts along the channel axis only (NCHW: [C, 1, 1] or [1, C, 1, 1]; a MatMul's
    or Gemm's output: [C] or [1, C]); else None."""
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


def _batch_norm_fold(layer, bn, graph: "_Graph", shapes: dict):
    """(scale, shift), per channel, that the BatchNormalization `bn` applies to the output of
    `layer`, if they fold into it; else why not. Inference form: y = scale * (x - mean) /
    sqrt(var + epsilon) + B, on axis 1."""
    if layer.op_type not in _FOLD_TARGETS:
        return f"it follows a {layer.op_type}, not a Conv, ConvTranspose, Gemm or MatMul"
    axis = _weight_axis(layer, graph)
    if isinstance(axis, str):
        return axis
    if _sole_consumer(layer.output[0], graph) is not bn:
        return f"the {layer.op_type}'s output has other uses"
    if layer.op_type == "MatMul" and len(shapes.get(layer.output[0], ())) != 2:
        return "the MatMul's output is not known to be 2-D"  # else axis 1 is not its channels
    a = _attrs(bn)
    if a.get("training_mode", 0) or not a.get("spatial", 1) or any(bn.output[1:]):
        return "it is not in inference form"
    params = [graph.array(name) for name in bn.input[1:5]]
    channels = graph.array(layer.input[1]).shape[axis]
    if len(params) != 4 or any(p is None or p.shape != (channels,) for p in params):
        return "its parameters are not constants, one per channel"
    scale, shift, mean, var = (p.astype(np.float64) for p in params)
    scale = scale / np.sqrt(var + a.get("epsilon", 1e-5))
    return scale, shift - mean * scale


def _fold(node, graph: "_Graph", shapes: dict) -> None:
    """Fold the batch normalisation that follows `node` (a Conv, ConvTranspose, Gemm or MatMul
    with constant weights) into its weights and bias: a BatchNormalization node, or a
    per-channel Mul, then Add, of constants. The same sums to rounding. A MatMul has no bias:
    the shift stays an Add after it."""
    axis = _weight_axis(node, graph)
    follower = _sole_consumer(node.output[0], graph)
    if isinstance(axis, str) or follower is None:
        return
    w = graph.array(node.input[1])
    channels, matmul = w.shape[axis], node.op_type in ("Gemm", "MatMul")
    if follower.op_type == "BatchNormalization":
        affine = _batch_norm_fold(node, follower, graph, shapes)
        if isinstance(affine, str):
            return
        (scale, shift), removed = affine, [follower]
        if node.op_type == "MatMul":  # the shift: an Add in the BatchNormalization's place
            graph.replace([follower], [_make_node("Add", [node.output[0], graph.const(
                shift.astype(np.float32), "folded_shift")], [follower.output[0]])])
            shift, removed = None, []
    else:
        scale = _channel_constant(follower, node.output[0], graph, "Mul", channels, matmul)
        if scale is None:
            return
        add, shift, removed = _sole_consumer(follower.output[0], graph), None, [follower]
        if add is not None and node.op_type != "MatMul":
            shift = _channel_constant(add, follower.output[0], graph, "Add", channels, matmul)
            removed += [add] if shift is not None else []
    shape = [1] * w.ndim
    shape[axis] = -1
    node.input[1] = graph.const((w * scale.reshape(shape)).astype(np.float32), "folded_w")
    bias = graph.array(_bias(node)) if _bias(node) else None
    if bias is not None:  # Gemm: beta * C, then beta set to 1; C may be [N], [1, N] or [M, N]
        beta = _attrs(node).get("beta", 1.0) if node.op_type == "Gemm" else 1.0
        bias = beta * bias.astype(np.float64) * scale
    if shift is not None:
        bias = shift if bias is None else bias + shift
    if removed:
        node.output[0] = removed[-1].output[0]
        for n in removed:
            graph.nodes.remove(n)
    if bias is not None:
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = graph.const(bias.astype(np.float32), "folded_b")
        if node.op_type == "Gemm":
            _set_attr(node, "beta", 1.0)


def _shapes(model) -> dict[str, tuple]:
    """Each tensor's shape as far as shape inference knows it: a tuple with an int for each
    static dimension and None for each other (the batch). The generators' image sizes are all
    static."""
    from onnx import shape_inference
    inferred = shape_inference.infer_shapes(model).graph
    out = {}
    for v in (*inferred.value_info, *inferred.output, *inferred.input):
        if v.type.tensor_type.HasField("shape"):
            out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                for d in v.type.tensor_type.shape.dim)
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


def _set_attr(node, name: str, value) -> None:
    from onnx import helper
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _make_node(op: str, inputs: list, outputs: list, **attrs):
    from onnx import helper
    return helper.make_node(op, inputs, outputs, **attrs)


# ---- the sub-pixel ConvTranspose ----------------------------------------------------------

@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a ConvTranspose, and the Conv that computes it phase by phase.

    Along an axis with input x of size H, kernel w of k taps and stride s, the transposed conv's
    full output is y_full[u] = sum of x[i] w[t] over s*i + t = u (0 <= i < H, 0 <= t < k), zero
    for u >= s*(H-1) + k; the layer's output is y[o] = y_full[o + b], 0 <= o < L, with
    L = s*(H-1) + k - b - e (b, e: the crops at each end; e < 0 where output padding adds
    zeros, which get the bias like every other pixel).

    Phases: write u = s*q + r, 0 <= r < s. Then t = r + s*j and i = q - j, so
    y_full[s*q + r] = sum_j x[q - j] w[r + s*j], j = 0 .. T-1 with T = ceil(k/s) (taps past k
    are zero). As a Conv (correlation: z[q'] = sum_a xp[q' + a] K_r[a], xp the input padded by
    `pad_lo` zeros in front and `pad_hi` behind), window position a takes j = T-1-a, i.e. tap
    K_r[a] = w[r + s*(T-1-a)] (`taps`), and Conv output q' is y_full[s*q + r] at
    q = q' + q0, q0 = T-1-pad_lo. One Conv computes all s phases as s groups of channels.

    Spreading the phases puts Conv output q', group r at v = s*q' + r, so v = u - s*q0 and the
    output y[o] is at v = o + b - s*q0: crop `crop_lo` = b - s*q0 in front, `crop_hi` behind.
    The Conv must reach the first output, q0 <= floor(b/s): pad_lo = max(0, T-1 - floor(b/s))
    (the crop takes what lies before). It must reach the last, q = floor((b + L - 1)/s) =
    H - 1 + floor((k-1-e)/s) <= q0 + Q - 1 with Q = H + pad_lo + pad_hi - T + 1 Conv outputs:
    pad_hi = max(0, floor((k-1-e)/s)). That leaves crop_hi = s*Q - crop_lo - L =
    s*(pad_hi + 1) - k + e >= 0 behind. None of these depends on H, so the batch and the image
    size may be dynamic.

    With s = 1, the Conv alone is the layer: kernel flipped, pads k-1-b and k-1-e, no crop when
    b, e <= k-1. With H = 1 the stride is unused (one input pixel): s = k gives T = 1, one
    window and k phases of one tap each, the matrix product the layer is (`_subpixel`)."""
    k: int
    s: int
    b: int
    e: int
    size: int | None  # H where static

    @property
    def T(self) -> int:  # noqa: N802  (the docstring's name)
        return -(-self.k // self.s)

    @property
    def pad_lo(self) -> int:
        return max(0, self.T - 1 - self.b // self.s)

    @property
    def pad_hi(self) -> int:
        return max(0, (self.k - 1 - self.e) // self.s)

    @property
    def crop_lo(self) -> int:
        return self.b - self.s * (self.T - 1 - self.pad_lo)

    @property
    def crop_hi(self) -> int:
        return self.s * (self.pad_hi + 1) - self.k + self.e

    def taps(self) -> np.ndarray:
        """[s, T]: the kernel tap of window position a in phase r, r + s*(T-1-a); those >= k
        are zeros (taken from the kernel padded to s*T taps)."""
        r, a = np.arange(self.s)[:, None], np.arange(self.T)[None, :]
        return r + self.s * (self.T - 1 - a)


def _auto_pad(a: dict) -> str:
    mode = a.get("auto_pad", "NOTSET")
    return mode.decode() if isinstance(mode, bytes) else mode


def _subpixel_plan(node, graph: "_Graph", shapes: dict):
    """The two _Axis (height, width) of the ConvTranspose `node`, or why the rewrite does not
    cover it. The crops follow the ONNX spec, as onnxruntime does: explicit pads, and
    output_padding added at the end; VALID (none); SAME_UPPER and SAME_LOWER (output s*H, total
    crop k - s, the odd pixel at the end for SAME_UPPER, at the start for SAME_LOWER);
    output_shape (total crop s*(H-1) + k - output_shape, the odd pixel at the end for
    SAME_UPPER, at the start otherwise). With output_padding, SAME and output_shape are left
    alone: onnxruntime sizes SAME's output s*H where ONNX's shape inference adds the padding,
    and ONNX's reference evaluator places output_shape's crop elsewhere than onnxruntime."""
    w = graph.array(node.input[1])
    if w is None:
        return "its weights are not a constant"
    if w.ndim != 4:
        return f"it is {w.ndim - 2}-D, not 2-D"
    if _bias(node) and graph.array(_bias(node)) is None:
        return "its bias is not a constant"
    a = _attrs(node)
    if a.get("group", 1) != 1:
        return f"it has {a['group']} groups"
    if any(d != 1 for d in a.get("dilations", [])):
        return f"it has dilations {list(a['dilations'])}"
    strides = list(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    extra = list(a.get("output_padding", [0, 0]))
    out_shape = list(a.get("output_shape", []))[-2:]
    mode = _auto_pad(a)
    if (out_shape or mode.startswith("SAME")) and any(extra):
        return (f"it has output_padding with {'output_shape' if out_shape else mode}, which "
                "ONNX's own tools size differently")
    sizes = shapes.get(node.input[0], (None,) * 4)[2:]
    axes = []
    for i in range(2):
        k, s, h = w.shape[2 + i], strides[i], sizes[i] if len(sizes) == 2 else None
        if out_shape or mode in ("SAME_UPPER", "SAME_LOWER"):
            if out_shape and h is None:
                return "it has output_shape, and its input's size is not static"
            total = s * (h - 1) + k - out_shape[i] if out_shape else k - s
            if total < 0:
                return "its output is larger than the transposed convolution's"
            b = total // 2 if mode == "SAME_UPPER" else total - total // 2
            e = total - b
        else:
            b, e = (0, 0) if mode == "VALID" else (pads[i], pads[i + 2])
        axes.append(_Axis(k, k if h == 1 else s, b, e - extra[i], h))
    return tuple(axes)


def subpixel_weights(w: np.ndarray, axes) -> np.ndarray:
    """The Conv kernel [s_h*s_w*C_out, C_in, T_h, T_w] for a ConvTranspose kernel
    w [C_in, C_out, k_h, k_w] along `axes` (height, width: _Axis): output channel
    (r_h*s_w + r_w)*C_out + c is channel c of phase (r_h, r_w), window position (a_h, a_w)
    holds tap (taps_h[r_h, a_h], taps_w[r_w, a_w]), zero past the kernel."""
    ah, aw = axes
    c_in, c_out = w.shape[:2]
    padded = np.zeros((c_in, c_out, ah.s * ah.T, aw.s * aw.T), w.dtype)
    padded[:, :, :w.shape[2], :w.shape[3]] = w
    th, tw = ah.taps(), aw.taps()
    k = padded[:, :, th[:, None, :, None], tw[None, :, None, :]]  # [C_in, C_out, s_h, s_w, T_h, T_w]
    return np.ascontiguousarray(k.transpose(2, 3, 1, 0, 4, 5)).reshape(
        ah.s * aw.s * c_out, c_in, ah.T, aw.T)


def _subpixel(node, axes, graph: _Graph) -> None:
    """Replace the ConvTranspose `node` by its sub-pixel form along `axes`. One input pixel
    and one window (Q_h = Q_w = 1): a Gemm [N, C_in] x [C_in, s_h*s_w*C_out] in place of the
    Conv, whose output is already the spread image, channels-last (onnxruntime runs a 1x1 Conv
    image by image, reading all the weights for each)."""
    ah, aw = axes
    w = graph.array(node.input[1])
    phases_n = ah.s * aw.s
    weights = subpixel_weights(w, axes)
    matrix = ah.size == aw.size == 1 and ah.pad_hi == aw.pad_hi == 0
    layer_in = [node.input[0], graph.const(
        weights.reshape(phases_n * w.shape[1], -1) if matrix else weights, "subpixel_w")]
    if _bias(node):
        layer_in.append(graph.const(np.tile(graph.array(_bias(node)), phases_n), "subpixel_b"))
    out, old = node.output[0], [node]
    spread = phases_n > 1 or ah.crop_lo or ah.crop_hi or aw.crop_lo or aw.crop_hi
    phases = graph.fresh("phases") if spread else out
    if matrix:
        layer_in[0] = graph.fresh("pixel")
        new = [_make_node("Flatten", [node.input[0]], [layer_in[0]]),
               _make_node("Gemm", layer_in, [phases], transB=1)]
    else:
        new = [_make_node("Conv", layer_in, [phases], kernel_shape=[ah.T, aw.T],
                          pads=[ah.pad_lo, aw.pad_lo, ah.pad_hi, aw.pad_hi])]
    if not spread:  # stride 1, no crop: the Conv is the layer, its activation after it
        graph.replace(old, new)
        return
    users = graph.consumers(out)
    if len(users) == 1 and users[0].op_type in _ACTIVATIONS and out not in _outputs(graph):
        act = users[0]  # before the reordering, where onnxruntime fuses it into the Conv
        activated = graph.fresh("phases_act")
        new.append(_make_node(act.op_type, [phases], [activated], **_attrs(act)))
        phases, out, old = activated, act.output[0], [node, act]
    new += _spread(phases, out, w.shape[1], axes, matrix, graph)
    graph.replace(old, new)


def _spread(phases: str, out: str, channels: int, axes, matrix: bool, graph: _Graph) -> list:
    """DepthToSpace (DCR) and the crop, channels-last: [N, s_h*s_w*C, Q_h, Q_w] ->
    [N, Q_h, Q_w, (s_h, s_w, C)] -> [N, Q_h, s_h, Q_w, s_w, C] -> [N, Q_h*s_h, Q_w*s_w, C],
    cropped, and back to NCHW. With both strides 1: the crop alone, on NCHW. From the Gemm
    (`matrix`): [N, (s_h, s_w, C)] is [N, s_h, s_w, C] already."""
    ah, aw = axes
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    end = lambda crop: -crop if crop else np.iinfo(np.int64).max  # noqa: E731
    crop = (ah.crop_lo or ah.crop_hi or aw.crop_lo or aw.crop_hi)

    def slice_(src: str, dst: str, axes_: tuple) -> list:
        return [_make_node("Slice", [src, graph.const(i64(ah.crop_lo, aw.crop_lo), "crop_start"),
                                     graph.const(i64(end(ah.crop_hi), end(aw.crop_hi)), "crop_end"),
                                     graph.const(i64(*axes_), "crop_axes")], [dst])]
    if ah.s == aw.s == 1 and not matrix:
        return slice_(phases, out, (2, 3))
    merged, cropped = graph.fresh("spread_nhwc"), graph.fresh("cropped_nhwc")
    if matrix:
        nodes = [_make_node("Reshape", [phases, graph.const(i64(0, ah.s, aw.s, channels),
                                                            "pixels")], [merged])]
    else:
        last, split, moved, merged_h = (graph.fresh(h) for h in (
            "phases_nhwc", "phases_split", "phases_moved", "spread_h"))
        nodes = [
            _make_node("Transpose", [phases], [last], perm=[0, 2, 3, 1]),
            _make_node("Reshape", [last, graph.const(i64(0, 0, 0, ah.s, aw.s, channels),
                                                     "split")], [split]),
            _make_node("Transpose", [split], [moved], perm=[0, 1, 3, 2, 4, 5]),
            # [N, Q_h, s_h, Q_w, s_w, C] -> [N, Q_h*s_h, 1, Q_w, s_w, C] -> [N, Q_h*s_h,
            # Q_w*s_w, C]: each -1 takes the merged size, each 0 copies a dimension (the
            # batch, Q_w, s_w), so neither the batch nor the image size need be static
            _make_node("Reshape", [moved, graph.const(i64(0, -1, 1, 0, 0, channels),
                                                      "merge_h")], [merged_h]),
            _make_node("Reshape", [merged_h, graph.const(i64(0, 0, -1, channels), "merge_w")],
                       [merged])]
    if crop:
        nodes += slice_(merged, cropped, (1, 2))
    return nodes + [_make_node("Transpose", [cropped if crop else merged], [out],
                               perm=[0, 3, 1, 2])]


def _outputs(graph: _Graph) -> set:
    return {o.name for o in graph.g.output}


# ---- the Conv to a few channels --------------------------------------------------------------

def _is_narrow_conv(node, graph: _Graph) -> bool:
    """Conv to 1 to NARROW channels with an odd k x k kernel (k > 1), stride 1, 'same'
    padding, constant weights and bias."""
    w = graph.array(node.input[1]) if node.op_type == "Conv" else None
    if w is None or w.ndim != 4 or w.shape[0] > NARROW:
        return False
    k_h, k_w = w.shape[2:]
    a = _attrs(node)
    return (k_h % 2 == 1 and k_w % 2 == 1 and k_h * k_w > 1
            and list(a.get("strides", [1, 1])) == [1, 1]
            and list(a.get("dilations", [1, 1])) == [1, 1] and a.get("group", 1) == 1
            and list(a.get("pads", [])) == [k_h // 2, k_w // 2, k_h // 2, k_w // 2]
            and (not _bias(node) or graph.array(_bias(node)) is not None))


def taps_weights(w: np.ndarray) -> np.ndarray:
    """The 1x1 Conv kernel [C_out*k_h*k_w, C_in, 1, 1] whose output Col2Im adds up to the Conv
    with kernel w [C_out, C_in, k_h, k_w]. For each output channel, the Conv is
    y[h] = sum_i p_i[h + i - k//2], p_i the input projected on tap i; Col2Im adds block row j
    at h' into h' + j - k//2, so row j = k-1-i: the taps flipped. Col2Im reads its channels
    as (C_out, k_h, k_w)."""
    c_out, c_in, k_h, k_w = w.shape
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].reshape(c_out, c_in, k_h * k_w)
                                .transpose(0, 2, 1)).reshape(c_out * k_h * k_w, c_in, 1, 1)


def _taps_col2im(node, graph: _Graph, size: tuple[int, int]) -> None:
    """`size`: the image's (H, W), which Col2Im takes as an input."""
    w = graph.array(node.input[1])
    c_out, _, k_h, k_w = w.shape
    taps_w = graph.const(taps_weights(w), "taps_w")
    cols = graph.fresh("taps")
    new = [_make_node("Conv", [node.input[0], taps_w], [cols], kernel_shape=[1, 1])]
    flat, summed = graph.fresh("taps_flat"), graph.fresh("summed")
    new += [_make_node("Reshape", [cols, graph.const(np.array([0, c_out * k_h * k_w, -1],
                                                              np.int64), "taps_shape")], [flat]),
            _make_node("Col2Im", [flat, graph.const(np.array(size, np.int64), "image_hw"),
                                  graph.const(np.array([k_h, k_w], np.int64), "block")],
                       [summed if _bias(node) else node.output[0]],
                       pads=[k_h // 2, k_w // 2, k_h // 2, k_w // 2])]
    if _bias(node):
        bias = graph.const(graph.array(_bias(node)).reshape(c_out, 1, 1), "taps_b")
        new.append(_make_node("Add", [summed, bias], [node.output[0]]))
    graph.replace([node], new)
