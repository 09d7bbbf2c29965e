"""Export one generator, from any source (export/sources.py): rewrite, derive int8/fp16,
validate, then publish.

Every file is written under a temp name, validated, and only then renamed into place, so a
file that fails validation is never left behind looking good. manifest.json is written last.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from export.convert import OPSET
from export.quantize import CALIBRATION_SAMPLES, INT8_FLOAT_NODES, INT8_RANGES, INT8_RULES
from export.rewrite import RULES as REWRITE_RULES
from export.sources import ONNX, Source, run_source
from runtime.core.artifacts import (DISCRIMINATOR_FILE, EXPORTED_PATTERNS, MANIFEST_FILE,
                                     generator_file)
from runtime.core.errors import GanEdgeError
from runtime.core.files import remove_stale_temps, sha256_file, temp_folder, write_text_atomic
from runtime.core.precision import PRECISIONS, TARGET
from runtime.core.spec import Spec

# The rules that made a file, listed in its manifest: a shipped file whose manifest lacks one of
# today's was made before that rule, and exporting its checkpoint again gives another file.
EXPORT_RULES = [*REWRITE_RULES, *INT8_RULES]


def metadata(spec: Spec, precision: str, source_file: str = "", source_sha: str = "",
             checkpoint: dict | None = None) -> dict:
    """A generator file's gan.* keys: its Spec, its precision, where it came from (the source
    file's name and SHA-256) and, for a run's checkpoint, which one and its scores."""
    meta = {**spec.to_metadata(), "gan.precision": precision, "gan.target": TARGET[precision],
            "gan.source_file": source_file, "gan.source_sha256": source_sha}
    if checkpoint is not None:
        meta.update({"gan.epoch": f"{checkpoint['epoch']:g}", "gan.step": str(checkpoint["step"]),
                     "gan.checkpoint": checkpoint["name"],
                     "gan.metrics": json.dumps(checkpoint.get("metrics", {})),
                     # "ema": the averaged generator
                     "gan.weights": checkpoint.get("weights", "raw")})
    return meta


def source_metadata(source: Source, precision: str) -> dict:
    return metadata(source.spec, precision, source.file.name, source.sha256, source.checkpoint)


def discriminator_metadata(source: Source) -> dict:
    """What ties the discriminator file to the generators of the same source: their source
    file's SHA-256 (and a run's checkpoint)."""
    spec, d = source.spec, source.discriminator
    meta = {"gan.role": "discriminator", "gan.arch": spec.name,
            "gan.sample_shape": ",".join(map(str, spec.sample_shape)), "gan.precision": "int8",
            "gan.source_file": d.file.name, "gan.source_sha256": d.sha256,
            "gan.generator_sha256": source.sha256}
    if source.checkpoint is not None:
        meta.update({"gan.checkpoint": source.checkpoint["name"],
                     "gan.step": str(source.checkpoint["step"])})
    if spec.conditional:
        meta.update({k: v for k, v in spec.to_metadata().items()
                     if k in ("gan.conditional", "gan.n_classes", "gan.class_names")})
    return meta


def largest_tensor_bytes(model) -> int:
    """Bytes of the graph's largest tensor per sample, by ONNX shape inference over the tensors
    whose first axis is the batch (0 where it finds none). It bounds the memory of one call,
    so the runtime sizes its default batch by it (runtime/core/batch.py). In an int8 file it
    counts the float outputs of DequantizeLinear, which onnxruntime fuses into 8-bit operators
    where it can: the bound is cautious there."""
    import math

    from onnx import helper, shape_inference
    # data_prop: shapes computed in the graph (Shape -> Reshape) are followed, not dropped
    graph = shape_inference.infer_shapes(model, data_prop=True).graph
    largest = 0
    for value in (*graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        dims = list(tensor.shape.dim)
        if not dims or dims[0].HasField("dim_value") or \
                any(not d.HasField("dim_value") for d in dims[1:]):
            continue  # a constant's, or a shape that inference could not settle
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
        largest = max(largest, math.prod(d.dim_value for d in dims[1:]) * itemsize)
    return largest


def write_metadata(path: Path, meta: dict) -> None:
    """Replace the file's metadata_props with `meta` (the gan.* keys the runtime reads)."""
    import onnx
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "gan-edge"
    onnx.save(model, str(path))


def build_file(precision: str, source_model, spec: Spec, tmp: Path,
               int8_ranges: str = INT8_RANGES, progress=print,
               calibration: int = CALIBRATION_SAMPLES) -> Path:
    """Write `precision`'s file into `tmp` and return its path (not yet validated): the fp32
    graph `source_model` (a Source's, left as it is) with the exact rewrites (export/rewrite.py),
    and from it int8 or fp16. `int8_ranges`: quantize_int8's `ranges`. Each layer that no
    rewrite covers is said through `progress`, once: it stays as the source has it (in int8, a
    ConvTranspose stays in float). `calibration`: the latents int8 ranges are set from."""
    import onnx

    from export.quantize import convert_fp16, quantize_int8
    from export.rewrite import rewrite, uncovered
    fp32 = tmp / "fp32.onnx"
    if not fp32.exists():
        model = onnx.ModelProto()
        model.CopyFrom(source_model)
        rewrite(model)
        for note in uncovered(model):
            progress(f"no rewrite covers {note}; it stays as it is")
        onnx.save(model, str(fp32))
    if precision == "fp32":
        return fp32
    out = tmp / f"{precision}.onnx"
    if precision == "fp16":
        convert_fp16(fp32, out)
    else:
        quantize_int8(fp32, out, spec, calibration, ranges=int8_ranges)
    return out


def export_checkpoint(checkpoint_dir: Path, out_dir: Path, precisions=PRECISIONS, opset: int = OPSET,
                      quality_samples: int = 2000, progress=print, data_dir=None,
                      weights: str = "auto", calibration: int = CALIBRATION_SAMPLES) -> dict:
    """export_source() of a run's checkpoint (export/sources.py's run_source)."""
    source = run_source(Path(checkpoint_dir), weights, data_dir, opset)
    return export_source(source, out_dir, precisions, quality_samples, progress, calibration)


def export_source(source: Source, out_dir: Path, precisions=PRECISIONS,
                  quality_samples: int = 2000, progress=print,
                  calibration: int = CALIBRATION_SAMPLES) -> dict:
    """Export, validate and publish; return the manifest."""
    import onnx

    from export.validate import ValidationError, reference_quality, validate
    out_dir = Path(out_dir)
    if len(set(precisions)) != len(precisions):
        raise GanEdgeError(f"--precision repeats a precision ({', '.join(precisions)}); name each "
                           f"once")
    from runtime.core.files import check_target
    for name in (*map(generator_file, precisions), DISCRIMINATOR_FILE, MANIFEST_FILE):
        check_target(out_dir / name)  # before the minutes of work, not in the middle of publishing
    out_dir.mkdir(parents=True, exist_ok=True)
    for left in remove_stale_temps(out_dir):
        progress(f"removed {left.name}, left in {out_dir} by an export that was killed")
    entries = []
    reference = reference_quality(source, quality_samples)  # once for all files
    if reference is None:
        progress(f"quality not scored: {source.unscored}")
    what = "the source ONNX file" if source.kind == ONNX else "Keras"
    try:
        with temp_folder(out_dir, ".tmp-export-") as tmp:
            built = []
            for precision in precisions:
                progress(f"{precision}: converting")
                path = build_file(precision, source.model, source.spec, Path(tmp),
                                  progress=progress, calibration=calibration)
                write_metadata(path, {**source_metadata(source, precision),
                                      "gan.largest_tensor_bytes":
                                          str(largest_tensor_bytes(onnx.load(str(path))))})
                progress(f"{precision}: validating against {what}")
                report = validate(path, source, precision, quality_samples, reference=reference)
                built.append(path)
                entries.append({"file": generator_file(precision), "precision": precision,
                                "target": TARGET[precision],
                                "bytes": path.stat().st_size, "sha256": sha256_file(path),
                                **({"int8_ranges": INT8_RANGES, "int8_float_nodes": INT8_FLOAT_NODES,
                                    "int8_calibration_samples": calibration}
                                   if precision == "int8" else {}),
                                **report})
            d_path, d_entry = None, None
            if source.discriminator is not None:
                progress("discriminator: converting to int8 and validating its ranking against "
                         "its source")
                d_path, d_entry = _build_discriminator(source, Path(tmp), quality_samples)
            # All passed: publish by renames (each atomic; the targets were checked above), the
            # manifest last, and only then drop files of an earlier export that this one lacks.
            published = {entry["file"] for entry in entries} | {MANIFEST_FILE}
            if d_entry is not None:
                published.add(d_entry["file"])
            stale = [p for pattern in EXPORTED_PATTERNS for p in out_dir.glob(pattern)
                     if p.is_file() and p.name not in published]
            for path, entry in zip(built, entries):
                os.replace(path, out_dir / entry["file"])
                progress(f"{entry['precision']}: {out_dir / entry['file']} "
                         f"({entry['bytes'] / 1e6:.2f} MB)")
            if d_path is not None:
                os.replace(d_path, out_dir / d_entry["file"])
    except ValidationError as e:
        # Its message names a file of the temp folder, gone by now: name the source instead.
        where = source.checkpoint["path"] if source.checkpoint else source.file
        raise ValidationError(str(e).replace(f"{tmp}{os.sep}", f"{where}, exported as ")
                              + "; nothing was written") from None
    manifest = _manifest(source, out_dir, entries, d_entry)
    write_text_atomic(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    for path in stale:
        path.unlink()
        progress(f"removed {path}: an earlier export's file, which this export's manifest does "
                 f"not list")
    return manifest


def _manifest(source: Source, out_dir: Path, entries: list, d_entry: dict | None) -> dict:
    """Where the files came from (by a path relative to the manifest, so that no machine's own
    paths are published), the files, and the discriminator. A run's export names its checkpoint
    and the scores the run recorded for it."""
    manifest = {"arch": source.spec.name, "source": source.kind}
    c = source.checkpoint
    if c is not None:
        manifest.update({"checkpoint": _relative(c["path"], out_dir), "checkpoint_name": c["name"],
                         "weights": c["weights"], "step": c["step"], "epoch": c["epoch"]})
    else:
        manifest["source_path"] = _relative(source.file, out_dir)
    manifest.update({"source_file": source.file.name, "source_sha256": source.sha256})
    if c is not None:
        manifest["metrics"] = c["metrics"]
    manifest.update({"opset": source.opset, "tools": _versions(), "export_rules": EXPORT_RULES,
                     "files": entries})
    if d_entry is not None:
        manifest["discriminator"] = d_entry
    return manifest


def _relative(path: Path, out_dir: Path) -> str:
    return os.path.relpath(Path(path).resolve(), out_dir.resolve())


def _build_discriminator(source: Source, tmp: Path, n: int) -> tuple[Path, dict]:
    """The source's discriminator as int8 (for ganrun --keep), validated on n samples of the
    source generator; returns its temp path and its manifest entry."""
    from export import discriminator as disc
    from training.evaluate import eval_labels, generate
    d = source.discriminator
    path = disc.build(d.build(), tmp)
    write_metadata(path, discriminator_metadata(source))
    samples = generate(source.predict, source.spec, n)
    report = disc.validate(path, d.logits, samples, eval_labels(source.spec, n))
    return path, {"file": DISCRIMINATOR_FILE, "precision": "int8", "bytes": path.stat().st_size,
                  "sha256": sha256_file(path), "ranking": report}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime",
                "onnxruntime-gpu"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
