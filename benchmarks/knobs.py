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
  --min-confidence  only samples the classifier is at least that sure of, at several floors
  truncation T      z from N(0, I) truncated to [-T, T] (resampled), the truncation trick;
                    not a ganrun option: measured to decide whether it should be one

On MNIST models a second column judges `ganrun --class`: its precision, the share of the samples
chosen for class k that a second classifier (benchmarks/independent_classifier.py: another
architecture, trained separately, used by nothing that ganrun runs) also puts in k, averaged
over the ten classes. On an unconditional model `--class k --min-confidence c` keeps exactly the
class-k samples of the `--min-confidence c` row (the "plain" row: no floor), so each row's
samples, split by the project's classifier's class, are what --class chooses. The smallest
floor at which the default model's precision reaches CLASS_GOAL is what ganrun applies to
--class on an unconditional model (runtime.cli.CLASS_MIN_CONFIDENCE; a test holds the two
equal). A conditional model's --class generates the class: its rows are judged against the
classes asked for.

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
import time
from pathlib import Path

import click
import numpy as np

from benchmarks.report import cpu_text, table_head, write_report
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir
from runtime.core.samples import IMAGE
from runtime.core.scores import N_CLASSES, read_scores, without_histogram

KEEPS = (0.5, 0.25)
# The project's int8 classifier gives probabilities in steps of 1/255 (254/255 at most), so no
# floor above 0.996 keeps anything.
CONFIDENCES = (0.5, 0.9, 0.95, 0.98, 0.99, 0.995)
CLASS_GOAL = 0.97
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
    """(name, function n -> (samples, classes)) for every knob this model supports; classes:
    what each sample was asked for (a conditional model) or chosen as (--min-confidence), else
    None."""
    from runtime.classify import Classifier, chosen_samples
    from runtime.core.artifacts import DISCRIMINATOR_FILE
    from runtime.discriminator import Discriminator, keep_most_real
    knobs = [("plain", lambda n: (np.concatenate(list(gen.generate(n, SEED))),
                                  gen.labels_for(n, SEED)))]
    if (gen.path.parent / DISCRIMINATOR_FILE).is_file():
        disc = Discriminator.beside(gen)
        knobs += [(f"--keep {k:g}",
                   lambda n, k=k: _drop_logits(*keep_most_real(gen, disc, n, k, SEED, 256)))
                  for k in KEEPS]
    classifier = Classifier(dataset)

    def confident(n, c):
        parts = list(chosen_samples(gen, classifier, None, c, n, SEED, 256))
        return np.concatenate([s for s, _, _ in parts]), np.concatenate([k for _, k, _ in parts])
    knobs += [(f"--min-confidence {c:g}", lambda n, c=c: confident(n, c)) for c in CONFIDENCES]

    def truncated(n, t):
        z = truncated_normal(np.random.default_rng(SEED), (n, gen.info.latent_dim), t)
        labels = gen.labels_for(n, SEED)
        return np.concatenate([gen.run(z[i:i + 256], None if labels is None else
                                       labels[i:i + 256]) for i in range(0, n, 256)]), labels
    knobs += [(f"truncation {t:g}", lambda n, t=t: truncated(n, t)) for t in TRUNCATIONS]
    return knobs


def _drop_logits(samples, _logits, asked):
    return samples, asked


def class_precision(judged: np.ndarray, chosen: np.ndarray) -> dict:
    """How often the judge agrees with the class each sample was chosen as (or asked for):
    per class, the share of class-k samples it puts in k; their mean over the classes that
    have samples (each class asked for equally often), and the worst."""
    per_class = [float(np.mean(judged[chosen == k] == k)) if np.any(chosen == k) else None
                 for k in range(N_CLASSES)]
    present = [p for p in per_class if p is not None]
    return {"class_precision": float(np.mean(present)), "class_precision_min": min(present),
            "class_precision_per_class": per_class}


def _judges_class(gen, knob: str) -> bool:
    """Whether `ganrun --class` chooses this row's samples, split by class: on an unconditional
    model the plain and --min-confidence rows; on a conditional one every ganrun option."""
    if gen.conditional:
        return not knob.startswith("truncation")
    return knob == "plain" or knob.startswith("--min-confidence")


def measure(names: list[str], n: int, command: str, log=print, repeats: int = REPEATS) -> dict:
    """{name: section} for the named shipped models, each section with its provenance."""
    from benchmarks.independent_classifier import load as load_judge
    from runtime import shipped
    from runtime.classify import Classifier
    from runtime.generator import Generator
    from training.config import get_config
    from training.evaluate import score_samples
    models = {}
    for name in names:
        entry = shipped.model_entry(name)
        gen = Generator.from_file(shipped.model_file(entry, "int8"))
        cfg = get_config(entry["arch"])
        rows = []
        lo, hi = gen.info.output_range
        for knob, draw in _knobs(gen, entry["dataset"]):
            log(f"{name}: {knob}")
            draw(500)  # warm-up: the first calls of a session pay for its thread pools
            seconds = []
            for _ in range(repeats):  # the fastest of a few: other processes only slow it down
                start = time.perf_counter()
                samples, chosen = draw(n)
                seconds.append(time.perf_counter() - start)
            scores = score_samples(cfg, samples).to_row()
            row = {"knob": knob, "samples_per_s": n / min(seconds),
                   **without_histogram(scores)}
            if entry["dataset"] == "mnist" and _judges_class(gen, knob):
                images01 = (samples - lo) / (hi - lo)
                if chosen is None:  # what --class on an unconditional model filters by
                    chosen = Classifier("mnist").predict(images01).argmax(1)
                row.update(class_precision(load_judge().predict(images01).argmax(1), chosen))
            rows.append(row)
        models[name] = {"arch": entry["arch"], "checkpoint": entry["checkpoint"],
                        "weights": entry["weights"], "conditional": gen.conditional,
                        "date": time.strftime("%Y-%m-%d"), "machine": cpu_text(),
                        "command": command, "repeats": repeats, "rows": rows}
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
    report = {"n_samples": n, "seed": SEED, "models": models}
    return {**report, "class_default": class_default(report)}


def class_default(report: dict) -> dict | None:
    """The confidence floor for --class on an unconditional model: the smallest measured one
    (the plain row: none) at which the --class precision reaches CLASS_GOAL on the default
    model, or, while the default is conditional, on the unconditional model that scores best;
    None when no MNIST model is measured. `min_confidence` is None when no floor reaches it."""
    judged = {name: m for name, m in report["models"].items()
              if not m.get("conditional") and any("class_precision" in r for r in m["rows"])}
    if not judged:
        return None
    name = next((k for k, m in judged.items() if m["default"]), None) or max(
        judged, key=lambda k: next(r for r in judged[k]["rows"]
                                   if r["knob"] == "plain")["classifier_score"])
    floors = [(0.0 if r["knob"] == "plain" else float(r["knob"].split()[-1]), r)
              for r in judged[name]["rows"] if "class_precision" in r]
    reached = [c for c, r in sorted(floors, key=lambda f: f[0])
               if r["class_precision"] >= CLASS_GOAL]
    return {"model": name, "goal": CLASS_GOAL, "min_confidence": reached[0] if reached else None}


def class_default_text(pick: dict, what: str) -> str:
    """The sentence that says which confidence floor `ganrun --class` applies on an
    unconditional model (class_default's `pick`), `what` naming the --class precision."""
    floor = "none of those measured does" if pick["min_confidence"] is None else \
        f"`--min-confidence {pick['min_confidence']:g}`, unless given another"
    return (f"`ganrun --class` on an unconditional model applies the smallest confidence floor "
            f"at which this {what} reaches {pick['goal']:.0%} on `{pick['model']}`: {floor}.")


def markdown(r: dict) -> str:
    lines = ["# ganrun's knobs on the shipped models", "",
             f"{r['n_samples']:,} samples per cell (seed {r['seed']}), int8 files on the CPU. "
             f"Samples per second: the whole choosing (generation plus discriminator or "
             f"classifier) in one process, the fastest of the section's draws: compare within a "
             f"model, not across machines.", "",
             "`--class` precision (MNIST models): of the samples that `ganrun --class k` "
             "chooses with that knob, the share that a second classifier (another "
             "architecture, trained separately, not used by ganrun: "
             "[independent-classifier.md](independent-classifier.md)) also puts in k, averaged "
             "over the ten classes, and the worst class. On an unconditional model the plain "
             "row is `--class` with no confidence floor; a conditional model generates the "
             "class.", ""]
    if r.get("class_default") is not None:
        lines += [class_default_text(r["class_default"], "precision"), ""]
    for name, m in r["models"].items():
        weights = ", averaged" if m["weights"] == "ema" else ""
        lines += [f"## {name} ({m['checkpoint']}{weights}){' (default)' if m['default'] else ''}",
                  "", f"Made by `{m['command']}` on {m['date']} ({m['machine']}). Samples per "
                  f"second: the fastest of {m.get('repeats', REPEATS)} draws.", "",
                  *table_head("knob", "classifier score", "Frechet distance", "classes",
                              "KL to uniform", "samples/s", "`--class` precision (worst class)")]
        for row in m["rows"]:
            s = read_scores(row)
            lines.append(f"| {row['knob']} | " + " | ".join(map(s.text, (
                "classifier_score", "frechet_distance", "classes_covered", "kl_to_uniform")))
                + f" | {row['samples_per_s']:,.0f} | {precision_cell(row)} |")
        lines.append("")
    return "\n".join(lines)


def precision_cell(row: dict) -> str:
    """97.1 % (90.2 %, 9): the mean over classes, the worst class and which; '-' where the row
    is not what --class chooses."""
    if "class_precision" not in row:
        return "-"
    per_class = row["class_precision_per_class"]
    worst = min((p, k) for k, p in enumerate(per_class) if p is not None)
    return f"{row['class_precision']:.1%} ({worst[0]:.1%}, {worst[1]})"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "names", multiple=True,
              help="A shipped model's name (repeatable): only its section is measured again, "
              "the report keeps the others [default: every shipped image model, afresh].")
@click.option("--n", default=10_000, show_default=True, type=click.IntRange(500, 100_000),
              help="Samples per knob.")
@click.option("--repeats", default=REPEATS, show_default=True, type=click.IntRange(1, 10),
              help="Timed draws per knob (the fastest counts); fewer is quicker on a busy "
              "machine.")
@click.option("--out", "out_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False), help="Where knobs.json and knobs.md go.")
def main(names, n, repeats, out_dir):
    """Score every sample knob of ganrun on the shipped models, with its speed."""
    from runtime import shipped
    from training.config import get_config
    index = shipped.load_index()
    command = "python -m benchmarks.knobs" + "".join(f" --model {m}" for m in names) + \
        (f" --n {n}" if n != 10_000 else "") + (f" --repeats {repeats}" if repeats != REPEATS else "")
    out = Path(out_dir)
    # Measuring every model starts the report afresh; naming some keeps the others' sections.
    old = json.loads((out / "knobs.json").read_text()) \
        if names and (out / "knobs.json").is_file() else None
    if old is not None and old["n_samples"] != n:
        raise GanEdgeError(f"{out / 'knobs.json'} was drawn with {old['n_samples']:,} samples "
                           f"per cell, not {n:,}: pass --n {old['n_samples']}, or measure every "
                           f"model (no --model)")
    names = list(names) or [k for k, m in index["models"].items()
                            if get_config(m["arch"]).kind == IMAGE]
    for name in names:
        if get_config(shipped.model_entry(name)["arch"]).kind != IMAGE:
            raise GanEdgeError(f"{name} is a gan-1d model: its knobs are not scored here")
    check_writable_dir(out_dir, "--out")  # before the minutes of work, not after them
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    report = merged(old, measure(names, n, command, log, repeats), n, index, log)
    click.echo(str(write_report(out, "knobs", report, markdown(report))))


if __name__ == "__main__":
    run_cli(main)
