"""Choosing samples by class on the device: the project's scoring classifier as int8 ONNX
(runtime/classifiers/<dataset>.int8.onnx, written by `python -m export.classifier`), and the
stream of generated samples that it filters for ganrun --class / --min-confidence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runtime.core.errors import GanEdgeError
from runtime.session import open_session

CLASSIFIERS_DIR = Path(__file__).parent / "classifiers"
TRIES_PER_SAMPLE = 50      # generate at most this many samples per one kept ...
MIN_TRIES = 10_000         # ... but never give up before this many


def classifier_file(dataset: str) -> Path:
    return CLASSIFIERS_DIR / f"{dataset}.int8.onnx"


def parse_classes(spec: str, names) -> list[int]:
    """'7', '3,5', class names ('Sneaker,bag') or 'all' -> indices into `names`, or a one-line
    error."""
    if spec.strip().lower() == "all":
        return list(range(len(names)))
    lowered = [c.lower() for c in names]
    digits = all(c.isdigit() for c in names)
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part.lower() in lowered:
            out.append(lowered.index(part.lower()))
        elif part.isdigit() and int(part) < len(names):
            out.append(int(part))
        else:
            raise GanEdgeError(f"--class {part!r} is not a class of this model; choose from "
                               f"{', '.join(names)}, or all"
                               + ("" if digits else f" (or 0 to {len(names) - 1})"))
    return sorted(set(out))


class Classifier:
    def __init__(self, dataset: str):
        self.session = open_session(
            classifier_file(dataset), f"no classifier for {dataset} in {CLASSIFIERS_DIR}; "
                                      f"choosing by class works for MNIST and Fashion-MNIST models",
            "reinstall gan-edge")
        info = json.loads(self.session.get_modelmeta().custom_metadata_map["gan.classifier"])
        self.dataset, self.classes = dataset, list(info["classes"])

    def predict(self, images01: np.ndarray) -> np.ndarray:
        """[N, 28, 28, 1] in [0, 1] -> class probabilities [N, n_classes]."""
        x = np.ascontiguousarray(images01, np.float32).reshape(-1, 28, 28, 1)
        return self.session.run(["probs"], {"image": x})[0]

    def parse(self, spec: str) -> list[int]:
        return parse_classes(spec, self.classes)


def chosen_samples(gen, classifier: Classifier, classes: list[int] | None, min_confidence: float,
                   n: int, seed: int, batch: int):
    """Yield (samples, labels, confidences) batches of generated samples that the classifier
    puts in `classes` (any class when None) with at least `min_confidence`, n in all; a one-line
    error, before anything is written, when the bound on tries is reached first. A conditional
    generator is asked for `classes` in turn, and a sample is kept only where the classifier
    agrees with the class it was asked for."""
    lo, hi = gen.info.output_range
    limit = max(MIN_TRIES, TRIES_PER_SAMPLE * n)
    kept = tried = 0
    asked_labels = gen.labels_for(limit, seed, classes)
    stream = gen.generate(limit, seed, batch, asked_labels)
    for samples in stream:
        probs = classifier.predict((samples - lo) / (hi - lo))
        labels, conf = probs.argmax(1), probs.max(1)
        keep = conf >= min_confidence
        if asked_labels is not None:
            keep &= labels == asked_labels[tried:tried + len(samples)]
        elif classes is not None:
            keep &= np.isin(labels, classes)
        tried += len(samples)
        take = np.flatnonzero(keep)[:n - kept]
        if len(take):
            kept += len(take)
            yield samples[take], labels[take], conf[take]
        if kept == n:
            return
    asked = "any class" if classes is None else \
        "class " + ", ".join(classifier.classes[c] for c in classes)
    raise GanEdgeError(f"only {kept} of {tried:,} generated samples were {asked} with confidence "
                       f">= {min_confidence:g} ({kept / tried:.2%}); this model rarely makes them: "
                       f"ask for fewer (--n), or lower --min-confidence")
