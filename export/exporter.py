"""Export one checkpoint's generator: convert, derive int8/fp16, validate, then publish.

Every file is written under a temp name, validated, and only then renamed into place, so a
file that fails validation is never left behind looking good. manifest.json is written last.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from export.convert import OPSET
from export.quantize import INT8_FLOAT_NODES, INT8_RANGES
from runtime.core.artifacts import (DISCRIMINATOR_FILE, EXPORTED_PATTERNS, MANIFEST_FILE,
                                     generator_file)
from runtime.core.errors import GanEdgeError
from runtime.core.files import remove_stale_temps, sha256_file, temp_folder, write_text_atomic
from runtime.core.precision import PRECISIONS, TARGET
from training.config import GANConfig
from training.rundir import RunDir


def metadata(cfg: GANConfig, precision: str, checkpoint: dict, source_sha: str) -> dict:
    lo, hi = cfg.output_range
    return {
        "gan.arch": cfg.name, "gan.dataset": cfg.dataset, "gan.latent_dim": str(cfg.latent_dim),
        "gan.sample_shape": ",".join(map(str, cfg.sample_shape)),
        "gan.output_range": f"{lo:g},{hi:g}", "gan.epoch": f"{checkpoint['epoch']:g}",
        "gan.step": str(checkpoint["step"]), "gan.checkpoint": checkpoint["name"],
        "gan.precision": precision, "gan.metrics": json.dumps(checkpoint.get("metrics", {})),
        "gan.source_sha256": source_sha,
        "gan.target": TARGET[precision],
        "gan.weights": checkpoint.get("weights", "raw"),  # "ema": the averaged generator
        **conditional_metadata(cfg),
    }


def conditional_metadata(cfg: GANConfig) -> dict:
    """What a conditional file says of its second input `label`: how many classes, and their
    names in label order (the runtime's --class and the web page's picker read them)."""
    if not cfg.conditional:
        return {}
    from training.data import CLASS_NAMES
    return {"gan.conditional": "1", "gan.n_classes": str(cfg.n_classes),
            "gan.class_names": json.dumps(list(CLASS_NAMES[cfg.dataset]))}


def discriminator_metadata(cfg: GANConfig, checkpoint: dict, source_sha: str) -> dict:
    """What ties the discriminator file to the generators of the same checkpoint."""
    return {"gan.role": "discriminator", "gan.arch": cfg.name,
            "gan.sample_shape": ",".join(map(str, cfg.sample_shape)),
            "gan.checkpoint": checkpoint["name"], "gan.step": str(checkpoint["step"]),
            "gan.precision": "int8", "gan.source_sha256": source_sha,
            **conditional_metadata(cfg)}


def write_metadata(path: Path, meta: dict) -> None:
    """Replace the file's metadata_props with `meta` (the gan.* keys the runtime reads)."""
    import onnx
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "gan-edge"
    onnx.save(model, str(path))


def build_file(precision: str, generator, cfg: GANConfig, tmp: Path, opset: int = OPSET,
               int8_ranges: str = INT8_RANGES) -> Path:
    """Write `precision`'s file into `tmp` and return its path (not yet validated).
    `int8_ranges`: quantize_int8's `ranges`."""
    import onnx

    from export.convert import to_onnx
    from export.quantize import convert_fp16, quantize_int8
    fp32 = tmp / "fp32.onnx"
    if not fp32.exists():
        onnx.save(to_onnx(generator, cfg, opset), str(fp32))
    if precision == "fp32":
        return fp32
    out = tmp / f"{precision}.onnx"
    if precision == "fp16":
        convert_fp16(fp32, out)
    else:
        quantize_int8(fp32, out, cfg.latent_dim, ranges=int8_ranges, n_classes=cfg.n_classes)
    return out


def export_checkpoint(checkpoint_dir: Path, out_dir: Path, precisions=PRECISIONS, opset: int = OPSET,
                      quality_samples: int = 2000, progress=print, data_dir=None,
                      weights: str = "auto") -> dict:
    """Export, validate and publish; return the manifest. `weights`: "raw", "ema" (the averaged
    generator) or "auto" (the one the best-checkpoint rule prefers at this checkpoint). Quality
    is scored against the test split of `data_dir`, by default the run's own data set."""
    from export.validate import ValidationError, reference_quality, validate
    checkpoint_dir = Path(checkpoint_dir)
    run = RunDir.of_checkpoint(checkpoint_dir)
    data_dir = data_dir or run.data_dir()
    cfg = run.gan_config()
    checkpoint = run.checkpoint(checkpoint_dir.name)
    if weights == "auto":
        weights = run.preferred_weights(checkpoint.name)
    if weights not in checkpoint.weights():
        raise GanEdgeError(f"{checkpoint_dir} has no {weights} generator (it has: "
                           f"{', '.join(checkpoint.weights()) or 'none'}); the averaged one exists "
                           f"only in runs trained with --ema above 0")
    source = checkpoint.generator_file(weights)
    generator = _load_keras(source)
    if generator.count_params() != cfg.param_counts[0] and cfg.param_counts[0]:
        raise GanEdgeError(f"{source} has {generator.count_params()} parameters, not "
                           f"{cfg.name}'s {cfg.param_counts[0]}: mismatched checkpoint")
    source_sha = sha256_file(source)
    metrics = run.metrics_for(checkpoint_dir.name, weights)
    info = {"name": checkpoint.name, "step": checkpoint.step,
            "epoch": round(checkpoint.epoch, 4), "metrics": metrics, "weights": weights}
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
    reference = reference_quality(generator, cfg, quality_samples, data_dir)  # once for all files
    try:
        with temp_folder(out_dir, ".tmp-export-") as tmp:
            built = []
            for precision in precisions:
                progress(f"{precision}: converting")
                path = build_file(precision, generator, cfg, Path(tmp), opset)
                write_metadata(path, metadata(cfg, precision, info, source_sha))
                progress(f"{precision}: validating against Keras")
                report = validate(path, generator, cfg, precision, quality_samples,
                                  reference=reference, data_dir=data_dir)
                built.append(path)
                entries.append({"file": generator_file(precision), "precision": precision,
                                "target": TARGET[precision],
                                "bytes": path.stat().st_size, "sha256": sha256_file(path),
                                **({"int8_ranges": INT8_RANGES, "int8_float_nodes": INT8_FLOAT_NODES}
                                   if precision == "int8" else {}),
                                **report})
            progress("discriminator: converting to int8 and validating its ranking against Keras")
            d_path, d_entry = _build_discriminator(checkpoint, generator, cfg, info, Path(tmp),
                                                   opset, quality_samples)
            # All passed: publish by renames (each atomic; the targets were checked above), the
            # manifest last, and only then drop files of an earlier export that this one lacks.
            published = {entry["file"] for entry in entries} | {d_entry["file"], MANIFEST_FILE}
            stale = [p for pattern in EXPORTED_PATTERNS for p in out_dir.glob(pattern)
                     if p.is_file() and p.name not in published]
            for path, entry in zip(built, entries):
                os.replace(path, out_dir / entry["file"])
                progress(f"{entry['precision']}: {out_dir / entry['file']} "
                         f"({entry['bytes'] / 1e6:.2f} MB)")
            os.replace(d_path, out_dir / d_entry["file"])
    except ValidationError as e:
        # Its message names a file of the temp folder, gone by now: name the checkpoint instead.
        raise ValidationError(str(e).replace(f"{tmp}{os.sep}", f"{checkpoint_dir}, exported as ")
                              + "; nothing was written") from None
    # The checkpoint relative to the manifest, so that no machine's own paths are published.
    manifest = {"arch": cfg.name,
                "checkpoint": os.path.relpath(checkpoint_dir.resolve(), out_dir.resolve()),
                "checkpoint_name": checkpoint_dir.name, "weights": weights, "step": checkpoint.step,
                "epoch": info["epoch"], "source_sha256": source_sha, "metrics": metrics,
                "opset": opset, "tools": _versions(), "files": entries,
                "discriminator": d_entry}
    write_text_atomic(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    for path in stale:
        path.unlink()
        progress(f"removed {path}: an earlier export's file, which this export's manifest does "
                 f"not list")
    return manifest


def _build_discriminator(checkpoint, generator, cfg: GANConfig, info: dict, tmp: Path, opset: int,
                         n: int) -> tuple[Path, dict]:
    """The checkpoint's discriminator as int8 (for ganrun --keep), validated on n samples of
    the exported generator; returns its temp path and its manifest entry."""
    import training.models  # noqa: F401  registers GlobalBatchDropout, which most of them hold
    from export import discriminator as disc
    from training.evaluate import eval_labels, generate
    from training.reformulation import sampler
    source = checkpoint.discriminator_file()
    model = _load_keras(source)
    path = disc.build(model, cfg, tmp, opset)
    write_metadata(path, discriminator_metadata(cfg, info, sha256_file(source)))
    samples = generate(sampler(generator), cfg, n)
    report = disc.validate(path, model, samples, eval_labels(cfg, n))
    return path, {"file": DISCRIMINATOR_FILE, "precision": "int8", "bytes": path.stat().st_size,
                  "sha256": sha256_file(path), "ranking": report}


def _load_keras(source: Path):
    """A checkpoint's Keras model, or a one-line error that says to pick another checkpoint."""
    import keras
    try:
        return keras.saving.load_model(source, compile=False)
    except Exception as e:
        raise GanEdgeError(f"cannot load {source} ({type(e).__name__}); the checkpoint is "
                           f"corrupt: pick another with --epoch/--step") from None


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
