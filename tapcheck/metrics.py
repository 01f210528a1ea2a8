"""How well scores separate defective from normal clips.

Labels are 1 for defective (positive) and 0 for normal clips; scores are anomaly scores (higher =
more anomalous).
"""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    Computed as the Mann-Whitney U statistic (ties count one half), which is the ROC curve's
    trapezoidal area exactly: the bootstrap interval calls it 1000 times per evaluation, and
    sklearn's input validation made that 98 % of a small model's time in a ``compare`` grid.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pauc(labels: np.ndarray, scores: np.ndarray, *, max_fpr: float = 0.1) -> float:
    """Partial AUC for FPR <= ``max_fpr``, McClish-standardised, as the DCASE challenge computes it
    (``sklearn.metrics.roc_auc_score(..., max_fpr=0.1)``)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(int)
    if labels.size == 0 or labels.min() == labels.max():  # one class: not defined
        return float("nan")
    return float(roc_auc_score(labels, scores, max_fpr=max_fpr))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, *, fpr: float = 0.05) -> float:
    """Share of defective clips caught at the lowest threshold that flags at most ``fpr`` of
    the normal clips: the ROC curve's highest true-positive rate at a false-positive rate of
    ``fpr`` or less (``sklearn.metrics.roc_curve``'s).

    The threshold is the ``floor(n * fpr) + 1``-th highest normal score (a clip is flagged
    above it). ``np.quantile(normal, 1 - fpr, method="higher")`` took one higher whenever
    ``n * fpr`` was whole (20, 40, ... normal clips at 5 %), flagging one normal clip fewer
    than allowed and reporting a lower rate (0.70 for 0.77 with 20; audit)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=float)
    if labels.all() or not labels.any():
        return float("nan")
    normal = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(len(normal) * fpr + 1e-9))  # 1e-9: 0.05 * 20 is 1.0000000000000002
    threshold = normal[allowed] if allowed < len(normal) else -np.inf
    return float((scores[labels] > threshold).mean())


def f1_at(labels: np.ndarray, scores: np.ndarray, *, threshold: float) -> float:
    """F1 of "defect" when clips scoring above ``threshold`` are flagged."""
    labels = np.asarray(labels).astype(bool)
    flagged = np.asarray(scores) > threshold
    tp = float((flagged & labels).sum())
    denom = flagged.sum() + labels.sum()
    return 2.0 * tp / denom if denom else float("nan")


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold (between two sorted scores, or just below the lowest: every clip flagged)
    with the highest F1, and that F1."""
    scores = np.asarray(scores, dtype=float)
    candidates = np.unique(scores)
    if not len(candidates):
        return float("nan"), float("nan")
    # flagging every clip is a cut too: with mostly defective clips and a poor ranking it can
    # be the best, and was never tried (stats audit)
    cuts = np.concatenate([[np.nextafter(candidates[0], -np.inf)],
                           (candidates[:-1] + candidates[1:]) / 2.0])
    f1s = np.array([f1_at(labels, scores, threshold=c) for c in cuts])
    best = int(np.nanargmax(f1s))
    return float(cuts[best]), float(f1s[best])


def bootstrap_ci(labels: np.ndarray, scores: np.ndarray, *, metric=auc,
                 groups: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric``, stratified by label.

    Parameters
    ----------
    labels, scores : np.ndarray, shape (n,)
    metric : callable
        ``metric(labels, scores) -> float``.
    groups : np.ndarray, shape (n,), optional
        The board of each clip. Given, whole boards are resampled (a cluster bootstrap: a
        board's clips score alike, so the spread a new set of boards would show is the spread
        over boards), the normal and the defective clips of one board as two units, each label's
        units resampled among themselves. Default: clips are resampled.
    n_boot, level, seed : resamples, confidence level, random seed.

    Returns
    -------
    (low, high) : tuple of float
        NaN when a label has no clip, or (``groups`` given) fewer than two units.
    """
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=float)
    strata = [np.flatnonzero(labels), np.flatnonzero(~labels)]
    if groups is None:
        if min(len(s) for s in strata) < 1:
            return float("nan"), float("nan")
    else:
        groups = np.asarray(groups)
        units = [[stratum[groups[stratum] == g] for g in np.unique(groups[stratum])]
                 for stratum in strata]
        if min(len(u) for u in units) < 2:  # one board's spread is no spread over boards
            return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        if groups is None:
            idx = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])
        else:
            idx = np.concatenate([u[j] for u in units for j in rng.integers(0, len(u), len(u))])
        values.append(metric(labels[idx], scores[idx]))
    lo, hi = np.nanquantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
