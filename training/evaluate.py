"""Score generators with the quality metrics: during training, on demand, and for export.

    python -m training.evaluate --run runs/dcgan-mnist-...            # every checkpoint
    python -m training.evaluate --run DIR --checkpoint epoch_040      # one
    python -m training.evaluate --onnx runs/.../export/generator.int8.onnx
    python -m training.evaluate --run DIR --write    # add the scores to metrics.jsonl, best.json
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.samples import POINT
from runtime.core.scores import ImageScores, PointScores, RowScores, Scores
from runtime.core.spec import Spec
from training.config import GANConfig, get_config
from training.quality import function_metrics, image_metrics
from training.rundir import RunDir

EVAL_SEED = 1234  # every checkpoint is scored on the same latents


def eval_latents(cfg: GANConfig | Spec, n: int, seed: int = EVAL_SEED) -> np.ndarray:
    """The evaluation latents: from a registry system's normal prior, or a Spec's own (an
    exported generator that gan-edge did not train may draw from a uniform one)."""
    if isinstance(cfg, Spec):
        return cfg.latents(np.random.default_rng(seed), n)
    return np.random.default_rng(seed).standard_normal((n, cfg.latent_dim)).astype("float32")


def eval_labels(cfg: GANConfig | Spec, n: int) -> np.ndarray | None:
    """The class asked of each evaluation sample of a conditional system: 0, 1, .., 9, 0, ..
    (every class equally often, as labels drawn uniformly would be on average); None for an
    unconditional one."""
    return (np.arange(n) % cfg.n_classes).astype("int32") if cfg.conditional else None


def score_samples(cfg: GANConfig | Spec, samples: np.ndarray, data_dir=None,
                  labels: np.ndarray | None = None) -> Scores:
    """Quality metrics of generated samples (in the generator's output range); with the
    `labels` they were asked for, also the per-class accuracy. `cfg`: a registry system, or
    the Spec of an exported generator of a data set that a classifier scores."""
    if cfg.kind == POINT:
        from training.data import x_squared_samples
        real = x_squared_samples(np.random.default_rng(EVAL_SEED + 1), len(samples))
        return PointScores(**function_metrics(samples, real))
    from training.classifier import load_classifier
    classifier = load_classifier(cfg.dataset)
    lo, hi = cfg.output_range
    probs, feats = classifier.predict((samples - lo) / (hi - lo))
    return ImageScores(**image_metrics(probs, feats,
                                       classifier.reference_features(cfg.dataset, data_dir),
                                       labels))


def generate(predict, cfg: GANConfig | Spec, n: int, batch: int = 1000) -> np.ndarray:
    """`n` samples from the evaluation latents (and labels): predict(z) or predict(z, labels)."""
    z, labels = eval_latents(cfg, n), eval_labels(cfg, n)
    return np.concatenate([
        np.asarray(predict(z[i:i + batch]) if labels is None
                   else predict(z[i:i + batch], labels[i:i + batch]))
        for i in range(0, n, batch)])


def score_generated(predict, cfg: GANConfig | Spec, n: int, data_dir=None) -> Scores:
    """generate() then score_samples(), with the labels the samples were asked for."""
    return score_samples(cfg, generate(predict, cfg, n), data_dir, eval_labels(cfg, n))


def score_checkpoint(run: RunDir, name: str, n: int, data_dir=None) -> RowScores:
    """Scores of one checkpoint's generator (and of its averaged one), against the test split
    of `data_dir` (default: the run's)."""
    import keras

    from training.acceleration import Acceleration
    from training.reformulation import sampler
    cfg = run.gan_config()
    acceleration = Acceleration.of_run(run)  # as the run's training scored
    checkpoint = run.checkpoint(name)
    if "raw" not in checkpoint.weights():  # the averaged one alone has no row to go in
        raise GanEdgeError(f"{checkpoint.generator_file()} is missing, so {name} cannot be "
                           f"scored; pass --checkpoint with another of the run's checkpoints")
    scores = {}
    for weights in checkpoint.weights():
        source = checkpoint.generator_file(weights)
        try:
            generator = keras.saving.load_model(source, compile=False)
        except Exception as e:  # truncated, not a .keras file, another model's
            raise GanEdgeError(f"cannot load {source} ({type(e).__name__}); the checkpoint is "
                               f"damaged: pass --checkpoint with another of the run's "
                               f"checkpoints") from None
        predict = sampler(generator, acceleration)
        scores[weights] = score_generated(predict, cfg, n, data_dir or run.data_dir())
    return RowScores(scores["raw"], scores.get("ema"))


def score_onnx(path: Path, n: int, data_dir=None) -> Scores:
    from runtime.generator import Generator
    gen = Generator.from_file(path, threads=0)
    try:
        cfg = get_config(gen.arch)
    except ValueError as e:  # metadata of another version, or edited
        raise GanEdgeError(f"{path}: {e} (its gan.arch metadata); score a file that this "
                           f"version's ganexport wrote") from None
    if (gen.info.latent_dim, tuple(gen.info.sample_shape)) != (cfg.latent_dim, cfg.sample_shape):
        raise GanEdgeError(f"{path} says it is {cfg.name}, but takes {gen.info.latent_dim} latents "
                           f"to {tuple(gen.info.sample_shape)} samples, where {cfg.name} takes "
                           f"{cfg.latent_dim} to {cfg.sample_shape}; export it again")
    return score_generated(gen.run, cfg, n, data_dir)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="A run folder.")
@click.option("--checkpoint", "names", multiple=True, help="Checkpoint(s) to score [all].")
@click.option("--onnx", "onnx_file", type=click.Path(dir_okay=False), help="Score an ONNX file.")
@click.option("--n", "n", default=10_000, show_default=True, type=click.IntRange(100, 100_000),
              help="Generated samples per score.")
@click.option("--write", is_flag=True, help="Merge the scores into metrics.jsonl and best.json.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Folder with the data set's files [default: the run's own, else the "
                   "standard data set].")
def main(run_dir, names, onnx_file, n, write, data_dir):
    """Score generators with the objective quality metrics (classifier score, Frechet distance,
    class coverage, confident share; energy distance for gan-1d)."""
    if onnx_file:
        click.echo(f"{onnx_file}: " + score_onnx(Path(onnx_file), n, data_dir).format())
        return
    if not run_dir:
        raise GanEdgeError("pass --run DIR or --onnx FILE")
    run = RunDir(run_dir)
    known = [c.name for c in run.eval_checkpoints()]
    if not known:
        raise GanEdgeError(f"{run} has no evaluation checkpoints")
    for name in names:
        if name not in known:
            raise GanEdgeError(f"no checkpoint {name} in {run}; it has: {', '.join(known)}")
    rows = run.read_metrics()
    checkpoints = {c.name: c for c in run.eval_checkpoints()}
    for name in names or known:
        scores = score_checkpoint(run, name, n, data_dir)
        click.echo(f"{name}: " + scores.format())
        row = next((r for r in rows if r.get("checkpoint") == name), None)
        if row is None:  # a run whose metrics.jsonl lost this row (or the whole file)
            c = checkpoints[name]
            row = {"step": c.step, "epoch": c.epoch, "checkpoint": name}
            rows = sorted([*rows, row], key=lambda r: r["step"])
        row.update(scores.to_row())
    if write:
        run.write_metrics(rows)
        best = run.write_best(rows)
        if best:
            click.echo(f"best: {best['checkpoint']}")

if __name__ == "__main__":
    run_cli(main)
