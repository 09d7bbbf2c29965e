"""Latent walks: an animated GIF in which every tile of the grid moves smoothly through K seeded
latents and back to the first, so the animation loops without a jump (numpy + Pillow only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from runtime.core.files import atomic_path
from runtime.core.images import GridCanvas, pixel_shape, to_uint8, view_scale
from runtime.core.spec import NORMAL

FRAMES_PER_STEP = 12   # frames between two consecutive latents
FRAME_MS = 80          # display time of one frame
PALETTE_PIXELS = 1 << 18  # pixels that a colour walk's palette is chosen from


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


def walk_latents(n: int, spec, k: int, seed: int) -> np.ndarray:
    """[k * FRAMES_PER_STEP, n, latent_dim]: frame f of the loop through k keys per tile, the
    keys drawn from the prior of `spec` (runtime/core/spec.py). Normal keys are joined along
    great circles (slerp); uniform ones along straight lines, which stay in the prior's box."""
    rng = np.random.default_rng(seed)
    keys = [spec.latents(rng, n) for _ in range(k)]
    step = slerp if spec.latent_prior == NORMAL else (lambda a, b, t: (1 - t) * a + t * b)
    return np.stack([step(keys[i], keys[(i + 1) % k], f / FRAMES_PER_STEP).astype(np.float32)
                     for i in range(k) for f in range(FRAMES_PER_STEP)])


def render_walk(gen, n: int, k: int, seed: int, out: Path, cols: int | None,
                labels: np.ndarray | None = None) -> int:
    """Write the walk of an n-tile grid through k latents per tile to `out` (GIF); return the
    number of frames. `labels`: each tile's class, fixed while its latent moves (conditional
    generators). Gray frames are written as they are; colour frames share one palette (see
    color_palette), since a GIF frame holds at most 256 colours."""
    shape = pixel_shape(gen.info.sample_shape)

    def frame(z: np.ndarray) -> np.ndarray:  # one onnxruntime call per frame
        canvas = GridCanvas(n, shape, cols=cols)
        for i, tile in enumerate(to_uint8(gen.run(z, labels), gen.info.output_range)):
            canvas.put(i, tile)
        return canvas.pixels

    latents = walk_latents(n, gen.info.spec, k, seed)
    palette = None if len(shape) == 2 else color_palette(
        [frame(z) for z in latents[::FRAMES_PER_STEP]])
    frames = [_enlarged(_indexed(frame(z), palette)) for z in latents]
    with atomic_path(out) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=FRAME_MS, loop=0)
    return len(frames)


def color_palette(keys: list[np.ndarray]) -> Image.Image:
    """One adaptive palette of 256 colours for a whole colour walk, by median cut over its key
    frames (the grids at the k latents every tile passes through; at most PALETTE_PIXELS of
    their pixels, evenly spaced). Every frame is mapped to it without dithering: one palette
    keeps a colour from flickering between frames, as per-frame palettes and dither noise do."""
    total = sum(key.size // 3 for key in keys)
    step = -(-total // PALETTE_PIXELS)  # ceil
    pixels = np.concatenate([key.reshape(-1, 3)[::step] for key in keys])
    return Image.fromarray(pixels[None]).quantize(256, method=Image.Quantize.MEDIANCUT)


def _indexed(pixels: np.ndarray, palette: Image.Image | None) -> Image.Image:
    img = Image.fromarray(pixels)
    return img if palette is None else img.quantize(palette=palette, dither=Image.Dither.NONE)


def _enlarged(img: Image.Image) -> Image.Image:
    scale = view_scale(img.width)  # as ganrun's still grids
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)
