"""The judge for generated digits: an MLP trained on scikit-learn's real digits.

It sees 32x32 images average-pooled to 8x8 (the digits' native size), the same
pipeline for real and generated images. It is never trained on generated data.
"""

from __future__ import annotations

import functools

import numpy as np

from genimg_export.zoo import data


@functools.cache
def classifier():
    from sklearn.neural_network import MLPClassifier

    x, y = data.digits("train")
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=600, random_state=0)
    return clf.fit(data.digits_8x8(x) / 16.0, y)


def predict_proba(images: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 10) for 32x32x1 images in [-1, 1]."""
    return classifier().predict_proba(data.digits_8x8(np.clip(images, -1, 1)) / 16.0)


def held_out_accuracy() -> float:
    x, y = data.digits("test")
    return float(np.mean(predict_proba(x).argmax(1) == y))


def sample_quality(images: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """mean_confidence, class coverage, diversity (and class_accuracy given labels).

    diversity = mean pairwise L2 distance among the samples over that among the
    same number of real held-out digits (about 1 means as varied as real data).
    """
    proba = predict_proba(images)
    real, _ = data.digits("test")
    out = {
        "mean_confidence": round(float(proba.max(1).mean()), 4),
        "classes_covered": int(len(np.unique(proba.argmax(1)))),
        "diversity": round(_spread(images) / _spread(real[: len(images)]), 4),
        "classifier_held_out_accuracy": round(held_out_accuracy(), 4),
    }
    if labels is not None:
        out["class_accuracy"] = round(float(np.mean(proba.argmax(1) == labels)), 4)
    return out


def _spread(images: np.ndarray) -> float:
    flat = images.reshape(len(images), -1)[:200].astype(np.float64)
    sq = (flat**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0)
    n = len(flat)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))
