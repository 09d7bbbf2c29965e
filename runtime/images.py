"""Generated samples to 8-bit pixels and PNG grids (numpy + Pillow only)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from runtime.files import atomic_path


def to_uint8(samples: np.ndarray, output_range: tuple[float, float]) -> np.ndarray:
    """[N, H, W, 1] floats in the model's declared range -> [N, H, W] uint8 (clipped)."""
    lo, hi = output_range
    x = (np.asarray(samples, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(samples.shape[:3])


class GridCanvas:
    """n tiles of h x w pixels, `cols` per row, filled one at a time (so batches can stream)."""

    def __init__(self, n: int, h: int, w: int, cols: int | None = None, pad: int = 2,
                 invert: bool = False):
        self.cols = cols or math.ceil(math.sqrt(n))
        rows = math.ceil(n / self.cols)
        self.h, self.w, self.pad, self.invert = h, w, pad, invert
        self.pixels = np.full((rows * (h + pad) + pad, self.cols * (w + pad) + pad),
                              255 if invert else 0, np.uint8)

    def put(self, i: int, tile: np.ndarray) -> None:
        r, c = divmod(i, self.cols)
        top, left = self.pad + r * (self.h + self.pad), self.pad + c * (self.w + self.pad)
        self.pixels[top:top + self.h, left:left + self.w] = 255 - tile if self.invert else tile


def grid(pixels: np.ndarray, cols: int | None = None, invert: bool = False) -> np.ndarray:
    """Tile [N, H, W] uint8 images into one image (inverted = dark digits on white)."""
    canvas = GridCanvas(len(pixels), *pixels.shape[1:3], cols=cols, invert=invert)
    for i, tile in enumerate(pixels):
        canvas.put(i, tile)
    return canvas.pixels


def pillow_format(suffix: str) -> str | None:
    """Pillow's writer for a file extension, or None. Tries the common formats first:
    Image.init() imports every Pillow plugin, about 65 ms of ganrun's start-up."""
    suffix = suffix.lower()
    Image.preinit()
    if suffix not in Image.EXTENSION:
        Image.init()
    fmt = Image.EXTENSION.get(suffix)
    return fmt if fmt in Image.SAVE else None


def save_png(image: np.ndarray, path: str | Path, scale: int = 1, fmt: str | None = None) -> Path:
    """Write a uint8 image atomically; `scale` enlarges it (nearest neighbour) for viewing."""
    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt or pillow_format(path.suffix) or "PNG")
    return path
