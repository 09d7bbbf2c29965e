"""The registry of named GAN systems: one frozen config per article, and gan-edge's own.

For the articles' systems every number is the article's (docs/training.md's registry table
lists the articles); where we had to deviate, the field says so and `deviations` repeats it for
docs/training.md (written by `make docs`). gan-edge's own systems (`article` OWN) are
class-conditional; their recipe is justified by the ablation in benchmarks/results/ablation-*.md
(`python -m benchmarks.ablation`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from runtime.core.artifacts import format_checkpoint
from runtime.core.samples import kind_of

# Decay of the averaged generator (EMA) that every run keeps unless --ema says otherwise.
# benchmarks/results/ema-mlp-smooth-mnist.md: the average beats the trained generator at every
# evaluation from epoch 10 (epoch 50: classifier score 8.61 vs 8.37, Frechet 9.5 vs 17.3);
# 0.999 and 0.9999 agree within 0.01 there, and the smaller keeps following longer runs.
EMA_DECAY = 0.999

OWN = "gan-edge"  # the `article` of a system that no article describes


@dataclass(frozen=True)
class GANConfig:
    name: str
    article: str
    dataset: str                      # "mnist" | "fashion_mnist" | "x_squared"
    family: str                       # "dcgan" | "mlp" | "cdcgan": which builder in training.models
    latent_dim: int
    sample_shape: tuple[int, ...]     # one generated sample, e.g. (28, 28, 1)
    output_range: tuple[float, float]  # range of real data and of the generator's output
    # The hidden layers' widths: units of each Dense layer for "mlp", filters (channels) of each
    # (transposed) conv for "dcgan" and "cdcgan".
    g_widths: tuple[int, ...]
    d_widths: tuple[int, ...]
    hidden_activation: str = "leaky_relu"  # "leaky_relu" | "relu"
    g_alpha: float = 0.2              # LeakyReLU negative slope
    d_alpha: float = 0.2
    d_dropout: float = 0.0
    g_kernel_init: str | None = None  # None keeps Keras's default (glorot_uniform)
    d_kernel_init: str | None = None
    g_out_activation: str = "tanh"
    # Optimiser: Adam for both networks, as in every article.
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    # Batches: the discriminator sees `d_half_batch` real + `d_half_batch` fake samples per
    # step, the generator `g_batch` latents per step.
    d_half_batch: int = 64
    g_batch: int = 128
    real_label: float = 1.0           # 0.9 = one-sided label smoothing
    # "joint": one discriminator update on the real+fake batch (article 000's vstack);
    # "split": one update on the real half, then one on the fake half (articles 001-004's two
    # train_on_batch calls), so the discriminator takes two optimiser steps per step.
    d_update: str = "split"
    # Schedule, in the article's unit. An "epoch" is `train_size // epoch_batch` steps, the
    # article's int(X.shape[0] / n_batch).
    unit: str = "epoch"               # "epoch" | "iteration"
    length: int = 100                 # epochs or iterations
    eval_every: int = 10              # in `unit`s
    epoch_batch: int = 256            # the article's n_batch: sets steps per epoch, no batch
    recommended: str = ""             # the checkpoint the article recommends or ends on
    grid: tuple[int, int] = (10, 10)  # the article's sample grid
    grid_inverted: bool = False       # article 000 plots with cmap='gray_r'
    param_counts: tuple[int, int] = (0, 0)  # (G, D) as the article's Keras code builds them
    deviations: tuple[str, ...] = field(default=())
    # Class-conditional systems: the generator takes (z, label) and the discriminator
    # (x, label); 0 = unconditional (the articles' systems).
    n_classes: int = 0
    # The conditional recipe's switches (benchmarks/ablation.py turns each off in turn):
    # "projection" (Miyato and Koyama 2018: D's output adds <embed(label), features>) or
    # "concat" (one-hot label maps as extra input channels of D, as the keras-io example);
    # batch normalisation in the generator; the label embedding's width in the generator.
    d_conditioning: str = "projection"
    g_batchnorm: bool = True
    label_embedding: int = 32

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    @property
    def kind(self) -> str:
        """runtime.core.samples.IMAGE or POINT."""
        return kind_of(self.sample_shape)

    @property
    def last_checkpoint(self) -> str:
        """The checkpoint the article's schedule ends on (the article may pick an earlier one)."""
        return format_checkpoint(self.unit, self.length)

    def to_dict(self) -> dict:
        """The config as config.json holds it (with the field names it has always used)."""
        return {_FILE_NAMES.get(k, k): v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "GANConfig":
        fields = {_FIELD_NAMES.get(k, k): v for k, v in d.items()}
        tuples = {f.name for f in dataclasses.fields(cls) if "tuple" in str(f.type)}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in fields.items()})

    def steps_per_epoch(self, train_size: int) -> int:
        return max(1, train_size // self.epoch_batch)


# config.json holds three fields under names of its own (the committed run records have them), so
# that every run's file has one format.
_FILE_NAMES = {"g_widths": "g_units", "d_widths": "d_units", "epoch_batch": "batch_size"}
_FIELD_NAMES = {v: k for k, v in _FILE_NAMES.items()}


@dataclass(frozen=True)
class Schedule:
    """Where a run is going, in steps; stored in config.json so that --resume keeps to it."""
    total: int            # steps of the whole run
    eval_every: int       # evaluate and keep a checkpoint every this many steps
    save_every: int       # a resume checkpoint (replaced by the next) every this many steps
    steps_per_epoch: int

    def to_dict(self) -> dict:
        return dict(total_steps=self.total, eval_every_steps=self.eval_every,
                    save_every_steps=self.save_every, steps_per_epoch=self.steps_per_epoch)


REGISTRY: dict[str, GANConfig] = {c.name: c for c in [
    GANConfig(
        name="dcgan-mnist", article="000", dataset="mnist", family="dcgan",
        latent_dim=100, sample_shape=(28, 28, 1), output_range=(0.0, 1.0),
        g_widths=(128, 128), d_widths=(64, 64), d_dropout=0.4, g_out_activation="sigmoid",
        d_update="joint",
        learning_rate=2e-4, beta_1=0.5, d_half_batch=128, g_batch=256, epoch_batch=256,
        unit="epoch", length=100, eval_every=10, recommended="epoch_040",
        grid=(10, 10), grid_inverted=True, param_counts=(1_164_289, 40_705)),
    GANConfig(
        name="mlp-mnist", article="002", dataset="mnist", family="mlp",
        latent_dim=100, sample_shape=(28, 28, 1), output_range=(-1.0, 1.0),
        g_widths=(128,), d_widths=(128,), g_alpha=0.01, d_alpha=0.01,
        learning_rate=1e-3, beta_1=0.9, d_half_batch=128, g_batch=128, epoch_batch=128,
        unit="iteration", length=20_000, eval_every=1_000, recommended="step_020000",
        grid=(4, 4), param_counts=(114_064, 100_609)),
    GANConfig(
        name="mlp-smooth-mnist", article="001", dataset="mnist", family="mlp",
        latent_dim=100, sample_shape=(28, 28, 1), output_range=(-1.0, 1.0),
        g_widths=(256, 512, 1024), d_widths=(512, 256),
        learning_rate=2e-4, beta_1=0.5, d_half_batch=128, g_batch=256, epoch_batch=256,
        real_label=0.9, unit="epoch", length=50, eval_every=5, recommended="epoch_050",
        grid=(10, 10), param_counts=(1_486_352, 533_505),
        deviations=("the article elides its layers, BATCH_SIZE and TOTAL_EPOCHS: we use the widely "
                    "circulated version of its notebook (G Dense 256/512/1024 LReLU .2, D Dense "
                    "512/256 LReLU .2, batch 256, 50 epochs)",)),
    GANConfig(
        name="mlp-fashion", article="003", dataset="fashion_mnist", family="mlp",
        latent_dim=100, sample_shape=(28, 28, 1), output_range=(-1.0, 1.0),
        g_widths=(256, 512, 1024), d_widths=(1024, 512, 256), d_dropout=0.3,
        g_kernel_init="normal_0.02", d_kernel_init="normal_0.02",
        learning_rate=2e-4, beta_1=0.5, d_half_batch=64, g_batch=64, epoch_batch=64,
        unit="epoch", length=100, eval_every=1, recommended="epoch_100",
        grid=(10, 10), param_counts=(1_486_352, 1_460_225),
        deviations=("the article builds a tanh layer and then reshapes the layer before it, so its "
                    "generator has no tanh; we apply the tanh it meant (no parameters change)",)),
    GANConfig(
        name="gan-1d", article="004", dataset="x_squared", family="mlp",
        latent_dim=5, sample_shape=(2,), output_range=(-1.0, 1.0),
        g_widths=(15,), d_widths=(25,), hidden_activation="relu",
        g_kernel_init="he_uniform", d_kernel_init="he_uniform", g_out_activation="linear",
        learning_rate=1e-3, beta_1=0.9, d_half_batch=64, g_batch=128, epoch_batch=128,
        unit="iteration", length=10_000, eval_every=2_000, recommended="step_010000",
        grid=(1, 1), param_counts=(122, 101)),
    # gan-edge's own: class-conditional DCGANs (Mirza and Osindero 2014) with a projection
    # discriminator, a batch-normalised generator fed a label embedding, one-sided label
    # smoothing and the averaged generator; non-saturating loss, Adam 2e-4 b1 .5, batch 64.
    # One recipe on each data set but the discriminator's depth: MNIST's has a third conv
    # (256 filters), which at 2 epochs cut the Frechet distance from 7.3 to 4.8
    # (benchmarks/results/ablation-cgan-mnist.md). Both train 30 epochs: their Frechet distances
    # still fell after 10 (docs/records/cgan-mnist, docs/records/cgan-fashion).
    *(GANConfig(
        name=name, article=OWN, dataset=dataset, family="cdcgan",
        latent_dim=64, sample_shape=(28, 28, 1), output_range=(-1.0, 1.0),
        g_widths=(128, 64, 32), d_widths=d_widths, d_dropout=0.0,
        learning_rate=2e-4, beta_1=0.5, d_half_batch=64, g_batch=64, epoch_batch=64,
        real_label=0.9, d_update="joint",
        unit="epoch", length=epochs, eval_every=1, recommended=format_checkpoint("epoch", epochs),
        grid=(10, 10), n_classes=10, param_counts=(792_033, d_params))
      for name, dataset, d_widths, d_params, epochs in (
          ("cgan-mnist", "mnist", (64, 128, 256), 701_889, 30),
          ("cgan-fashion", "fashion_mnist", (64, 128), 201_281, 30))),
]}


def get_config(name: str) -> GANConfig:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(REGISTRY)}") from None
