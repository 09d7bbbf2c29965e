"""What an exported generator is, as every file says it in its gan.* metadata: its name, latent
size and prior, sample shape, output range, classes and data set. The exporter writes it
(`to_metadata`), the runtime, the web page's builder and the validation read it back
(`from_metadata`), whatever trained the generator: this is the file contract's one home.

A NamedTuple, not a dataclass: defining a dataclass costs ganrun start-up time.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from runtime.core.errors import GanEdgeError
from runtime.core.samples import kind_of

NORMAL, UNIFORM = "normal", "uniform"
PRIORS = (NORMAL, UNIFORM)  # z ~ N(0, I), or z ~ U(-1, 1) in each coordinate
REQUIRED_METADATA = ("gan.arch", "gan.latent_dim", "gan.sample_shape", "gan.output_range")
MAX_LATENT_DIM = 65_536          # far above any GAN here; keeps latent batches allocatable
MAX_SAMPLE_VALUES = 16_777_216   # values in one sample (a 4096 x 4096 image)


class Spec(NamedTuple):
    name: str                           # gan.arch: a registry name, or a foreign model's name
    latent_dim: int
    sample_shape: tuple[int, ...]       # (H, W, C) with C = 1 or 3, or (2,) for points
    output_range: tuple[float, float]
    class_names: tuple[str, ...] = ()   # a conditional generator's classes, by label
    latent_prior: str = NORMAL
    dataset: str | None = None          # the data set it was trained on, where known

    @property
    def conditional(self) -> bool:
        return bool(self.class_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def kind(self) -> str:
        """runtime.core.samples.IMAGE or POINT."""
        return kind_of(self.sample_shape)

    def latents(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n latents [n, latent_dim] float32 from the prior, drawn from `rng`. The normal prior
        draws exactly what rng.standard_normal((n, latent_dim)) draws."""
        if self.latent_prior == UNIFORM:
            return rng.uniform(-1.0, 1.0, (n, self.latent_dim)).astype(np.float32)
        return rng.standard_normal((n, self.latent_dim)).astype(np.float32)

    def describe(self) -> str:
        """One line for people: what the model takes and makes."""
        lo, hi = self.output_range
        classes = f", classes {','.join(self.class_names)}" if self.conditional else ""
        return (f"{self.name}: latent {self.latent_dim} ({self.latent_prior}), samples "
                f"{'x'.join(map(str, self.sample_shape))} in {lo:g}..{hi:g}{classes}")

    def to_metadata(self) -> dict:
        """The gan.* keys that describe the model (the exporter adds precision and provenance)."""
        import json
        lo, hi = self.output_range
        meta = {"gan.arch": self.name, "gan.latent_dim": str(self.latent_dim),
                "gan.sample_shape": ",".join(map(str, self.sample_shape)),
                "gan.output_range": f"{lo:g},{hi:g}", "gan.latent_prior": self.latent_prior}
        if self.dataset:
            meta["gan.dataset"] = self.dataset
        if self.conditional:
            meta.update({"gan.conditional": "1", "gan.n_classes": str(self.n_classes),
                         "gan.class_names": json.dumps(list(self.class_names))})
        return meta

    @classmethod
    def from_metadata(cls, meta: dict, path: Path) -> "Spec":
        """The spec a file's metadata states, checked; a one-line error naming `path` where
        keys are missing, malformed or impossible. A file without gan.latent_prior draws from
        the normal prior."""
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise GanEdgeError(f"{path} is not a gan-edge generator (metadata lacks "
                               f"{', '.join(missing)}); export it with ganexport")
        try:
            lo, hi = (float(v) for v in meta["gan.output_range"].split(","))
            spec = cls(meta["gan.arch"], int(meta["gan.latent_dim"]),
                       tuple(int(d) for d in meta["gan.sample_shape"].split(",")), (lo, hi),
                       _class_names(meta), meta.get("gan.latent_prior", NORMAL),
                       meta.get("gan.dataset"))
        except ValueError:
            raise GanEdgeError(f"{path} has malformed gan.* metadata; re-export it with "
                               f"ganexport") from None
        values = 1
        for d in spec.sample_shape:
            values *= d
        if not (1 <= spec.latent_dim <= MAX_LATENT_DIM and 1 <= len(spec.sample_shape) <= 3
                and min(spec.sample_shape) >= 1 and values <= MAX_SAMPLE_VALUES
                and np.isfinite([lo, hi]).all() and hi > lo and spec.latent_prior in PRIORS):
            raise GanEdgeError(f"{path} has impossible gan.* metadata (latent {spec.latent_dim} "
                               f"{spec.latent_prior}, sample shape {spec.sample_shape}, range "
                               f"{lo:g}..{hi:g}); re-export it with ganexport")
        return spec


def _class_names(meta: dict) -> tuple[str, ...]:
    """gan.class_names of a conditional file (a JSON list of strings); () otherwise. A
    malformed value raises ValueError, which from_metadata turns into its one-line error."""
    if meta.get("gan.conditional") != "1":
        return ()
    import json
    names = json.loads(meta.get("gan.class_names", "null"))
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)
            and len(names) == int(meta.get("gan.n_classes", -1))):
        raise ValueError("gan.class_names")
    return tuple(names)
