"""The scores of a generator's samples as one typed value: their fields, how they read for
people, the best-checkpoint rule's comparison, and the one place where scores are read from
and written to a row on disk (metrics.jsonl, best.json, a manifest's metrics, index.json).

A row holds the trained generator's scores under the field names and, for a run that averages
its generator, the averaged one's under the same names prefixed AVERAGED ("ema_"); read here,
they are two Scores (RowScores). Images are scored by a classifier, points (x, y) against the
curve they should lie on (training/quality.py computes both).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Union

from runtime.core.samples import IMAGE, POINT

N_CLASSES = 10  # MNIST's digits, Fashion-MNIST's garments
# Classifier scores this close to the best count as equal in the best-checkpoint rule: about
# twice the standard deviation of the difference of two scores on different evaluation latents
# (0.033 for one score, the largest among the shipped models: benchmarks/results/score-noise.md),
# so that a near-saturated score (a conditional model's, near 9.85) no longer picks by noise.
SCORE_MARGIN = 0.1
AVERAGED = "ema_"  # the averaged generator's scores in a row on disk

# How each figure reads for people, wherever it is shown.
FORMATS = {"classifier_score": ".2f", "frechet_distance": ".1f", "kl_to_uniform": ".3f",
           "confident_share": ".1%", "class_accuracy": ".1%", "class_accuracy_min": ".1%",
           "energy_distance": ".4f", "mean_abs_error": ".4f", "share_in_domain": ".0%"}
HISTOGRAM = "class_histogram"  # each class's share of the samples
LISTS = (HISTOGRAM, "class_accuracy_per_class")  # per-class figures, not headline ones


def figure(key: str, value) -> str:
    """One figure as people read it: "n/a" where it was not measured (a Frechet distance
    without the test split), "10/10" for classes covered."""
    if value is None:
        return "n/a"
    if key == "classes_covered":
        return f"{value}/{N_CLASSES}"
    return format(value, FORMATS[key]) if key in FORMATS else str(value)


class _Fields:
    """What the two kinds of scores share: their row (the fields in order; a figure that was
    not measured is left out, except the Frechet distance, which says null), and field text."""
    kind: ClassVar[str]
    KEEP_NONE: ClassVar[tuple[str, ...]] = ()
    REQUIRED: ClassVar[tuple[str, ...]]

    def to_row(self, lists: bool = True) -> dict:
        """The fields as a row on disk holds them; without the per-class `lists`: the headline
        figures that a manifest and index.json keep."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if (getattr(self, f.name) is not None or f.name in self.KEEP_NONE)
                and (lists or f.name not in LISTS)}

    @classmethod
    def from_row(cls, row: dict, prefix: str = ""):
        return cls(**{f.name: row.get(prefix + f.name) for f in fields(cls)})

    def text(self, key: str) -> str:
        return figure(key, getattr(self, key))


@dataclass(frozen=True)
class ImageScores(_Fields):
    """An image generator's samples through the project's classifier (training/quality.py)."""
    n_samples: int
    classifier_score: float
    frechet_distance: float | None  # None: the test split was not at hand
    classes_covered: int
    class_histogram: list[float] | None
    kl_to_uniform: float
    confident_share: float
    # A conditional generator's, on samples asked for each class in turn; else None.
    class_accuracy: float | None = None
    class_accuracy_min: float | None = None
    class_accuracy_per_class: list[float] | None = None
    kind: ClassVar[str] = IMAGE
    KEEP_NONE: ClassVar[tuple[str, ...]] = ("frechet_distance",)
    # What every scored row has held, which the results table, the plots and the rule read.
    REQUIRED: ClassVar[tuple[str, ...]] = ("classifier_score", "frechet_distance",
                                           "classes_covered", "kl_to_uniform", "n_samples")

    def format(self) -> str:
        """One line for people: every headline figure and the sample count."""
        accuracy = ("" if self.class_accuracy is None else
                    f"class accuracy {self.text('class_accuracy')} "
                    f"(min {self.text('class_accuracy_min')})  ")
        return (f"score {self.text('classifier_score')}  FD {self.text('frechet_distance')}  "
                f"classes {self.text('classes_covered')}  KL {self.text('kl_to_uniform')}  "
                f"confident {self.text('confident_share')}  {accuracy}(n={self.n_samples})")

    def headline(self) -> str:
        return f"classifier score {self.text('classifier_score')}"

    def brief(self) -> str:
        """A table cell: classifier score / Frechet distance / KL to uniform."""
        return " / ".join(self.text(k) for k in ("classifier_score", "frechet_distance",
                                                 "kl_to_uniform"))

@dataclass(frozen=True)
class PointScores(_Fields):
    """Points (x, y) of article 004's 1-D GAN against y = x^2 on x in [-0.5, 0.5]."""
    n_samples: int
    mean_abs_error: float  # |y - x^2|
    share_in_domain: float  # |x| <= 0.5
    energy_distance: float  # to real points
    kind: ClassVar[str] = POINT
    REQUIRED: ClassVar[tuple[str, ...]] = ("energy_distance", "mean_abs_error",
                                           "share_in_domain", "n_samples")

    def format(self) -> str:
        return (f"energy {self.text('energy_distance')}  |y-x^2| {self.text('mean_abs_error')}  "
                f"in domain {self.text('share_in_domain')}  (n={self.n_samples})")

    def headline(self) -> str:
        return f"energy distance {self.text('energy_distance')}"

    def brief(self) -> str:
        return self.text("energy_distance")


Scores = Union[ImageScores, PointScores]
MARKERS = {"classifier_score": ImageScores, "energy_distance": PointScores}  # keys that say which


def read_scores(row: dict, prefix: str = "") -> Scores | None:
    """The scores a row holds (those of the averaged generator with prefix AVERAGED), or None
    where it holds none: the row itself says which kind by the figures it has."""
    for marker, cls in MARKERS.items():
        if prefix + marker in row:
            return cls.from_row(row, prefix)
    return None


def row_problem(row: dict) -> str | None:
    """Why the scores in a row cannot be read (a figure that readers rely on missing or not a
    number), or None."""
    for prefix in ("", AVERAGED):
        for marker, cls in MARKERS.items():
            if prefix + marker not in row:
                continue
            for key in (prefix + k for k in cls.REQUIRED):
                if not (is_number(row.get(key)) or key[len(prefix):] in cls.KEEP_NONE
                        and key in row and row[key] is None):
                    return f"{key} is missing or not a number"
    return None


def without_histogram(row: dict) -> dict:
    """A row without the class histogram, which benchmark reports and a checkpoint's metrics
    leave out (a conditional generator's per-class accuracy stays)."""
    return {k: v for k, v in row.items() if k != HISTOGRAM}


def own_scores(view: dict) -> dict:
    """A row (or a view of it) without the averaged generator's AVERAGED-prefixed scores."""
    return {k: v for k, v in view.items() if not k.startswith(AVERAGED)}


def is_number(value) -> bool:
    """A JSON number: an int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RowScores:
    """The scores of one evaluation: the trained generator's and, where the run averages its
    generator, the averaged one's."""
    trained: Scores
    averaged: Scores | None = None

    @classmethod
    def read(cls, row: dict) -> RowScores | None:
        trained = read_scores(row)
        return None if trained is None else cls(trained, read_scores(row, AVERAGED))

    def to_row(self) -> dict:
        averaged = {} if self.averaged is None else self.averaged.to_row()
        return {**self.trained.to_row(), **{AVERAGED + k: v for k, v in averaged.items()}}

    def format(self) -> str:
        """One line; with an averaged generator, both."""
        return self.trained.format() + ("" if self.averaged is None
                                        else f" | averaged: {self.averaged.format()}")


def weight_views(row: dict) -> list[dict]:
    """A metrics row as seen for each generator it scored: the trained weights ("raw") and,
    where the run keeps one, the averaged ("ema", its scores in place of the trained one's).
    best.json is such a view."""
    views = [{**row, "weights": "raw"}]
    scores = RowScores.read(row)
    if scores is not None and scores.averaged is not None:
        views.append({**row, **scores.averaged.to_row(), "weights": "ema"})
    return views


def best_of(candidates: list[Scores]) -> int | None:
    """The best-checkpoint rule: the index of the candidate it picks (the first of equals), or
    None for none. Points: the lowest energy distance. Images: among those that cover every
    class (all, if none does), those whose classifier score is within SCORE_MARGIN of the
    highest; of these the lowest Frechet distance (the highest score where a Frechet distance
    was not measured: the test split was not at hand)."""
    if not candidates:
        return None
    order = range(len(candidates))
    if isinstance(candidates[0], PointScores):
        return min(order, key=lambda i: candidates[i].energy_distance)
    full = [i for i in order if candidates[i].classes_covered == N_CLASSES]
    pool = full or list(order)
    top = max(candidates[i].classifier_score for i in pool)
    near = [i for i in pool if candidates[i].classifier_score >= top - SCORE_MARGIN]
    if any(candidates[i].frechet_distance is None for i in near):
        return max(near, key=lambda i: candidates[i].classifier_score)
    return min(near, key=lambda i: candidates[i].frechet_distance)


def best_row(rows: list[dict]) -> dict | None:
    """The scored row, as the view of the raw or averaged generator, that the best-checkpoint
    rule prefers; None when nothing is scored."""
    views = [(view, scores) for row in rows for view in weight_views(row)
             if (scores := read_scores(view)) is not None]
    pick = best_of([scores for _, scores in views])
    return None if pick is None else views[pick][0]
