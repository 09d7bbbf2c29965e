"""Turn a stream of generated batches into the requested files, with bounded memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.core.artifacts import LABELS_FILE, sample_file
from runtime.core.files import atomic_path
from runtime.core.images import GridCanvas, pixel_shape, save_png, to_uint8, view_scale
from runtime.core.samples import POINT


def render(gen, n: int, seed: int, batch: int, out: Path, fmt: str, cols: int | None,
           out_dir: Path | None, chosen: np.ndarray | None = None, labels=None,
           asked: np.ndarray | None = None, quiet: bool = False) -> None:
    """Draw n samples of `gen` into `out` (and one PNG each into `out_dir`). `chosen`: samples
    already picked (by class, or by the discriminator), drawn instead. `asked`: the class of
    each sample, for a conditional generator. `labels`: the samples' (class names, confidences
    or None where no classifier judged them); with `out_dir` they go to labels.csv (file,
    class[, confidence]), which makes the folder a labelled data set. Unless `quiet`, work of
    more than one batch reports its progress on stderr once it will take a while."""
    batches = gen.generate(n, seed, batch, asked) if chosen is None else [chosen]
    if chosen is None and n > batch and not quiet:
        from runtime.core.progress import Progress  # here: one batch never needs it
        batches = Progress(n).counted(batches)
    if gen.info.kind == POINT:
        points = np.concatenate(list(batches))
        return _save_csv(points, out) if fmt == "CSV" else _save_scatter(points, out, fmt)
    canvas = GridCanvas(n, pixel_shape(gen.info.sample_shape), cols=cols)
    i = 0
    for samples in batches:
        for tile in to_uint8(samples, gen.info.output_range):
            canvas.put(i, tile)
            if out_dir is not None:
                save_png(tile, out_dir / sample_file(i))
            i += 1
    if out_dir is not None and labels is not None:
        names, confidences = labels
        if confidences is None:
            header, rows = "file,class\n", (f"{sample_file(i)},{name}\n"
                                            for i, name in enumerate(names))
        else:
            header, rows = "file,class,confidence\n", (
                f"{sample_file(i)},{name},{conf:.4f}\n"
                for i, (name, conf) in enumerate(zip(names, confidences)))
        with atomic_path(out_dir / LABELS_FILE) as tmp:
            tmp.write_text(header + "".join(rows))
    save_png(canvas.pixels, out, scale=view_scale(canvas.pixels.shape[1]), fmt=fmt)


def _save_csv(points: np.ndarray, out: Path) -> None:
    with atomic_path(out) as tmp:
        np.savetxt(tmp, points, delimiter=",", header="x,y", comments="", fmt="%.6f")


def _save_scatter(points: np.ndarray, out: Path, fmt: str, size: int = 480) -> None:
    """Generated (x, y) points over the real curve y = x^2, drawn with Pillow alone."""
    from PIL import Image, ImageDraw  # here: ImageDraw costs image-only runs ~10 ms to import
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    x0, x1, y0, y1 = -0.6, 0.6, -0.05, 0.3  # the region of article 004's plots

    def px(x, y):
        return (x - x0) / (x1 - x0) * (size - 40) + 30, size - 30 - (y - y0) / (y1 - y0) * (size - 40)
    draw.line([px(x0, 0), px(x1, 0)], fill="gray")
    draw.line([px(0, y0), px(0, y1)], fill="gray")
    xs = np.linspace(-0.5, 0.5, 200)
    draw.line([px(x, x * x) for x in xs], fill=(200, 60, 60), width=2)
    for x, y in points:
        cx, cy = px(float(x), float(y))
        draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(40, 90, 200))
    draw.text((36, 8), "red: y = x^2 (real)   blue: generated", fill="black")
    with atomic_path(out) as tmp:
        img.save(tmp, format=fmt)
