"""Recalibration after enrolment: new references join a fitted kNN detector as one board, and
its threshold is set again the way it was set (cross-fit kept, leave-one-board-out refitted,
hold-out extended by the new board's scores, weighing as one board's).
"""

from __future__ import annotations

import numpy as np


def reference_groups(detector) -> np.ndarray:
    """The board group of each reference row of a fitted kNN detector.

    Returns
    -------
    np.ndarray of int, shape (n_references,)
        As stored; for a file from before board groups, each row a group of its own
        (negative numbers, never a board's).
    """
    groups = detector.reference_groups_
    if groups is None:  # a file from before board groups: each clip its own group
        return -np.arange(1, len(detector.reference_) + 1)
    return np.asarray(groups)


def add_references(detector, emb: np.ndarray, *, group: int) -> None:
    """Append embeddings (n, D) of one board to a fitted kNN detector and recalibrate it the
    way it was calibrated.

    Cross-fit: the threshold stays (its scores are of boards no network heard; a larger
    reference can only lower a new board's kNN distance — with ``knn-decay`` the new references
    also change the decay a clip near them is expected to have, either way).
    Leave-one-board-out: every reference is rescored without its board. Hold-out: the stored
    scores of the held-out takes are kept (the larger reference can only lower them, so they err
    on the safe side) and each new clip adds
    its score against the reference without itself, as a held-out take of a known board would
    (with ``knn-decay`` the kept scores may err either way, as above); the board's scores are
    then thinned to one board's count (:func:`one_board_share`).
    """
    first_row = len(detector.reference_)
    old_rows = detector.reference_.clone()
    _extend_and_recalibrate(detector, emb, group=group)
    # refitting prepares every row again (unit length for cosine), which moves rows already
    # unit-length by a rounding step: keep the old rows bit for bit, so --undo restores exactly
    detector.reference_[:first_row] = old_rows


def one_board_share(scores: np.ndarray, groups: np.ndarray, *, group: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The calibration scores with ``group``'s thinned to as many as the best-calibrated other
    board has, keeping their spread: one order statistic from each of that many equal shares
    (with one kept, the median; the lowest and highest were kept, and repeated enrolments into
    one board kept only those two; review). The threshold is one number for every board; a
    board's share of the scores is its weight in it. 29 taps of one board side enrolled among
    4 training boards' 8 held-out takes each made it half the calibration, and its taps,
    scored against their siblings, score low: the threshold fell from 0.090 to 0.062 and the
    training boards' false alarms went from 12.5 to 20.8 % (QA).

    Parameters
    ----------
    scores, groups : np.ndarray, shape (n,)
        Calibration scores and the board group of each.
    group : int
        The enrolled board's group.

    Returns
    -------
    scores, groups : np.ndarray, shape (m,), m <= n
        The other boards' scores as they were, then ``group``'s.
    """
    mine = groups == group
    others = groups[~mine]
    if not others.size:
        return scores, groups
    most = int(np.unique(others, return_counts=True)[1].max())
    if mine.sum() <= most:
        return scores, groups
    ranked = np.sort(scores[mine])
    kept = ranked[((np.arange(most) + 0.5) * len(ranked) / most).astype(int)]
    return (np.concatenate([scores[~mine], kept]),
            np.concatenate([others, np.full(most, group, dtype=groups.dtype)]))


def _extend_and_recalibrate(detector, emb: np.ndarray, *, group: int) -> None:
    groups = np.concatenate([reference_groups(detector), np.full(len(emb), group)])
    first_row = len(detector.reference_)
    reference = np.concatenate([detector.reference_rows(), np.asarray(emb, np.float32)])
    method = detector.calibration_["method"]
    if method == "leave-one-board-out":
        detector.fit(reference, groups=groups)
        # the enrolled board is one of those left out now: "each of 5 training boards" counted
        # it among the boards the network was trained on (trial 34)
        detector.calibration_["holds_for"] = detector.calibration_["holds_for"].replace(
            " training boards ", " training or enrolled boards ", 1)
        return
    detector._fit_reference(reference)
    detector.reference_groups_ = groups
    if method == "cross-fit":  # scores of boards no network heard: the new board changes none
        return
    new_scores = detector._self_scores(reference, None)[first_row:]
    detector.calibration_scores_ = np.concatenate([detector.calibration_scores_, new_scores])
    if detector.calibration_groups_ is not None:
        detector.calibration_groups_ = np.concatenate(
            [detector.calibration_groups_, np.full(len(emb), group)])
        detector.calibration_scores_, detector.calibration_groups_ = one_board_share(
            detector.calibration_scores_, detector.calibration_groups_, group=group)
    detector.recalibrate(method=method)
    # the enrolled boards are known now: the rate holds for them as for the training boards
    detector.calibration_["holds_for"] = detector.calibration_["holds_for"].replace(
        "boards in the training split", "boards in the training split or enrolled", 1)
