"""Board verdicts: an inspector taps a board a few times; the taps make one verdict.

Two rules (:data:`BOARD_RULES`, ``train.board_rule``):

- ``vote`` (the default): the board is anomalous when more than half of its taps score over the
  tap threshold, so a board verdict never contradicts most of its tap verdicts; a tie (half of
  an even count) is decided by the median of the taps against the tap threshold, which makes
  the vote the median rule at the tap threshold for any count. With arcface-lite
  ±20 % and ``knn-decay`` on the synthetic sets it flagged 0-2.6 % of healthy boards from 3 taps,
  fewer than the median rule on every set and model measured (docs/new-boards.md).
- ``median``: the median of the taps against a board threshold that
  :mod:`tapcheck.calibration` fits on medians of ``board_taps`` calibration taps drawn within one
  board, at ``board_far``. With the 4-8 held-out takes a board has in a calibration, those medians
  likely do not show their tail (a simulation in tests/test_calibration.py fails the same way): with
  the same models it flagged 1.6-10.8 % against a stated 2 %.

``tapcheck evaluate`` reports both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .console import percent, score_pair

# a board number has at most 6 digits (manifest.MAX_BOARD): "board1234567" is no board's folder,
# or enroll's advice "--board 1234567" would be refused and judge would group what --board cannot.
# Any case: an inspector's "Board12/" (or a case-blind file system's) is board 12 (QA).
_BOARD = re.compile(r"board0*([0-9]{1,6})$", re.IGNORECASE)
# a folder that names a board in another spelling ("board-12", "Board 12"): told, not guessed
_NEAR = re.compile(r"board[-_ .#]+0*[0-9]+$", re.IGNORECASE)


def board_of_path(path: str | os.PathLike, *, as_written: bool = False) -> str | None:
    """The board a clip's path names in a dataset's layout (``board11/left/take001.wav`` ->
    ``"11"``), or None; ``as_written``: only in the path as given (a path relative to a
    dataset, not to the working folder)."""
    found = board_folder(path, as_written=as_written)
    return None if found is None else found[1]


def unplaced_reason(path: str | os.PathLike) -> str:
    """Why :func:`board_of_path` places the clip ``path`` on no board, in words."""
    parts = [p for spelt in (os.fspath(path), os.path.abspath(path))
             for p in spelt.replace("\\", "/").split("/")[:-1]]
    big = next((p for p in reversed(parts)
                if re.fullmatch(r"board0*[0-9]{7,}", p, re.IGNORECASE)), None)
    if big:
        return f"its folder {big} names no board (board numbers go up to 999999)"
    near = next((p for p in reversed(parts) if _NEAR.match(p)), None)
    if near:
        return (f"its folder {near} is not spelt boardNN "
                f"(board{re.sub(r'[^0-9]', '', near).lstrip('0') or '0'}/)")
    return "not in a boardNN/ folder"


def board_folder(path: str | os.PathLike, *, as_written: bool = False
                 ) -> tuple[str, str] | None:
    """The innermost ``boardNN`` folder of a clip's path and its board
    (``inbox/mon/board07/left/t1.wav`` -> ``("inbox/mon/board07", "7")``), or None.

    The path as written first, then as it lies from the root: ``take001.wav`` typed inside
    ``board55/left/`` is board 55's (each tap was a board of its own, and one odd tap failed
    the board).
    """
    for spelt in (os.fspath(path),) + (() if as_written else (os.path.abspath(path),)):
        parts = spelt.replace("\\", "/").split("/")
        for i in range(len(parts) - 2, -1, -1):
            m = _BOARD.match(parts[i])
            if m:
                return "/".join(parts[:i + 1]), m.group(1)
    return None


def mixed_board_folders(paths: Sequence[str | os.PathLike]) -> list[tuple[str, list[str]]]:
    """(board, its folders in order) of each board whose clips lie in more than one
    ``boardNN`` folder (``inbox/mon/board07`` and ``inbox/tue/board07``, or ``inbox/board7``).

    Grouped by number they are one board, as a board is; but Monday's and Tuesday's board 7,
    or two batches' boards that share a number, may not be the same board, and the one
    verdict would hide it. Folders are compared resolved (``./a/board07`` is ``a/board07``);
    the sides inside one board folder (``board07/left``, ``board07/right``) are one folder.
    """
    folders: dict[str, dict[str, str]] = {}  # board -> resolved folder -> as written first
    for p in paths:
        found = board_folder(p)
        if found is not None:
            folder, board = found
            folders.setdefault(board, {}).setdefault(os.path.realpath(folder), folder)
    return [(board, list(seen.values())) for board, seen in folders.items() if len(seen) > 1]


@dataclass(frozen=True)
class BoardRule:
    """How a board's taps make one verdict.

    ``threshold(tap_threshold, median_fit)`` is the threshold the rule compares against, from
    the calibration's two (``median_fit``: fitted at ``board_far`` on medians of ``board_taps``
    normal taps drawn within one board); ``flags(scores, threshold)`` says whether a board with
    these tap scores is anomalous; ``statement(calibration)`` is what ``judge`` says of it and
    ``line(verdict)`` the board line.
    ``per_count``: the threshold is calibrated for one number of taps (others hold only
    approximately).
    """

    name: str
    threshold: Callable[[float, float], float]
    flags: Callable[[np.ndarray, float], bool]
    statement: Callable[[dict], str]
    line: Callable[["BoardVerdict"], str]
    per_count: bool


def _median_line(v: "BoardVerdict") -> str:
    median, threshold = score_pair(v.median, v.threshold)  # the median rule's two numbers
    return (f"BOARD {v.board}: {v.verdict}  median {median} of {v.taps} taps  "
            f"board threshold {threshold} (for {v.expected_taps} taps)")


def _vote_line(v: "BoardVerdict") -> str:
    # widened as the tap lines are: a fixed four decimals printed "threshold 0.0033  median
    # 0.0033" for a median of 0.00332 over 0.00325
    median, threshold = score_pair(v.median, v.threshold)
    tie = "  (a tie: the median decides)" if v.over * 2 == v.taps else ""
    return (f"BOARD {v.board}: {v.verdict}  {v.over} of {v.taps} taps over the threshold "
            f"{threshold}  median {median}{tie}")


def _median_over(scores: np.ndarray, threshold: float) -> bool:
    """The median of a board's taps over ``threshold``. For the vote (the tap threshold) it is
    most taps over it, a tie decided by the median: a majority over puts both middle taps over,
    a minority neither. A tie once read NORMAL: one unreadable tap of 3 left 1 of 2 over,
    beside a median of 0.2429 over 0.0900."""
    return bool(np.median(scores) > threshold)


BOARD_RULES: dict[str, BoardRule] = {
    "vote": BoardRule(
        "vote", threshold=lambda tap, median_fit: float(tap), flags=_median_over,
        statement=lambda info: "most of them over the tap threshold",
        line=_vote_line,
        per_count=False),
    "median": BoardRule(
        "median", threshold=lambda tap, median_fit: float(median_fit),
        flags=_median_over,
        statement=lambda info: (f"median over {info['board_threshold']:.4g} for "
                                f"{percent(info['board_far'])} per board"),
        line=_median_line,
        per_count=True),
}


#: file names that are a clip's, not a board's, besides tapcheck's own formats
#: (:data:`tapcheck.audio.AUDIO_SUFFIXES`): the other usual ones
OTHER_CLIP_SUFFIXES = (".mp3", ".aif", ".aiff", ".opus", ".m4a")

#: a board's name is printed on one line and logged: a number or a serial, not a paragraph
MAX_BOARD_NAME = 64


def board_name_problem(name: str) -> str | None:
    """What is wrong with a board name given by hand (``judge --board``), or None.

    A line break or other control character would let a name forge a line of the output that
    a script reads (``--board $'7\\nBOARD 3 NORMAL'``)."""
    if not name.strip():
        return "is empty; name the board, e.g. --board 21"
    if not name.isprintable():
        return (f"holds a line break or another control character ({name!r}); name the board "
                "with letters, digits and punctuation, e.g. --board 21")
    # a clip's name that is not (or not yet) a file here is one too: `--board take001.wav
    # board02/left/take025.wav` judged take025 as "board take001.wav", exit 0
    from .audio import AUDIO_SUFFIXES

    suffix = os.path.splitext(name.strip())[1].lower()
    if not _NUMBER.fullmatch(name.strip()) and (
            os.path.isfile(name) or suffix in AUDIO_SUFFIXES + OTHER_CLIP_SUFFIXES):
        # `judge --board take001.wav take002.wav`, the number forgotten: the first clip became
        # the board's name, was never judged, and a cracked board's verdict could read NORMAL
        # (a number is a board even beside a file of that name; a folder may be named after a
        # board's serial, A-21/)
        what = "a file" if os.path.isfile(name) else "a clip's file name"
        return (f"is {what}, not a board; --board takes the board's number or serial, and the "
                "clips follow it, e.g. --board 21 " + name)
    if len(name) > MAX_BOARD_NAME:
        return f"is {len(name)} characters long; a board name has at most {MAX_BOARD_NAME}"
    return None


def board_name(name: str) -> str:
    """A board given by hand as the folders name it: a number without a sign, leading zeros or
    spaces (``--board 07``, ``' 7'`` and ``+7`` are board 7, as ``board07/`` is), a serial
    stripped."""
    name = name.strip()
    return str(int(name)) if _NUMBER.fullmatch(name) else name


#: a board number as typed by hand (``07``, ``+7``): a number, not a serial
_NUMBER = re.compile(r"\+?[0-9]+")


def other_board_folders(paths: Sequence[str | os.PathLike], board: str) -> list[tuple[str, str]]:
    """(path, folder's board) of each clip whose ``boardNN`` folder names another board than
    ``board``: a board given by hand that the recordings contradict."""
    named = board_name(board)
    return [(os.fspath(p), folder) for p in paths
            if (folder := board_of_path(p)) is not None and folder != named]


def other_board_warning(found: Sequence[tuple[str, str]], board: str | int, *,
                        done: str) -> str | None:
    """The one warning for clips whose ``boardNN`` folder names another board than the
    ``board`` given by hand (``found``: :func:`other_board_folders`), or None.

    ``done`` says what became of them ("judged", "enrolled"). One line however many clips: a
    line per clip buried a board's verdict (or an enrolment's summary) under thirty alike.
    """
    if not found:
        return None
    folders = sorted({folder for _, folder in found}, key=lambda b: (len(b), b))
    named = (f"board {folders[0]}" if len(folders) == 1
             else f"boards {', '.join(folders)}")
    if len(found) == 1:
        return f"{found[0][0]}: its folder names {named}, {done} as board {board}"
    return (f"{found[0][0]} and {len(found) - 1} more clip(s): their folders name {named}, "
            f"{done} as board {board}")


NOT_JUDGED = "NOT JUDGED"  # a board none of whose taps could be judged (``judge``)


@dataclass
class BoardVerdict:
    board: str
    verdict: str
    median: float | None  # None: no tap judged (NOT_JUDGED)
    taps: int
    threshold: float
    expected_taps: int
    rule: str = "vote"
    over: int = 0  # taps over ``threshold``
    unjudged: int = 0  # the board's clips that could not be judged (``judge``: their errors)

    def to_dict(self) -> dict:
        return dict(vars(self))

    def line(self) -> str:
        """The board line ``judge --per-board`` and ``listen --taps-per-board`` print."""
        if not self.taps:  # every tap an error: said, where the board was left out (QA)
            return (f"BOARD {self.board}: {NOT_JUDGED}  none of its {self.unjudged} tap(s) "
                    "could be judged: errors below")
        # the verdict of 1 tap of 3 read as the board's, the other two's errors aside (QA)
        missing = f"  ({self.unjudged} more tap(s) not judged: errors below)" \
            if self.unjudged else ""
        return BOARD_RULES[self.rule].line(self) + missing


def board_verdicts(paths: Sequence[str | os.PathLike], scores: Sequence[float], *,
                   threshold: float, expected_taps: int, board: str | None = None,
                   rule: str = "vote") -> list[BoardVerdict]:
    """One verdict per board, by ``rule`` (:data:`BOARD_RULES`).

    Parameters
    ----------
    paths : sequence, length n
        The judged clips; grouped by ``board`` if given, else by :func:`board_of_path` (a clip
        outside a board folder is a board of its own, named by its path).
    scores : sequence of float, length n
    threshold : float
        The model's board threshold (``calibration_["board_threshold"]``: the tap threshold for
        ``vote``, the threshold for medians of ``expected_taps`` taps for ``median``).
    expected_taps : int
        Taps the model's board verdict is calibrated for; a board with other counts is still
        judged.
    rule : {"vote", "median"}
        The model's ``calibration_["board_rule"]``.
    """
    how = BOARD_RULES[rule]
    groups: dict[str, list[float]] = {}
    for p, s in zip(paths, scores, strict=True):
        key = board if board is not None else (board_of_path(p) or os.fspath(p))
        groups.setdefault(key, []).append(float(s))
    out = []
    for key, values in groups.items():
        v = np.asarray(values)
        out.append(BoardVerdict(key, "ANOMALOUS" if how.flags(v, threshold) else "NORMAL",
                                float(np.median(v)), len(v), float(threshold),
                                int(expected_taps), rule, int((v > threshold).sum())))
    return out
