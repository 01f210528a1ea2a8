"""What a new take of a dataset takes from the takes already there: a folder it may be written
to, its number, the board's group, and a word when it is stored at another sample rate than
theirs (``import``, ``record``, ``synth``)."""

from __future__ import annotations

import os
import posixpath
import re
import warnings
from collections import Counter
from typing import TYPE_CHECKING

from . import manifest
from .errors import DatasetError, TapcheckWarning
from .manifest import MANIFEST

if TYPE_CHECKING:
    from .datasets import Dataset


def inherited_group(dataset: Dataset, *, board: int, label: str) -> str:
    """The group the board's takes of ``label`` share, or "" when they share none.

    A take imported or recorded without ``--group`` joined a board whose other takes were all
    ``reference`` with an empty group, and its row read ``reference/`` in ``evaluate`` (QA).
    """
    # takes imported with no group before this (""), beside `reference` ones, leave it
    groups = board_groups(dataset, board=board, label=label) - {""}
    return groups.pop() if len(groups) == 1 else ""


def board_groups(dataset: Dataset, *, board: int, label: str) -> set[str]:
    """The groups of the board's takes of ``label`` ("" for takes of none)."""
    return {t.group for t in dataset.takes if t.board == board and t.label == label}


def warn_of_other_group(dataset: Dataset, *, board: int, label: str, group: str) -> None:
    """Warn when ``--group`` puts new takes of a board in another group than the one its other
    takes of ``label`` share: the board side was split across two groups without a word, two
    rows in ``info`` and in ``evaluate``'s groups (QA). A new lot may be meant: a warning."""
    groups = sorted(board_groups(dataset, board=board, label=label))
    if not group or not groups or group in groups:
        return
    # takes of no group, or of several, split as much (review)
    said = ("have no group" if groups == [""] else f"are in group '{groups[0]}'"
            if len(groups) == 1 else
            "are in groups " + ", ".join(f"'{g}'" if g else "(none)" for g in groups))
    join = ("leave out --group to join them" if len(groups) == 1 else
            "give one of those with --group")
    warnings.warn(
        f"{dataset.root}: board {board}'s other {label} takes {said}, these go in '{group}', so "
        f"the board is counted under both in `info` and `evaluate` — {join}", TapcheckWarning,
        stacklevel=2)


def warn_of_other_rate(dataset: Dataset, *, sr: int, setting: str = "[audio] sr") -> None:
    """Warn when new takes are stored at another sample rate than most of the dataset's takes:
    ``--config`` of another ``[audio] sr`` wrote them without a word (QA). The takes stay usable
    (every reader resamples to its own rate): a warning."""
    rates = Counter(t.sample_rate for t in dataset.takes)
    if not rates:
        return
    (old, n), = rates.most_common(1)  # one stray take of another rate silenced it for good (QA)
    if old != sr:
        warnings.warn(
            f"{dataset.root}: {n} of its {len(dataset.takes)} take(s) are stored at {old} Hz and "
            f"these at {sr} Hz ({setting}); every command resamples to its own rate, but a rate "
            f"under {old} Hz keeps less of each tap — use a config with sr = {old} for this "
            "dataset", TapcheckWarning, stacklevel=2)


def check_take_folder(dataset: Dataset, board: int, side: str, *, label: str | None = None,
                      split: str = "train") -> None:
    """Refuse to add takes of a board side whose folder is a link leading out of the dataset,
    whose name differs from one of the board's sides only in case, or (given their
    ``label``) training takes of a label the side's training takes lack.

    A take written there would land outside the dataset, and :meth:`Dataset.path_of` would
    then refuse the dataset (``info``, ``train``, ``doctor``): ``import`` and ``record`` call
    this before their first take, :meth:`Dataset.add_take` before every one. A training side is
    one class, healthy or cracked: ``import --label defect`` into a healthy side was written,
    and ``train`` then refused the dataset until its manifest was edited by hand.

    Raises
    ------
    DatasetError
        Naming the linked folder (the board's or the side's), or the side and its label.
    """
    spelt = {t.side for t in dataset.takes if t.board == board and t.side != side
             and t.side.lower() == side.lower()}
    if spelt:  # two classes of one end, one folder on a case-blind disk (QA)
        raise DatasetError(
            f"board {board} has a side {min(spelt)} already; {side} differs from it only in "
            "case, and would be a board side of its own", path=dataset.root / MANIFEST,
            fix=f"use --side {min(spelt)}")
    other = {"normal": "defect", "defect": "normal"}.get(label or "")
    if split == "train" and other and any(
            t.board == board and t.side == side and t.split == "train" and t.label == other
            for t in dataset.takes):
        raise DatasetError(
            f"board {board} {side} holds {other} training takes, and a board side is one "
            f"class, healthy or cracked: {label} takes there would stop `train`",
            path=dataset.root / MANIFEST,
            fix=f"give the {label} takes a side name of their own (e.g. --side "
                f"{side}-{'crack' if label == 'defect' else 'healthy'}), or --split test")
    board_rel = f"board{board:02d}"
    side_rel = f"{board_rel}/{side}"
    for rel in (board_rel, side_rel):  # "board09/left: cannot be written (Not a
        # directory)" named a path under the file, and no fix (QA)
        where = dataset.root / rel
        if (os.path.lexists(where) and not where.is_dir()
                and not os.path.islink(where)):
            raise DatasetError(
                f"is a file where the folder of board {board}"
                f"{'' if rel == board_rel else ' ' + side}'s takes belongs", path=where,
                fix="move it out of the dataset (tapcheck makes the folder)")
    if not dataset.leads_out(side_rel):
        return
    linked = board_rel if dataset.leads_out(board_rel) else side_rel  # name the link itself
    raise DatasetError(
        f"is a link to {(dataset.root / linked).resolve()}, outside the dataset; takes of board "
        f"{board} {side} would be written there and the dataset could no longer be read",
        path=dataset.root / linked,
        fix="replace the link by a folder (move what it holds into the dataset)")


def next_take(dataset: Dataset, board: int, side: str) -> int:
    """Number for a new take: after the highest in the manifest **or** on disk, and after
    every file name a row gives in the take's folder, whatever its board, side or take
    columns say (a row edited by hand to name board01/left/take004.wav for board 2: the
    take was written there, and the manifest then held that path twice and could not be
    read; QA)."""
    numbers = [t.take for t in dataset.takes if t.board == board and t.side == side]
    here = f"board{board:02d}/{side}"
    numbers += [int(m.group(1)) for t in dataset.takes
                if posixpath.dirname(t.path) == here
                and (m := re.fullmatch(r"take(\d+)\.wav", posixpath.basename(t.path)))]
    folder = dataset.root / f"board{board:02d}" / side
    on_disk = {}
    if folder.is_dir():
        for f in folder.glob("take*.wav"):
            m = re.fullmatch(r"take(\d+)\.wav", f.name)
            if m:
                numbers.append(int(m.group(1)))
                on_disk[int(m.group(1))] = f
    number = max(numbers, default=0) + 1
    if number > manifest.MAX_TAKE:  # its row would lock the dataset: no reader takes it
        highest = on_disk.get(number - 1)
        raise DatasetError(
            f"has a take numbered {number - 1}, the largest a manifest holds is "
            f"{manifest.MAX_TAKE}: no take can be numbered after it; nothing was written",
            path=highest or dataset.root / MANIFEST,
            fix="rename that file to a smaller number (or move it out), or fix its row")
    return number
