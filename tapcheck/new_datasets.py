"""Where a new dataset may be made, and taking back the folders a session made and added
nothing to (``synth``, ``import``, ``record``).

A new dataset went into another's folder, the recordings folder, a compare report or the file
system's root; an import that imported nothing left an empty folder no command knew (QA).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from .dataset_folders import (DATASET_DEPTH, as_given, dataset_holding, dataset_path,
                              recordings_in_dataset)
from .errors import DatasetError, TapcheckWarning
from .manifest import MANIFEST
from .paths import recordings_home


def creatable_path(name: str | os.PathLike) -> Path:
    """:func:`dataset_path` of a dataset a command may create, checked before any work (``record``
    checks it before the microphone opens): a file there, or a ``manifest.csv`` that is no
    file, is refused with what it is. ``--dataset clips/good.wav`` said "cannot be written
    (File exists) — a file stands where a folder should be".

    Raises
    ------
    DatasetError
    """
    from .file_kinds import non_folder_kind

    root = dataset_path(name)
    fix = "give the dataset's folder or name, e.g. --dataset bench"
    if root.name == MANIFEST:  # not a file (dataset_path takes a manifest file as its folder)
        raise DatasetError(f"is no {MANIFEST} file; a dataset is the folder holding its "
                           f"{MANIFEST}", path=root, fix=fix)
    kind = non_folder_kind(root)
    if kind:
        raise DatasetError(f"is {kind}, not a dataset's folder; the dataset's takes and "
                           f"{MANIFEST} go in a folder", path=root, fix=fix)
    if os.path.lexists(root / MANIFEST):
        if (root / MANIFEST).is_symlink() and not (root / MANIFEST).exists():
            # import and record wrote a new one-row manifest over the link, and every take the
            # manifest it led to listed dropped out of the dataset (QA)
            raise dangling_manifest(root)
        return root
    try:  # the dataset's own take files: not through a linked folder, which is named later
        lost = sum(1 for board in root.glob("board*") if _own_folder(board)
                   for side in board.iterdir() if _own_folder(side)
                   for _ in side.glob("take*.wav")) if root.is_dir() else 0
    except OSError:  # cannot be listed: making the dataset says what is wrong
        lost = 0
    # a new manifest would have listed the new take alone, without a word (QA); one take file
    # is what a writer killed between a new dataset's first take and its row leaves, which the
    # next writer numbers after and says so
    if lost > 1:
        raise DatasetError(
            f"holds {lost} take file(s) and no {MANIFEST}: a dataset whose manifest was moved "
            "or deleted?", path=root,
            fix=f"restore its {MANIFEST} (from a backup), or give a new folder for the dataset; "
                "a new manifest would leave those takes out of every command")
    if (root / "cells").is_dir() and (root / "metrics.json").is_file():
        # synth wrote 36 takes into a report folder, and compare then refused to update it
        raise DatasetError("holds a compare report (metrics.json, cells/): takes there would "
                           "make it a dataset, which compare no longer writes to", path=root,
                           fix="choose another folder for the dataset, e.g. --dataset bench")
    _refuse_tool_folder(root)
    inner = _dataset_below(root)
    if inner is not None:  # doctor then called the inner dataset's takes strays to delete (QA)
        raise DatasetError(
            f"holds dataset {inner} (its {MANIFEST}); a new dataset around it would take its "
            "takes for strays", path=root,
            fix=f"add the takes to {inner} itself, or give a folder of its own, e.g. --dataset "
                "bench (under the recordings folder)")
    holder = dataset_holding(root.parent)
    home = recordings_home()
    around = recordings_in_dataset() if root.parent.resolve() == home.resolve() else None
    if around is not None and (holder is None or holder == around):
        # `cd recordings/bench; tapcheck synth --dataset x` made recordings/bench/recordings/x
        raise DatasetError(
            f"lies inside dataset {as_given(around)}, as the recordings folder {home} does: a "
            "new dataset there would mix its takes with that one's", path=root,
            fix="run tapcheck from a folder outside that dataset, or set TAPCHECK_RECORDINGS "
                "to a folder outside it")
    if holder is not None:  # a new dataset among another's takes: doctor and train saw neither
        raise DatasetError(
            f"lies inside dataset {as_given(holder)}: a new dataset there would mix its takes "
            "with that one's", path=root,
            fix=f"add the takes to {as_given(holder)} itself, or give a folder outside it, "
                "e.g. --dataset bench (under the recordings folder)")
    return root


def warn_of_strangers(root: Path) -> None:
    """Say so when a new dataset goes into a folder that holds other things: ``import
    ~/clips/*.wav --dataset ~/clips`` made the folder of the clips a dataset without a word, its
    board folders and manifest among files no command of tapcheck's reads or lists."""
    if os.path.lexists(root / MANIFEST) or not root.is_dir():
        return
    try:
        # board folders are a dataset's own (its manifest lost, or a link synth refuses);
        # hidden files are no one's reading (.DS_Store, a write stopped part-way, the lock)
        others = [p.name for p in root.iterdir()
                  if not p.name.startswith(".") and not re.fullmatch(r"board\d+", p.name)]
    except OSError:  # cannot be listed: making the dataset says what is wrong
        return
    if others:
        first = sorted(others)[0]
        warnings.warn(TapcheckWarning(
            f"{root}: holds {len(others)} other file(s) or folder(s) (e.g. {first}) and no "
            f"{MANIFEST}: the dataset's takes and {MANIFEST} go in beside them; to keep them "
            "apart, give a new folder instead, e.g. --dataset bench"), stacklevel=3)


def _refuse_tool_folder(root: Path) -> None:
    """A new dataset may not be made at one of tapcheck's own folders, or around one: ``synth
    --dataset $TAPCHECK_RECORDINGS`` made the recordings folder a dataset (``datasets`` then
    listed none), one made at the inspections folder stopped ``listen``, and ``synth --dataset
    /`` wrote board folders into / (QA).

    Raises
    ------
    DatasetError
    """
    from .paths import UNKNOWN_HOME_CACHE, cache_home, home_folder, inspections_home, models_home

    here = root.resolve()
    folders = {"the recordings folder": recordings_home(), "the models folder": models_home(),
               "the inspection log's folder": inspections_home()}
    if cache_home() != UNKNOWN_HOME_CACHE:  # no home known: the cache is nowhere (not written)
        folders["the feature cache"] = cache_home()
    if home_folder() is not None:
        folders["your home folder"] = home_folder()
    fix = "give a folder of its own, e.g. --dataset bench (under the recordings folder)"
    for what, folder in folders.items():
        if here == folder.resolve():
            mix = "everything else there" if what == "your home folder" else \
                "tapcheck's own files"
            raise DatasetError(f"is {what}; a dataset there would mix its takes with {mix}",
                               path=root, fix=fix)
    for what, folder in folders.items():  # only folders there are: `--dataset .` in a new one
        if what != "your home folder" and folder.is_dir() and folder.resolve().is_relative_to(
                here):
            raise DatasetError(f"holds {what} ({folder}); a dataset there would mix its takes "
                               "with tapcheck's own files", path=root, fix=fix)
    # inside the folders tapcheck fills and prunes itself: `--dataset ./inspections/clips`,
    # where listen writes its clips (QA); the log's folder itself may well be the working one
    inside = {"the feature cache": folders.get("the feature cache"),
              "the inspection log's clips": inspections_home() / "clips",
              "the station's explanation pictures": inspections_home() / "explanations"}
    for what, folder in inside.items():
        if folder is not None and here.is_relative_to(folder.resolve()):
            raise DatasetError(f"lies inside {what} ({folder}); a dataset there would mix its "
                               "takes with tapcheck's own files", path=root, fix=fix)
    if here == Path(here.anchor):
        raise DatasetError("is the file system's root; a dataset's takes go in a folder of "
                           "their own", path=root, fix=fix)


def missing_folders(root: Path) -> list[Path]:
    """The folders a dataset's creation would make, for :func:`remove_made_folders`.

    Parameters
    ----------
    root : Path
        The dataset's folder.

    Returns
    -------
    list of Path
        ``root`` and each folder above it that does not exist yet, deepest first.
    """
    missing = []
    while not os.path.lexists(root) and root != root.parent:
        missing.append(root)
        root = root.parent
    return missing


def remove_made_folders(dataset, made: list[Path], *, board: int, side: str) -> Path | None:
    """Take back a dataset's folder an import (or a recording session) made and added nothing
    to: ``datasets`` and ``info`` did not know the empty folder it left, while ``import`` said
    it had imported "into" it. Called holding the lock, whose file goes first (unlinked while
    held, as :func:`tapcheck.locks.exclusive` does); only empty folders are removed (a take
    written before a failure keeps its folders), and nothing that was there before.

    Parameters
    ----------
    dataset : Dataset
        Held locked by the caller.
    made : list of Path
        :func:`missing_folders` of its folder, taken before it was created.
    board, side
        The board side the session wrote to: its folders go first.

    Returns
    -------
    Path or None
        The dataset's folder, if it was removed.
    """
    (dataset.root / ".lock").unlink(missing_ok=True)
    board_folder = dataset.root / f"board{board:02d}"
    for folder in (board_folder / side, board_folder, *made):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            break  # not empty: it holds what someone else may need, and so do the folders above
    return None if os.path.lexists(dataset.root) else dataset.root


def dangling_manifest(root: Path) -> DatasetError:
    """A dataset whose ``manifest.csv`` is a link to nothing: as every command says it."""
    return DatasetError(f"is a link to {os.readlink(root / MANIFEST)}, which does not exist",
                        path=root / MANIFEST,
                        fix="restore the manifest it points to, or replace the link with the "
                            "manifest")


def _own_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _dataset_below(root: Path) -> Path | None:
    """A dataset folder (its ``manifest.csv``) at most ``DATASET_DEPTH`` levels below ``root``,
    not through links; None when there is none, or ``root`` cannot be listed."""
    level = [root]
    for _ in range(DATASET_DEPTH):
        below = []
        for folder in level:
            try:
                below += [p for p in folder.iterdir() if _own_folder(p)]
            except OSError:
                continue
        for folder in below:
            if os.path.lexists(folder / MANIFEST):
                return folder
        level = below[:10_000]  # a huge tree is not searched to its end
    return None
