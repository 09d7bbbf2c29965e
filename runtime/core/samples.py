"""The kind of a generator's samples, decided in one place from their shape, which the
config, the ONNX metadata and the data all carry: a point (x, y) of article 004's 1-D GAN, or
an image (height, width, channels). Everything that treats the two differently (scoring,
pictures, ganrun's output) asks `kind_of`, not a data set's name or a dictionary's keys."""
from __future__ import annotations

IMAGE, POINT = "image", "point"
POINT_SHAPE = (2,)


def kind_of(sample_shape) -> str:
    """IMAGE or POINT for samples of `sample_shape`."""
    return POINT if tuple(sample_shape) == POINT_SHAPE else IMAGE
