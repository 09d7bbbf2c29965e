"""Generated samples to 8-bit pixels and PNG grids (numpy + Pillow only).

Pixels are [H, W] for grayscale samples (C = 1) and [H, W, 3] for colour ones (C = 3): a gray
sample's channel axis is dropped, so gray images stay what Pillow and PNG call mode L."""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from runtime.core.files import atomic_path

CHANNELS = (1, 3)  # grayscale, RGB


def pixel_shape(sample_shape) -> tuple[int, ...]:
    """The uint8 pixels of one sample of `sample_shape` (H, W, C): (H, W) or (H, W, 3)."""
    *size, c = sample_shape
    if len(size) != 2 or c not in CHANNELS:
        raise ValueError(f"images are [H, W, 1] or [H, W, 3], not {list(sample_shape)}")
    return tuple(size) if c == 1 else (*size, c)


def to_uint8(samples: np.ndarray, output_range: tuple[float, float]) -> np.ndarray:
    """[N, H, W, C] floats in the model's declared range -> uint8 (clipped): [N, H, W] for
    C = 1, [N, H, W, 3] for C = 3."""
    lo, hi = output_range
    x = (np.asarray(samples, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(len(x), *pixel_shape(x.shape[1:]))


def view_scale(width: int) -> int:
    """How much ganrun enlarges a grid `width` pixels wide for viewing (nearest neighbour):
    small grids up to 4x, none beyond 512 pixels."""
    return max(1, min(4, 512 // width))


class GridCanvas:
    """n tiles of pixel shape (h, w) or (h, w, 3), `cols` per row, filled one at a time (so
    batches can stream). `invert` (dark digits on white, as matplotlib's gray_r shows them)
    inverts gray tiles; colour tiles keep their colours, on a white background."""

    def __init__(self, n: int, shape: tuple[int, ...], cols: int | None = None, pad: int = 2,
                 invert: bool = False):
        self.cols = cols or math.ceil(math.sqrt(n))
        rows = math.ceil(n / self.cols)
        (h, w), channels = shape[:2], shape[2:]
        self.h, self.w, self.pad = h, w, pad
        self.invert = invert and not channels
        self.pixels = np.full((rows * (h + pad) + pad, self.cols * (w + pad) + pad, *channels),
                              255 if invert else 0, np.uint8)

    def put(self, i: int, tile: np.ndarray) -> None:
        r, c = divmod(i, self.cols)
        top, left = self.pad + r * (self.h + self.pad), self.pad + c * (self.w + self.pad)
        self.pixels[top:top + self.h, left:left + self.w] = 255 - tile if self.invert else tile


def grid(pixels: np.ndarray, cols: int | None = None, invert: bool = False) -> np.ndarray:
    """Tile [N, H, W] or [N, H, W, 3] uint8 images (to_uint8's) into one image."""
    canvas = GridCanvas(len(pixels), pixels.shape[1:], cols=cols, invert=invert)
    for i, tile in enumerate(pixels):
        canvas.put(i, tile)
    return canvas.pixels


def pillow_format(suffix: str) -> str | None:
    """Pillow's writer for a file extension, or None. PNG needs no Pillow (see save_image)."""
    suffix = suffix.lower()
    if suffix == ".png":
        return "PNG"
    from PIL import Image
    Image.preinit()
    if suffix not in Image.EXTENSION:
        Image.init()
    fmt = Image.EXTENSION.get(suffix)
    return fmt if fmt in Image.SAVE else None


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image, [H, W] grayscale or [H, W, 3] RGB, as a PNG file (8-bit, colour type 0
    or 2, no interlace, filter 0 on every row). ganrun writes its grids with this instead of
    Pillow: importing Pillow and its plugins (Image.save imports five) cost about 50 ms of a
    0.3 s run, the largest share above importing numpy and onnxruntime."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    h, w = image.shape[:2]
    color_type = 0 if image.ndim == 2 else 2
    if image.shape[2:] not in ((), (3,)):
        raise ValueError(f"PNG pixels are [H, W] or [H, W, 3], not {list(image.shape)}")
    rows = np.hstack([np.zeros((h, 1), np.uint8), np.ascontiguousarray(image, np.uint8).reshape(h, -1)])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def save_png(image: np.ndarray, path: str | Path, scale: int = 1, fmt: str | None = None) -> Path:
    """Write a uint8 image ([H, W] grayscale or [H, W, 3] RGB) atomically, as PNG unless `fmt`
    (or the suffix) names another Pillow format; `scale` enlarges it (nearest neighbour) for
    viewing."""
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    path = Path(path)
    fmt = fmt or pillow_format(path.suffix) or "PNG"
    with atomic_path(path) as tmp:
        if fmt == "PNG":
            tmp.write_bytes(png_bytes(image))
        else:
            from PIL import Image
            Image.fromarray(image).save(tmp, format=fmt)
    return path
