"""Takes whose folder names another board or side than their manifest row.

Every command counts a take as its row says: a side is a class the metric networks train on, a
board is what evaluate's rates and leave-one-board-out calibration group by. A left-end take
filed as right trained the right end's class; a row edited to ``Left`` (its folder ``left``)
trained a class of its own and calibrated on it, and only ``doctor`` objected (QA). ``doctor``
names such takes; ``train``, ``compare`` and ``evaluate`` refuse them; ``info`` warns.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

from .errors import DatasetError


def misplaced_boards(takes) -> list:
    """(take, its folder's board) of each take whose ``boardNN/`` folder names another board
    than its manifest row."""
    from .boards import board_of_path

    return [(t, folder) for t in takes
            if (folder := board_of_path(t.path, as_written=True)) is not None
            and int(folder) != t.board]


def other_sides(takes, *, every=None) -> list:
    """(take, its folder's side) of each take laid out as ``boardNN/<side>/<file>`` whose side
    folder names another side of its board than its manifest row. A folder named after no side
    of the board (``board01/day2/``, a layout train accepts) is no side, and was called one
    (review). A board's sides are those of ``every`` take of the dataset (default ``takes``):
    a test split of one take per side knew no other side of the board to call its folder
    (review)."""
    sides: dict[int, set[str]] = defaultdict(set)
    for t in (takes if every is None else every):
        sides[t.board].add(t.side)
    out = []
    for t in takes:
        parts = PurePosixPath(t.path).parts
        if (len(parts) == 3 and re.fullmatch(r"board\d+", parts[0], re.IGNORECASE)
                and parts[1] != t.side and parts[1] in sides[t.board]):
            out.append((t, parts[1]))
    return out


def misfiled(takes, *, every=None) -> list[tuple[str, str, str]]:
    """What is wrong with ``takes``' rows against their folders: (problem, fix, first take's
    path) per kind (board, side), empty when every row agrees with its folder; ``every``: all
    of the dataset's takes, of which ``takes`` are some (:func:`other_sides`)."""
    found = []
    for what, wrong, said in (
            ("board", misplaced_boards(takes),
             lambda t, folder: (f"board {t.board}", f"board {folder}")),
            ("side", other_sides(takes, every=every),
             lambda t, folder: (f"side {t.side}", folder))):
        if not wrong:
            continue
        take, folder = wrong[0]
        row, by_folder = said(take, folder)
        found.append((
            f"{len(wrong)} take(s) lie in another {what}'s folder than their row says, e.g. "
            f"{take.path}: {row} in the row, {by_folder} by its folder",
            f"correct the {what} in those rows (or move the files to their {what}'s folder): "
            "training, calibration and evaluate count each take as its row says",
            take.path))
    return found


def refuse_misfiled(takes, *, every, manifest: Path, split: str) -> None:
    """Raise a :class:`DatasetError` for the first kind :func:`misfiled` finds among the
    ``split`` takes of a dataset whose takes are ``every``."""
    found = misfiled(takes, every=every)
    if found:
        problem, fix, _ = found[0]
        raise DatasetError(f"among the {split} takes, {problem}", path=manifest,
                           fix=fix + " (tapcheck doctor --dataset lists both kinds)")
