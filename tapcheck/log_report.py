"""What ``tapcheck log`` prints of the inspection log: a table of taps (time, board, verdict,
score, model, clip), the warnings of the newest taps that had any, and the board verdicts'
table; or, with ``--json``, a line per tap and per board verdict (:func:`log_lines`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .console import one_line, score_pair, table
from .json_output import json_line
from .logcheck import clip_inside

if TYPE_CHECKING:
    from .inspections import InspectionLog

#: taps whose warnings `tapcheck log` lists under its table; --json gives every one
WARNED_SHOWN = 20


def log_lines(log: InspectionLog, *, since: datetime | None = None, board: int | None = None,
              as_json: bool = False, selected: bool = False) -> tuple[list[str], list[str]]:
    """The lines ``tapcheck log`` prints of ``log``'s taps and board verdicts from ``since``
    (of one ``board``), and its warnings (rows whose clip leads out of the log's folder).

    Parameters
    ----------
    log : InspectionLog
    since : datetime, optional
        Aware; the first moment shown.
    board : int, optional
    as_json : bool
        A JSON object per tap, then ``{"board_verdict": {...}}`` per board verdict.
    selected : bool
        A selection was asked for: "no inspections … for that selection".

    Returns
    -------
    (list of str, list of str)
        Standard output's lines and the warnings, each one line.
    """
    rows = log.query(since=since, board=board)
    boards = log.query_boards(since=since, board=board)
    # the clip's path as the table gives it, one `judge` opens; one edited to lead out of
    # the log's folder is not the tap's (the station serves and exports it neither)
    clips = [(log.root / r.clip).as_posix() if clip_inside(r.clip) else None for r in rows]
    outside = [r.id for r, c in zip(rows, clips, strict=True) if c is None]
    warned = [f"{log.path}: the clip of inspection(s) {', '.join(map(str, outside[:5]))}"
              f"{' …' if len(outside) > 5 else ''} leads out of the log's folder (edited by "
              "hand?); it is not listed"] if outside else []
    if as_json:
        out = [json_line({**r.to_dict(), "clip": clip}) for r, clip in zip(rows, clips,
                                                                          strict=True)]
        out += [json_line({"board_verdict": {**b.to_dict(), "tap_rows": log.tap_rows(b)}})
                for b in boards]  # tap_rows: how many of its taps' rows are left
        return out, [one_line(w) for w in warned]
    if not rows:
        out = [one_line(f"no inspections in {log.path}" + (
            " for that selection" if selected and log.path.exists() else ""))]
    else:
        out = _tap_table(rows, clips)
    if boards:  # a board verdict whose taps' rows were deleted is still shown (--json has it)
        out += ["", *_board_table(log, boards)]
    return out, [one_line(w) for w in warned]


def _tap_table(rows: list, clips: list[str | None]) -> list[str]:
    """The taps' table, its count, and the newest taps' warnings."""
    lines = [{"time": r.local_time, "board": r.board, "verdict": r.verdict,
              # a tap said to be clipped or doubled read later as a sound verdict (QA)
              "!": "*" if r.warnings else "",
              **dict(zip(("score", "threshold"), score_pair(r.score, r.threshold), strict=True)),
              # a line break in a hand-edited row forged a line of the table (QA)
              "mark": r.mark or "",
              "model": one_line(r.model),
              "clip": one_line(clip or "(outside the log's folder)")}
             for r, clip in zip(rows, clips, strict=True)]
    warned = [r for r in rows if r.warnings]
    marked = any(r.mark for r in rows)  # the station's marks, as its log page has them
    out = [table(lines, ["time", "board", "verdict"] + (["!"] if warned else [])
                 + ["score", "threshold"] + (["mark"] if marked else []) + ["model", "clip"])]
    bad = sum(r.verdict == "ANOMALOUS" for r in rows)
    out.append(f"{len(rows)} inspection(s), {bad} anomalous"
               + (f", {len(warned)} with a warning (*): their verdict may be off"
                  if warned else ""))
    if len(warned) > WARNED_SHOWN:  # the newest are listed: the oldest were (review)
        out.append(f"* … {len(warned) - WARNED_SHOWN} earlier tap(s) with warnings "
                   "(tapcheck log --json gives each tap's)")
    for r in warned[-WARNED_SHOWN:]:
        for w in r.warnings:
            out.append(f"* {r.local_time}  board {r.board if r.board is not None else '-'}"
                       f": {one_line(w)}")
    return out


def _board_table(log: InspectionLog, boards: list) -> list[str]:
    """The board verdicts' table and its count."""
    lines = [{"time": b.local_time, "board": b.board, "#": b.number, "verdict": b.verdict,
              **dict(zip(("median", "threshold"), score_pair(b.median, b.threshold),
                         strict=True)),
              "taps": f"{b.taps} (for {b.board_taps})",
              "tap ids": f"{b.first_inspection}-{b.last_inspection}"
                         + _gone(log.tap_rows(b), b.taps)} for b in boards]
    bad = sum(b.verdict == "ANOMALOUS" for b in boards)
    return [table(lines, ["time", "board", "#", "verdict", "median", "threshold", "taps",
                          "tap ids"]),
            f"{len(boards)} board verdict(s), {bad} anomalous"]


def _gone(left: int, taps: int) -> str:
    """`` (rows gone)`` after a board verdict's tap ids whose rows were deleted: shown alone,
    the verdict read as if its taps could be looked up."""
    if left >= taps:
        return ""
    return " (rows gone)" if left == 0 else f" ({taps - left} of {taps} rows gone)"
