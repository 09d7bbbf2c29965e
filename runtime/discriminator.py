"""Discriminator filtering on the device (`ganrun --keep`): of ceil(n / keep) generated
samples, keep the n that the model's own discriminator finds most real (after Azadi et al.,
2019, "Discriminator Rejection Sampling", simplified to a top fraction).

ganexport writes the source's discriminator beside the generator as discriminator.int8.onnx
(input sample, output logit); its metadata names its generator's source file by SHA-256, so a
discriminator is only ever paired with the generator it was exported with.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from runtime.core.artifacts import DISCRIMINATOR_FILE
from runtime.core.errors import GanEdgeError
from runtime.session import open_session

MAX_TRIES = 2_000_000  # samples generated for one request, whatever --keep asks


class Discriminator:
    def __init__(self, session, path: Path):
        self.session, self.path = session, path
        self.metadata = session.get_modelmeta().custom_metadata_map

    @classmethod
    def beside(cls, gen) -> "Discriminator":
        """The discriminator exported with generator `gen`, or a one-line error."""
        path = gen.path.parent / DISCRIMINATOR_FILE
        disc = cls(open_session(path, f"--keep needs the discriminator exported with the model, "
                                      f"{path.name} beside {gen.path.name}; export it again with "
                                      f"this version of ganexport", "export the model again"),
                   path)
        meta, gmeta = disc.metadata, gen.info.metadata
        # What it says of its generator must all hold: the generator's source file (by
        # SHA-256), and a run's checkpoint and step where it names them.
        stated = [(key, own) for key, own in (("gan.generator_sha256", "gan.source_sha256"),
                                              ("gan.checkpoint", "gan.checkpoint"),
                                              ("gan.step", "gan.step")) if key in meta]
        paired = bool(stated) and all(meta[key] == gmeta.get(own) for key, own in stated)
        if not (paired and meta.get("gan.role") == "discriminator"
                and meta.get("gan.arch") == gen.arch):
            origin = gmeta.get("gan.checkpoint") or gmeta.get("gan.source_file", "?")
            raise GanEdgeError(f"{path} is not the discriminator of {gen.path.name}'s generator "
                               f"({gen.arch} {origin}); export both together with ganexport")
        return disc

    def logits(self, samples: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """How real each sample looks; a conditional model's discriminator judges each as a
        sample of its class `labels`."""
        feed = {"sample": np.ascontiguousarray(samples, np.float32)}
        if labels is not None:
            feed["label"] = np.ascontiguousarray(labels, np.int64)
        return self.session.run(["logit"], feed)[0].reshape(-1)


def check_keep(keep: float, n: int) -> int:
    """How many samples --keep asks to generate for n, or a one-line error."""
    if not 0 < keep <= 1:
        raise GanEdgeError(f"--keep is the fraction of samples kept, in (0, 1], got {keep:g}")
    tries = math.ceil(n / keep)
    if tries > MAX_TRIES:
        raise GanEdgeError(f"--n {n} at --keep {keep:g} means generating {tries:,} samples, "
                           f"above {MAX_TRIES:,}; ask for fewer or keep a larger fraction")
    return tries


def keep_most_real(gen, disc: Discriminator, n: int, keep: float, seed: int, batch: int,
                   classes: list[int] | None = None):
    """(samples, logits, labels): the n of ceil(n / keep) seeded samples with the highest
    logits, in the order they were generated, and for a conditional generator the class each
    was asked for (`classes` in turn, or drawn uniformly; else None). Holds at most n + batch
    samples at a time."""
    tries = check_keep(keep, n)
    asked = gen.labels_for(tries, seed, classes)
    kept = np.empty((0, *gen.info.sample_shape), np.float32)
    scores = np.empty(0, np.float32)
    index = np.empty(0, np.int64)  # each kept sample's position in the stream
    done = 0
    for samples in gen.generate(tries, seed, batch, asked):
        batch_labels = None if asked is None else asked[done:done + len(samples)]
        kept = np.concatenate([kept, samples])
        scores = np.concatenate([scores, disc.logits(samples, batch_labels)])
        index = np.concatenate([index, np.arange(done, done + len(samples))])
        done += len(samples)
        if len(scores) > n:
            # Stable on -score, so equal logits keep the earlier sample; sorting the chosen
            # positions keeps the survivors in the order they were generated.
            top = np.sort(np.argsort(-scores, kind="stable")[:n])
            kept, scores, index = kept[top], scores[top], index[top]
    return kept, scores, None if asked is None else asked[index]
