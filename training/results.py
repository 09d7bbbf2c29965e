"""The README's results table: each seed system at the article's recommended checkpoint and at
its best one, beside what real data scores.

    python -m training.results RUN_DIR [RUN_DIR ...]

Reads each run's metrics.jsonl and best.json (scores written during training or by
`python -m training.evaluate --write`); systems without a run are listed as not measured. The
recommended row scores the trained generator, as the article has it; the best row may be the
averaged generator ("averaged"), where the best-checkpoint rule prefers it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from runtime.cli_util import run_cli
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
        recommended = rows.get(cfg.recommended)
        for label, row in ((f"recommended ({cfg.recommended})", recommended), ("best", best)):
            if row is not None and "classifier_score" not in row and "energy_distance" not in row:
                row = None  # trained, but not scored yet
            lines.append(f"| {arch}, {label} | " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
def main(run_dirs):
    """Print the results table (Markdown) for the given run folders."""
    click.echo(table([Path(r) for r in run_dirs]))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
