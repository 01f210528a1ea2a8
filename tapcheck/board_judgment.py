"""What ``tapcheck judge --per-board`` adds to its clips' verdicts: a verdict per board
(:func:`tapcheck.boards.board_verdicts`), and the warnings that go with one — clips no folder
places on a board, a board's taps from several folders, fewer or more taps than the board verdict
is calibrated for, a board none of whose taps could be judged (:func:`judge_boards`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from .boards import (BOARD_RULES, NOT_JUDGED, BoardVerdict, board_of_path, board_verdicts,
                     mixed_board_folders, other_board_folders, other_board_warning,
                     unplaced_reason)
from .console import percent
from .strikes import TAPS_WARNED

if TYPE_CHECKING:
    from .judge import Verdict


@dataclass
class BoardJudgment:
    """Board verdicts, the warnings about the call (one line for many boards alike), and each
    board's own warnings by :attr:`BoardVerdict.board`, for its ``--json`` line (stderr gives
    them grouped: a script reading the board lines never saw them; QA)."""

    boards: list[BoardVerdict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    board_warnings: dict[str, list[str]] = field(default_factory=dict)

    def warn(self, board: str, line: str) -> None:
        """A warning on one board's line."""
        self.board_warnings.setdefault(board, []).append(line)


def and_more(count: int, what: str) -> str:
    """`` (and 3 more clip(s) alike)``, or nothing for 0: one warning for many alike."""
    return f" (and {count} more {what})" if count else ""


def judge_boards(verdicts: Sequence[Verdict], *, calibration: dict,
                 board: str | None = None) -> BoardJudgment:
    """The board verdicts of judged clips, and their warnings.

    Parameters
    ----------
    verdicts : sequence of Verdict
        :meth:`tapcheck.judge.Judge.judge_files`' verdicts, those that could not be judged
        among them (a board of only those is ``NOT JUDGED``).
    calibration : dict
        The model's calibration (``board_threshold``, ``board_taps``, ``board_rule``, ``far``).
    board : str, optional
        All clips are taps of this board; else each clip's ``boardNN/`` folder names its board.
    """
    info = calibration
    found = BoardJudgment()
    good = [v for v in verdicts if not v.error]
    folders_line = None
    if board is not None:  # as enroll warns: the folders may know better than the option
        folders_line = other_board_warning(
            other_board_folders([v.path for v in good], board), board, done="judged")
        found.warnings += [folders_line] if folders_line else []
    else:
        _placing_warnings(found, good)
    found.boards = board_verdicts(
        [v.path for v in good], [v.score for v in good], threshold=info["board_threshold"],
        expected_taps=info["board_taps"], board=board, rule=info["board_rule"])
    if folders_line:  # its JSON line too: a cracked board's tap outvoted there, without a word
        for b in found.boards:  # (QA); one board, as named there
            found.warn(b.board, folders_line)

    def board_of(v: Verdict) -> str:  # as board_verdicts groups the clips
        return board if board is not None else (board_of_path(v.path) or os.fspath(v.path))

    failed = Counter(board_of(v) for v in verdicts if v.error)
    for v in good:  # a file of several taps counts as one: its board line says so too
        for w in v.warnings:
            if TAPS_WARNED in w:
                found.warn(board_of(v), w)
    for b in found.boards:  # grouped as board_verdicts groups the judged clips
        b.unjudged = failed.get(b.board, 0)
    judged = {b.board for b in found.boards}
    # a board none of whose taps could be judged had no line at all, nor a JSON object: a
    # script reading the board lines saw nothing of it (QA)
    found.boards += [BoardVerdict(name, NOT_JUDGED, None, 0, float(info["board_threshold"]),
                                  int(info["board_taps"]), info["board_rule"], 0, unjudged=n)
                     for name, n in failed.items() if name not in judged]
    _tap_count_warnings(found, far=info["far"])
    return found


def _placing_warnings(found: BoardJudgment, good: Sequence[Verdict]) -> None:
    """Clips no folder places on a board (each a board of its own: say how to group), and one
    board number's taps from several folders."""
    loose: dict[str, list[str]] = {}  # one line per reason, not per clip (trial 39)
    for v in good:
        if board_of_path(v.path) is None:
            loose.setdefault(unplaced_reason(v.path), []).append(v.path)

    def loose_line(clip, reason: str, more: str = "") -> str:
        return (f"{clip}: {reason}, so judged as a board of its own{more}; give "
                "--board NAME to judge clips as one board")

    for reason, clips in loose.items():
        found.warnings.append(loose_line(clips[0], reason, and_more(
            len(clips) - 1, "clip(s) alike")))
        for clip in clips:
            found.warn(os.fspath(clip), loose_line(clip, reason))
    # one board number, several folders (Monday's and Tuesday's board07/): still one
    # board, but a user who mixed two boards of that number should hear of it
    for b, folders in mixed_board_folders([v.path for v in good]):
        line = (f"board {b}: its taps come from {len(folders)} folders ({folders[0]}, "
                f"{folders[1]}{', …' if len(folders) > 2 else ''}), judged as one "
                "board — if they are not the same board, judge each folder on its own")
        found.warnings.append(line)
        found.warn(str(b), line)


def _tap_count_warnings(found: BoardJudgment, *, far: float) -> None:
    """Boards of fewer taps than the board verdict is calibrated for, and (the vote) of many
    more."""
    short = [b for b in found.boards if 0 < b.taps < b.expected_taps]

    def short_line(b, more: str = "") -> str:  # the per-board rate is for its tap count
        return (f"board {b.board}: {b.taps} tap(s), where the board verdict is calibrated "
                f"for {b.expected_taps}; tap it {b.expected_taps - b.taps} more time(s) for "
                f"the stated rate{more}")

    found.warnings += [short_line(b, and_more(
        len(short) - 1, f"board(s) with fewer than {b.expected_taps} taps"))
        for b in short[:1]]
    for b in short:
        found.warn(b.board, short_line(b))
    # many more taps than the vote was calibrated for: a board with 26 of 60 taps over the
    # tap threshold (healthy boards' taps are over it 5 % of the time) read NORMAL, silently
    # (the median rule says so of any other count on its board line)
    long = [b for b in found.boards if b.taps > b.expected_taps
            and not BOARD_RULES[b.rule].per_count]

    def long_line(b, more: str = "") -> str:
        return (f"board {b.board}: {b.taps} taps, where the board verdict is calibrated for "
                f"{b.expected_taps}: its stated rate holds for groups of {b.expected_taps} — "
                f"{b.over} of the {b.taps} taps {'is' if b.over == 1 else 'are'} over the "
                f"tap threshold, where a healthy board's are {percent(far)} of the "
                f"time{more}")  # "against 5% of a healthy board's" was hard to parse

    # the others named: "(and 4 more board(s) …)" left a user to guess which (QA)
    others = ", ".join(str(o.board) for o in long[1:5]) + (", …" if len(long) > 5 else "")
    found.warnings += [long_line(b, and_more(
        len(long) - 1, f"board(s) with more than {b.expected_taps} taps: {others}"))
        for b in long[:1]]
    for b in long:
        found.warn(b.board, long_line(b))
