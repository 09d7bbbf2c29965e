"""The README's results table: each seed system at the article's recommended checkpoint and at
its best one, beside what real data scores.

    python -m training.results RUN_DIR [RUN_DIR ...]

Reads each run's metrics.jsonl and best.json (scores written during training or by
`python -m training.evaluate --write`); systems without a run are listed as not measured.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from runtime.cli_util import run_cli
from training.config import REGISTRY

# The checkpoint each article recommends or ends on.
RECOMMENDED = {"dcgan-mnist": "epoch_040", "mlp-mnist": "step_020000",
               "mlp-smooth-mnist": "epoch_050", "mlp-fashion": "epoch_100",
               "gan-1d": "step_010000"}


def _cells(row: dict | None) -> list[str]:
    if row is None:
        return ["not measured yet"] + [""] * 5
    if "energy_distance" in row:
        return [row["checkpoint"], f"energy {row['energy_distance']:.4f}",
                f"abs err {row['mean_abs_error']:.4f}", f"{row['share_in_domain']:.0%} in domain",
                "", str(row["n_samples"])]
    fd = row["frechet_distance"]
    return [row["checkpoint"], f"{row['classifier_score']:.2f}", "n/a" if fd is None else f"{fd:.1f}",
            f"{row['classes_covered']}/10", f"{row['kl_to_uniform']:.3f}", str(row["n_samples"])]


def table(run_dirs: list[Path]) -> str:
    from training.callbacks import read_metrics
    runs = {}
    for run in run_dirs:
        arch = json.loads((run / "config.json").read_text())["arch"]
        runs[arch] = run
    lines = ["| system | checkpoint | classifier score | Frechet distance | classes | KL to uniform "
             "| samples |", "|---|---|---|---|---|---|---|"]
    for dataset in ("mnist", "fashion_mnist"):
        info = json.loads((Path(__file__).parent / "evaluators" / f"{dataset}.json").read_text())
        lines.append(f"| real {dataset} test split | - | " + " | ".join(
            _cells({**info["baseline_real"], "checkpoint": "-"})[1:]) + " |")
    for arch in REGISTRY:
        run = runs.get(arch)
        rows = {r["checkpoint"]: r for r in read_metrics(run)} if run else {}
        best_file = run / "best.json" if run else None
        best = json.loads(best_file.read_text()) if best_file and best_file.is_file() else None
        recommended = rows.get(RECOMMENDED[arch])
        for label, row in ((f"recommended ({RECOMMENDED[arch]})", recommended), ("best", best)):
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
