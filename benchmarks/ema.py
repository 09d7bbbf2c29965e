"""python -m benchmarks.ema: what the averaged generator buys, per decay, on one system.

Trains `--arch` on its article's schedule once per decay (same seed, so the trained generator
follows the same path in every run and only the average differs) and tabulates, at every
evaluation, the trained generator's scores beside each average's. Writes
benchmarks/results/ema-<arch>.json and .md; EMA_DECAY in training/config.py cites it.

    python -m benchmarks.ema --arch mlp-smooth-mnist --decays 0.999,0.9999
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from benchmarks.report import table_head, write_report
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir
from runtime.core.samples import IMAGE
from runtime.core.scores import RowScores


def measure(arch: str, decays: list[float], runs_root: Path, eval_samples: int,
            log=print) -> dict:
    from training.rundir import RunDir
    from training.run import train
    per_decay = {}
    for decay in decays:
        log(f"training {arch} with --ema {decay}")
        run = RunDir(train(arch, run_dir=runs_root / f"{arch}-ema-{decay}", ema=decay,
                           progress=False, eval_samples=eval_samples))
        per_decay[str(decay)] = run.read_metrics()
    return {"arch": arch, "decays": decays, "eval_samples": eval_samples,
            "command": f"python -m benchmarks.ema --arch {arch} --decays "
                       f"{','.join(map(str, decays))} --eval-samples {eval_samples}",
            "rows": per_decay}


def markdown(r: dict) -> str:
    decays = [str(d) for d in r["decays"]]
    first = r["rows"][decays[0]]
    image = RowScores.read(first[0]).trained.kind == IMAGE
    what = "classifier score / Frechet distance / KL to uniform" if image else "energy distance"
    lines = [f"# Averaged generator (EMA) on `{r['arch']}`", "",
             f"Made by `{r['command']}`. Each cell: {what}, on {r['eval_samples']:,} samples. "
             f"The trained generator is the same in every run (same seed; the average does not "
             f"feed back into training).", "",
             *table_head("checkpoint", "trained", *(f"averaged, decay {d}" for d in decays))]
    for i, row in enumerate(first):
        cells = [RowScores.read(r["rows"][d][i]).averaged.brief() for d in decays]
        lines.append(f"| {row['checkpoint']} | {RowScores.read(row).trained.brief()} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--arch", default="mlp-smooth-mnist", show_default=True)
@click.option("--decays", default="0.999,0.9999", show_default=True,
              help="Comma-separated EMA decays, each in (0, 1).")
@click.option("--eval-samples", default=10_000, show_default=True, type=click.IntRange(min=100))
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(arch, decays, eval_samples, out_dir):
    """Train once per EMA decay and tabulate the trained and averaged generators' scores."""
    from training.config import REGISTRY
    if arch not in REGISTRY:
        raise GanEdgeError(f"unknown architecture {arch!r}; known: {', '.join(REGISTRY)}")
    try:
        values = [float(d) for d in decays.split(",")]
    except ValueError:
        raise GanEdgeError(f"--decays must be numbers separated by commas, got {decays!r}") from None
    if not all(0 < d < 1 for d in values):
        raise GanEdgeError(f"every decay must be in (0, 1), got {decays}")
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    with tempfile.TemporaryDirectory() as tmp:
        report = measure(arch, values, Path(tmp), eval_samples,
                         log=lambda m: click.echo(m, err=True))
    click.echo(str(write_report(Path(out_dir), f"ema-{arch}", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
