"""How a model did on a dataset's test split: one evaluation for every command that reports it.

:func:`evaluate_scores` turns the anomaly scores of test takes into what ``demo``, ``compare``
and ``evaluate`` report: a row per board (takes, mean score, how many flagged), AUC with a
bootstrap interval, pAUC, F1 and false alarms at the model's threshold, and the study's own
board check (:func:`study_board_check`), written here once.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .datasets import Take
from .metrics import auc, best_f1_threshold, bootstrap_ci, f1_at, pauc, tpr_at_fpr


def board_rows(takes: Sequence[Take], scores: np.ndarray, *, threshold: float) -> list[dict]:
    """One row per board of ``takes``: label, group, clips, mean score, flagged ("k/n").

    Parameters
    ----------
    takes : sequence of Take, length n
    scores : np.ndarray, shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        A take scoring above it is flagged.
    """
    scores = np.asarray(scores, dtype=float)
    board_of = np.array([t.board for t in takes])
    rows = []
    for board in sorted(set(board_of.tolist())):
        mine = board_of == board
        first = next(t for t in takes if t.board == board)
        n = int(mine.sum())
        rows.append({"board": board, "label": first.label, "group": first.group, "clips": n,
                     "mean score": float(scores[mine].mean()),
                     "flagged": f"{int((scores[mine] > threshold).sum())}/{n}"})
    return rows


def study_board_check(board_means: dict[int, float]) -> tuple[bool | None, str | None]:
    """The study's check on its demo boards: board 8, struck on the saw cut's side, scores
    higher than board 7, the same board struck at its far end.

    Returns ``(passed, sentence)``, or ``(None, None)`` when the test split lacks either board.
    """
    if 7 not in board_means or 8 not in board_means:
        return None, None
    b7, b8 = board_means[7], board_means[8]
    if b8 > b7:
        return True, (f"board 8 (struck on the cut side) scores higher than board 7 "
                      f"({b8:.4f} vs {b7:.4f}), as in the study")
    return False, (f"board 8 (struck on the cut side) does not score higher than board 7 "
                   f"({b8:.4f} vs {b7:.4f}); in the study it did")


def evaluate_scores(takes: Sequence[Take], scores: np.ndarray, *, threshold: float,
                    n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every figure tapcheck reports for scored test takes.

    Parameters
    ----------
    takes : sequence of Take, length n
        The judged takes; ``label == "defect"`` are the positives.
    scores : np.ndarray, shape (n,)
    threshold : float
        The model's threshold (learned from normal clips only).
    n_boot, seed : bootstrap of the AUC's 95 % interval over clips.

    Returns
    -------
    dict
        ``auc``, ``auc_ci_low``, ``auc_ci_high``, ``pauc``, ``tpr_at_5fpr``, ``threshold``,
        ``f1``, ``false_alarms`` (share of normal takes flagged), ``best_f1``,
        ``best_f1_threshold``, ``board8_over_board7``, ``board_means`` ({"board": mean}) and
        ``boards`` (:func:`board_rows`).
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.array([t.label == "defect" for t in takes], dtype=bool)
    lo, hi = bootstrap_ci(labels, scores, n_boot=n_boot, seed=seed)
    best_threshold, best_f1 = best_f1_threshold(labels, scores)
    rows = board_rows(takes, scores, threshold=threshold)
    means = {r["board"]: r["mean score"] for r in rows}
    normal = ~labels
    return {
        "auc": auc(labels, scores), "auc_ci_low": lo, "auc_ci_high": hi,
        "pauc": pauc(labels, scores), "tpr_at_5fpr": tpr_at_fpr(labels, scores, fpr=0.05),
        "threshold": float(threshold), "f1": f1_at(labels, scores, threshold=threshold),
        "false_alarms": float((scores[normal] > threshold).mean()) if normal.any() else None,
        "best_f1": best_f1, "best_f1_threshold": best_threshold,
        "board8_over_board7": study_board_check(means)[0],
        "board_means": {str(b): m for b, m in means.items()},
        "boards": rows,
    }
