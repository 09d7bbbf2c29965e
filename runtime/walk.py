"""Latent walks: an animated GIF in which every tile of the grid moves smoothly through K seeded
latents and back to the first, so the animation loops without a jump (numpy + Pillow only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from runtime.core.files import atomic_path
from runtime.core.images import GridCanvas, to_uint8

FRAMES_PER_STEP = 12   # frames between two consecutive latents
FRAME_MS = 80          # display time of one frame


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between rows of `a` and `b` ([n, d]): it keeps the norm that
    Gaussian latents concentrate on, where a straight line passes through rarer, shorter ones."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.sum(a64 * b64, 1, keepdims=True) / (
        np.linalg.norm(a64, axis=1, keepdims=True) * np.linalg.norm(b64, axis=1, keepdims=True))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    sin = np.sin(omega)
    safe = np.where(sin < 1e-6, 1.0, sin)  # (anti)parallel rows: fall back to a straight line
    out = np.where(sin < 1e-6, (1 - t) * a64 + t * b64,
                   (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / safe)
    return out.astype(np.float32)


def walk_latents(n: int, latent_dim: int, k: int, seed: int) -> np.ndarray:
    """[k * FRAMES_PER_STEP, n, latent_dim]: frame f of the loop through k keys per tile."""
    keys = np.random.default_rng(seed).standard_normal((k, n, latent_dim)).astype(np.float32)
    return np.stack([slerp(keys[i], keys[(i + 1) % k], f / FRAMES_PER_STEP)
                     for i in range(k) for f in range(FRAMES_PER_STEP)])


def render_walk(gen, n: int, k: int, seed: int, out: Path, cols: int | None,
                labels: np.ndarray | None = None) -> int:
    """Write the walk of an n-tile grid through k latents per tile to `out` (GIF); return the
    number of frames. `labels`: each tile's class, fixed while its latent moves (conditional
    generators)."""
    frames = []
    for z in walk_latents(n, gen.info.latent_dim, k, seed):  # one onnxruntime call per frame
        canvas = GridCanvas(n, *gen.info.sample_shape[:2], cols=cols)
        for i, tile in enumerate(to_uint8(gen.run(z, labels), gen.info.output_range)):
            canvas.put(i, tile)
        frames.append(_enlarged(canvas.pixels))
    with atomic_path(out) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=FRAME_MS, loop=0)
    return len(frames)


def _enlarged(pixels: np.ndarray) -> Image.Image:
    img = Image.fromarray(pixels)
    scale = max(1, min(4, 512 // pixels.shape[1]))  # as ganrun's still grids
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)
