"""The results table of a run's record (docs/quality.md): each seed system at the article's
recommended checkpoint and at its best one, beside what real data scores.

    python -m training.results RUN_DIR [RUN_DIR ...]
    python -m training.results --plot OUT.png RUN_DIR   # one run's quality per epoch
    python -m training.results --claim RUN_DIR          # article 000's claim, in numbers

Reads each run's metrics.jsonl and best.json (scores written during training or by
`python -m training.evaluate --write`); systems without a run are listed as not measured. The
recommended row scores the trained generator, as the article has it, and so does an end-of-
schedule row where the article picks an earlier checkpoint than its schedule ends on (article
000: epoch 40 of 100, with its claim that 40 is as good as 100); the best row may be the
averaged generator ("averaged"), where the best-checkpoint rule prefers it.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from runtime.core.artifacts import parse_checkpoint
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.samples import IMAGE, POINT
from runtime.core.scores import RowScores, figure, read_scores
from training.config import REGISTRY
from training.rundir import RunDir


def _cells(row: dict | None) -> list[str]:
    """A row's checkpoint and scores; "not measured yet" where it is missing or not scored."""
    s = None if row is None else read_scores(row)
    if s is None:
        return ["not measured yet"] + [""] * 5
    name = row["checkpoint"] + (", averaged" if row.get("weights") == "ema" else "")
    if s.kind == POINT:
        return [name, f"energy {s.text('energy_distance')}",
                f"abs err {s.text('mean_abs_error')}", f"{s.text('share_in_domain')} in domain",
                "", str(s.n_samples)]
    return [name, *(s.text(k) for k in ("classifier_score", "frechet_distance",
                                         "classes_covered", "kl_to_uniform")), str(s.n_samples)]


def _config_of(run: RunDir):
    """The registry entry of the run's system; one line naming the known ones if there is none."""
    if run.arch not in REGISTRY:
        raise GanEdgeError(f"{run.path} is a run of {run.arch!r}, which this version does not "
                           f"know; known: {', '.join(REGISTRY)}")
    return REGISTRY[run.arch]


def table(run_dirs: list[Path]) -> str:
    from training.classifier import classifier_info
    runs = {}
    for path in run_dirs:
        run = RunDir(path)
        _config_of(run)
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
            lines.append(f"| {arch}, {label} | " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines)


WINDOW = 10  # evaluations per window in `claim`: enough to show how much epochs differ


def _spread(scores: list, key: str) -> str:
    """'median (min to max)' of one figure over Scores (None: not measured); '-' when none has
    it."""
    values = [getattr(s, key) for s in scores if s is not None and getattr(s, key) is not None]
    if not values:
        return "-"
    lo, mid, hi = (figure(key, v) for v in (min(values), float(np.median(values)), max(values)))
    return mid if len(values) == 1 else f"{mid} ({lo} to {hi})"


def claim(run_dir: Path) -> str:
    """The article's pick against the end of its schedule, for an article that picks an earlier
    checkpoint than it ends on (article 000: epoch 40 of 100, "as good as" 100). Each row is a
    window of evaluations, so that a difference can be read against how much neighbouring
    epochs differ anyway: the pick, the WINDOW evaluations up to it, the last WINDOW evaluated,
    and the end of the schedule once the run has reached it."""
    run = RunDir(run_dir)
    cfg = _config_of(run)
    if cfg.unit != "epoch" or cfg.recommended == cfg.last_checkpoint:
        raise GanEdgeError(f"{run_dir} is a run of {run.arch!r}, whose article picks the last "
                           f"checkpoint of its schedule: there is no earlier pick to test")
    by_checkpoint = {r["checkpoint"]: r for r in run.read_metrics() if read_scores(r) is not None}
    rows = sorted(by_checkpoint.values(), key=lambda r: r["step"])
    if not rows:
        raise GanEdgeError(f"{run} has no scored evaluations; train with --eval-every 1 or "
                           f"score it with `python -m training.evaluate --run {run_dir} --write`")
    _, pick_epoch = parse_checkpoint(cfg.recommended)
    up_to_pick = [r for r in rows if r["epoch"] <= pick_epoch][-WINDOW:]
    windows = [(f"{cfg.recommended}, the article's pick", [by_checkpoint.get(cfg.recommended)]),
               (f"the {len(up_to_pick)} evaluations up to it", up_to_pick),
               (f"the last {len(rows[-WINDOW:])} evaluated", rows[-WINDOW:]),
               (f"{cfg.last_checkpoint}, the end of the schedule",
                [by_checkpoint.get(cfg.last_checkpoint)])]
    lines = [f"Article {cfg.article}'s claim: {cfg.recommended} is as good as "
             f"{cfg.last_checkpoint}. "
             f"Run {run.path.name}, evaluated through {rows[-1]['checkpoint']}; "
             f"each cell: median (min to max).", "",
             "| checkpoints | epochs | classifier score | Frechet distance | classes (fewest) | "
             "averaged score | averaged FD |", "|---|---|---|---|---|---|---|"]
    for label, window in windows:
        window = [r for r in window if r is not None]
        if not window:
            lines.append(f"| {label} | not reached yet |  |  |  |  |  |")
            continue
        epochs = f"{window[0]['epoch']:g}" + (
            f" to {window[-1]['epoch']:g}" if len(window) > 1 else "")
        scores = [RowScores.read(r) for r in window]
        trained, averaged = [s.trained for s in scores], [s.averaged for s in scores]
        lines.append(f"| {label} | {epochs} | " + " | ".join([
            _spread(trained, "classifier_score"), _spread(trained, "frechet_distance"),
            figure("classes_covered", min(s.classes_covered for s in trained)),
            _spread(averaged, "classifier_score"),
            _spread(averaged, "frechet_distance")]) + " |")
    return "\n".join(lines)


def plot_by_epoch(run_dirs: list[Path], out: Path) -> Path:
    """The quality per evaluation of one run, or of several runs of one system to compare
    them (seeds, machines), as a picture with the article's pick marked."""
    from training.plots import save_quality_by_epoch
    runs = [RunDir(d) for d in run_dirs]
    arches = sorted({run.arch for run in runs})
    if len(arches) > 1:
        raise GanEdgeError(f"--plot compares runs of one system, not of {', '.join(arches)}: "
                           f"pass the runs of one --arch")
    labels = [d.resolve().name for d in run_dirs]
    if len(set(labels)) < len(labels):
        raise GanEdgeError("--plot labels runs by their folder names: pass folders with "
                           "different names")
    cfg = REGISTRY[arches[0]]
    scored = {}
    for label, run in zip(labels, runs):
        scored[label] = [r for r in run.read_metrics()
                         if cfg.kind == IMAGE and read_scores(r) is not None]
        if not scored[label]:
            raise GanEdgeError(f"{run} has no scored image evaluations to plot")
    marks = {}
    recommended = parse_checkpoint(cfg.recommended)  # None where the registry names none
    if cfg.unit == "epoch" and recommended and recommended[0] == "epoch":
        marks[f"article's pick ({cfg.recommended})"] = recommended[1]
    if len(runs) == 1:
        rows = next(iter(scored.values()))
        title = f"{cfg.name} (article {cfg.article}), seed {runs[0].read_config()['seed']}: " \
                f"{len(rows)} evaluations, last at epoch {rows[-1]['epoch']:g}"
    else:
        seeds = sorted({run.read_config()["seed"] for run in runs})
        title = f"{cfg.name} (article {cfg.article}): {len(runs)} runs, seed " \
                f"{', '.join(map(str, seeds))}"
    return save_quality_by_epoch(scored, title, out, marks)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Instead of the table: write the quality per epoch to this PNG, of one run "
                   "or of several runs of one system side by side.")
@click.option("--claim", "claim_only", is_flag=True,
              help="Instead of the table: one run's article pick against the end of its "
                   "schedule, each beside the spread of neighbouring epochs (dcgan-mnist).")
def main(run_dirs, plot_path, claim_only):
    """Print the results table (Markdown) for the given run folders, or draw their quality
    per epoch (one run, or several of one system compared), or put one run's article claim
    in numbers."""
    if plot_path and claim_only:
        raise GanEdgeError("--plot and --claim each describe one run: pass one of them")
    if claim_only and len(run_dirs) != 1:
        raise GanEdgeError("--claim describes one run: pass exactly one run folder")
    if plot_path and not run_dirs:
        raise GanEdgeError("--plot needs a run folder (or several of one system)")
    if plot_path:
        click.echo(str(plot_by_epoch([Path(d) for d in run_dirs], Path(plot_path))))
        return
    if claim_only:
        click.echo(claim(Path(run_dirs[0])))
        return
    click.echo(table([Path(r) for r in run_dirs]))


if __name__ == "__main__":
    run_cli(main)
