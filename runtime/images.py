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


def grid(pixels: np.ndarray, cols: int | None = None, pad: int = 2, invert: bool = False) -> np.ndarray:
    """Tile [N, H, W] uint8 images into one [rows*(H+pad)+pad, cols*(W+pad)+pad] image."""
    n, h, w = pixels.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    background = 255 if invert else 0
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), background, np.uint8)
    for i, img in enumerate(pixels):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
               pad + c * (w + pad):pad + c * (w + pad) + w] = 255 - img if invert else img
    return canvas


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 image atomically; `scale` enlarges it (nearest neighbour) for viewing."""
    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return path
