"""Train-step throughput: the project's compiled two-tape step vs the articles' loop.

The articles' loop (per step): generator.predict for the fakes, discriminator.train_on_batch,
then train_on_batch of a combined model whose discriminator was set trainable = False. Same
models, same batch sizes; the two contenders alternate in rounds so machine drift hits both.
Under Keras 3 the articles' discriminator update has no trainable weights (docs/training.md), so
their loop does less work per step than it should: the ratio understates our advantage.
"""
from __future__ import annotations

import time

import click
import numpy as np

from runtime.core.command import run_cli
from training.acceleration import LAST_CONV, REFORMULATIONS, Acceleration


def _project_step(cfg, x_real, acceleration: Acceleration):
    import tensorflow as tf

    from training.gan import build_gan
    gan = build_gan(cfg, acceleration=acceleration)
    step_fn = tf.function(gan.train_step, jit_compile=gan.jit_compile)  # what fit() compiles
    real = tf.constant(x_real[: cfg.d_half_batch])
    if cfg.conditional:  # a batch of a conditional system carries its class labels
        real = (real, tf.range(cfg.d_half_batch, dtype=tf.int32) % cfg.n_classes)

    def step():
        out = step_fn(real)
        out["g_loss"].numpy()  # wait for the step to finish
    return step


def _article_step(cfg, x_real):
    import keras

    from training.models import build_discriminator, build_generator
    g, d = build_generator(cfg), build_discriminator(cfg)
    d.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(cfg.learning_rate,
                                                                         beta_1=cfg.beta_1))
    d.trainable = False
    combined = keras.Sequential([g, d])
    combined.compile(loss="binary_crossentropy",
                     optimizer=keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1))
    rng = np.random.default_rng(0)
    half = cfg.d_half_batch

    def step():
        idx = rng.integers(0, len(x_real), half)
        fake = g.predict(rng.standard_normal((half, cfg.latent_dim)), verbose=0)
        y_real, y_fake = np.full((half, 1), cfg.real_label), np.zeros((half, 1))
        if cfg.d_update == "split":  # articles 001-004: real and fake in two calls
            d.train_on_batch(x_real[idx], y_real)
            d.train_on_batch(fake, y_fake)
        else:  # article 000: one stacked batch
            d.train_on_batch(np.concatenate([x_real[idx], fake]), np.concatenate([y_real, y_fake]))
        combined.train_on_batch(rng.standard_normal((cfg.g_batch, cfg.latent_dim)),
                                np.ones((cfg.g_batch, 1)))
    return step


def _alternate(contenders: dict, steps: int, rounds: int) -> dict:
    """Median seconds per step of each contender, in alternating rounds (after a warm-up that
    traces them), so machine drift hits all of them."""
    for step in contenders.values():
        for _ in range(3):
            step()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: float(np.median(t)) for name, t in times.items()}


def _real(cfg):
    lo, hi = cfg.output_range
    return np.random.default_rng(0).uniform(lo, hi, (1024, *cfg.sample_shape)).astype("float32")


def measure(arch: str, steps: int, rounds: int = 3) -> dict:
    """Seconds per step for both loops, medians over alternating rounds of `steps` steps; the
    project's step as training.run would run it on this machine (Acceleration.decide)."""
    from training.config import get_config
    cfg = get_config(arch)
    x_real = _real(cfg)
    med = _alternate({"project": _project_step(cfg, x_real, Acceleration.decide(cfg)),
                      "article": _article_step(cfg, x_real)}, steps, rounds)
    return {"arch": arch, "steps_per_round": steps, "rounds": rounds,
            "project_s_per_step": med["project"], "article_s_per_step": med["article"],
            "speedup": med["article"] / med["project"]}


def measure_xla(arch: str, steps: int, rounds: int = 3) -> dict:
    """Seconds per step of the project's step with and without XLA, alternating rounds: the
    measurement behind Acceleration.decide's choice of XLA."""
    from training.config import get_config
    cfg = get_config(arch)
    x_real = _real(cfg)
    med = _alternate({"xla": _project_step(cfg, x_real, Acceleration.decide(cfg, xla=True)),
                      "no_xla": _project_step(cfg, x_real, Acceleration.decide(cfg, xla=False))},
                     steps, rounds)
    return {"arch": arch, "xla_s_per_step": med["xla"], "no_xla_s_per_step": med["no_xla"],
            "default": "xla" if Acceleration.decide(cfg).xla else "no_xla"}


# The generator's layers that the train step may compute another way, as the report names them.
CHOICES = {"both reformulated": REFORMULATIONS, "last conv only": (LAST_CONV,), "Keras layers": ()}


def measure_reformulation(arch: str, steps: int, rounds: int = 3, xla: bool | None = None) -> dict:
    """Seconds per step with both kinds of the generator's slow layers reformulated
    (training/reformulation.py), with only its last conv, and with Keras's own layers,
    alternating rounds."""
    from training.config import get_config
    cfg = get_config(arch)
    x_real = _real(cfg)
    chosen = Acceleration.decide(cfg, xla)
    med = _alternate({name: _project_step(cfg, x_real, Acceleration(chosen.xla, kinds))
                      for name, kinds in CHOICES.items()}, steps, rounds)
    default = next(name for name, kinds in CHOICES.items() if kinds == chosen.reformulated)
    return {"arch": arch, "xla": chosen.xla, "s_per_step": med, "default": default}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Report file  [default: benchmarks/results/train-step-<avx2|avx512>.md]")
def main(out):
    """XLA or not per system, and what the DCGAN generator's reformulated layers buy with XLA
    and without (the measurements behind Acceleration.decide): writes a Markdown report. Stop
    other training first (minutes)."""
    from pathlib import Path

    from runtime.core.cpu import cpu_name, has_avx512
    from runtime.core.files import check_target, check_writable_dir, write_text_atomic
    isa = "avx512" if has_avx512() else "avx2"
    path = Path(out or f"benchmarks/results/train-step-{isa}.md")
    check_target(path)  # before the minutes of work, not after them
    check_writable_dir(path.parent, "--out's folder")
    xla_rows = [measure_xla(arch, steps) for arch, steps in
                (("mlp-mnist", 50), ("mlp-fashion", 20), ("dcgan-mnist", 5), ("cgan-mnist", 20))]
    reform_rows = [measure_reformulation("dcgan-mnist", 5, xla=x) for x in (True, False)]
    lines = [f"# Train step ({isa})", "",
             f"Made by `python -m benchmarks.train_step{f' --out {out}' if out else ''}` on "
             f"{cpu_name()} ({isa}), "
             f"{time.strftime('%Y-%m-%d')}: medians of 3 alternating rounds per table.", "",
             "## With and without XLA", "",
             "| arch | with XLA | without | default |", "|---|---|---|---|"]
    for r in xla_rows:
        lines.append(f"| {r['arch']} | {_ms(r['xla_s_per_step'])} | "
                     f"{_ms(r['no_xla_s_per_step'])} | {r['default'].replace('_', ' ')} |")
    lines += ["", "## The DCGAN generator's slow layers: reformulated (training/reformulation.py) "
              "or Keras's own", "",
              f"| arch | XLA | {' | '.join(CHOICES)} | default |", "|---|---|---|---|---|---|"]
    for r in reform_rows:
        lines.append(f"| {r['arch']} | {'yes' if r['xla'] else 'no'} | "
                     + " | ".join(_ms(r["s_per_step"][name]) for name in CHOICES)
                     + f" | {r['default']} |")
    write_text_atomic(path, "\n".join(lines) + "\n")
    click.echo(path)


if __name__ == "__main__":
    run_cli(main)
