"""Validation of an exported file against the source it came from, as its own step.

Checks, in order: the ONNX checker; the generator interface (input z [batch, latent], output
sample, dynamic batch, gan.* metadata that states the source's Spec); values against the
source's reference (Keras's call, or onnxruntime on the source ONNX file) on fixed seeded
latents from its prior at batch 1, 7 and 64; and, where a classifier fits the samples, for every
precision the quality on the same latents against the source's.
Any failure raises ValidationError: never a warning.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.core.errors import GanEdgeError
from runtime.core.samples import POINT
from runtime.core.scores import Scores
from runtime.core.spec import Spec
from runtime.generator import Generator

BATCHES = (1, 7, 64)
# Differences from the source, as fractions of the output range (1 for [0,1], 2 for [-1,1]):
# the TAIL share of the values within MAX_ABS, and their mean within MEAN_ABS.
MAX_ABS = {"fp32": 5e-6, "fp16": 5e-3, "int8": 0.5}
MEAN_ABS = {"fp32": 1e-6, "fp16": 1e-3, "int8": 0.02}
# int8 bounds its 99.9th percentile, not its worst value: a hidden activation rounded to its
# 8-bit step and carried through the later layers can throw a single pixel far off, and over
# the DCGAN's 56,448 values the worst one came out between 0.41 and 0.61 from one checkpoint
# to the next while the mean and the quality held (`python -m benchmarks.int8_ranges`). The
# worst is still reported; the mean and the quality bound below hold int8 to fp32.
TAIL = {"fp32": 1.0, "fp16": 1.0, "int8": 0.999}
# fp32 differs from its source only by rounding: a sum of K terms computed in another order or
# kernel rounds differently by about sqrt(K) units in its last place. The fp32 bounds above hold
# for sums of up to FP32_SUM_TERMS terms (gan-edge's own models reach 6,272: the DCGAN's 7x7
# conv over 128 channels) and widen by sqrt(K / FP32_SUM_TERMS) for a graph with longer ones
# (keras-io's face DCGAN ends in a 5x5 conv over 512 channels: 12,800).
FP32_SUM_TERMS = 8192
SCORE_DELTA = 0.1        # classifier score within 0.1 of the source's, same latents
ENERGY_DELTA = 0.01      # gan-1d: energy distance within 0.01 of the source's
ACCURACY_DELTA = 0.01    # conditional: per-class accuracy at most 1 point below the source's
LOST_MARGIN = 2          # a class the source makes at twice the covered share must stay covered


class ValidationError(GanEdgeError):
    pass


def reference_quality(source, n: int) -> Scores | None:
    """The source's own scores on the validation latents: what every file is held to; None
    where no classifier fits its samples."""
    return None if source.scorer is None else source.scorer(source.predict, n)


def validate(path: Path, source, precision: str, quality_samples: int = 2000, seed: int = 0,
             reference: Scores | None = None) -> dict:
    """Return the parity and quality figures of `path`, or raise ValidationError. `source`:
    the export/sources.py Source it came from. `reference`: reference_quality() of the same
    source and sample count, when a caller validates several files and has it already."""
    import onnx
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ValidationError(f"{path}: onnx.checker failed: {str(e).splitlines()[0][:200]}") from None
    gen = Generator.from_file(path)
    spec = source.spec
    if gen.info.spec != spec:
        raise ValidationError(f"{path}: metadata says {gen.info.spec.describe()}; the source is "
                              f"{spec.describe()}")
    graph = onnx.load(str(path), load_external_data=False).graph
    if not graph.output[0].type.tensor_type.shape.dim[0].dim_param:
        raise ValidationError(f"{path}: the batch dimension of 'sample' is fixed, not dynamic")

    bound, mean_bound = bounds(precision, spec.output_range,
                               source.model.graph if precision == "fp32" else None)
    by_batch = differences(path, gen, source.predict, spec, seed)
    parity = {f"max_abs_batch_{batch}": float(d.max()) for batch, d in by_batch.items()}
    diffs = np.concatenate(list(by_batch.values()))
    tail, mean = float(np.quantile(diffs, TAIL[precision])), float(np.mean(diffs))
    if not tail <= bound:  # `not <=` also catches NaN
        share = "" if TAIL[precision] == 1 else f" on {TAIL[precision]:.1%} of its values"
        raise ValidationError(f"{path}: {precision} differs from its source by up to {tail:.3g}"
                              f"{share}, above its bound {bound:.3g}")
    if not mean <= mean_bound:
        raise ValidationError(f"{path}: {precision} differs from its source by {mean:.3g} on "
                              f"average, above its bound {mean_bound:.3g}")
    parity.update(tail_share=TAIL[precision], tail_abs=tail, bound=bound, mean_abs=mean,
                  mean_bound=mean_bound)
    if spec.conditional:
        by_label = label_differences(gen, source.predict, spec, seed)
        worst = max(range(spec.n_classes), key=lambda k: by_label[k].mean())
        if not by_label[worst].mean() <= mean_bound:
            raise ValidationError(f"{path}: {precision} differs from its source by "
                                  f"{by_label[worst].mean():.3g} on average for label {worst}, "
                                  f"above its bound {mean_bound:.3g}")
        parity["mean_abs_by_label"] = [float(by_label[k].mean()) for k in range(spec.n_classes)]
    if source.scorer is None:
        return {"parity": parity, "quality": {"not_scored": source.unscored}}
    ref = reference or reference_quality(source, quality_samples)
    return {"parity": parity,
            "quality": _quality(path, source.scorer(gen.run, quality_samples), ref)}


def bounds(precision: str, output_range, source_graph) -> tuple[float, float]:
    """The largest TAIL-quantile and mean |difference| from the source that a file of
    `precision` may have: fractions of the output range, fp32's widened for the long sums of
    `source_graph` (the source's fp32 graph; None for the other precisions)."""
    lo, hi = output_range
    scale = 1.0
    if precision == "fp32":
        scale = max(1.0, (longest_sum(source_graph) / FP32_SUM_TERMS) ** 0.5)
    return MAX_ABS[precision] * (hi - lo) * scale, MEAN_ABS[precision] * (hi - lo) * scale


def longest_sum(graph) -> int:
    """The most terms any one output value of a Conv, ConvTranspose, Gemm or MatMul of `graph`
    (an fp32 graph) sums over, from its weights' shapes: initializers or Constant nodes, also
    through Identity nodes (as torch.onnx.export writes shared weights). An upper bound: a
    kernel tap that only ever meets padding counts too."""
    import math

    from onnx import helper
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
        elif node.op_type == "Identity" and node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
    longest = 1
    for node in graph.node:
        a, w = (shapes.get(name) if name else None
                for name in (list(node.input) + ["", ""])[:2])
        attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        terms = None
        if node.op_type == "Conv" and w:  # W [M, C/group, k...]
            terms = math.prod(w[1:])
        elif node.op_type == "ConvTranspose" and w:  # W [C, M/group, k...]: each output
            strides = attrs.get("strides", [1] * (len(w) - 2))  # meets ceil(k/s) taps a dim
            terms = w[0] // attrs.get("group", 1) * math.prod(
                -(-k // s) for k, s in zip(w[2:], strides))
        elif node.op_type == "Gemm":
            terms = (w[1] if attrs.get("transB", 0) else w[0]) if w else \
                (a[0] if attrs.get("transA", 0) else a[1]) if a else None
        elif node.op_type == "MatMul":
            terms = w[-2] if w and len(w) >= 2 else a[-1] if a else None
        if terms:
            longest = max(longest, terms)
    return longest


def differences(path: Path, gen: Generator, predict, spec: Spec,
                seed: int = 0) -> dict[int, np.ndarray]:
    """|file - source|, flat, on seeded latents from the prior (and labels, every class at
    batch 64 and up) at each of BATCHES (by batch size); `predict`: the source's reference."""
    rng = np.random.default_rng(seed)
    out = {}
    for batch in BATCHES:
        z = spec.latents(rng, batch)
        if spec.conditional:
            labels = (np.arange(batch) + rng.integers(spec.n_classes)) % spec.n_classes
            got, want = gen.run(z, labels), np.asarray(predict(z, labels))
        else:
            got, want = gen.run(z), np.asarray(predict(z))
        if got.shape != (batch, *spec.sample_shape):
            raise ValidationError(f"{path}: batch {batch} gave shape {got.shape}, expected "
                                  f"{(batch, *spec.sample_shape)}")
        out[batch] = np.abs(got - want).ravel()
    return out


def label_differences(gen: Generator, predict, spec: Spec, seed: int = 0,
                      per_label: int = 16) -> dict[int, np.ndarray]:
    """|file - source|, flat, for each label on the same `per_label` seeded latents."""
    z = spec.latents(np.random.default_rng(seed + 1), per_label)
    out = {}
    for k in range(spec.n_classes):
        labels = np.full(per_label, k)
        out[k] = np.abs(gen.run(z, labels) - np.asarray(predict(z, labels))).ravel()
    return out


def lost_classes(ours: list[float], ref: list[float]) -> list[int]:
    """The classes (by index) that the source makes clearly, at least LOST_MARGIN times the
    covered share, and the file no longer covers: modes the file dropped. A class that sits
    near the covered share in the source (an untrained generator's) may tip either way."""
    from training.quality import COVERED_SHARE
    return [k for k, (mine, theirs) in enumerate(zip(ours, ref, strict=True))
            if theirs >= LOST_MARGIN * COVERED_SHARE and mine < COVERED_SHARE]


def _quality(path, ours: Scores, ref: Scores) -> dict:
    if ours.kind == POINT:
        delta = ours.energy_distance - ref.energy_distance
        if not delta <= ENERGY_DELTA:
            raise ValidationError(f"{path}: energy distance {ours.energy_distance:.4f} is "
                                  f"{delta:.4f} worse than the source's, above {ENERGY_DELTA}")
        return {**ours.to_row(), "fp32_energy_distance": ref.energy_distance}
    delta = abs(ours.classifier_score - ref.classifier_score)
    lost = lost_classes(ours.class_histogram, ref.class_histogram)
    if not delta <= SCORE_DELTA or lost:
        raise ValidationError(
            f"{path}: quality moved from the source's (classifier score "
            f"{ref.classifier_score:.3f} -> {ours.classifier_score:.3f}, classes lost: "
            f"{', '.join(map(str, lost)) or 'none'}); bound: score within {SCORE_DELTA}, no "
            f"class lost")
    if ours.class_accuracy is not None:
        drop = ref.class_accuracy - ours.class_accuracy
        if not drop <= ACCURACY_DELTA:
            raise ValidationError(
                f"{path}: per-class accuracy fell from the source's {ref.class_accuracy:.2%} "
                f"to {ours.class_accuracy:.2%}; bound: within {ACCURACY_DELTA:.0%}")
    return {**ours.to_row(lists=False), "fp32_classifier_score": ref.classifier_score,
            **({} if ref.class_accuracy is None else {"fp32_class_accuracy": ref.class_accuracy})}
