"""What a test split's boards show: a row per board, verdicts of taps combined per board side,
and the study's own board check.

:func:`tapcheck.evaluation.evaluate_scores` reports these beside its rates; the verdicts that
``judge --per-board``, ``listen`` and ``station`` give of clips are :mod:`tapcheck.boards`'.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .datasets import Take
from .falsealarms import rate_interval


def board_rows(takes: Sequence[Take], scores: np.ndarray, *, threshold: float) -> list[dict]:
    """One row per board and label of ``takes``: label, group, sides, clips, mean score,
    flagged ("k/n").

    A board whose takes carry both labels (a healthy end and a cracked end, or a defect take
    among a known board's) gets two rows, ``normal`` first: one row labelled by its first take
    counted the cracked end's takes as healthy ones, and its recall was never reported.

    Parameters
    ----------
    takes : sequence of Take, length n
    scores : np.ndarray, shape (n,)
        Anomaly scores, higher = more anomalous.
    threshold : float
        A take scoring above it is flagged.

    Returns
    -------
    list of dict
        ``board`` (int), ``label``, ``group`` (the row's takes' groups, "/"-joined when they
        differ), ``sides`` (the sides its takes were struck on, in order), ``clips``,
        ``mean score``, ``flagged``; ``both labels``, True on both rows of a board with two.
    """
    scores = np.asarray(scores, dtype=float)
    key_of = [(t.board, t.label != "normal") for t in takes]  # normal before defect
    split_boards = {b for b, _ in key_of if (b, False) in key_of and (b, True) in key_of}
    rows = []
    for board, defect in sorted(set(key_of)):
        idx = [i for i, k in enumerate(key_of) if k == (board, defect)]
        mine = scores[idx]
        groups = list(dict.fromkeys(takes[i].group for i in idx))
        n = len(idx)
        rows.append({"board": board, "label": takes[idx[0]].label, "group": "/".join(groups),
                     "sides": sorted({takes[i].side for i in idx}), "clips": n,
                     "mean score": float(mine.mean()),
                     "flagged": f"{int((mine > threshold).sum())}/{n}",
                     "both labels": board in split_boards})
    return rows


def row_name(row: dict) -> str:
    """A :func:`board_rows` row's name: its board ("11"), or, for a board with rows of both
    labels, board and label ("11 defect"), so that neither row's figure reads as the board's."""
    return f"{row['board']} {row['label']}" if row.get("both labels") else str(row["board"])


def ratio(flagged: str) -> float:
    """A row's ``flagged`` ("k/n") as a share."""
    k, n = flagged.split("/")
    return int(k) / int(n)


def board_verdicts(takes: Sequence[Take], scores: np.ndarray, *, taps: int, threshold: float,
                   board_threshold: float, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Verdicts of ``taps`` taps at a time: consecutive takes of one board side and label,
    combined.

    Two rules, both reported: ``median`` (median score over ``board_threshold``, the threshold
    calibrated for medians of ``taps`` normal taps) and ``vote`` (a majority of the taps over the
    per-tap ``threshold``; for 3 taps that is the median over the per-tap threshold).

    Returns
    -------
    dict
        ``taps``, ``healthy`` and ``defective`` (how many verdicts), and per rule
        ``{rule}_healthy_flagged`` and ``{rule}_defective_found`` (shares, None without such
        boards) with their 95 % intervals ``{rule}_healthy_ci``, ``{rule}_defective_ci``
        (:func:`rate_interval`, verdicts of one board resampled together; ``n_boot``, ``seed``).
    """
    from .boards import BOARD_RULES

    scores = np.asarray(scores, dtype=float)
    against = {"median": board_threshold, "vote": threshold}
    flags: dict[str, list[bool]] = {rule: [] for rule in against}
    defect, board = [], []
    # a verdict combines taps of one board side and one label: a side with a defect take among
    # healthy ones (or relabelled) would make a "healthy" verdict out of a cracked tap
    by_side: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(takes):
        by_side.setdefault((t.class_name, t.label), []).append(i)
    for name in sorted(by_side):
        idx = sorted(by_side[name], key=lambda i: takes[i].take)
        for start in range(0, len(idx) - taps + 1, taps):
            s = scores[idx[start:start + taps]]
            for rule, t in against.items():
                flags[rule].append(BOARD_RULES[rule].flags(s, t))
            defect.append(takes[idx[start]].label == "defect")
            board.append(takes[idx[start]].board)
    defect, board = np.array(defect, dtype=bool), np.array(board)
    out: dict[str, Any] = {"taps": taps, "healthy": int((~defect).sum()),
                           "defective": int(defect.sum())}
    for rule in against:
        flagged = np.array(flags[rule], dtype=bool)
        for name, mask, what in (("healthy", ~defect, "flagged"), ("defective", defect, "found")):
            out[f"{rule}_{name}_{what}"] = float(flagged[mask].mean()) if mask.any() else None
            out[f"{rule}_{name}_ci"] = (rate_interval(flagged[mask], board[mask], n_boot=n_boot,
                                                      seed=seed) if mask.any() else None)
    return out


def study_board_check(board_means: dict[int, float]) -> tuple[bool | None, str | None]:
    """The study's check on its demo boards: board 8, struck on the saw cut's side, scores
    higher than board 7, the same board struck at its far end. ``board_means`` holds the
    defect boards' means only: healthy boards 7 and 8 (the plant set's) are no such pair.

    Returns ``(passed, sentence)``, or ``(None, None)`` when the test split lacks either board.
    """
    if 7 not in board_means or 8 not in board_means:
        return None, None
    from .console import score_pair

    b7, b8 = board_means[7], board_means[8]
    # significant digits, as the board table shows the means: four decimals printed a tiny
    # model's "(0.0008 vs 0.0009)" beside the table's 0.0008753 and 0.001021
    t8, t7 = score_pair(b8, b7, kind="g")
    if b8 > b7:
        return True, (f"board 8 (struck on the cut side) scores higher than board 7 "
                      f"({t8} vs {t7}), as in the study")
    return False, (f"board 8 (struck on the cut side) does not score higher than board 7 "
                   f"({t8} vs {t7}); in the study it did")
