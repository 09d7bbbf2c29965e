"""Periodic evaluation during fit: progress bar, D accuracy, samples, checkpoints, metrics, plots."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
from pathlib import Path

import keras
import numpy as np
from tqdm.auto import tqdm

from runtime.files import write_text_atomic
from training import checkpoint as ckpt
from training.config import GANConfig
from training.data import scale_images, x_squared_samples
from training.evaluate import generate, score_samples, summary, write_best
from training.plots import save_metric_plots, save_samples


class NonFiniteLoss(RuntimeError):
    pass


class Schedule:
    """Where a run is going, in steps; stored in config.json so --resume keeps to it."""

    def __init__(self, total: int, eval_every: int, save_every: int, steps_per_epoch: int):
        self.total, self.eval_every = total, eval_every
        self.save_every, self.steps_per_epoch = save_every, steps_per_epoch

    def to_dict(self):
        return dict(total_steps=self.total, eval_every_steps=self.eval_every,
                    save_every_steps=self.save_every, steps_per_epoch=self.steps_per_epoch)


class EvaluationCallback(keras.callbacks.Callback):
    """Every `eval_every` steps (and at the end): evaluate, checkpoint, log; every `save_every`
    steps in between: a resume checkpoint that replaces the previous one. With `writer` False
    (multi-worker non-chiefs) it only counts steps, stops on non-finite losses and resets the
    loss trackers in step with the chief."""

    def __init__(self, cfg: GANConfig, run_dir: Path, schedule: Schedule, start_step: int,
                 x_train: np.ndarray | None, seed: int, progress: bool = True,
                 eval_samples: int = 10_000, data_dir=None, writer: bool = True):
        super().__init__()
        self.cfg, self.run_dir, self.schedule = cfg, Path(run_dir), schedule
        self.step = start_step
        self.x_train, self.seed = x_train, seed
        # Fixed latents for the sample grid, so successive grids show the same digits evolving.
        self.grid_z = np.random.default_rng(seed + 2).standard_normal(
            (100, cfg.latent_dim)).astype("float32")
        self.progress = progress
        self.eval_samples, self.data_dir = eval_samples, data_dir
        self.bar = None
        self.writer = writer
        self.tb = _tensorboard_writer(self.run_dir) if writer else None

    # -- fit hooks ---------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.schedule.total, initial=self.step, unit="step",
                        disable=not self.progress, dynamic_ncols=True, desc=self.cfg.name,
                        mininterval=0.5)

    def on_train_batch_end(self, batch, logs=None):
        # Values arrive as shape [1] or scalars, depending on the strategy (see GAN.train_step).
        logs = {k: float(np.mean(v)) for k, v in (logs or {}).items()}
        self.step += 1
        self.bar.update(1)
        if self.step % 20 == 0 or self.step == self.schedule.total:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        if not all(math.isfinite(v) for v in logs.values()):
            self.model.stop_training = True
            values = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
            raise NonFiniteLoss(f"losses became non-finite ({values}) at step {self.step}; the "
                                f"last good checkpoint is kept: lower the learning rate, or "
                                f"resume with --resume")
        if self.step % self.schedule.eval_every == 0 or self.step == self.schedule.total:
            if self.writer:
                self.evaluate(logs)
            for m in self.model.metrics:  # losses in the next row cover the next period only
                m.reset_state()
        elif self.step % self.schedule.save_every == 0 and self.writer:
            self._save(kind="resume")

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()

    # -- work --------------------------------------------------------------------------------
    def evaluate(self, logs: dict) -> dict:
        # Seeded by step, so a resumed run scores exactly what an uninterrupted one would.
        rng = np.random.default_rng([self.seed + 1, self.step])
        real = self._real(rng, 100)
        z = rng.standard_normal((100, self.cfg.latent_dim)).astype("float32")
        fake = self.model.generator(z, training=False).numpy()
        d = self.model.discriminator
        acc_real = float(np.mean(d(real, training=False).numpy() > 0.5))
        acc_fake = float(np.mean(d(fake, training=False).numpy() <= 0.5))
        generated = generate(lambda z: self.model.generator(z, training=False), self.cfg,
                             self.eval_samples)
        quality = score_samples(self.cfg, generated, self.data_dir)
        name = ckpt.checkpoint_name(self.cfg, self.step, self.schedule.steps_per_epoch)
        row = {"step": self.step, "epoch": round(self.step / self.schedule.steps_per_epoch, 4),
               "checkpoint": name, **logs,
               "d_acc_real": acc_real, "d_acc_fake": acc_fake, **quality, "time": time.time()}
        # The row before the checkpoint: a kill between the two leaves a row beyond the last
        # checkpoint, which --resume drops and recomputes; the other order would lose the row.
        rows = append_metrics(self.run_dir, row)
        self._save(kind="eval")
        samples = self.model.generator(self.grid_z, training=False).numpy()
        save_samples(self.cfg, samples, self.run_dir / "samples" / f"{name}.png", real=real)
        best = write_best(self.run_dir, rows)
        save_metric_plots(rows, self.run_dir / "plots")
        self._tensorboard(row, samples)
        self.bar.write(f"[{name}] d_loss {row.get('d_loss', float('nan')):.3f} "
                       f"g_loss {row.get('g_loss', float('nan')):.3f} "
                       f"D acc real {acc_real:.0%} fake {acc_fake:.0%} | "
                       + summary(quality) + (" | best so far" if best is row else ""))
        return row

    def _save(self, kind: str) -> str:
        name = ckpt.checkpoint_name(self.cfg, self.step, self.schedule.steps_per_epoch)
        state = {"step": self.step, "epoch": self.step / self.schedule.steps_per_epoch,
                 "kind": kind, "arch": self.cfg.name,
                 "replicas": self.model.distribute_strategy.num_replicas_in_sync}
        ckpt.save_checkpoint(self.model, self.run_dir, name, state)
        # Only the newest resume checkpoint is worth keeping; evaluation ones stay for export.
        for old in ckpt.list_checkpoints(self.run_dir):
            if old.step < self.step and old.kind == "resume":
                shutil.rmtree(old.path)
        return name

    def _real(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.x_train is None:
            return x_squared_samples(rng, n)
        idx = rng.integers(0, len(self.x_train), n)
        x = scale_images(self.x_train[idx], self.cfg.output_range)
        return x.reshape((n, *self.cfg.sample_shape))

    def _tensorboard(self, row: dict, samples: np.ndarray) -> None:
        if self.tb is None:
            return
        import tensorflow as tf
        with self.tb.as_default(step=self.step):
            for k, v in row.items():
                if isinstance(v, float) and k != "time":
                    tf.summary.scalar(k, v)
            if self.cfg.dataset != "x_squared":
                lo, hi = self.cfg.output_range
                tf.summary.image("samples", (samples[:16] - lo) / (hi - lo), max_outputs=16)
        self.tb.flush()


def _tensorboard_writer(run_dir: Path):
    if importlib.util.find_spec("tensorboard") is None:
        return None
    import tensorflow as tf
    return tf.summary.create_file_writer(str(run_dir / "tensorboard"))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_metrics(run_dir: Path, row: dict) -> list[dict]:
    rows = [r for r in read_metrics(run_dir) if r["step"] < row["step"]] + [row]
    write_metrics(run_dir, rows)
    return rows


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    write_text_atomic(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
