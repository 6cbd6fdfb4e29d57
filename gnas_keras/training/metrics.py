"""Test-set metrics beyond the error, from saved probabilities (``test_predictions.npz``).

Every function takes

- probabilities: float [examples, N], the probability that attribute n is present;
- labels: int [examples, N], 1 = present, 0 = absent, -1 = unknown (ignored everywhere);

and returns per-attribute values [N] (NaN where an attribute has no usable labels) or their
NaN-ignoring mean. An attribute is predicted present when its probability is > 0.5, the same
decision as the training loop's argmax over two logits (a tie goes to "absent").

- error: wrong predictions / labelled examples (the paper's metric, Tables 2-4).
- AUC: area under the ROC curve from ranks (Mann-Whitney U), ties get the average rank;
  NaN when an attribute has only one class among its labels (GALM's metric).
- F1: of the "present" class, 2 TP / (2 TP + FP + FN); with rare attributes it shows what
  accuracy hides (always predicting "absent" is accurate and has F1 0).
- balanced accuracy: mean of the recalls of the classes present among the labels (the true
  positive rate and the true negative rate when both classes occur; the one recall when only
  one class does, as scikit-learn does).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of the values of a 1-D array, ties given the mean of their ranks
    (`scipy.stats.rankdata`'s default; written here because importing scipy.stats costs
    every run about 2 s of start-up)."""
    _, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                      # rank of each distinct value's last copy
    return ((last - counts + 1 + last) / 2.0)[inverse.reshape(-1)]


def _check(probabilities: np.ndarray, labels: np.ndarray):
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    if p.shape != y.shape or p.ndim != 2:
        raise ValueError(f"probabilities and labels must both be [examples, N], got "
                         f"{p.shape} and {y.shape}")
    return p, y


def attribute_errors(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute error [N] over the labelled examples (NaN: no labels)."""
    p, y = _check(probabilities, labels)
    known = y >= 0
    wrong = ((p > 0.5).astype(int) != y) & known
    with np.errstate(invalid="ignore", divide="ignore"):
        return wrong.sum(0) / np.where(known.sum(0) > 0, known.sum(0), np.nan)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of one attribute: scores [examples], labels [examples] in {1, 0, -1}.

    AUC = (sum of the ranks of the positives - P (P + 1) / 2) / (P * Q) with average ranks for
    ties, i.e. the probability that a random positive scores above a random negative, ties
    counting one half. NaN when there are no positives or no negatives.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    known = labels >= 0
    s, y = scores[known], labels[known] == 1
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def attribute_aucs(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute AUC [N] (NaN where an attribute has one class or none)."""
    p, y = _check(probabilities, labels)
    return np.array([auc(p[:, n], y[:, n]) for n in range(p.shape[1])])


def balanced_accuracies(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute balanced accuracy [N]: mean recall over the classes present."""
    p, y = _check(probabilities, labels)
    predicted = (p > 0.5).astype(int)
    out = np.full(p.shape[1], np.nan)
    for n in range(p.shape[1]):
        recalls = [np.mean(predicted[y[:, n] == c, n] == c) for c in (0, 1)
                   if np.any(y[:, n] == c)]
        if recalls:
            out[n] = np.mean(recalls)
    return out


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")


@dataclasses.dataclass
class Metrics:
    """Per-attribute arrays [N] and their means over the attributes where they are defined."""

    errors: np.ndarray
    aucs: np.ndarray
    balanced_accuracies: np.ndarray
    f1: Optional[np.ndarray] = None

    @property
    def mean_f1(self) -> float:
        return float("nan") if self.f1 is None else _nanmean(self.f1)

    @property
    def mean_error(self) -> float:
        return _nanmean(self.errors)

    @property
    def mean_auc(self) -> float:
        return _nanmean(self.aucs)

    @property
    def mean_balanced_accuracy(self) -> float:
        return _nanmean(self.balanced_accuracies)

    def to_dict(self, attribute_names: Sequence[str]) -> Dict:
        """JSON-ready: means and {attribute: value} maps (NaN becomes None)."""
        def clean(x):
            return None if np.isnan(x) else float(x)

        def per(values):
            return {a: clean(v) for a, v in zip(attribute_names, values)}

        return {"mean_error": clean(self.mean_error), "mean_auc": clean(self.mean_auc),
                "mean_balanced_accuracy": clean(self.mean_balanced_accuracy),
                "error": per(self.errors), "auc": per(self.aucs),
                "balanced_accuracy": per(self.balanced_accuracies),
                "mean_f1": clean(self.mean_f1),
                "f1": None if self.f1 is None else per(self.f1)}


def compute(probabilities: np.ndarray, labels: np.ndarray) -> Metrics:
    """All metrics of one prediction set (see the module docstring)."""
    return Metrics(attribute_errors(probabilities, labels),
                   attribute_aucs(probabilities, labels),
                   balanced_accuracies(probabilities, labels),
                   f1_scores(probabilities, labels))


def f1_scores(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-attribute F1 of the "present" class [N]: 2 TP / (2 TP + FP + FN) over the
    labelled examples; NaN when an attribute has no positive label and no positive
    prediction (F1 is undefined there)."""
    p, y = _check(probabilities, labels)
    known = y >= 0
    predicted = (p > 0.5) & known
    positive = (y == 1) & known
    tp = (predicted & positive).sum(0)
    denominator = 2 * tp + (predicted & ~positive).sum(0) + (~predicted & positive).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def choose_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per attribute, the probability threshold t (present when p > t) with the fewest
    errors on these labelled examples; among equally good ones the closest to 0.5, and 0.5
    for an attribute without labels. Candidates: 0.5 and the midpoints between consecutive
    distinct probabilities. Used on the validation split for an export's decisions."""
    p, y = _check(probabilities, labels)
    out = np.full(p.shape[1], 0.5)
    for n in range(p.shape[1]):
        known = y[:, n] >= 0
        scores, truth = p[known, n], y[known, n] == 1
        if not len(scores):
            continue
        distinct = np.unique(scores)
        candidates = np.concatenate([[0.5], (distinct[1:] + distinct[:-1]) / 2,
                                     [distinct[0] - 1e-6, distinct[-1]]])
        errors = np.array([np.sum((scores > t) != truth) for t in candidates])
        best = np.flatnonzero(errors == errors.min())
        out[n] = float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
    return out
