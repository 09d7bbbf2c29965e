"""A training run's folder: the one place that knows its layout and reads or writes its files.

    config.json            arch, full config, seed, schedule, data source (written at start)
    metrics.jsonl          one JSON row per evaluation
    best.json              the row the best-checkpoint rule prefers
    checkpoints/NAME/      epoch_040 (after 40 whole epochs) or step_001000; see checkpoint.py
    samples/NAME.png       the article's grid at each evaluation
    plots/*.png            metrics over steps
    tensorboard/           scalars and images
    export/                written by ganexport
    .lock                  held (flock) by the training process that writes the folder

Every other module goes through RunDir for these files, so adding something to a run means
changing this module and its callers, nothing else. Light: no TensorFlow import.
"""
from __future__ import annotations

import contextlib
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.core.artifacts import (BEST_FILE, CHECKPOINT_STATE_FILE, CONFIG_FILE,
                                     KERAS_DISCRIMINATOR_FILE, KERAS_GENERATOR_FILES, METRICS_FILE,
                                     format_checkpoint, parse_checkpoint)
from runtime.core.errors import GanEdgeError
from runtime.core.files import check_writable_dir, is_temp_name, write_text_atomic
from runtime.core.scores import (best_row, is_number, own_scores, read_scores, row_problem,
                                 weight_views, without_histogram)
from training.config import GANConfig

RUNS_ROOT = Path("runs")
LOCK_FILE = ".lock"


@dataclass
class Checkpoint:
    path: Path
    step: int
    epoch: float
    kind: str  # "eval": kept for export; "resume": replaced by the next one

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"{self.name} (step {self.step})"

    def generator_file(self, weights: str = "raw") -> Path:
        return self.path / KERAS_GENERATOR_FILES[weights]

    def discriminator_file(self) -> Path:
        return self.path / KERAS_DISCRIMINATOR_FILE

    def weights(self) -> list[str]:
        """Which generators this checkpoint holds: "raw", and "ema" if the run averages."""
        return [w for w in KERAS_GENERATOR_FILES if self.generator_file(w).is_file()]


def _row_problem(row) -> str | None:
    """Why a metrics row (or best.json) cannot be read, or None: every row names its step,
    epoch and checkpoint; a scored one holds every figure of its scores (row_problem)."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not isinstance(row.get("step"), int) or isinstance(row["step"], bool):
        return "no integer step"
    if not is_number(row.get("epoch")):
        return "no epoch"
    if not isinstance(row.get("checkpoint"), str):
        return "no checkpoint name"
    return row_problem(row)


def _config_problem(config: dict) -> str | None:
    """What config.json lacks that readers of a run rely on (every version wrote these keys),
    or None."""
    schedule = config.get("schedule")
    data = config.get("data")
    if not isinstance(config.get("config"), dict):
        return "no config object"
    if not isinstance(config.get("seed"), int) or isinstance(config["seed"], bool):
        return "no integer seed"
    if not isinstance(schedule, dict) or not all(
            isinstance(schedule.get(k), int) and schedule[k] > 0
            for k in ("total_steps", "eval_every_steps")):
        return "no schedule with total_steps and eval_every_steps"
    if data is not None and not (isinstance(data, dict)
                                 and isinstance(data.get("dir"), (str, type(None)))):
        return "data is neither null nor an object with a dir"
    if not (is_number(config.get("ema")) and 0 <= config["ema"] < 1):
        return "no ema, a number in [0, 1)"
    return None


def checkpoint_name(cfg: GANConfig, step: int, steps_per_epoch: int) -> str:
    """epoch_040 after 40 whole epochs for epoch-scheduled systems; step_001000 otherwise."""
    if cfg.unit == "epoch" and step % steps_per_epoch == 0:
        return format_checkpoint("epoch", step // steps_per_epoch)
    return format_checkpoint("step", step)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    # -- where runs are ----------------------------------------------------------------------
    @classmethod
    def new(cls, arch: str, root: Path = RUNS_ROOT) -> "RunDir":
        return cls(root / f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}")

    @classmethod
    def newest(cls, arch: str | None = None, root: Path = RUNS_ROOT) -> "RunDir":
        """The most recently changed run under `root` (of `arch`, if given)."""
        runs = [r for r in map(cls, root.iterdir()) if r.is_run()] \
            if root.is_dir() else []
        if arch is not None:
            runs = [r for r in runs if r._arch_or_none() == arch]
        if not runs:
            what = f"{arch} run" if arch else "run"
            raise GanEdgeError(f"no {what} under {root}/; train one with `python -m training.run"
                               f"{' --arch ' + arch if arch else ''}` or pass the run folder")
        return max(runs, key=lambda r: r.path.stat().st_mtime)

    @classmethod
    def of_checkpoint(cls, checkpoint_dir: Path) -> "RunDir":
        """The run that holds checkpoints/NAME."""
        return cls(Path(checkpoint_dir).resolve().parent.parent)

    # -- layout --------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def best_file(self) -> Path:
        return self.path / BEST_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    def sample_file(self, checkpoint: str) -> Path:
        return self.path / "samples" / f"{checkpoint}.png"

    # -- config.json ---------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config_file.is_file()

    def read_config(self) -> dict:
        try:
            config = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            raise GanEdgeError(f"{self.path} is not a training run (no config.json); pass the "
                               f"folder that `python -m training.run` made") from None
        except ValueError:
            raise GanEdgeError(f"{self.config_file} is corrupt; fix it or use a new run "
                               f"folder") from None
        if not isinstance(config, dict) or not isinstance(config.get("arch"), str):
            raise GanEdgeError(f"{self.config_file} does not name an arch; fix it or use a new "
                               f"run folder")
        problem = _config_problem(config)
        if problem:
            raise GanEdgeError(f"{self.config_file} is incomplete ({problem}); restore it from a "
                               f"backup or use a new run folder")
        return config

    def write_config(self, config: dict) -> None:
        write_text_atomic(self.config_file, json.dumps(config, indent=2))

    @property
    def arch(self) -> str:
        return self.read_config()["arch"]

    def _arch_or_none(self) -> str | None:
        try:
            return self.arch
        except GanEdgeError:  # a damaged run is nobody's newest run
            return None

    def gan_config(self) -> GANConfig:
        """The config the run was trained with, from its own config.json (as nanoGPT's
        checkpoints carry theirs), so that it does not depend on today's registry."""
        try:
            return GANConfig.from_dict(self.read_config()["config"])
        except (KeyError, TypeError):
            raise GanEdgeError(f"{self.config_file} lacks a readable config; fix it or use a new "
                               f"run folder") from None

    def data_dir(self) -> str | None:
        """The --data-dir the run was trained on; None for the standard data set, whose test
        split the loader finds by itself."""
        return (self.read_config().get("data") or {}).get("dir")

    # -- metrics.jsonl and best.json -----------------------------------------------------------
    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.is_file():
            return []
        rows = []
        for number, line in enumerate(self.metrics_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                problem = _row_problem(row)
                if problem:
                    raise ValueError(problem)
            except ValueError as e:
                raise GanEdgeError(f"{self.metrics_file} line {number} is corrupt ({e}); fix or "
                                   f"delete that line, or rescore with `python -m "
                                   f"training.evaluate --run {self.path} --write`") from None
            rows.append(row)
        return rows

    def write_metrics(self, rows: list[dict]) -> None:
        write_text_atomic(self.metrics_file, "".join(json.dumps(r) + "\n" for r in rows))

    def append_metrics(self, row: dict) -> list[dict]:
        """Add `row`, dropping rows at or after its step (left by a run killed after writing
        them); return all rows."""
        rows = [r for r in self.read_metrics() if r["step"] < row["step"]] + [row]
        self.write_metrics(rows)
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Forget rows beyond `step`: a resumed run recomputes them."""
        self.write_metrics([r for r in self.read_metrics() if r["step"] <= step])

    def metrics_for(self, checkpoint: str, weights: str = "raw") -> dict:
        """The scores of one checkpoint's raw or averaged generator (without class histograms
        and without the other generator's scores), or {}."""
        for row in self.read_metrics():
            if row.get("checkpoint") == checkpoint:
                for view in weight_views(row):
                    if view["weights"] == weights:
                        return without_histogram(own_scores(view))
        return {}

    def preferred_weights(self, checkpoint: str) -> str:
        """"ema" or "raw": the generator of `checkpoint` that the best-checkpoint rule prefers."""
        row = next((r for r in self.read_metrics() if r.get("checkpoint") == checkpoint), None)
        best = best_row([row]) if row is not None else None
        return best["weights"] if best is not None else "raw"

    def read_best(self) -> dict | None:
        if not self.best_file.is_file():
            return None
        try:
            best = json.loads(self.best_file.read_text())
            problem = _row_problem(best)
            if not problem and read_scores(best) is None:
                problem = "no scores"  # the best row is a scored one by definition
            if problem:
                raise ValueError(problem)
        except ValueError as e:
            raise GanEdgeError(f"{self.best_file} is corrupt ({e}); remake it with `python -m "
                               f"training.evaluate --run {self.path} --write`, or pick a "
                               f"checkpoint with --epoch/--step") from None
        return best

    def write_best(self, rows: list[dict]) -> dict | None:
        """best.json: the row of the checkpoint that the best-checkpoint rule prefers."""
        best = best_row(rows)
        if best is not None:
            write_text_atomic(self.best_file, json.dumps(best, indent=2) + "\n")
        return best

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first (temp folders of an unfinished save are skipped)."""
        out = []
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.iterdir():
                state = p / CHECKPOINT_STATE_FILE
                if parse_checkpoint(p.name) and state.is_file():
                    try:
                        s = json.loads(state.read_text())
                        out.append(Checkpoint(p, int(s["step"]), float(s["epoch"]),
                                              s.get("kind", "eval")))
                    except (ValueError, KeyError, TypeError) as e:
                        raise GanEdgeError(f"{state} is corrupt ({e}); delete {p} to "
                                           f"resume from the checkpoint before it") from None
        return sorted(out, key=lambda c: c.step)

    def checkpoint(self, name: str) -> Checkpoint:
        """The complete checkpoint called `name` (e.g. epoch_040), or a one-line error."""
        done = self.checkpoints()
        for c in done:
            if c.name == name:
                return c
        raise GanEdgeError(f"{self.path} has no complete checkpoint {name}; it has: "
                           f"{', '.join(c.name for c in done) or 'none'}")

    def eval_checkpoints(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints() if c.kind == "eval"]

    def last_checkpoint(self) -> Checkpoint | None:
        done = self.checkpoints()
        return done[-1] if done else None

    def find_checkpoint(self, epoch: int | None = None, step: int | None = None,
                        best: bool = False) -> Checkpoint:
        """An evaluation checkpoint by epoch, step or the best-checkpoint rule; else the newest."""
        if (epoch is not None) + (step is not None) + best > 1:
            raise GanEdgeError("pass at most one of --epoch, --step, --best")
        done = self.eval_checkpoints()
        if not done:
            raise GanEdgeError(f"{self.path} has no evaluation checkpoints yet")
        names = ", ".join(c.name for c in done)
        if best:
            row = self.read_best()
            if row is None:
                raise GanEdgeError(f"{self.path} has no best.json (no quality metrics yet); pick "
                                   f"one with --epoch or --step from: {names}")
            name = row["checkpoint"]
        elif epoch is not None:
            name = format_checkpoint("epoch", epoch)
        elif step is not None:
            name = format_checkpoint("step", step)
        else:
            return done[-1]
        for c in done:
            if c.name == name:
                return c
        raise GanEdgeError(f"{self.path} has no checkpoint {name}; it has: {names}")

    # -- claiming the folder -------------------------------------------------------------------
    def remove_if_unused(self) -> None:
        """Delete the folder if it holds nothing but its lock file (a run that never began)."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {LOCK_FILE}:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self.path.rmdir()

    def remove_stale_temps(self) -> list[Path]:
        """Remove the temp files and folders that a killed process left in the run folder, its
        samples, plots and checkpoints; call it holding the lock (checkpoint temp folders are
        this run's own, so no other process writes them)."""
        from runtime.core.files import remove_stale_temps
        return [p for folder in (self.path, self.path / "samples", self.plots_dir,
                                 self.checkpoints_dir) for p in remove_stale_temps(folder)]

    @contextlib.contextmanager
    def lock(self):
        """Hold the run folder for one training process: a second one gets a one-line error
        instead of mixing its checkpoints and metrics into the first one's. The lock is the
        kernel's (flock on an empty .lock file, never written), so it goes away with the
        process, however that ends."""
        import fcntl
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GanEdgeError(f"{self.path} is in use by another training process (see "
                                   f"`fuser {shlex.quote(str(self.path / LOCK_FILE))}`); wait "
                                   f"for it to end, or pass another --run-dir") from None
            yield

    def prepare(self, arch: str, resume: bool, writer: bool = True) -> dict | None:
        """Check the folder is ours to train `arch` in; return its saved config when resuming.

        Every process of a multi-worker run makes the same checks, so that a bad folder stops
        them all (no race: the chief waits for every worker to join before it writes anything);
        only the writer creates the folder.
        """
        saved = None
        if self.is_run():
            saved = self.read_config()
            if saved["arch"] != arch:
                raise GanEdgeError(f"{self.path} belongs to arch {saved['arch']!r}, not "
                                   f"{arch!r}; pass --arch {saved['arch']} or a new --run-dir")
            if not resume:
                raise GanEdgeError(f"{self.path} already holds a run; add --resume to continue "
                                   f"it or pass a new --run-dir")
        elif resume:
            raise GanEdgeError(f"{self.path} has no config.json, so there is nothing to resume; "
                               f"drop --resume to start a new run there")
        elif self.path.is_dir() and any(p.name != LOCK_FILE and not is_temp_name(p.name)
                                        for p in self.path.iterdir()):
            # A run that lost its config.json, or someone else's folder: never written to. (A
            # temp file is no sign of either: the chief of a multi-worker run probes the folder
            # while its workers check it.)
            raise GanEdgeError(f"{self.path} holds files but no config.json, so it is not a "
                               f"gan-edge run (or a damaged one); pass a new --run-dir")
        if writer:
            check_writable_dir(self.path, "--run-dir")
        return saved
