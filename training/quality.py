"""Objective quality metrics for generated samples (numpy only).

Image GANs are scored in the feature space of a frozen classifier (training/classifier.py), as
TF-GAN's MNIST example does; the 1-D GAN of article 004 is scored against its known function.
training.evaluate turns these figures into Scores (runtime/core/scores.py).
"""
from __future__ import annotations

import numpy as np

EPS = 1e-12


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x[KL(p(y|x) || p(y))]), TF-GAN's classifier_score: 1 (one class) .. n_classes."""
    p = np.clip(probs.astype(np.float64), EPS, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 (Ca Cb)^1/2), with the trace term from eigenvalues:
    Tr((Ca Cb)^1/2) = sum sqrt(eig(sqrt(Ca) Cb sqrt(Ca))), all symmetric, so numpy suffices."""
    a, b = feat_a.astype(np.float64), feat_b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sqrt_ca = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_ca @ cb @ sqrt_ca), 0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2 * cross)


COVERED_SHARE = 0.01  # a class is covered where it holds at least this share of the samples


def class_coverage(probs: np.ndarray, min_share: float = COVERED_SHARE) -> dict:
    """Predicted-class histogram, classes holding >= 1 % of samples, KL(histogram || uniform)."""
    n_classes = probs.shape[1]
    hist = np.bincount(probs.argmax(axis=1), minlength=n_classes) / len(probs)
    nonzero = hist[hist > 0]
    kl_uniform = float(np.sum(nonzero * np.log(nonzero * n_classes)))
    return {"classes_covered": int(np.sum(hist >= min_share)), "class_histogram":
            [round(float(h), 4) for h in hist], "kl_to_uniform": kl_uniform}


def confident_share(probs: np.ndarray, threshold: float = 0.9) -> float:
    return float(np.mean(probs.max(axis=1) >= threshold))


def class_accuracy(probs: np.ndarray, labels: np.ndarray) -> dict:
    """For samples asked to be of class `labels`: the share of class k's samples that the
    classifier puts in k, per class, their mean and their minimum."""
    predicted = probs.argmax(axis=1)
    per_class = [float(np.mean(predicted[labels == k] == k)) for k in range(probs.shape[1])
                 if np.any(labels == k)]
    return {"class_accuracy": float(np.mean(per_class)),
            "class_accuracy_min": float(np.min(per_class)),
            "class_accuracy_per_class": [round(a, 4) for a in per_class]}


def image_metrics(probs: np.ndarray, features: np.ndarray, ref_features: np.ndarray | None,
                  labels: np.ndarray | None = None) -> dict:
    """All image metrics for one set of samples; `ref_features` are the test split's (None where
    the split cannot be had: the Frechet distance is then None, the rest needs no real data);
    `labels`: the classes a conditional generator was asked for (adds class_accuracy*)."""
    fd = None if ref_features is None else frechet_distance(features, ref_features)
    return {"n_samples": int(len(probs)), "classifier_score": classifier_score(probs),
            "frechet_distance": fd,
            **class_coverage(probs), "confident_share": confident_share(probs),
            **({} if labels is None else class_accuracy(probs, labels))}


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """2 E|A-B| - E|A-A'| - E|B-B'| (Euclidean): 0 iff the distributions are equal."""
    def mean_dist(x, y):
        return float(np.mean(np.linalg.norm(x[:, None, :] - y[None, :, :], axis=-1)))
    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def function_metrics(fake: np.ndarray, real: np.ndarray) -> dict:
    """Article 004: how far generated (x, y) points are from y = x^2 on x in [-0.5, 0.5]."""
    x, y = fake[:, 0], fake[:, 1]
    return {"n_samples": int(len(fake)), "mean_abs_error": float(np.mean(np.abs(y - x * x))),
            "share_in_domain": float(np.mean(np.abs(x) <= 0.5)),
            "energy_distance": energy_distance(fake[:2000], real[:2000])}
