"""python -m benchmarks.ablation: what each part of a conditional system's recipe buys.

Trains `--arch` (a conditional system of gan-edge's own) once with its recipe and once with
each choice turned off in turn, at equal steps and with the same seed, and tabulates the
scores of the trained and the averaged generator at the end (so the averaged generator is
judged against its absence in every run). Writes benchmarks/results/ablation-<arch>.json and
.md; training/config.py cites them for the recipe.

    python -m benchmarks.ablation --arch cgan-mnist --epochs 2
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from benchmarks.report import table_head, write_report
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir
from runtime.core.scores import RowScores


def variants(arch: str) -> dict[str, dict]:
    """The recipe, and the recipe with one choice replaced by its absence (GANConfig fields)."""
    from training.config import get_config
    d_widths = get_config(arch).d_widths
    return {
        "recipe": {},
        "concatenated one-hot labels in D, no projection": {"d_conditioning": "concat"},
        "no batch normalisation in G": {"g_batchnorm": False},
        "no one-sided label smoothing": {"real_label": 1.0},
        f"no last conv in D ({d_widths[-1]} filters)": {"d_widths": d_widths[:-1]},
    }


COLUMNS = {"classifier_score": "score", "frechet_distance": "FD", "kl_to_uniform": "KL",
           "class_accuracy": "class acc.", "class_accuracy_min": "worst class"}


def measure(arch: str, epochs: int, runs_root: Path, eval_samples: int, log=print) -> dict:
    from training.rundir import RunDir
    from training.run import train
    rows = {}
    for name, variant in variants(arch).items():
        log(f"training {arch}, {name}, {epochs} epoch(s)")
        t0 = time.monotonic()
        run = RunDir(train(arch, epochs=epochs, eval_every=epochs, variant=variant,
                           run_dir=runs_root / f"variant-{len(rows)}", progress=False,
                           eval_samples=eval_samples))
        rows[name] = {"variant": variant, "minutes": round((time.monotonic() - t0) / 60, 1),
                      "metrics": run.read_metrics()[-1]}
    return {"arch": arch, "epochs": epochs, "eval_samples": eval_samples,
            "command": f"python -m benchmarks.ablation --arch {arch} --epochs {epochs} "
                       f"--eval-samples {eval_samples}",
            "rows": rows}


def markdown(r: dict) -> str:
    heads = list(COLUMNS.values())
    lines = [f"# Ablation of `{r['arch']}`'s recipe", "",
             f"Made by `{r['command']}`: each row trains {r['epochs']} epoch(s) from the same "
             f"seed, the recipe with one choice turned off; scores on {r['eval_samples']:,} "
             f"samples (labels 0-9 in turn) by the project's evaluator. Minutes: wall time of "
             f"the row's training on the machine that made this report, shared with other work, "
             f"so compare them only roughly.", "",
             *table_head("variant", "generator", *heads, "minutes")]
    for name, row in r["rows"].items():
        scores = RowScores.read(row["metrics"])
        for weights, s in (("trained", scores.trained), ("averaged", scores.averaged)):
            if s is not None:
                lines.append(f"| {name} | {weights} | " + " | ".join(map(s.text, COLUMNS))
                             + f" | {row['minutes'] if weights == 'trained' else ''} |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--arch", default="cgan-mnist", show_default=True,
              help="A conditional system of gan-edge's own.")
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Epochs each variant trains (equal for all).")
@click.option("--eval-samples", default=10_000, show_default=True,
              type=click.IntRange(100, 100_000))
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(arch, epochs, eval_samples, out_dir):
    """Train the recipe and each variant without one of its choices; tabulate their scores."""
    from training.config import REGISTRY
    if arch not in REGISTRY or not REGISTRY[arch].conditional:
        own = [n for n, c in REGISTRY.items() if c.conditional]
        raise GanEdgeError(f"--arch must be a conditional system ({', '.join(own)}), got {arch!r}")
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    with tempfile.TemporaryDirectory() as tmp:
        report = measure(arch, epochs, Path(tmp), eval_samples,
                         log=lambda m: click.echo(m, err=True))
    click.echo(str(write_report(Path(out_dir), f"ablation-{arch}", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
