"""python -m benchmarks.score_noise: how much a generator's scores move when only the latents
that it is scored on change, which is the margin that the best-checkpoint rule needs.

Scores every shipped image model's int8 file on `--seeds` sets of 10,000 evaluation latents
(the first set is the one every checkpoint is scored on in training) and tabulates each score's
mean, standard deviation and range. SCORE_MARGIN in runtime/core/scores.py cites this report.
Writes benchmarks/results/score-noise.json and .md.

    python -m benchmarks.score_noise --seeds 5
"""
from __future__ import annotations

import click
import numpy as np

from benchmarks.report import cpu_text, table_head, write_report
from runtime.core.command import run_cli
from runtime.core.samples import IMAGE
from runtime.core.scores import SCORE_MARGIN, figure

FIGURES = ("classifier_score", "frechet_distance")


def measure(seeds: int, samples: int, log=print) -> dict:
    from runtime import shipped
    from runtime.generator import Generator
    from training.config import get_config
    from training.evaluate import EVAL_SEED, eval_labels, eval_latents, score_samples
    models = {}
    for name, entry in sorted(shipped.load_index()["models"].items()):
        cfg = get_config(entry["arch"])
        if cfg.kind != IMAGE:
            continue
        gen = Generator.from_file(shipped.model_file(entry, "int8"))
        per_seed = []
        for seed in range(EVAL_SEED, EVAL_SEED + seeds):
            log(f"{name}: latents of seed {seed}")
            z, labels = eval_latents(cfg, samples, seed), eval_labels(cfg, samples)
            scores = score_samples(cfg, gen.run(z, labels), labels=labels)
            per_seed.append({k: getattr(scores, k) for k in FIGURES})
        models[name] = {k: _spread([s[k] for s in per_seed]) for k in FIGURES}
    largest = max(m["classifier_score"]["std"] for m in models.values())
    return {"seeds": seeds, "samples": samples, "cpu": cpu_text(), "models": models,
            "largest_score_std": largest, "margin": SCORE_MARGIN,
            "command": f"python -m benchmarks.score_noise --seeds {seeds} --samples {samples}"}


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"values": values, "mean": float(a.mean()), "std": float(a.std(ddof=1)),
            "range": float(a.max() - a.min())}


def markdown(r: dict) -> str:
    lines = ["# How much the scores move with the evaluation latents", "",
             f"Made by `{r['command']}` on {r['cpu']}. Each shipped image model's int8 file, "
             f"scored by the project's classifier on {r['seeds']} sets of {r['samples']:,} "
             f"latents (and labels 0-9 in turn for a conditional model); nothing else changes "
             f"between the sets.", "",
             *table_head("model", "classifier score: mean", "std", "range",
                         "Frechet distance: mean", "std", "range")]
    for name, m in r["models"].items():
        cs, fd = m["classifier_score"], m["frechet_distance"]
        lines.append(f"| `{name}` | {cs['mean']:.3f} | {cs['std']:.4f} | {cs['range']:.4f} | "
                     f"{figure('frechet_distance', fd['mean'])} | {fd['std']:.2f} | "
                     f"{fd['range']:.2f} |")
    diff_std = r["largest_score_std"] * 2 ** 0.5  # of the difference of two such scores
    lines += ["", f"The largest standard deviation of a classifier score is "
              f"{r['largest_score_std']:.4f}, so the difference of two scores on independent "
              f"latents has one of {diff_std:.4f}. The best-checkpoint rule treats scores within "
              f"{r['margin']} of the best as equal ({r['margin'] / diff_std:.1f} times that) and "
              f"picks the lowest Frechet distance among them, so that it does not rank by the "
              f"latents' noise.", ""]
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=2),
              help="How many sets of evaluation latents.")
@click.option("--samples", default=10_000, show_default=True, type=click.IntRange(min=100),
              help="Samples in each set, as training scores them.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(seeds, samples, out_dir):
    """Score every shipped image model on several sets of latents; tabulate the spread."""
    from pathlib import Path
    report = measure(seeds, samples, log=lambda m: click.echo(m, err=True))
    click.echo(str(write_report(Path(out_dir), "score-noise", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
