"""python -m benchmarks.quality_goals: the quality goals of the reproduction, each beside the
figures that decide it.

    python -m benchmarks.quality_goals --dcgan-run RUN_DIR

Goals:
  dcgan-mnist at the article's checkpoint (epoch_040): classifier score >= 9.0, 10/10 classes,
      KL to uniform <= 0.05 (its trained generator, as the article has it, and the averaged one)
  the generator ganrun uses by default: classifier score >= 9.0, Frechet distance <= 10
  mlp-fashion as shipped: 10/10 classes, its Frechet distance beside real data's
  cgan-mnist as shipped (labels 0-9 in turn): score >= 9.7, FD <= 2.0, 10/10 classes,
      KL <= 0.005, class accuracy >= 99.4 % on average and >= 98.5 % for every class,
      int8 <= 1 MB
  cgan-fashion as shipped: FD <= 0.5, class accuracy >= real data's 90.5 %, int8 <= 1 MB

It measures nothing itself, it collects: the DCGAN from its run's metrics.jsonl, the shipped
models from runtime/models/index.json (each checkpoint's Keras generator on 10,000 samples),
and the default's int8 file (plain, and with --min-confidence 0.9) from
benchmarks/results/knobs.json when that report is of the same checkpoint. A goal whose figures
do not exist yet says so. Writes benchmarks/results/quality-goals.md and .json.
"""
from __future__ import annotations

import json
import operator
from datetime import date
from pathlib import Path

import click

from benchmarks.report import table_head, write_report
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.scores import N_CLASSES, figure, read_scores, weight_views

RESULTS = Path(__file__).parent / "results"
TESTS = {">=": operator.ge, "<=": operator.le}
DCGAN_GOAL = (("classifier_score", ">=", 9.0), ("classes_covered", ">=", N_CLASSES),
              ("kl_to_uniform", "<=", 0.05))
DEFAULT_GOAL = (("classifier_score", ">=", 9.0), ("frechet_distance", "<=", 10.0))
FASHION_GOAL = (("classes_covered", ">=", N_CLASSES),)
INT8_BYTES = ("int8_bytes", "<=", 1_000_000)
CONDITIONAL_GOALS = {
    "cgan-mnist": (("classifier_score", ">=", 9.7), ("frechet_distance", "<=", 2.0),
                   ("classes_covered", ">=", N_CLASSES), ("kl_to_uniform", "<=", 0.005),
                   ("class_accuracy", ">=", 0.994), ("class_accuracy_min", ">=", 0.985),
                   INT8_BYTES),
    # Real Fashion-MNIST test images: class accuracy 90.5 % by the same classifier.
    "cgan-fashion": (("frechet_distance", "<=", 0.5), ("class_accuracy", ">=", 0.905), INT8_BYTES),
}
LABELS = {"classifier_score": "score", "frechet_distance": "FD", "classes_covered": "classes",
          "kl_to_uniform": "KL", "class_accuracy": "class accuracy",
          "class_accuracy_min": "worst class", "int8_bytes": "int8 file"}


def judge(scores: dict | None, goal) -> dict:
    """One measured row against a goal: "met" is True, False, or None where nothing is measured
    (or a figure the goal needs is missing, such as an FD made without the test split)."""
    if not scores:
        return {"met": None, "figures": {}}
    figures = {key: scores.get(key) for key, _, _ in goal}
    if any(v is None for v in figures.values()):
        return {"met": None, "figures": figures}
    return {"met": all(TESTS[op](figures[key], target) for key, op, target in goal),
            "figures": figures}


def _dcgan_rows(run_dir: Path | None) -> list[dict]:
    from training.config import get_config
    from training.rundir import RunDir
    cfg = get_config("dcgan-mnist")
    if run_dir is None:
        return [{"what": f"dcgan-mnist, {cfg.recommended}", "source": "no run given",
                 **judge(None, DCGAN_GOAL)}]
    run = RunDir(run_dir)
    if run.arch != cfg.name:
        raise GanEdgeError(f"{run_dir} is a run of {run.arch}, not dcgan-mnist; pass the DCGAN's "
                           f"run folder")
    scored = {r["checkpoint"]: r for r in run.read_metrics() if read_scores(r) is not None}
    reached = (f"its last scored checkpoint is {list(scored)[-1]}" if scored
               else "nothing scored yet")
    views = {v["weights"]: v for v in weight_views(scored[cfg.recommended])} \
        if cfg.recommended in scored else {}
    rows = []
    for weights, label in (("raw", "trained"), ("ema", "averaged")):
        scores = views.get(weights)
        source = ("the run's metrics.jsonl" if scores
                  else f"not reached: {reached}" if not views
                  else "not measured: no averaged generator scored there")
        rows.append({"what": f"dcgan-mnist, {cfg.recommended}, {label} generator",
                     "source": source, **judge(scores, DCGAN_GOAL)})
    return rows


def _default_rows(index: dict, knobs: dict | None) -> list[dict]:
    name = index["default"]
    entry = index["models"][name]
    weights = ", averaged" if entry["weights"] == "ema" else ""
    rows = [{"what": f"default ({name}, {entry['checkpoint']}{weights}), Keras generator",
             "source": "runtime/models/index.json", **judge(entry["scores"], DEFAULT_GOAL)}]
    measured = (knobs or {}).get("models", {}).get(name)
    same = measured is not None and (measured["checkpoint"], measured["weights"]) == \
        (entry["checkpoint"], entry["weights"])
    for knob, label in (("plain", "plain ganrun"),
                        ("--min-confidence 0.9", "ganrun --min-confidence 0.9")):
        scores = next((r for r in measured["rows"] if r["knob"] == knob), None) if same else None
        source = (f"knobs.json ({measured['date']})" if scores
                  else "not measured: knobs.json is of another checkpoint or missing"
                  if not same else f"not measured: knobs.json has no {knob} row")
        rows.append({"what": f"default, int8 file, {label}", "source": source,
                     **judge(scores, DEFAULT_GOAL)})
    return rows


def _fashion_rows(index: dict) -> list[dict]:
    from training.classifier import classifier_info
    entry = index["models"].get("mlp-fashion")
    if entry is None:
        return [{"what": "mlp-fashion", "source": "not shipped", **judge(None, FASHION_GOAL)}]
    weights = ", averaged" if entry["weights"] == "ema" else ""
    real = classifier_info("fashion_mnist")["baseline_real"]["frechet_distance"]
    row = judge(entry["scores"], FASHION_GOAL)
    row["figures"]["frechet_distance"] = entry["scores"].get("frechet_distance")
    row["figures"]["real_frechet_distance"] = real
    return [{"what": f"mlp-fashion ({entry['checkpoint']}{weights}), Keras generator",
             "source": "runtime/models/index.json", **row}]


def _conditional_rows(index: dict, name: str, goal) -> list[dict]:
    from runtime.shipped import MODELS_DIR
    entry = index["models"].get(name)
    if entry is None:
        return [{"what": name, "source": "not shipped", **judge(None, goal)}]
    weights = ", averaged" if entry["weights"] == "ema" else ""
    int8 = entry["files"].get("int8")
    scores = {**entry["scores"],
              "int8_bytes": (MODELS_DIR / int8).stat().st_size if int8 else None}
    return [{"what": f"{name} ({entry['checkpoint']}{weights}), Keras generator; its int8 file",
             "source": "runtime/models/index.json", **judge(scores, goal)}]


def _goal_text(goal) -> str:
    def value(key, target):
        return (f"{target:.1%}" if key.startswith("class_accuracy")
                else f"{target / 1e6:g} MB" if key == "int8_bytes" else f"{target:g}")
    return ", ".join(f"{LABELS[key]} {op} {value(key, target)}" for key, op, target in goal)


def collect(dcgan_run: Path | None, index: dict, knobs: dict | None) -> dict:
    goals = [("dcgan-mnist at epoch 40: score >= 9.0, 10/10 classes, KL <= 0.05",
              _dcgan_rows(dcgan_run)),
             ("the default generator: score >= 9.0, FD <= 10", _default_rows(index, knobs)),
             ("mlp-fashion: 10/10 classes, FD beside real data's", _fashion_rows(index)),
             *((f"{name}: {_goal_text(goal)}", _conditional_rows(index, name, goal))
               for name, goal in CONDITIONAL_GOALS.items())]
    return {"date": date.today().isoformat(), "command": "python -m benchmarks.quality_goals",
            "goals": [{"goal": goal, "rows": rows} for goal, rows in goals]}


def _figures(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if value is None:
            parts.append(f"{LABELS.get(key, key)} n/a")
        elif key == "classes_covered":
            parts.append(f"{figure(key, value)} classes")
        elif key == "real_frechet_distance":
            parts[-1] += f" (real training images: {figure('frechet_distance', value)})"
        elif key == "int8_bytes":
            parts.append(f"{LABELS[key]} {value / 1e6:.2f} MB")
        else:
            parts.append(f"{LABELS[key]} {figure(key, value)}")
    return ", ".join(parts)


def markdown(report: dict) -> str:
    lines = [f"# Quality goals ({report['date']})", "",
             f"Made by `{report['command']}`, which collects figures measured elsewhere (see "
             f"its docstring); each row names where its figures come from.", ""]
    for goal in report["goals"]:
        lines += [f"## {goal['goal']}", "", *table_head("generator", "figures", "met", "source")]
        for row in goal["rows"]:
            met = {True: "**yes**", False: "no", None: "not measured"}[row["met"]]
            lines.append(f"| {row['what']} | {_figures(row['figures']) or '-'} | {met} "
                         f"| {row['source']} |")
        lines.append("")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dcgan-run", type=click.Path(exists=True, file_okay=False),
              help="The dcgan-mnist run folder whose epoch_040 the first goal judges.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=str(RESULTS),
              show_default=True, help="Where quality-goals.md and .json go.")
def main(dcgan_run, out_dir):
    """Judge the reproduction's quality goals from the figures already measured."""
    from runtime.shipped import load_index
    knobs_file = RESULTS / "knobs.json"
    knobs = json.loads(knobs_file.read_text()) if knobs_file.is_file() else None
    report = collect(Path(dcgan_run) if dcgan_run else None, load_index(), knobs)
    write_report(Path(out_dir), "quality-goals", report, markdown(report))
    click.echo(markdown(report))


if __name__ == "__main__":
    run_cli(main)
