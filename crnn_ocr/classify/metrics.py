"""Scores of classifiers and taggers, in numpy (no torch, no scikit-learn).

Classification: ``accuracy`` and ``confusion_matrix`` (rows: true class, columns: predicted).
Tagging (one score per clip and class, a 0/1 truth per clip and class), as PANNs reports it:
``average_precision`` per class (the mean of the precisions at each positive's rank, ties
ranked together: scikit-learn's ``average_precision_score``), ``roc_auc`` per class (the chance
that a random positive scores above a random negative, ties counting half: the Mann-Whitney U),
``d_prime`` (``sqrt(2) * Phi^-1(AUC)``, the separation of two unit-variance Gaussians with that
AUC) and their means over the classes that have both positives and negatives
(``tagging_metrics``). ``choose_thresholds`` picks each class's decision threshold by F1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Share of equal entries of two (N,) class-index arrays (0 for none)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    return float(np.mean(predicted == truth)) if truth.size else 0.0


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: entry [t, p] is how many clips of class t were called p."""
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return out


def confusion_csv(matrix: np.ndarray, names: tuple[str, ...] | list[str]) -> str:
    """A confusion matrix as CSV: a header of predicted classes, one row per true class."""
    lines = [",".join(["true\\predicted", *names])]
    lines += [",".join([name, *map(str, row)]) for name, row in zip(names, matrix.tolist())]
    return "\n".join(lines) + "\n"


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Average precision of one class: scores (N,), truth (N,) 0/1. NaN without positives.

    Clips are ranked by score; at each distinct score the precision of everything ranked at or
    above it is weighted by the positives it adds (tied clips enter together)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], truth[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # each distinct score's last rank
    true_pos = np.cumsum(t)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, true_pos]) / positives
    return float(np.sum(precision * recall_gain))


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of one class (ties count half). NaN without positives or negatives."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    s = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):  # average ranks over ties (1-based)
        ranks[order[a:b]] = (a + b + 1) / 2
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def d_prime(auc: float) -> float:
    """``sqrt(2) * Phi^-1(auc)``; +-inf at an AUC of 1 or 0, NaN for NaN."""
    if math.isnan(auc):
        return math.nan
    if auc <= 0.0 or auc >= 1.0:
        return math.copysign(math.inf, auc - 0.5)
    return math.sqrt(2.0) * NormalDist().inv_cdf(auc)


@dataclass(frozen=True)
class TaggingMetrics:
    """Means over the classes that have positives (mAP) or both positives and negatives (AUC, d')."""

    mean_average_precision: float
    mean_auc: float
    d_prime: float  # of the mean AUC, as PANNs reports it
    average_precision: tuple[float, ...]  # per class (NaN: no positives)
    auc: tuple[float, ...]  # per class (NaN: no positives or no negatives)


def tagging_metrics(scores: np.ndarray, truth: np.ndarray) -> TaggingMetrics:
    """Scores (N, K) and 0/1 truth (N, K) -> ``TaggingMetrics``."""
    scores, truth = np.asarray(scores), np.asarray(truth)
    ap = [average_precision(scores[:, k], truth[:, k]) for k in range(scores.shape[1])]
    auc = [roc_auc(scores[:, k], truth[:, k]) for k in range(scores.shape[1])]
    mean_ap = float(np.nanmean(ap)) if not all(map(math.isnan, ap)) else math.nan
    mean_auc = float(np.nanmean(auc)) if not all(map(math.isnan, auc)) else math.nan
    return TaggingMetrics(mean_ap, mean_auc, d_prime(mean_auc), tuple(ap), tuple(auc))


def choose_thresholds(scores: np.ndarray, truth: np.ndarray, default: float = 0.5) -> list[float]:
    """Per class, the threshold (tag when score >= it) with the best F1 on these clips: the
    midpoint between the lowest score kept and the next lower one (or 0), the highest cut among
    equal F1s. ``default`` for a class without positives."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    out = []
    for k in range(scores.shape[1]):
        s, t = scores[:, k], truth[:, k]
        if not t.any():
            out.append(default)
            continue
        order = np.argsort(-s, kind="mergesort")
        s_sorted, t_sorted = s[order], t[order]
        cuts = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]  # keep ranks 0..cut
        true_pos = np.cumsum(t_sorted)[cuts]
        f1 = 2 * true_pos / (cuts + 1 + t.sum())
        best = int(cuts[int(np.argmax(f1))])
        below = s_sorted[best + 1] if best + 1 < len(s) else min(0.0, s_sorted[best])
        out.append(float((s_sorted[best] + below) / 2))
    return out
