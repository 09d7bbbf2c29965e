"""int8 (static QDQ, calibrated on the generator's own prior) and fp16 variants of an fp32 file."""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from runtime.core.spec import Spec

INT8_RANGES = "percentile"  # how exports set activation ranges; see quantize_int8
# What int8 files leave out of activation quantization (see float_output_layer): manifests say
# it, since files made before the rule quantize their output layer as well.
INT8_FLOAT_NODES = "output-layer"
# Seeded latents that int8 ranges are calibrated on (ganexport --calibration-samples).
CALIBRATION_SAMPLES = 512
# The int8 rules by name, for manifests (export.exporter.EXPORT_RULES).
INT8_RULES = (f"int8-ranges-{INT8_RANGES}", f"int8-float-{INT8_FLOAT_NODES}",
              "int8-calibration-by-batch")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class _BatchReader:
    """Calibration batches of named inputs, as onnxruntime's quantizer asks for them: all of
    them, or (set_range, for its CalibStridedMinMax) those from one index to another."""

    def __init__(self, inputs: dict[str, np.ndarray], batch: int = 64):
        n = len(next(iter(inputs.values())))
        self._all = [{name: data[i:i + batch] for name, data in inputs.items()}
                     for i in range(0, n, batch)]
        self._batches = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._batches = iter(self._all[start_index:end_index])

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(fp32_path: Path, out_path: Path, spec: Spec | None = None,
                  calibration: int = CALIBRATION_SAMPLES, inputs: dict[str, np.ndarray] | None = None,
                  ranges: str = INT8_RANGES, float_output_layer: bool = True) -> None:
    """Static int8 of a generator of `spec`, calibrated on seeded latents from its prior as it
    sees them in use (and, for a conditional one, every class in turn); or, with `inputs`
    (input name -> array), of any model, calibrated on those arrays.

    A generator's output layer (`output_layer`) computes in float, from the 8-bit output of
    the layer before, with its weights stored as int8 (`int8_weights_only`): see
    `_name_nodes_and_pick_output_layer` for why (`float_output_layer=False`: quantized like
    the others, only to compare).

    `ranges`: how each activation's 8-bit range is set from what calibration saw. "percentile"
    drops its 0.001 % most extreme values, so the other 99.999 % get a finer step: on the
    DCGAN (epochs 40 to 75 of one run, seven checkpoints) it cut the mean difference from Keras
    by 8 to 15 % and its 99.9th percentile by 8 to 11 % against "minmax" (the whole range seen;
    `python -m benchmarks.int8_ranges`)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        # reduce_range: 7-bit weights. x86 CPUs without VNNI (AVX2 only, like these) compute
        # u8 x s8 products with a saturating 16-bit add; full-range weights overflow it, which
        # measured here as errors of 2.3 on gan-1d's outputs instead of 0.07.
        float_nodes = None
        if inputs is None:  # a generator
            inputs = {"z": spec.latents(np.random.default_rng(0), calibration)}
            if spec.conditional:
                inputs["label"] = np.arange(calibration, dtype=np.int64) % spec.n_classes
            if float_output_layer:
                float_nodes = _name_nodes_and_pick_output_layer(prepared)
        method = {"percentile": CalibrationMethod.Percentile,
                  "minmax": CalibrationMethod.MinMax}[ranges]
        # The percentile calibrator prints its settings to stdout, which is the CLIs' output,
        # and the quantizer logs warnings for its developers (a batch normalisation's 1-D
        # weights have no channel axis to quantize along) on the root logger.
        # CalibStridedMinMax 1: the calibrator takes one batch at a time into its histograms,
        # where it would otherwise hold every activation of every batch at once (more memory
        # than a 2-core, 24 GB machine has for keras-io's face DCGAN at its full widths).
        with contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
            quantize_static(str(prepared), str(out_path), _BatchReader(inputs),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                            calibrate_method=method, nodes_to_exclude=float_nodes,
                            extra_options={"CalibStridedMinMax": 1})
    if float_nodes:
        int8_weights_only(out_path, out_path)  # the float layer's weights: stored as int8 still


@contextlib.contextmanager
def _quiet_root_logger():
    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def output_layer(graph) -> list:
    """The nodes of a generator's output layer, output first: from the graph's output back to
    its last Conv, ConvTranspose, MatMul or Gemm (with the bias Add, the rewrite's Col2Im or
    spreading, the tanh or sigmoid, reshapes and transposes between), along the inputs that are
    not constants: initializers, Constant nodes (as torch.onnx.export writes a Reshape's
    shape) and what nodes compute from constants alone."""
    constants = {t.name for t in graph.initializer}
    for node in graph.node:  # in topological order, as ONNX requires
        if node.op_type == "Constant" or node.input and all(i in constants for i in node.input
                                                            if i):
            constants.update(node.output)
    made_by = {out: node for node in graph.node for out in node.output}
    node, layer = made_by.get(graph.output[0].name), []
    while node is not None:
        layer.append(node)
        if node.op_type in WEIGHTED_OPS:
            return layer
        node = next((made_by[i] for i in node.input if i and i not in constants and i in made_by),
                    None)
    raise ValueError("the graph's output comes from no Conv, ConvTranspose, MatMul or Gemm")


def _name_nodes_and_pick_output_layer(path: Path) -> list[str]:
    """Give every node of the model at `path` a unique name (tf2onnx and export/rewrite.py leave
    some empty, and the quantizer excludes nodes by name), save it, and return the names of its
    output layer.

    The output layer computes in float because its pre-activation's 8-bit range is set by the
    pixels that tanh saturates, far out on its flat tails, so the step is coarse and lands in
    full on the pixels in between, where tanh's slope is near 1 (docs/export.md; what it buys:
    benchmarks/results/int8-layers-*.md, `python -m benchmarks.int8_layers`)."""
    import onnx
    model = onnx.load(str(path))
    taken = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in taken:
            node.name = f"{node.op_type}_{i}"
        while node.name in taken:
            node.name += "_"
        taken.add(node.name)
    onnx.save(model, str(path))
    return [node.name for node in output_layer(model.graph)]


def int8_weights_only(fp32_path: Path, out_path: Path, min_size: int = 256) -> None:
    """int8 storage of the MatMul, Gemm and Conv weights (symmetric, per output channel), turned
    back into float32 by a DequantizeLinear that onnxruntime folds at load: a quarter of the
    file size, float32 compute, and only the weights' rounding as error (no activation
    ranges, so the outputs do not depend on what calibration saw)."""
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(str(fp32_path))
    graph = model.graph
    axis_of = {}  # initializer name -> its output-channel axis
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm", "Conv") and len(node.input) > 1:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            axis_of[node.input[1]] = 0 if node.op_type == "Conv" or trans_b else 1
    for init in list(graph.initializer):
        w = numpy_helper.to_array(init)
        if init.name not in axis_of or w.dtype != np.float32 or w.size < min_size:
            continue
        axis = axis_of[init.name]
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.abs(w).max(axis=reduce) / 127).astype(np.float32)
        scale[scale == 0] = 1.0
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, init.name + "_int8"),
                                  numpy_helper.from_array(scale, init.name + "_scale")])
        graph.node.insert(0, helper.make_node("DequantizeLinear",
                                              [init.name + "_int8", init.name + "_scale"],
                                              [init.name], axis=axis))
    onnx.save(model, str(out_path))


def convert_fp16(fp32_path: Path, out_path: Path) -> None:
    """fp16 weights and compute with float32 z and sample kept, so callers need not change.
    A GPU format: onnxruntime's CPU provider runs it slower than fp32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    _sort_nodes(model.graph)  # the converter appends its input casts at the end of the graph
    onnx.save(model, str(out_path))


def _sort_nodes(graph) -> None:
    """Reorder graph.node topologically, as the ONNX checker requires (stable otherwise)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progressed = False
        for node in list(pending):
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progressed = True
        if not progressed:
            raise ValueError("graph has a cycle or an undefined input")
    del graph.node[:]
    graph.node.extend(ordered)
