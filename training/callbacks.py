"""The callbacks of a training run's fit(): progress, the non-finite-loss stop, and the periodic
evaluation with its checkpoint. Keras calls them in the order run.py lists them."""
from __future__ import annotations

import importlib.util
import math
import os
import shutil
import signal
import sys
import time

import keras
import numpy as np
from tqdm.auto import tqdm

from runtime.core.errors import GanEdgeError
from runtime.core.samples import IMAGE
from runtime.core.scores import RowScores, Scores
from training import checkpoint as ckpt
from training.acceleration import Acceleration
from training.config import GANConfig, Schedule
from training.data import scale_images, x_squared_samples
from training.evaluate import score_generated
from training.plots import save_metric_plots, save_samples
from training.reformulation import sampler
from training.rundir import RunDir, checkpoint_name


def _step_logs(logs) -> dict:
    # Values arrive as shape [1] or scalars, depending on the strategy (see GAN.train_step).
    return {k: float(np.mean(v)) for k, v in (logs or {}).items()}


class Progress(keras.callbacks.Callback):
    """A progress bar on a terminal; elsewhere (logs, CI) a plain line every 5 % instead of a
    carriage-return flood; nothing with `enabled` False (--quiet). `say` prints a line without
    breaking the bar."""

    def __init__(self, name: str, start: int, total: int, enabled: bool = True):
        super().__init__()
        self.name, self.step, self.total, self.start = name, start, total, start
        self.enabled = enabled
        self.terminal = enabled and sys.stderr.isatty()
        self.line_every = max(1, (total - start) // 20)
        self.t0 = time.monotonic()
        self.bar = tqdm(total=total, initial=start, unit="step", disable=not self.terminal,
                        dynamic_ncols=True, desc=name, mininterval=0.5)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.bar.update(1)
        logs = _step_logs(logs)
        if self.terminal and (self.step % 20 == 0 or self.step == self.total):
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        elif self.enabled and not self.terminal and (
                (self.step - self.start) % self.line_every == 0 or self.step == self.total):
            per_step = (time.monotonic() - self.t0) / (self.step - self.start)
            losses = " ".join(f"{k} {v:.3f}" for k, v in logs.items())
            self.say(f"{self.name}: step {self.step}/{self.total} "
                     f"({self.step / self.total:.0%}), {per_step:.3g} s/step, {losses}, about "
                     f"{_duration(per_step * (self.total - self.step))} left")

    def say(self, line: str) -> None:
        # Also with the bar off (--quiet): evaluations are the run's log. On stderr, beside the
        # bar: stdout holds only the run folder's path, for scripts.
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first NaN or infinite loss, before any later callback saves its weights."""

    def __init__(self, start: int):
        super().__init__()
        self.step = start

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        logs = _step_logs(logs)
        if not all(math.isfinite(v) for v in logs.values()):
            self.model.stop_training = True
            values = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
            raise GanEdgeError(f"losses became non-finite ({values}) at step {self.step}; the "
                               f"last good checkpoint is kept: lower the learning rate, or "
                               f"resume with --resume")


class EvaluateAndCheckpoint(keras.callbacks.Callback):
    """Every `schedule.eval_every` steps (and at the end): score the generator, keep an
    evaluation checkpoint, and write the metrics row, sample grid, best.json, plots and
    TensorBoard scalars. Every `schedule.save_every` steps in between: a resume checkpoint that
    replaces the previous one. With `writer` False (multi-worker non-chiefs) it only resets the
    loss trackers in step with the chief."""

    def __init__(self, *, cfg: GANConfig, run: RunDir, schedule: Schedule, start: int,
                 x_train: np.ndarray | None, y_train: np.ndarray | None, seed: int,
                 acceleration: Acceleration, eval_samples: int, data_dir, writer: bool,
                 progress: Progress):
        super().__init__()
        self.cfg, self.run, self.schedule, self.step = cfg, run, schedule, start
        self.x_train, self.y_train, self.seed = x_train, y_train, seed
        self.acceleration = acceleration  # the train step's, so that scores round alike
        self.eval_samples, self.data_dir = eval_samples, data_dir
        self.writer, self.progress = writer, progress
        # Fixed latents for the sample grid, so successive grids show the same digits evolving;
        # a conditional system's grid has one row per class.
        self.grid_z = np.random.default_rng(seed + 2).standard_normal(
            (100, cfg.latent_dim)).astype("float32")
        self.grid_labels = (np.repeat(np.arange(cfg.n_classes), 100 // cfg.n_classes)
                            .astype("int32") if cfg.conditional else None)
        self.tb = _tensorboard_writer(run) if writer else None
        self._averaged = None  # a generator model that receives the averaged weights
        self.fault, self.checkpoints_passed = injected_fault(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.schedule.eval_every == 0 or self.step == self.schedule.total:
            if self.writer:
                self.evaluate(_step_logs(logs))
            for m in self.model.metrics:  # losses in the next row cover the next period only
                m.reset_state()
        elif self.step % self.schedule.save_every == 0:
            if self.writer:
                self._save(kind="resume")
        else:
            self._inject_fault(at_checkpoint=False)
            return
        self.checkpoints_passed += 1
        self._inject_fault(at_checkpoint=True)

    def _inject_fault(self, at_checkpoint: bool) -> None:
        if self.fault is None:
            return
        signum, unit, k = self.fault
        if unit == "step" and self.step == k or \
                unit == "checkpoint" and at_checkpoint and self.checkpoints_passed == k:
            os.kill(os.getpid(), signum)

    def evaluate(self, logs: dict) -> dict:
        # Seeded by step, so a resumed run scores exactly what an uninterrupted one would.
        rng = np.random.default_rng([self.seed + 1, self.step])
        real, labels = self._real(rng, 100)  # a conditional D judges fakes of the same classes
        z = rng.standard_normal((100, self.cfg.latent_dim)).astype("float32")
        gan, generator = self.model, self.model.generator
        acc_real = float(np.mean(gan.discriminate(real, labels).numpy() > 0.5))
        acc_fake = float(np.mean(gan.discriminate(gan.sample(z, labels), labels).numpy() <= 0.5))
        trained = self._score(generator)
        averaged = self._averaged_generator()  # scored on the same latents, so the two compare
        quality = RowScores(trained, None if averaged is None else self._score(averaged))
        name = self._name()
        row = {"step": self.step, "epoch": round(self.step / self.schedule.steps_per_epoch, 4),
               "checkpoint": name, **logs,
               "d_acc_real": acc_real, "d_acc_fake": acc_fake, **quality.to_row(),
               "time": time.time()}
        # The row before the checkpoint: a kill between the two leaves a row beyond the last
        # checkpoint, which --resume drops and recomputes; the other order would lose the row.
        rows = self.run.append_metrics(row)
        self._save(kind="eval")
        samples = gan.sample(self.grid_z, self.grid_labels).numpy()
        save_samples(self.cfg, samples, self.run.sample_file(name), real=real)
        best = self.run.write_best(rows)
        save_metric_plots(rows, self.run.plots_dir)
        self._tensorboard(row, samples)
        self.progress.say(f"[{name}] d_loss {row.get('d_loss', float('nan')):.3f} "
                          f"g_loss {row.get('g_loss', float('nan')):.3f} "
                          f"D acc real {acc_real:.0%} fake {acc_fake:.0%} | "
                          + quality.format()
                          + (f" | best so far ({best['weights']})" if best and best["step"] == self.step
                             else ""))
        return row

    def _score(self, generator) -> Scores:
        return score_generated(sampler(generator, self.acceleration), self.cfg,
                               self.eval_samples, self.data_dir)

    def _averaged_generator(self):
        self._averaged = self.model.averaged_generator(into=self._averaged)
        return self._averaged

    def _name(self) -> str:
        return checkpoint_name(self.cfg, self.step, self.schedule.steps_per_epoch)

    def _save(self, kind: str) -> None:
        state = {"step": self.step, "epoch": self.step / self.schedule.steps_per_epoch,
                 "kind": kind, "arch": self.cfg.name,
                 "replicas": self.model.distribute_strategy.num_replicas_in_sync}
        ckpt.save_checkpoint(self.model, self.run.checkpoints_dir / self._name(), state,
                             averaged=self._averaged_generator())
        # Only the newest resume checkpoint is worth keeping; evaluation ones stay for export.
        for old in self.run.checkpoints():
            if old.step < self.step and old.kind == "resume":
                shutil.rmtree(old.path)

    def _real(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """n real samples, and their labels for a conditional system (else None)."""
        if self.x_train is None:
            return x_squared_samples(rng, n), None
        idx = rng.integers(0, len(self.x_train), n)
        x = scale_images(self.x_train[idx], self.cfg.output_range)
        labels = self.y_train[idx].astype("int32") if self.cfg.conditional else None
        return x.reshape((n, *self.cfg.sample_shape)), labels

    def _tensorboard(self, row: dict, samples: np.ndarray) -> None:
        if self.tb is None:
            return
        import tensorflow as tf
        with self.tb.as_default(step=self.step):
            for k, v in row.items():
                if isinstance(v, float) and k != "time":
                    tf.summary.scalar(k, v)
            if self.cfg.kind == IMAGE:
                lo, hi = self.cfg.output_range
                tf.summary.image("samples", (samples[:16] - lo) / (hi - lo), max_outputs=16)
        self.tb.flush()


FAULT_ENV = "GAN_EDGE_FAULT"
FAULTS = {"kill": signal.SIGKILL, "interrupt": signal.SIGINT}


def injected_fault() -> tuple[int, str, int] | None:
    """GAN_EDGE_FAULT=ACTION@checkpoint:K or ACTION@step:N: (signal, unit, K), to send this
    process right after the K-th checkpoint step it passes (a worker that writes nothing counts
    the same steps) or right after step N: kill = SIGKILL, as a crash or the OOM killer ends a
    run; interrupt = SIGINT, as Ctrl-C. For tests, which need a fault at a known step rather
    than at a moment on the clock."""
    spec = os.environ.get(FAULT_ENV, "").strip()
    if not spec:
        return None
    action, _, where = spec.partition("@")
    unit, _, k = where.partition(":")
    if action not in FAULTS or unit not in ("checkpoint", "step") or not k.isdigit() or int(k) < 1:
        raise GanEdgeError(f"{FAULT_ENV}={spec!r} is not ACTION@checkpoint:K or ACTION@step:N "
                           f"with ACTION one of {', '.join(FAULTS)} and K, N >= 1; unset it to "
                           f"train normally")
    return FAULTS[action], unit, int(k)


def _tensorboard_writer(run: RunDir):
    if importlib.util.find_spec("tensorboard") is None:
        return None
    import tensorflow as tf
    return tf.summary.create_file_writer(str(run.tensorboard_dir))
