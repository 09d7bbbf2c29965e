"""python -m training.run: train one of the registry's GANs with periodic evaluation.

A thin CLI over `train()`; see `python -m training.run --help`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
from pathlib import Path

import click

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.samples import POINT
from training.config import EMA_DECAY, REGISTRY, GANConfig, Schedule, get_config
from training.distribute import (STRATEGIES, cluster_size, describe, is_multiworker, is_writer,
                                 make_strategy)
from training.rundir import RunDir

MIN_EVAL_SAMPLES, MAX_EVAL_SAMPLES = 100, 100_000


def train(arch: str = "mlp-mnist", *, epochs: int | None = None, steps: int | None = None,
          eval_every: int | None = None, run_dir: str | Path | None = None, seed: int = 0,
          resume: bool = False, data_dir: str | Path | None = None, progress: bool = True,
          eval_samples: int = 10_000, strategy: str = "auto", cpu_devices: int | None = None,
          xla: bool | None = None, ema: float | None = None,
          variant: dict | None = None) -> Path:
    """Train `arch` to its article's schedule (or `epochs`/`steps`) under the tf.distribute
    `strategy` (see training.distribute), keeping an averaged generator with decay `ema` (0:
    none; None: the run's own when resuming, else EMA_DECAY); return the run folder.
    `variant`: GANConfig fields that replace the registry's (benchmarks.ablation's variants;
    config.json records the config trained)."""
    cfg = _check_arguments(arch, epochs, steps, eval_every, eval_samples, cpu_devices, ema)
    if variant:
        cfg = dataclasses.replace(cfg, **variant)
    writer = is_writer(strategy)
    run = RunDir(run_dir) if run_dir else (RunDir.newest(arch) if resume else RunDir.new(arch))
    created = not run.path.exists()
    run.prepare(arch, resume, writer)
    try:
        with run.lock() if writer else contextlib.nullcontext():
            return _train(run, arch, cfg, epochs=epochs, steps=steps, eval_every=eval_every,
                          seed=seed, resume=resume, data_dir=data_dir, progress=progress,
                          eval_samples=eval_samples, strategy=strategy, cpu_devices=cpu_devices,
                          xla=xla, ema=ema, writer=writer)
    except BaseException:
        if created and writer:
            run.remove_if_unused()  # a run that failed before it began leaves no folder behind
        raise


def _train(run: RunDir, arch: str, cfg: GANConfig, *, epochs, steps, eval_every, seed, resume,
           data_dir, progress, eval_samples, strategy, cpu_devices, xla, ema, writer) -> Path:
    """train() once the run folder is checked and held."""
    # Read again under the lock: another process may have written it since the check.
    saved = run.prepare(arch, resume, writer)
    if writer:
        for left in run.remove_stale_temps():
            click.echo(f"removed {left}, left by a training process that was killed", err=True)

    dist = _start_strategy(strategy, cpu_devices, cfg)  # before anything else touches a device
    from training.data import load_images
    data = None if cfg.kind == POINT else load_images(cfg.dataset, data_dir)
    x_train = None if data is None else data.x_train
    y_train = None if data is None else data.y_train
    seed = saved["seed"] if saved else seed
    if ema is None:
        ema = (saved or {}).get("ema", EMA_DECAY if saved is None else 0.0)
    schedule = _schedule(cfg, x_train, epochs, steps, eval_every, saved)
    gan, start = _build_and_restore(cfg, seed, dist, xla, ema, run if resume else None, writer)
    if start > schedule.total:  # before config.json is touched: its schedule stays as it was
        raise GanEdgeError(f"{run} is at step {start}, past the {schedule.total} steps asked for; "
                           f"ask for more (--steps/--epochs), or start a new run")
    if start == schedule.total:
        click.echo(f"{run} is already complete ({start}/{schedule.total} steps)", err=True)
        return run.path
    if writer and (saved is None or epochs or steps or eval_every or ema != saved.get("ema", 0.0)):
        run.write_config(_config_record(arch, cfg, seed, schedule, ema, data, data_dir))
    _fit(gan, cfg, run, schedule, start, x_train, y_train, seed, progress=progress and writer,
         eval_samples=eval_samples, data_dir=data_dir, writer=writer,
         multiworker=is_multiworker(strategy))
    return run.path


def _check_arguments(arch, epochs, steps, eval_every, eval_samples, cpu_devices, ema) -> GANConfig:
    for name, value in (("--epochs", epochs), ("--steps", steps), ("--eval-every", eval_every),
                        ("--cpu-devices", cpu_devices)):
        if value is not None and value <= 0:
            raise GanEdgeError(f"{name} must be a positive integer, got {value}")
    if not MIN_EVAL_SAMPLES <= eval_samples <= MAX_EVAL_SAMPLES:
        raise GanEdgeError(f"--eval-samples must be between {MIN_EVAL_SAMPLES} and "
                           f"{MAX_EVAL_SAMPLES:,} (the scores need a few hundred samples to mean "
                           f"anything), got {eval_samples}")
    if epochs is not None and steps is not None:
        raise GanEdgeError("pass --epochs or --steps, not both")
    if ema is not None and not 0 <= ema < 1:
        raise GanEdgeError(f"--ema must be in [0, 1) (0 turns the average off), got {ema}")
    try:
        return get_config(arch)
    except ValueError as e:
        raise GanEdgeError(str(e)) from None


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


def _build_and_restore(cfg: GANConfig, seed: int, dist, xla: bool | None, ema: float,
                       resume_from: RunDir | None, writer: bool):
    """The GAN, restored from `resume_from`'s last checkpoint if any; and its step."""
    import keras

    import tensorflow as tf

    from training.checkpoint import restore_checkpoint
    from training.gan import build_gan
    if not (cfg.xla_by_default if xla is None else xla) or dist.num_replicas_in_sync > 1:
        # Without XLA, TensorFlow's threaded CPU kernels may add in any order, so two identical
        # runs drift apart; op determinism keeps them much closer, at no speed cost measured
        # on the DCGAN (tests/test_run.py holds a resumed run to 1e-4 without XLA).
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    gan = build_gan(cfg, seed, dist, xla, ema)
    last = resume_from.last_checkpoint() if resume_from else None
    if last is None:
        return gan, 0
    state = restore_checkpoint(gan, last.path)
    if writer:
        resume_from.truncate_metrics(last.step)
    click.echo(f"resuming {resume_from} from {last.name} (step {last.step})"
               + ("; the averaged generator starts here" if state["ema_started"] else ""), err=True)
    return gan, last.step


def _config_record(arch, cfg: GANConfig, seed: int, schedule: Schedule, ema: float, data,
                   data_dir) -> dict:
    import keras
    return {
        "arch": arch, "config": cfg.to_dict(), "seed": seed, "schedule": schedule.to_dict(),
        "ema": ema,
        "data": None if data is None else {
            "source": data.source, "sha256": data.sha256,
            # Export and evaluation score against this folder's test split by default.
            "dir": str(Path(data_dir).resolve()) if data_dir else None},
        "versions": {"keras": keras.__version__, "python": sys.version.split()[0]},
    }


def resume_command(arch: str, run: RunDir) -> str:
    """The command that continues `run`, ready to paste into a shell (paths may hold spaces)."""
    return f"python -m training.run --arch {arch} --run-dir {shlex.quote(str(run))} --resume"


def _fit(gan, cfg: GANConfig, run: RunDir, schedule: Schedule, start: int, x_train, y_train,
         seed: int, *,
         progress: bool, eval_samples: int, data_dir, writer: bool, multiworker: bool) -> None:
    import tensorflow as tf

    from training.batches import real_batches
    from training.callbacks import EvaluateAndCheckpoint, Progress, StopOnNonFinite
    bar = Progress(cfg.name, start, schedule.total, enabled=progress)
    evaluation = EvaluateAndCheckpoint(
        cfg=cfg, run=run, schedule=schedule, start=start, x_train=x_train, y_train=y_train,
        seed=seed,
        eval_samples=eval_samples, data_dir=data_dir, writer=writer, progress=bar)
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
        if not multiworker:
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


def _schedule(cfg: GANConfig, x_train, epochs, steps, eval_every, saved) -> Schedule:
    # Article 004 calls its iterations epochs; for generated data an epoch is one step.
    spe = cfg.steps_per_epoch(len(x_train)) if x_train is not None else 1
    unit_steps = spe if cfg.unit == "epoch" else 1  # steps in one of the article's units
    old = (saved or {}).get("schedule")
    if steps is not None:
        total = steps
    elif epochs is not None:
        total = epochs * spe
    elif old:
        total = old["total_steps"]
    else:
        total = cfg.length * unit_steps
    if eval_every is not None:
        eval_steps = eval_every * unit_steps
    elif old:
        eval_steps = old["eval_every_steps"]
    else:
        eval_steps = cfg.eval_every * unit_steps
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
              help="Compile the train step with XLA (one replica only; its float rounding differs "
                   "slightly from plain TensorFlow's) [default: on, but off for the DCGAN on AVX-512 "
                   "CPUs, where XLA made its step twice as slow].")
@click.option("--ema", type=float,
              help=f"Decay of the averaged generator kept beside the trained one; 0 = none "
                   f"[default: {EMA_DECAY}, or the run's own with --resume].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(arch, epochs, steps, eval_every, run_dir, seed, resume, data_dir, eval_samples, strategy,
         cpu_devices, xla, ema, quiet):
    """Train a GAN from the articles, with evaluation, checkpoints and plots in the run folder.

    Defaults follow the article of the chosen --arch (batch, optimiser, schedule).
    """
    out = train(arch, epochs=epochs, steps=steps, eval_every=eval_every, run_dir=run_dir,
                seed=seed, resume=resume, data_dir=data_dir, progress=not quiet,
                eval_samples=eval_samples, strategy=strategy, cpu_devices=cpu_devices, xla=xla,
                ema=ema)
    click.echo(str(out))


if __name__ == "__main__":
    run_cli(main)
