"""Reading a generator's ONNX graph, and wrapping it into the file contract (DESIGN.md): input
`z` float32 [N, L], for a conditional generator `label` int64 [N], output `sample` float32
[N, H, W, C] or [N, D]. What the graph says is read here, once, for every source: the output
range from a final Tanh or Sigmoid, the class count from the label's embedding table, the
image layout from where the 1 or 3 channels sit.

Every refusal is a GanEdgeError of one line that says what is wrong with the graph and, where
a flag can say what the graph cannot, names that flag.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from runtime.core.errors import GanEdgeError

CHANNELS = (1, 3)  # grey or RGB: what the runtime draws
# Ops that move or relabel values without computing new ones: the output range and the label's
# embedding are read through them.
_LAYOUT_OPS = ("Identity", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast")
_RANGES = {"Tanh": (-1.0, 1.0), "Sigmoid": (0.0, 1.0)}
MIN_OPSET = 13  # per-channel int8 (QuantizeLinear with an axis) needs it
CONTRACT_NAMES = ("z", "label", "sample")


class Tensor(NamedTuple):
    """A graph input or output as the graph declares it: dims are ints, names (symbolic) or
    None (unknown); `dims` is None where even the rank is unknown."""
    name: str
    elem_type: int
    dims: tuple | None


def tensor(value) -> Tensor:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return Tensor(value.name, t.elem_type, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in t.shape.dim)
    return Tensor(value.name, t.elem_type, dims)


def is_fixed(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def load(path: Path):
    """The ONNX model in `path`, its external data read from beside it; a one-line error where
    the file is not ONNX or its external data lies outside its folder (onnx refuses that)."""
    import onnx
    if not path.is_file():
        raise GanEdgeError(f"{path} does not exist or is not a file")
    try:
        return onnx.load(str(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if "outside" in first:
            raise GanEdgeError(f"{path} keeps its weights outside its own folder ({first}); "
                               f"keep the external data file beside the model") from None
        raise GanEdgeError(f"{path} is not a readable ONNX file ({first})") from None


def session(path: Path):
    """An onnxruntime session on the file as it is; a one-line error where onnxruntime cannot
    load it."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200]
        raise GanEdgeError(f"onnxruntime cannot load {path} ({first}); export it again with "
                           f"standard ONNX operators") from None


def opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def graph_inputs(model) -> list[Tensor]:
    """The inputs a caller feeds: graph inputs that are not initializers (older exporters list
    the weights as inputs too)."""
    weights = {t.name for t in model.graph.initializer}
    return [tensor(v) for v in model.graph.input if v.name not in weights]


def output(model) -> Tensor:
    """The graph's one output, with its rank from shape inference where the graph does not
    declare it."""
    import onnx
    if len(model.graph.output) != 1:
        raise GanEdgeError(f"the graph has {len(model.graph.output)} outputs; a generator has "
                           f"one, its samples")
    out = tensor(model.graph.output[0])
    if out.dims is None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model).graph
        except Exception:
            inferred = model.graph
        known = [tensor(v) for v in (*inferred.output, *inferred.value_info)
                 if v.name == out.name]
        out = next((t for t in known if t.dims is not None), out)
    return out


def producers(model) -> dict:
    return {name: node for node in model.graph.node for name in node.output}


def final_op(model):
    """The node that computes the graph's output, looking through the layout ops after it;
    None where the output is an input or a constant."""
    made_by = producers(model)
    node = made_by.get(model.graph.output[0].name)
    while node is not None and node.op_type in _LAYOUT_OPS:
        node = made_by.get(node.input[0])
    return node


def final_range(model) -> tuple[float, float] | None:
    """(-1, 1) where the output comes from a Tanh, (0, 1) from a Sigmoid, through any layout
    ops after it; None otherwise."""
    node = final_op(model)
    return _RANGES.get(node.op_type) if node is not None else None


def embedding_rows(model, label: str) -> int | None:
    """The rows of the table that the label indexes: a Gather from a constant 2-D table (as
    Keras's Embedding and PyTorch's nn.Embedding export) whose indices are computed from the
    label alone (casts, reshapes, Keras's wrapping of negative indices); None where there is
    no such table (a one-hot encoding, say)."""
    weights = {t.name: t for t in model.graph.initializer}
    from_label = {label}
    for node in model.graph.node:  # in order: an ONNX graph's nodes are sorted
        table = weights.get(node.input[0])
        if node.op_type == "Gather" and node.input[1] in from_label and table is not None \
                and len(table.dims) == 2:
            return int(table.dims[0])
        inputs = [i for i in node.input if i and i not in weights]
        if inputs and all(i in from_label for i in inputs):
            from_label.update(node.output)
    return None


def image_layout(dims: tuple, layout: str | None, what: str) -> str:
    """"nchw" or "nhwc" for a 4-D tensor of `dims` (batch first): `layout` if given, else
    where the 1 or 3 channels sit, when only one of axes 1 and 3 can hold them."""
    per_sample = list(dims[1:])
    if layout is None:
        first, last = dims[1] in CHANNELS, dims[3] in CHANNELS
        if first and last:
            raise GanEdgeError(f"{what} is {per_sample} per sample, and axis 1 or axis 3 could "
                               f"hold its channels; say which with --layout nchw or --layout nhwc")
        if not (first or last):
            raise GanEdgeError(f"{what} is {per_sample} per sample, with neither 1 nor 3 "
                               f"channels on axis 1 or 3; gan-edge draws grey (1) or RGB (3) "
                               f"images")
        layout = "nchw" if first else "nhwc"
    channels = dims[1] if layout == "nchw" else dims[3]
    if channels not in CHANNELS:
        raise GanEdgeError(f"{what} is {per_sample} per sample: {channels} channels as "
                           f"{layout.upper()}; gan-edge draws grey (1) or RGB (3) images")
    return layout


def sample_shape(dims: tuple, layout: str | None) -> tuple[int, ...]:
    """A sample's shape, channels last, from the output's dims (batch first)."""
    return (dims[2], dims[3], dims[1]) if layout == "nchw" else tuple(dims[1:])


class Wrapper:
    """Adds to a graph the nodes that feed its inputs from the contract's (`names`: the
    contract's input and output names, which the source's own tensors give up) and that name
    its output, keeping every node of the source as it is."""

    def __init__(self, model, names=CONTRACT_NAMES):
        self.model, self.g = model, model.graph
        self._taken = {name for node in self.g.node for name in (*node.input, *node.output)}
        self._taken |= {v.name for v in (*self.g.input, *self.g.output)}
        self._taken |= {t.name for t in self.g.initializer}
        # Shape hints of the source's own tensors (some with its fixed batch size): onnxruntime
        # infers them again.
        del self.g.value_info[:]
        self.moved = {}  # the source's tensors that had a contract name: their new names
        for name in names:
            if name in self._taken:
                self.moved[name] = self.fresh(name)
                self._rename(name, self.moved[name])

    def fresh(self, hint: str) -> str:
        n = 0
        while f"{hint}.src{n or ''}" in self._taken:
            n += 1
        self._taken.add(f"{hint}.src{n or ''}")
        return f"{hint}.src{n or ''}"

    def _rename(self, old: str, new: str) -> None:
        for node in self.g.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
        for v in (*self.g.input, *self.g.output, *self.g.initializer):
            if v.name == old:
                v.name = new

    def const(self, array: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper
        name = self.fresh(hint)
        self.g.initializer.append(numpy_helper.from_array(array, name))
        return name

    def feed(self, old: Tensor, new: str, elem_type: int, dims: list, nodes: list) -> None:
        """Graph input `old` becomes `new`: renamed where `nodes` is empty, else fed to `old`'s
        consumers through `nodes` (a reshape, a cast, a transpose)."""
        from onnx import helper
        name = self.name(old.name)
        if not nodes:
            self._rename(name, new)
        for i, v in enumerate(self.g.input):
            if v.name in (name, new):
                self.g.input[i].CopyFrom(helper.make_tensor_value_info(new, elem_type, dims))
        for node in reversed(nodes):
            self.g.node.insert(0, node)

    def name(self, source_name: str) -> str:
        """What a tensor of the source is called in the graph being wrapped."""
        return self.moved.get(source_name, source_name)

    def emit(self, old: str, new: str, dims: list, node=None) -> None:
        """The graph's one output becomes float32 `new` [*dims]: `old` renamed, or made from
        `old` by `node`."""
        from onnx import TensorProto, helper
        if node is None:
            self._rename(self.name(old), new)
        else:
            self.g.node.append(node)
        del self.g.output[:]
        self.g.output.append(helper.make_tensor_value_info(new, TensorProto.FLOAT, dims))

    def latent(self, old: Tensor, latent_dim: int) -> None:
        """z [batch, L] into `old`, which is [N, L] or [N, L, 1, 1] float32."""
        from onnx import TensorProto, helper
        nodes = []
        if len(old.dims) == 4:
            shape = self.const(np.array([-1, latent_dim, 1, 1], np.int64), "z_shape")
            nodes = [helper.make_node("Reshape", ["z", shape], [self.name(old.name)])]
        self.feed(old, "z", TensorProto.FLOAT, ["batch", latent_dim], nodes)

    def label(self, old: Tensor) -> None:
        """label int64 [batch] into `old`, an integer [N] or [N, 1]."""
        from onnx import TensorProto, helper
        nodes, current, target = [], "label", self.name(old.name)
        if old.elem_type != TensorProto.INT64:
            cast = self.fresh("label_cast") if len(old.dims) == 2 else target
            nodes.append(helper.make_node("Cast", [current], [cast], to=old.elem_type))
            current = cast
        if len(old.dims) == 2:
            shape = self.const(np.array([-1, 1], np.int64), "label_shape")
            nodes.append(helper.make_node("Reshape", [current, shape], [target]))
        self.feed(old, "label", TensorProto.INT64, ["batch"], nodes)

    def sample(self, old: Tensor, layout: str | None, shape: tuple[int, ...]) -> None:
        """The graph's output `old` as sample [batch, *shape], channels last."""
        from onnx import helper
        node = (helper.make_node("Transpose", [self.name(old.name)], ["sample"], perm=[0, 2, 3, 1])
                if layout == "nchw" else None)
        self.emit(old.name, "sample", ["batch", *shape], node)
