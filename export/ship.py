"""python -m export.ship: put a run's chosen generator inside the package, and keep the index.

    python -m export.ship --run runs/dcgan-mnist --best            # as runtime/models/dcgan-mnist/
    python -m export.ship --reindex                                 # rewrite index.json only
    python -m export.ship --name mlp-smooth-mnist --drop fp16      # make room in the budget

Exports int8 (and fp16 for image models: the GPU file; `--precision int8` for int8 only), with
the discriminator that `ganrun --keep` uses, and the usual validation, into
runtime/models/<name>/, then rewrites runtime/models/index.json from every shipped manifest:
article, data set, checkpoint, weights, scores, files, and the default (the MNIST generator
that the best-checkpoint rule prefers). Budget: all shipped files together at most 16 MB, too
little for an fp16 file of every image model: docs/export.md says which ship without theirs.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click

from export.cli import checkpoint_options, sampling_options
from runtime.core.artifacts import MANIFEST_FILE, SHIPPED_INDEX_FILE
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import write_text_atomic
from runtime.core.precision import parse_precisions
from runtime.core.samples import POINT
from runtime.core.scores import best_of, read_scores
from runtime.shipped import MODELS_DIR

# 16 MB: the articles' five and gan-edge's two conditional systems (`export.ship --reindex`
# prints what they take).
BUDGET_BYTES = 16_000_000


def build_index(folder: Path) -> tuple[dict, int]:
    """index.json's content from the shipped manifests, and the bytes all shipped files take
    (checked against the budget)."""
    from training.config import get_config
    models = {}
    for manifest_file in sorted(folder.glob(f"[!.]*/{MANIFEST_FILE}")):  # not .NAME.new
        m = json.loads(manifest_file.read_text())
        cfg = get_config(m["arch"])
        scores = read_scores(m["metrics"])
        if scores is None:  # ganrun --list and the default's choice need every model's scores
            raise GanEdgeError(f"{manifest_file} holds no scores; export its run again after "
                               f"`python -m training.evaluate` has scored the checkpoint")
        models[manifest_file.parent.name] = {
            "arch": m["arch"], "article": cfg.article, "dataset": cfg.dataset,
            "checkpoint": m["checkpoint_name"], "epoch": m["epoch"],
            "weights": m.get("weights", "raw"),
            "scores": scores.to_row(lists=False),
            "files": {f["precision"]: f"{manifest_file.parent.name}/{f['file']}"
                      for f in m["files"]},
            "discriminator": f"{manifest_file.parent.name}/{m['discriminator']['file']}",
            "conditional": cfg.conditional}
    mnist = {name: m for name, m in models.items() if m["dataset"] == "mnist"}
    scored = [(name, scores) for name, m in mnist.items()
              if (scores := read_scores(m["scores"])) is not None]
    pick = best_of([scores for _, scores in scored])
    if pick is None:
        raise GanEdgeError(f"no scored MNIST generator in {folder}; ship one first")
    total = sum(_onnx_bytes(folder / name) for name in models)
    _check_budget(total, "")
    return {"default": scored[pick][0], "models": models}, total


def _onnx_bytes(folder: Path) -> int:
    """A shipped model's files: the export removes those of earlier exports, so a model folder
    holds exactly the files its manifest lists."""
    return sum(p.stat().st_size for p in folder.glob("*.onnx"))


def _check_budget(total: int, what: str) -> None:
    if total > BUDGET_BYTES:
        raise GanEdgeError(f"{what}the shipped models take {total / 1e6:.1f} MB, above the "
                           f"{BUDGET_BYTES / 1e6:.0f} MB budget; ship fewer precisions "
                           f"(--precision int8)")


def _drop(models_dir: Path, name: str, precisions) -> None:
    """Remove files of a shipped model, for room in the budget, without the run that made it
    (runs live on one machine; shipped models in the package). The manifest is rewritten
    first: stopped in between, a stray file is left, never a manifest naming a missing one."""
    folder = models_dir / name
    if not (folder / MANIFEST_FILE).is_file():
        raise GanEdgeError(f"no shipped model {name!r} in {models_dir} (see ganrun --list)")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    have = [f["precision"] for f in manifest["files"]]
    missing = [p for p in precisions if p not in have]
    if missing:
        raise GanEdgeError(f"{name} ships no {', '.join(missing)} file (it has {', '.join(have)})")
    kept = [f for f in manifest["files"] if f["precision"] not in precisions]
    if not kept:
        raise GanEdgeError(f"{name} would have no generator file left; keep one of "
                           f"{', '.join(have)}")
    write_text_atomic(folder / MANIFEST_FILE, json.dumps({**manifest, "files": kept},
                                                         indent=2) + "\n")
    for f in manifest["files"]:
        if f["precision"] in precisions:
            (folder / f["file"]).unlink(missing_ok=True)


def _ship(checkpoint: Path, models_dir: Path, name: str, precisions, **sampling) -> None:
    """Export into models_dir/.NAME.new (the manifest's relative paths come out as they will
    stay), check the budget with it in place of NAME, then swap it in: a failed export or a
    model over budget leaves the shipped models as they were."""
    from export.exporter import export_checkpoint
    staging, target, old = (models_dir / f".{name}.new", models_dir / name,
                            models_dir / f".{name}.old")
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        # Name the files where they will be once the budget holds, not the staging folder.
        export_checkpoint(checkpoint, staging, precisions, **sampling,
                          progress=lambda msg: click.echo(msg.replace(str(staging), str(target)),
                                                          err=True))
        others = sum(_onnx_bytes(d) for d in models_dir.iterdir()
                     if d.is_dir() and d.name != name and not d.name.startswith("."))
        new = _onnx_bytes(staging)
        _check_budget(others + new, f"nothing was changed: with {name} ({new / 1e6:.1f} MB) ")
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    finally:
        for leftover in (staging, old):
            shutil.rmtree(leftover, ignore_errors=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False),
              help="The run whose generator to ship.")
@checkpoint_options
@click.option("--name", help="The shipped name [default: the run's arch].")
@click.option("--precision", help="Files to ship, comma-separated: int8, fp16, fp32 "
              "[default: int8,fp16 for image models, int8 for gan-1d].")
@sampling_options
@click.option("--reindex", is_flag=True, help="Only rewrite index.json from the shipped manifests.")
@click.option("--drop", help="Remove these files (comma-separated precisions) from the shipped "
              "model --name, to make room in the budget.")
@click.option("--models-dir", type=click.Path(file_okay=False), default=str(MODELS_DIR),
              help="The folder of shipped models [default: the package's runtime/models]; "
                   "another one to try a set of models out before it goes into the package.")
def main(run_dir, epoch, step, best, name, precision, quality_samples, calibration_samples,
         reindex, drop, models_dir):
    """Ship a generator inside the package (runtime/models/NAME/) and rewrite the index."""
    if drop:
        source = click.get_current_context().get_parameter_source
        sampled = any(source(p) != click.core.ParameterSource.DEFAULT
                      for p in ("quality_samples", "calibration_samples"))
        if not name or run_dir or reindex or precision or best or epoch is not None \
                or step is not None or sampled:
            raise GanEdgeError("--drop takes --name NAME of a shipped model (and --models-dir), "
                               "nothing else: it exports nothing")
        _drop(Path(models_dir), name, parse_precisions(drop))
    elif not reindex:
        if not run_dir:
            raise GanEdgeError("pass --run DIR (or --reindex)")
        from training.rundir import RunDir
        run = RunDir(run_dir)
        cfg = run.gan_config()
        checkpoint = run.find_checkpoint(epoch, step, best)
        if precision:
            precisions = parse_precisions(precision)
        else:
            precisions = ("int8",) if cfg.kind == POINT else ("int8", "fp16")
        _ship(checkpoint.path, Path(models_dir), name or cfg.name, precisions,
              quality_samples=quality_samples, calibration=calibration_samples)
    index, total = build_index(Path(models_dir))
    index_file = Path(models_dir) / SHIPPED_INDEX_FILE
    write_text_atomic(index_file, json.dumps(index, indent=2) + "\n")
    click.echo(f"{index_file}: {', '.join(index['models'])}; default "
               f"{index['default']}; {total / 1e6:.1f} MB of the {BUDGET_BYTES / 1e6:.0f} MB "
               f"budget")


if __name__ == "__main__":
    run_cli(main)
