"""Pictures of a run: sample grids, the 1-D scatter, and metrics over time (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402

from runtime.core.files import atomic_path  # noqa: E402
from runtime.core.images import grid, save_png, to_uint8  # noqa: E402
from runtime.core.samples import IMAGE, POINT  # noqa: E402
from runtime.core.scores import AVERAGED, N_CLASSES, RowScores, read_scores  # noqa: E402
from training.config import GANConfig  # noqa: E402

SCORE_CHARTS = {IMAGE: (("classifier_score", f"classifier score (max {N_CLASSES})"),
                        ("frechet_distance", "Frechet distance to test split")),
                POINT: (("energy_distance", "energy distance to real samples"),)}


def save_samples(cfg: GANConfig, samples: np.ndarray, path: Path, real: np.ndarray | None = None):
    """The article's picture: a rows x cols grid of images, or real vs generated points."""
    if cfg.kind == POINT:
        return save_scatter(samples, real, path)
    rows, cols = cfg.grid
    pixels = to_uint8(samples[: rows * cols], cfg.output_range)
    return save_png(grid(pixels, cols=cols, invert=cfg.grid_inverted), path, scale=2)


def save_scatter(fake: np.ndarray, real: np.ndarray | None, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4))
    xs = np.linspace(-0.5, 0.5, 101)
    ax.plot(xs, xs * xs, color="0.7", lw=1, label="y = x²")
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=8, color="tab:red", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=8, color="tab:blue", label="generated")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(loc="upper center")
    return save_figure(fig, path)


def save_metric_plots(rows: list[dict], plots_dir: Path) -> None:
    """losses.png and d_accuracy.png over training steps, from metrics.jsonl rows."""
    if not rows:
        return
    plots_dir.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in rows]
    charts = [(name, {k: [r.get(k) for r in rows] for k in keys if any(k in r for r in rows)},
               ylabel)
              for name, keys, ylabel in (
                  ("losses", ("d_loss", "g_loss"), "mean loss since last evaluation"),
                  ("d_accuracy", ("d_acc_real", "d_acc_fake"), "discriminator accuracy"))]
    last = read_scores(rows[-1])
    for key, ylabel in () if last is None else SCORE_CHARTS[last.kind]:
        trained, averaged = _by_generator(rows, key)
        # Named as metrics.jsonl names them; the averaged line where the run averages.
        charts.append((key, {key: trained, **({AVERAGED + key: averaged} if averaged else {})},
                       ylabel))
    for name, lines, ylabel in charts:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, values in lines.items():  # None (not measured) plots as a gap
            ax.plot(steps, [float("nan") if v is None else v for v in values], marker="o", ms=3,
                    label=label)
        ax.set(xlabel="step", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, plots_dir / f"{name}.png")


def _by_generator(rows: list[dict], key: str) -> tuple[list, list | None]:
    """One figure per row, of the trained generator and of the averaged one (None where no
    row has an averaged generator); None where a row does not have it."""
    scores = [RowScores.read(r) for r in rows]
    trained = [None if s is None else getattr(s.trained, key) for s in scores]
    averaged = [None if s is None or s.averaged is None else getattr(s.averaged, key)
                for s in scores]
    return trained, averaged if any(s is not None and s.averaged for s in scores) else None


def save_quality_by_epoch(runs: dict[str, list[dict]], title: str, path: Path,
                          marks: dict[str, float]) -> Path:
    """Classifier score, Frechet distance and classes covered per epoch, trained and averaged
    generator side by side; `runs` maps a label to a run's rows (one run: the label is not
    shown; several: one colour each, the averaged generator dashed); `marks`: vertical lines
    at named epochs (e.g. the article's pick)."""
    charts = (("classifier_score", f"classifier score (max {N_CLASSES})"),
              ("frechet_distance", "Frechet distance to the test split (log)"),
              ("classes_covered", f"classes covered (of {N_CLASSES})"))
    all_epochs = [r["epoch"] for rows in runs.values() for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, charts):
        plotted = False
        for i, (run_label, rows) in enumerate(runs.items()):
            epochs = [r["epoch"] for r in rows]
            for values, name, style in zip(_by_generator(rows, key), ("trained", "averaged"),
                                           ("-", "--")):
                if not any(v is not None for v in values or ()):
                    continue
                if len(runs) == 1:  # colours tell trained from averaged
                    line = dict(label=name, marker="o", ms=2.5)
                else:  # colours tell runs apart, small markers show a run of one evaluation
                    line = dict(label=f"{run_label}, {name}", color=f"C{i}", ls=style, lw=1.2,
                                marker="o", ms=1.5)
                ax.plot(epochs, [np.nan if v is None else v for v in values], **line)
                plotted = True
        if not plotted:  # the Frechet distance of a run scored without a test split
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="0.4")
            ax.set_xlim(min(all_epochs) - 1, max(all_epochs) + 1)
        elif key == "frechet_distance":  # falls by an order of magnitude: log, or late
            ax.set_yscale("log")           # epochs' differences vanish into a flat line
            # Plain numbers (30, not 3x10^1), on the minor ticks only at 2, 3 and 5 x 10^k.
            ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(ticker.FuncFormatter(
                lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))
        for mark, epoch in marks.items():
            ax.axvline(epoch, color="0.6", ls="--", lw=1)
            ax.text(epoch, ax.get_ylim()[1], f"{mark} ", va="top", ha="right", fontsize=8,
                    color="0.4")
        ax.set(xlabel="epoch", title=label)
        ax.grid(alpha=0.3, which="both")
        if plotted:
            ax.legend(fontsize=8 if len(runs) == 1 else 7)
    fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """Lay out, write atomically as PNG, and close a matplotlib figure."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
