"""Board verdicts: an inspector taps a board a few times; the taps make one verdict.

The verdict is the median of the board's tap scores against the model's board threshold, which
:mod:`tapcheck.calibration` fits on medians of ``board_taps`` normal taps of one board (so it
carries its own false-alarm rate per board). With a per-tap threshold instead, the median of 3
taps is the 2-of-3 vote; ``tapcheck evaluate`` reports both rules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

_BOARD = re.compile(r"board0*(\d+)$")


def board_of_path(path: str | os.PathLike) -> str | None:
    """The board a clip's path names in a dataset's layout (``board11/left/take001.wav`` ->
    ``"11"``), or None."""
    for part in reversed(os.fspath(path).replace("\\", "/").split("/")[:-1]):
        m = _BOARD.match(part)
        if m:
            return m.group(1)
    return None


@dataclass
class BoardVerdict:
    board: str
    verdict: str
    median: float
    taps: int
    threshold: float
    expected_taps: int

    def to_dict(self) -> dict:
        return dict(vars(self))

    def line(self) -> str:
        """The board line ``judge --per-board`` and ``listen --taps-per-board`` print."""
        return (f"BOARD {self.board}: {self.verdict}  median {self.median:.4f} of {self.taps} "
                f"taps  board threshold {self.threshold:.4f} (for {self.expected_taps} taps)")


def board_verdicts(paths: Sequence[str | os.PathLike], scores: Sequence[float], *,
                   threshold: float, expected_taps: int, board: str | None = None
                   ) -> list[BoardVerdict]:
    """One verdict per board: median score over ``threshold`` (the board threshold).

    Parameters
    ----------
    paths : sequence, length n
        The judged clips; grouped by ``board`` if given, else by :func:`board_of_path` (a clip
        outside a board folder is a board of its own, named by its path).
    scores : sequence of float, length n
    threshold : float
        The model's board threshold (for medians of ``expected_taps`` taps).
    expected_taps : int
        Taps the threshold was calibrated for; a board with other counts is still judged.
    """
    groups: dict[str, list[float]] = {}
    for p, s in zip(paths, scores, strict=True):
        key = board if board is not None else (board_of_path(p) or os.fspath(p))
        groups.setdefault(key, []).append(float(s))
    out = []
    for key, values in groups.items():
        median = float(np.median(values))
        out.append(BoardVerdict(key, "ANOMALOUS" if median > threshold else "NORMAL", median,
                                len(values), float(threshold), int(expected_taps)))
    return out
