"""The README's results table: each seed system at the article's recommended checkpoint and at
its best one, beside what real data scores.

    python -m training.results RUN_DIR [RUN_DIR ...]

Reads each run's metrics.jsonl and best.json (scores written during training or by
`python -m training.evaluate --write`); systems without a run are listed as not measured. The
recommended row scores the trained generator, as the article has it, and so does an end-of-
schedule row where the article picks an earlier checkpoint than its schedule ends on (article
000: epoch 40 of 100, with its claim that 40 is as good as 100); the best row may be the
averaged generator ("averaged"), where the best-checkpoint rule prefers it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from runtime.cli_util import run_cli
from runtime.errors import GanEdgeError
from training.config import REGISTRY
from training.rundir import RunDir


def _cells(row: dict | None) -> list[str]:
    if row is None:
        return ["not measured yet"] + [""] * 5
    name = row["checkpoint"] + (", averaged" if row.get("weights") == "ema" else "")
    if "energy_distance" in row:
        return [name, f"energy {row['energy_distance']:.4f}",
                f"abs err {row['mean_abs_error']:.4f}", f"{row['share_in_domain']:.0%} in domain",
                "", str(row["n_samples"])]
    fd = row["frechet_distance"]
    return [name, f"{row['classifier_score']:.2f}", "n/a" if fd is None else f"{fd:.1f}",
            f"{row['classes_covered']}/10", f"{row['kl_to_uniform']:.3f}", str(row["n_samples"])]


def table(run_dirs: list[Path]) -> str:
    from training.classifier import classifier_info
    runs = {}
    for path in run_dirs:
        run = RunDir(path)
        if run.arch not in REGISTRY:
            raise GanEdgeError(f"{path} is a run of {run.arch!r}, which this version does not "
                               f"know; known: {', '.join(REGISTRY)}")
        if run.arch in runs:
            raise GanEdgeError(f"{runs[run.arch]} and {path} are both {run.arch} runs; the table "
                               f"has one row pair per system: pass one of them")
        runs[run.arch] = run
    lines = ["| system | checkpoint | classifier score | Frechet distance | classes | KL to uniform "
             "| samples |", "|---|---|---|---|---|---|---|"]
    for dataset in ("mnist", "fashion_mnist"):
        baseline = classifier_info(dataset)["baseline_real"]
        lines.append(f"| real {dataset} test split | - | " + " | ".join(
            _cells({**baseline, "checkpoint": "-"})[1:]) + " |")
    for arch, cfg in REGISTRY.items():
        run = runs.get(arch)
        rows = {r["checkpoint"]: r for r in run.read_metrics()} if run else {}
        best = run.read_best() if run else None
        picks = [(f"recommended ({cfg.recommended})", rows.get(cfg.recommended))]
        if cfg.last_checkpoint != cfg.recommended:
            picks.append((f"end of schedule ({cfg.last_checkpoint})",
                          rows.get(cfg.last_checkpoint)))
        for label, row in (*picks, ("best", best)):
            if row is not None and "classifier_score" not in row and "energy_distance" not in row:
                row = None  # trained, but not scored yet
            lines.append(f"| {arch}, {label} | " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines)


def plot_by_epoch(run_dir: Path, out: Path) -> Path:
    """The run's quality per evaluation as a picture, with the article's pick marked."""
    from training.plots import save_quality_by_epoch
    run = RunDir(run_dir)
    cfg = REGISTRY[run.arch]
    rows = [r for r in run.read_metrics() if "classifier_score" in r]
    if not rows:
        raise GanEdgeError(f"{run} has no scored image evaluations to plot")
    marks = {}
    if cfg.unit == "epoch" and cfg.recommended.startswith("epoch_"):
        marks[f"article's pick ({cfg.recommended})"] = int(cfg.recommended.split("_")[1])
    title = f"{cfg.name} (article {cfg.article}), seed {run.read_config()['seed']}: " \
            f"{len(rows)} evaluations, last at epoch {rows[-1]['epoch']:g}"
    return save_quality_by_epoch(rows, title, out, marks)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Instead of the table: write one run's quality per epoch to this PNG.")
def main(run_dirs, plot_path):
    """Print the results table (Markdown) for the given run folders, or plot one run."""
    if plot_path:
        if len(run_dirs) != 1:
            raise GanEdgeError("--plot draws one run: pass exactly one run folder")
        click.echo(str(plot_by_epoch(Path(run_dirs[0]), Path(plot_path))))
        return
    click.echo(table([Path(r) for r in run_dirs]))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
