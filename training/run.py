"""python -m training.run: train one of the registry's GANs with periodic evaluation.

A thin CLI over `train()`; see `python -m training.run --help`.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from runtime.cli_util import run_cli
from runtime.errors import GanEdgeError
from training.config import REGISTRY, GANConfig, get_config
from training.distribute import (STRATEGIES, cluster_size, describe, is_multiworker, is_writer,
                                 make_strategy)


def _resolve_run_dir(arch: str, run_dir: str | None, resume: bool) -> Path:
    if run_dir:
        return Path(run_dir)
    if resume:
        runs = sorted(Path("runs").glob(f"{arch}-*"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise GanEdgeError(f"--resume found no runs/{arch}-* folder; pass --run-dir")
        return runs[-1]
    return Path("runs") / f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}"


def _prepare_run_dir(run_dir: Path, arch: str, resume: bool, writer: bool = True) -> dict | None:
    """Check the folder is ours to use; return its saved config.json when resuming.

    Every process of a multi-worker run makes the same checks, so that a bad folder stops them
    all (no race: the chief waits for every worker to join before it writes anything); only
    the writer creates the folder.
    """
    config_file = run_dir / "config.json"
    saved = None
    if config_file.is_file():
        try:
            saved = json.loads(config_file.read_text())
        except ValueError:
            raise GanEdgeError(f"{config_file} is corrupt; fix it or use a new --run-dir") from None
        if saved.get("arch") != arch:
            raise GanEdgeError(f"{run_dir} belongs to arch {saved.get('arch')!r}, not {arch!r}; "
                               f"pass --arch {saved.get('arch')} or a new --run-dir")
        if not resume:
            raise GanEdgeError(f"{run_dir} already holds a run; add --resume to continue it or "
                               f"pass a new --run-dir")
    elif resume:
        raise GanEdgeError(f"{run_dir} has no config.json, so there is nothing to resume; drop "
                           f"--resume to start a new run there")
    if not writer:
        return saved
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise GanEdgeError(f"cannot write to run dir {run_dir} ({e.strerror}); pass a writable "
                           f"--run-dir") from None
    return saved


def train(arch: str = "mlp-mnist", epochs: int | None = None, steps: int | None = None,
          eval_every: int | None = None, run_dir: str | Path | None = None, seed: int = 0,
          resume: bool = False, data_dir: str | Path | None = None,
          progress: bool = True, eval_samples: int = 10_000, strategy: str = "auto",
          cpu_devices: int | None = None, xla: bool = True) -> Path:
    """Train `arch` to its article's schedule (or `epochs`/`steps`) under the tf.distribute
    `strategy` (see training.distribute); return the run folder."""
    for name, value in (("--epochs", epochs), ("--steps", steps), ("--eval-every", eval_every),
                        ("--eval-samples", eval_samples), ("--cpu-devices", cpu_devices)):
        if value is not None and value <= 0:
            raise GanEdgeError(f"{name} must be a positive integer, got {value}")
    if epochs is not None and steps is not None:
        raise GanEdgeError("pass --epochs or --steps, not both")
    try:
        cfg = get_config(arch)
    except ValueError as e:
        raise GanEdgeError(str(e)) from None
    multiworker, writer = is_multiworker(strategy), is_writer(strategy)
    run_dir = _resolve_run_dir(arch, str(run_dir) if run_dir else None, resume)
    saved = _prepare_run_dir(run_dir, arch, resume, writer)

    # Heavy imports only once the arguments are known to be good.
    import keras
    import tensorflow as tf

    from training import checkpoint as ckpt
    from training.callbacks import (EvaluationCallback, NonFiniteLoss, read_metrics,
                                    write_metrics)
    from training.data import load_images
    from training.gan import GAN
    from training.pipeline import real_batches
    from runtime.files import write_text_atomic

    if multiworker:
        # TensorFlow blocks here, deaf to Ctrl-C, until every process has started.
        click.echo(f"waiting for all {cluster_size()} processes of TF_CONFIG to join; if one of "
                   f"them has failed, stop this one with: kill {os.getpid()}", err=True)
    dist = make_strategy(strategy, cpu_devices)  # before anything else touches a device
    replicas = dist.num_replicas_in_sync
    for name, batch in (("discriminator half batch", cfg.d_half_batch),
                        ("generator batch", cfg.g_batch)):
        if batch % replicas:
            raise GanEdgeError(f"the {name} of {arch} ({batch}) does not split evenly over "
                               f"{replicas} replicas; use a replica count that divides it")
    if replicas > 1:
        click.echo(f"training on {describe(dist)}", err=True)

    data = None if cfg.dataset == "x_squared" else load_images(cfg.dataset, data_dir)
    x_train = None if data is None else data.x_train
    if saved is not None:
        seed = saved["seed"]
    schedule = _schedule(cfg, x_train, epochs, steps, eval_every, saved)

    keras.utils.set_random_seed(seed)
    gan = GAN.from_config(cfg, seed, dist, xla)

    start = 0
    if resume:
        done = ckpt.list_checkpoints(run_dir)
        if done:
            ckpt.restore_checkpoint(gan, done[-1].path)
            start = done[-1].step
            if writer:
                write_metrics(run_dir, [r for r in read_metrics(run_dir) if r["step"] <= start])
            click.echo(f"resuming {run_dir} from {done[-1].name} (step {start})", err=True)
    if writer and (saved is None or epochs or steps or eval_every):
        write_text_atomic(run_dir / "config.json", json.dumps({
            "arch": arch, "config": cfg.to_dict(), "seed": seed, "schedule": schedule.to_dict(),
            "data": None if data is None else {
                "source": data.source, "sha256": data.sha256,
                # Export and evaluation score against this folder's test split by default.
                "dir": str(Path(data_dir).resolve()) if data_dir else None},
            "versions": {"keras": keras.__version__, "python": sys.version.split()[0]},
        }, indent=2))

    if start >= schedule.total:
        click.echo(f"{run_dir} is already complete ({start}/{schedule.total} steps)", err=True)
        return run_dir

    callback = EvaluationCallback(cfg, run_dir, schedule, start, x_train, seed,
                                  progress and writer, eval_samples, data_dir, writer)
    dataset = real_batches(cfg, x_train, seed, start, schedule.total)
    resume_hint = f"python -m training.run --arch {arch} --run-dir {run_dir} --resume"
    try:
        gan.fit(dataset, epochs=1, steps_per_epoch=schedule.total - start, verbose=0, shuffle=False,
                callbacks=[callback])
    except NonFiniteLoss as e:
        raise GanEdgeError(str(e)) from None
    except KeyboardInterrupt:
        callback.on_train_end()
        raise GanEdgeError(f"interrupted at step {callback.step}; last checkpoint: "
                           f"{_last_checkpoint(run_dir)}; continue with: {resume_hint}") from None
    except tf.errors.UnavailableError as e:
        if not multiworker:
            raise
        callback.on_train_end()
        raise GanEdgeError(f"lost another process of the cluster at step {callback.step} "
                           f"({str(e).splitlines()[0][:100]}); last checkpoint: "
                           f"{_last_checkpoint(run_dir)}; restart every process with: "
                           f"{resume_hint}") from None
    return run_dir


def _last_checkpoint(run_dir: Path) -> str:
    from training import checkpoint as ckpt
    last = ckpt.list_checkpoints(run_dir)
    return f"{last[-1].name} (step {last[-1].step})" if last else "no checkpoint yet"


def _schedule(cfg: GANConfig, x_train, epochs, steps, eval_every, saved):
    from training.callbacks import Schedule

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
@click.option("--seed", default=0, show_default=True, type=int)
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
@click.option("--xla/--no-xla", default=True, show_default=True,
              help="Compile the train step with XLA (one replica only; its float rounding differs "
                   "slightly from plain TensorFlow's).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def main(arch, epochs, steps, eval_every, run_dir, seed, resume, data_dir, eval_samples, strategy,
         cpu_devices, xla, quiet):
    """Train a GAN from the articles, with evaluation, checkpoints and plots in the run folder.

    Defaults follow the article of the chosen --arch (batch, optimiser, schedule).
    """
    out = train(arch, epochs, steps, eval_every, run_dir, seed, resume, data_dir,
                progress=not quiet, eval_samples=eval_samples, strategy=strategy,
                cpu_devices=cpu_devices, xla=xla)
    click.echo(str(out))


if __name__ == "__main__":
    run_cli(main)
