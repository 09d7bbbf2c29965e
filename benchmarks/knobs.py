"""python -m benchmarks.knobs: what each of ganrun's sample knobs does to quality and speed,
on the shipped models.

For every shipped image model (or those named with --model), draws the same number of samples
with each knob and scores them with the project's evaluator (classifier score, Frechet
distance to the test split, KL to uniform); samples per second counts the whole choosing
(generation plus the discriminator or the classifier), one process, int8 files on the CPU.
Knobs:

  plain             ganrun as it is: z ~ N(0, I)
  --keep F          discriminator filtering: the n of n / F samples the discriminator ranks
                    most real
  --min-confidence  only samples the classifier is at least that sure of
  truncation T      z from N(0, I) truncated to [-T, T] (resampled), the truncation trick;
                    not a ganrun option: measured to decide whether it should be one

Writes benchmarks/results/knobs.json and knobs.md; the README's knob table is knobs.md's.

    python -m benchmarks.knobs                      # every shipped image model, 10,000 samples
    python -m benchmarks.knobs --model mlp-smooth-mnist --n 2000
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import click
import numpy as np

from runtime.cli_util import run_cli
from runtime.cpu import cpu_name
from runtime.errors import GanEdgeError
from runtime.files import write_text_atomic

KEEPS = (0.5, 0.25)
CONFIDENCES = (0.9,)
TRUNCATIONS = (2.0, 1.5, 1.0)
SEED = 0
REPEATS = 3


def truncated_normal(rng: np.random.Generator, shape: tuple[int, int], t: float) -> np.ndarray:
    """N(0, 1) draws, each outside [-t, t] drawn again until inside."""
    z = rng.standard_normal(shape)
    while True:
        outside = np.abs(z) > t
        if not outside.any():
            return z.astype(np.float32)
        z[outside] = rng.standard_normal(int(outside.sum()))


def _knobs(gen, dataset: str):
    """(name, function n -> samples) for every knob this model supports."""
    from runtime.classify import Classifier, chosen_samples
    from runtime.discriminator import FILE, Discriminator, keep_most_real
    knobs = [("plain", lambda n: np.concatenate(list(gen.generate(n, SEED))))]
    if (gen.path.parent / FILE).is_file():
        disc = Discriminator.beside(gen)
        knobs += [(f"--keep {k:g}", lambda n, k=k: keep_most_real(gen, disc, n, k, SEED, 256)[0])
                  for k in KEEPS]
    classifier = Classifier(dataset)
    knobs += [(f"--min-confidence {c:g}",
               lambda n, c=c: np.concatenate([s for s, _, _ in chosen_samples(
                   gen, classifier, None, c, n, SEED, 256)])) for c in CONFIDENCES]

    def truncated(n, t):
        z = truncated_normal(np.random.default_rng(SEED), (n, gen.info.latent_dim), t)
        return np.concatenate([gen.run(z[i:i + 256]) for i in range(0, n, 256)])
    knobs += [(f"truncation {t:g}", lambda n, t=t: truncated(n, t)) for t in TRUNCATIONS]
    return knobs


def measure(names: list[str], n: int, command: str, log=print) -> dict:
    from runtime import shipped
    from runtime.generator import Generator
    from training.config import get_config
    from training.evaluate import score_samples
    index = shipped.load_index()
    models = {}
    for name in names:
        entry = shipped.model_entry(name)
        gen = Generator.from_file(shipped.model_file(entry, "int8"))
        cfg = get_config(entry["arch"])
        rows = []
        for knob, draw in _knobs(gen, entry["dataset"]):
            log(f"{name}: {knob}")
            draw(500)  # warm-up: the first calls of a session pay for its thread pools
            seconds = []
            for _ in range(REPEATS):  # the fastest of a few: other processes only slow it down
                start = time.perf_counter()
                samples = draw(n)
                seconds.append(time.perf_counter() - start)
            scores = score_samples(cfg, samples)
            rows.append({"knob": knob, "samples_per_s": n / min(seconds),
                         **{k: v for k, v in scores.items() if k != "class_histogram"}})
        models[name] = {"arch": entry["arch"], "checkpoint": entry["checkpoint"],
                        "weights": entry["weights"], "default": name == index["default"],
                        "rows": rows}
    return {"n_samples": n, "seed": SEED, "machine": f"{platform.machine()}, "
            f"{cpu_name()}", "date": time.strftime("%Y-%m-%d"),
            "command": command, "models": models}


def markdown(r: dict) -> str:
    lines = [f"# ganrun's knobs on the shipped models ({r['date']})", "",
             f"Made by `{r['command']}`: {r['n_samples']:,} samples per cell (seed {r['seed']}), "
             f"int8 files on the CPU ({r['machine']}). Samples per second: the whole choosing "
             f"(generation plus discriminator or classifier) in one process, the fastest of "
             f"{REPEATS} draws: compare within a model, not across machines.", ""]
    for name, m in r["models"].items():
        weights = ", averaged" if m["weights"] == "ema" else ""
        lines += [f"## {name} ({m['checkpoint']}{weights}){' (default)' if m['default'] else ''}",
                  "", "| knob | classifier score | Frechet distance | classes | KL to uniform | "
                  "samples/s |", "|---|---|---|---|---|---|"]
        for row in m["rows"]:
            fd = row["frechet_distance"]
            lines.append(f"| {row['knob']} | {row['classifier_score']:.2f} | "
                         f"{'n/a' if fd is None else f'{fd:.1f}'} | {row['classes_covered']}/10 | "
                         f"{row['kl_to_uniform']:.3f} | {row['samples_per_s']:,.0f} |")
        lines.append("")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "names", multiple=True,
              help="A shipped model's name (repeatable) [default: every shipped image model].")
@click.option("--n", default=10_000, show_default=True, type=click.IntRange(500, 100_000),
              help="Samples per knob.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False))
def main(names, n, out_dir):
    """Score every sample knob of ganrun on the shipped models, with its speed."""
    from runtime import shipped
    index = shipped.load_index()
    command = "python -m benchmarks.knobs" + "".join(f" --model {m}" for m in names) + \
        (f" --n {n}" if n != 10_000 else "")
    names = list(names) or [k for k, m in index["models"].items() if m["dataset"] != "x_squared"]
    for name in names:
        entry = shipped.model_entry(name)
        if entry["dataset"] == "x_squared":
            raise GanEdgeError(f"{name} is a gan-1d model: its knobs are not scored here")
    report = measure(names, n, command, log=lambda m: click.echo(m, err=True))
    out = Path(out_dir)
    write_text_atomic(out / "knobs.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "knobs.md", markdown(report))
    click.echo(str(out / "knobs.md"))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
