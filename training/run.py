"""python -m training.run: train one of the registry's GANs with periodic evaluation.

A thin CLI over `train()`; see `python -m training.run --help`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.samples import POINT
from training.acceleration import Acceleration
from training.config import EMA_DECAY, REGISTRY, GANConfig, Schedule, get_config
from training.distribute import (STRATEGIES, cluster_size, describe, is_multiworker, is_writer,
                                 make_strategy)
from training.rundir import RunDir

MIN_EVAL_SAMPLES, MAX_EVAL_SAMPLES = 100, 100_000


@dataclass(frozen=True)
class TrainArgs:
    """What a training run is asked for (`python -m training.run`'s options), checked once and
    handed down whole."""
    arch: str = "mlp-mnist"
    epochs: int | None = None         # the article's schedule when both are None
    steps: int | None = None
    eval_every: int | None = None     # in the article's units (epochs or iterations)
    run_dir: str | Path | None = None  # None: a new folder under runs/, or with resume the newest
    seed: int = 0                     # a resumed run keeps its own
    resume: bool = False
    data_dir: str | Path | None = None
    progress: bool = True
    eval_samples: int = 10_000
    strategy: str = "auto"            # see training.distribute
    cpu_devices: int | None = None
    xla: bool | None = None           # None: Acceleration.decide's choice
    ema: float | None = None          # 0: no average; None: the run's own when resuming, else EMA_DECAY
    # GANConfig fields that replace the registry's (benchmarks.ablation's variants; config.json
    # records the config trained).
    variant: dict | None = None

    def __post_init__(self):
        for name, value in (("--epochs", self.epochs), ("--steps", self.steps),
                            ("--eval-every", self.eval_every), ("--cpu-devices", self.cpu_devices)):
            if value is not None and value <= 0:
                raise GanEdgeError(f"{name} must be a positive integer, got {value}")
        if not MIN_EVAL_SAMPLES <= self.eval_samples <= MAX_EVAL_SAMPLES:
            raise GanEdgeError(f"--eval-samples must be between {MIN_EVAL_SAMPLES} and "
                               f"{MAX_EVAL_SAMPLES:,} (the scores need a few hundred samples to "
                               f"mean anything), got {self.eval_samples}")
        if self.epochs is not None and self.steps is not None:
            raise GanEdgeError("pass --epochs or --steps, not both")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise GanEdgeError(f"--ema must be in [0, 1) (0 turns the average off), got {self.ema}")

    def config(self) -> GANConfig:
        """The registry's config of `arch`, with `variant`'s fields."""
        try:
            cfg = get_config(self.arch)
        except ValueError as e:
            raise GanEdgeError(str(e)) from None
        return dataclasses.replace(cfg, **self.variant) if self.variant else cfg


def train(arch: str = "mlp-mnist", **options) -> Path:
    """Train `arch` to its article's schedule (or `epochs`/`steps`) under the tf.distribute
    `strategy`, keeping an averaged generator with decay `ema`; `options` are TrainArgs's
    fields. Return the run folder.

    A run without XLA turns TensorFlow's op determinism on for the whole process, and a later
    XLA run in that process computes differently from a fresh process's (mlp-fashion after a
    DCGAN run: 1e-3 apart after 4 steps, where two mlp-fashion runs in one process agree
    exactly). Neither turning determinism off again nor clearing the eager kernel cache undoes
    it, so runs with and without XLA that must compare go in separate processes."""
    args = TrainArgs(arch, **options)
    cfg = args.config()
    writer = is_writer(args.strategy)
    run = RunDir(args.run_dir) if args.run_dir else (
        RunDir.newest(arch) if args.resume else RunDir.new(arch))
    created = not run.path.exists()
    run.prepare(arch, args.resume, writer)
    try:
        with run.lock() if writer else contextlib.nullcontext():
            return _train(run, args, cfg, writer)
    except BaseException:
        if created and writer:
            run.remove_if_unused()  # a run that failed before it began leaves no folder behind
        raise


def _train(run: RunDir, args: TrainArgs, cfg: GANConfig, writer: bool) -> Path:
    """train() once the run folder is checked and held."""
    # Read again under the lock: another process may have written it since the check.
    saved = run.prepare(args.arch, args.resume, writer)
    if writer:
        for left in run.remove_stale_temps():
            click.echo(f"removed {left}, left by a training process that was killed", err=True)

    dist = _start_strategy(args.strategy, args.cpu_devices, cfg)  # before anything touches a device
    from training.data import load_images
    data = None if cfg.kind == POINT else load_images(cfg.dataset, args.data_dir)
    x_train = None if data is None else data.x_train
    seed = saved["seed"] if saved else args.seed
    ema = args.ema if args.ema is not None else saved["ema"] if saved else EMA_DECAY
    acceleration = Acceleration.decide(cfg, args.xla, dist.num_replicas_in_sync)
    schedule = _schedule(cfg, x_train, args, saved)
    gan, start = _build_and_restore(cfg, seed, dist, acceleration, ema,
                                    run if args.resume else None, writer)
    if start > schedule.total:  # before config.json is touched: its schedule stays as it was
        raise GanEdgeError(f"{run} is at step {start}, past the {schedule.total} steps asked for; "
                           f"ask for more (--steps/--epochs), or start a new run")
    if start == schedule.total:
        click.echo(f"{run} is already complete ({start}/{schedule.total} steps)", err=True)
        return run.path
    if writer and (saved is None or args.epochs or args.steps or args.eval_every
                   or ema != saved["ema"] or acceleration.to_dict() != saved.get("acceleration")):
        run.write_config(_config_record(args, cfg, seed, schedule, ema, acceleration, data))
    _fit(gan, cfg, run, schedule, start, data, seed, acceleration, args, writer)
    return run.path


def _start_strategy(strategy: str, cpu_devices: int | None, cfg: GANConfig):
    if is_multiworker(strategy):
        # TensorFlow blocks here, deaf to Ctrl-C, until every process has started.
        click.echo(f"waiting for all {cluster_size()} processes of TF_CONFIG to join; if one of "
                   f"them has failed, stop this one with: kill {os.getpid()}", err=True)
    dist = make_strategy(strategy, cpu_devices)
    replicas = dist.num_replicas_in_sync
    for name, batch in (("discriminator half batch", cfg.d_half_batch),
                        ("generator batch", cfg.g_batch)):
        if batch % replicas:
            raise GanEdgeError(f"the {name} of {cfg.name} ({batch}) does not split evenly over "
                               f"{replicas} replicas; use a replica count that divides it")
    if replicas > 1:
        click.echo(f"training on {describe(dist)}", err=True)
    return dist


def _build_and_restore(cfg: GANConfig, seed: int, dist, acceleration: Acceleration, ema: float,
                       resume_from: RunDir | None, writer: bool):
    """The GAN, restored from `resume_from`'s last checkpoint if any; and its step."""
    import keras

    import tensorflow as tf

    from training.checkpoint import restore_checkpoint
    from training.gan import build_gan
    if not acceleration.xla:
        # Without XLA, TensorFlow's threaded CPU kernels may add in any order, so two identical
        # runs drift apart; op determinism keeps them much closer, at no speed cost measured
        # on the DCGAN (tests/test_run.py holds a resumed run to 1e-4 without XLA).
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    gan = build_gan(cfg, seed, dist, ema, acceleration)
    last = resume_from.last_checkpoint() if resume_from else None
    if last is None:
        return gan, 0
    state = restore_checkpoint(gan, last.path)
    if writer:
        resume_from.truncate_metrics(last.step)
    click.echo(f"resuming {resume_from} from {last.name} (step {last.step})"
               + ("; the averaged generator starts here" if state["ema_started"] else ""), err=True)
    return gan, last.step


def _config_record(args: TrainArgs, cfg: GANConfig, seed: int, schedule: Schedule, ema: float,
                   acceleration: Acceleration, data) -> dict:
    import keras
    return {
        "arch": args.arch, "config": cfg.to_dict(), "seed": seed, "schedule": schedule.to_dict(),
        "ema": ema, "acceleration": acceleration.to_dict(),
        "data": None if data is None else {
            "source": _shareable(data.source), "sha256": data.sha256,
            # Export and evaluation score against this folder's test split by default.
            "dir": str(Path(args.data_dir).resolve()) if args.data_dir else None},
        "versions": {"keras": keras.__version__, "python": sys.version.split()[0]},
    }


def _shareable(source: str) -> str:
    """A data source ("cache:FOLDER", "npm:PACKAGE", ...) with a folder under the home folder
    written as ~/...: run records are committed and read on other machines."""
    kind, sep, where = source.partition(":")
    try:
        return f"{kind}{sep}~/{Path(where).relative_to(Path.home())}"
    except ValueError:  # not a folder under the home folder
        return source


def resume_command(arch: str, run: RunDir) -> str:
    """The command that continues `run`, ready to paste into a shell (paths may hold spaces)."""
    return f"python -m training.run --arch {arch} --run-dir {shlex.quote(str(run))} --resume"


def _fit(gan, cfg: GANConfig, run: RunDir, schedule: Schedule, start: int, data, seed: int,
         acceleration: Acceleration, args: TrainArgs, writer: bool) -> None:
    import tensorflow as tf

    from training.batches import real_batches
    from training.callbacks import EvaluateAndCheckpoint, Progress, StopOnNonFinite
    x_train, y_train = (None, None) if data is None else (data.x_train, data.y_train)
    bar = Progress(cfg.name, start, schedule.total, enabled=args.progress and writer)
    evaluation = EvaluateAndCheckpoint(
        cfg=cfg, run=run, schedule=schedule, start=start, x_train=x_train, y_train=y_train,
        seed=seed, acceleration=acceleration, eval_samples=args.eval_samples,
        data_dir=args.data_dir, writer=writer, progress=bar)
    resume_hint = resume_command(cfg.name, run)
    try:
        # StopOnNonFinite comes before the evaluation, so non-finite weights are never saved.
        gan.fit(real_batches(cfg, x_train, seed, start, schedule.total, y_train), epochs=1,
                steps_per_epoch=schedule.total - start, verbose=0, shuffle=False,
                callbacks=[bar, StopOnNonFinite(start), evaluation])
    except KeyboardInterrupt:
        raise GanEdgeError(f"interrupted at step {bar.step}; last checkpoint: "
                           f"{_last_checkpoint(run)}; continue with: {resume_hint}") from None
    except tf.errors.UnavailableError as e:
        if not is_multiworker(args.strategy):
            raise
        raise GanEdgeError(f"lost another process of the cluster at step {bar.step} "
                           f"({str(e).splitlines()[0][:100]}); last checkpoint: "
                           f"{_last_checkpoint(run)}; restart every process with: "
                           f"{resume_hint}") from None
    finally:
        bar.close()


def _last_checkpoint(run: RunDir) -> str:
    last = run.last_checkpoint()
    return last.describe() if last else "no checkpoint yet"


def _schedule(cfg: GANConfig, x_train, args: TrainArgs, saved) -> Schedule:
    # Article 004 calls its iterations epochs; for generated data an epoch is one step.
    spe = cfg.steps_per_epoch(len(x_train)) if x_train is not None else 1
    unit_steps = spe if cfg.unit == "epoch" else 1  # steps in one of the article's units
    # What is asked for now, else what the run being resumed kept to, else the article's.
    old = saved["schedule"] if saved else {}
    total = (args.steps if args.steps is not None
             else args.epochs * spe if args.epochs is not None
             else old.get("total_steps", cfg.length * unit_steps))
    eval_steps = (args.eval_every * unit_steps if args.eval_every is not None
                  else old.get("eval_every_steps", cfg.eval_every * unit_steps))
    # Epoch schedules evaluate rarely (every 10 DCGAN epochs is an hour here): add a resume
    # checkpoint every epoch, so a kill loses minutes. Iteration schedules evaluate often enough.
    save_steps = min(eval_steps, spe) if cfg.unit == "epoch" else eval_steps
    return Schedule(total, eval_steps, save_steps, spe)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--arch", default="mlp-mnist", show_default=True,
              help=f"Which seed system to train: {', '.join(REGISTRY)}.")
@click.option("--epochs", type=int, help="Train this many epochs (train size // batch steps each).")
@click.option("--steps", type=int, help="Train this many steps instead (tests, smoke runs).")
@click.option("--eval-every", type=int,
              help="Evaluate and checkpoint every K of the article's units (epochs or iterations).")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Run folder [default: runs/<arch>-<timestamp>; with --resume the newest].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--data-dir", type=click.Path(), help="Folder with the data set's IDX or .npz files.")
@click.option("--eval-samples", default=10_000, show_default=True, type=int,
              help="Generated samples scored at each evaluation.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="tf.distribute strategy: mirrored = every GPU of this host (else every "
                   "logical CPU), multiworker = the cluster in TF_CONFIG, auto = multiworker "
                   "under TF_CONFIG, else mirrored with 2+ devices, else one device.")
@click.option("--cpu-devices", type=int,
              help="Split the CPU into N logical devices (tries mirrored training without GPUs).")
@click.option("--xla/--no-xla", default=None,
              help="Compile the train step, and the generator that evaluations score, with XLA "
                   "(one replica only; float rounding differs slightly from plain TensorFlow's); "
                   "config.json records the choice, which training.evaluate follows "
                   "[default: on, but off for the DCGANs on AVX-512 CPUs, where XLA made their "
                   "step slower].")
@click.option("--ema", type=float,
              help=f"Decay of the averaged generator kept beside the trained one; 0 = none "
                   f"[default: {EMA_DECAY}, or the run's own with --resume].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(quiet, **options):
    """Train a GAN from the articles, with evaluation, checkpoints and plots in the run folder.

    Defaults follow the article of the chosen --arch (batch, optimiser, schedule).
    """
    click.echo(str(train(progress=not quiet, **options)))


if __name__ == "__main__":
    run_cli(main)
