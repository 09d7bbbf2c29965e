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

Writes benchmarks/results/knobs.json and knobs.md; `make docs` puts knobs.json's quality
figures into docs/quality.md and docs/ganrun.md.
With --model, only the named models' sections are measured again: the report keeps the others
(each section names its own date, machine and command) as long as they were drawn with the same
number of samples and are of the checkpoint shipped now.

    python -m benchmarks.knobs                      # every shipped image model, 10,000 samples
    python -m benchmarks.knobs --model dcgan-mnist  # that section only, the rest kept
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
    """{name: section} for the named shipped models, each section with its provenance."""
    from runtime import shipped
    from runtime.generator import Generator
    from training.config import get_config
    from training.evaluate import score_samples
    machine = f"{platform.machine()}, {cpu_name()}"
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
                        "weights": entry["weights"], "date": time.strftime("%Y-%m-%d"),
                        "machine": machine, "command": command, "rows": rows}
    return models


def merged(old: dict | None, new: dict, n: int, index: dict, log=print) -> dict:
    """The report: the new sections, and the old report's sections of models shipped now with
    the same checkpoint, in the index's order."""
    kept = {}
    for name, section in (old or {}).get("models", {}).items():
        if name in new:
            continue
        entry = index["models"].get(name)
        if entry is None or (entry["checkpoint"], entry["weights"]) != \
                (section["checkpoint"], section["weights"]):
            log(f"{name}: its section is of a checkpoint no longer shipped; dropped "
                f"(measure it with --model {name})")
            continue
        kept[name] = section
    models = {name: {**(new.get(name) or kept[name]), "default": name == index["default"]}
              for name in index["models"] if name in new or name in kept}
    return {"n_samples": n, "seed": SEED, "models": models}


def markdown(r: dict) -> str:
    lines = ["# ganrun's knobs on the shipped models", "",
             f"{r['n_samples']:,} samples per cell (seed {r['seed']}), int8 files on the CPU. "
             f"Samples per second: the whole choosing (generation plus discriminator or "
             f"classifier) in one process, the fastest of {REPEATS} draws: compare within a "
             f"model, not across machines.", ""]
    for name, m in r["models"].items():
        weights = ", averaged" if m["weights"] == "ema" else ""
        lines += [f"## {name} ({m['checkpoint']}{weights}){' (default)' if m['default'] else ''}",
                  "", f"Made by `{m['command']}` on {m['date']} ({m['machine']}).", "",
                  "| knob | classifier score | Frechet distance | classes | KL to uniform | "
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
              help="A shipped model's name (repeatable): only its section is measured again, "
              "the report keeps the others [default: every shipped image model, afresh].")
@click.option("--n", default=10_000, show_default=True, type=click.IntRange(500, 100_000),
              help="Samples per knob.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False), help="Where knobs.json and knobs.md go.")
def main(names, n, out_dir):
    """Score every sample knob of ganrun on the shipped models, with its speed."""
    from runtime import shipped
    index = shipped.load_index()
    command = "python -m benchmarks.knobs" + "".join(f" --model {m}" for m in names) + \
        (f" --n {n}" if n != 10_000 else "")
    out = Path(out_dir)
    # Measuring every model starts the report afresh; naming some keeps the others' sections.
    old = json.loads((out / "knobs.json").read_text()) \
        if names and (out / "knobs.json").is_file() else None
    if old is not None and old["n_samples"] != n:
        raise GanEdgeError(f"{out / 'knobs.json'} was drawn with {old['n_samples']:,} samples "
                           f"per cell, not {n:,}: pass --n {old['n_samples']}, or measure every "
                           f"model (no --model)")
    names = list(names) or [k for k, m in index["models"].items() if m["dataset"] != "x_squared"]
    for name in names:
        entry = shipped.model_entry(name)
        if entry["dataset"] == "x_squared":
            raise GanEdgeError(f"{name} is a gan-1d model: its knobs are not scored here")
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    report = merged(old, measure(names, n, command, log), n, index, log)
    write_text_atomic(out / "knobs.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "knobs.md", markdown(report))
    click.echo(str(out / "knobs.md"))


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
