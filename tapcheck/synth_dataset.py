"""A synthetic dataset written to disk: the rig's boards as takes and a manifest.

``tapcheck synth`` (and ``tapcheck demo``'s first step). :mod:`tapcheck.synth` makes the sound of
one tap; this module numbers the takes, splits them, writes them into a new dataset, and takes
back what a stopped run wrote. It never adds to or overwrites recordings.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .interrupts import deferred
from .plate import BoardSpec
from .synth import study_boards, synthesize_tap, take_rng

__all__ = ["MAX_TAKES", "make_study_dataset", "take_path", "write_take"]

MAX_TAKES = 1000  # per board side: 18 000 takes, about 5 GB, for the study's 18 sides


def _refuse_linked_folder(root: Path, board: int, side: str) -> None:
    """Refuse a board side whose folder is a link, even one inside the dataset.

    synth numbers every board side's takes from 1: with ``board01`` linked to ``board02``,
    board 2's takes overwrote board 1's and both rows named the same audio, silently (import and
    record number takes after the files already there, so only synth needs this).
    """
    from .errors import DatasetError

    for rel in (f"board{board:02d}", f"board{board:02d}/{side}"):
        if (root / rel).is_symlink():
            raise DatasetError(
                f"is a link to {(root / rel).resolve()}; synth writes every board side into a "
                "folder of its own", path=root / rel,
                fix="remove the link (synth makes the folders it needs)")


def make_study_dataset(name: str | os.PathLike, *, takes: int = 30, test_takes: int | None = None,
                       seed: int = 0, sr: int = 44100, duration_s: float = 3.0,
                       progress: bool = False, preset: str = "study"):
    """Write the study's boards as a dataset (see :func:`study_boards`).

    Parameters
    ----------
    name : str or PathLike
        Dataset name (``recordings/<name>``) or folder. It must not hold takes yet: synthesis never
        adds to or overwrites recordings.
    takes : int
        Takes per board and side (study: one set = 30).
    test_takes : int, optional
        Of each normal training board side's takes, how many (the last ones) go to the test
        split. Default: a fifth of ``takes``, rounded down.
    seed : int
        Same seed, same dataset, bit for bit.
    preset : {"study", "plant"}
        The study's boards (:func:`study_boards`), or the plant-like set with many unseen
        boards and graded defects (:func:`tapcheck.plant.plant_boards`).

    Returns
    -------
    tapcheck.datasets.Dataset
    """
    from .dataset_folders import dataset_path
    from .datasets import Dataset
    from .new_datasets import missing_folders
    from .interrupts import Interrupted, terminate_as_interrupt

    test_takes = _checked_options(takes=takes, test_takes=test_takes, seed=seed, preset=preset)
    boards = PRESETS[preset]
    made = missing_folders(dataset_path(name))  # its folder and any above it it makes
    ds = Dataset.create(name)
    jobs = [(spec, side, k) for spec in boards(seed=seed) for side in spec.sides
            for k in range(1, takes + 1)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=f"synth {ds.name}", unit="take")
    before = {p.name for p in ds.root.iterdir()}
    written: list[Path] = []
    checked, finished, removed = False, False, None  # removed: how many, once taken back
    try:
        # a lock file this run makes goes with it: a refused folder is left as it was found
        with ds.locked(remove=".lock" not in before), terminate_as_interrupt():
            try:
                # `kill` cleans up as Ctrl-C does. Checked under the lock, on the manifest as
                # it is now: a run that finished between this one's start and its lock is
                # seen, and its takes are not overwritten
                _refuse_to_add(ds, boards(seed=seed))
                checked = True
                # an empty manifest first: a run killed before the end leaves take files no
                # row lists, which a rerun names as such (not as a dataset whose manifest was
                # lost)
                ds.write_manifest()
                _write_takes(ds, jobs, seed=seed, sr=sr, duration_s=duration_s, takes=takes,
                             test_takes=test_takes, written=written)
                # once, at the end: a run killed (-9, a power cut) where nothing can clean up
                # left the manifest of the board sides done so far, a dataset that looked whole
                # to info, train and doctor (QA); its take files without rows are refused by
                # the rerun
                ds.write_manifest()
                finished = True
            except BaseException:
                # Ctrl-C, a full disk: a half-written dataset would be refused by the rerun
                # (or trained on by a user who did not notice), so take back what this run
                # wrote — under the lock: taken back after it, an import that took the lock in
                # between lost its manifest (QA)
                if checked:  # a refused dataset is another run's: nothing of it is ours
                    removed = _take_back(ds, written, before=before)
                raise
    except BaseException as e:
        stopped = isinstance(e, KeyboardInterrupt)
        if finished and stopped:  # as the lock went: nothing undone
            raise Interrupted(f"{ds.root} was written whole ({len(ds.takes)} takes)") from None
        if checked and removed is None and stopped:
            # a second signal before the taking back was held off: said, not "removed"
            raise Interrupted(f"stopped again while taking back what it wrote to {ds.root}; "
                              "delete that folder if it holds nothing you need, and run it "
                              "again") from None
        if checked:
            with contextlib.suppress(KeyboardInterrupt), deferred():
                _remove_made(made)  # once the lock file is gone from them
            if stopped:  # "interrupted" alone: was anything kept?
                raise Interrupted(f"the {removed} take(s) written to {ds.root} were removed "
                                  "(synth writes a whole dataset or none); run it again") from None
        raise
    return ds


def _plant_boards(*, seed: int):
    from .plant import plant_boards  # the plant's woods and defects: only when asked for

    return plant_boards(seed=seed)


#: ``--preset``: the boards each writes (a list of :class:`BoardSpec`, by seed)
PRESETS = {"study": study_boards, "plant": _plant_boards}


def _checked_options(*, takes: int, test_takes: int | None, seed: int, preset: str) -> int:
    """The number of test takes a board side gets (``test_takes``, or a fifth of ``takes``),
    once every option is checked."""
    from .errors import ParameterError

    if not 1 <= takes <= MAX_TAKES:
        raise ParameterError(f"--takes must be between 1 and {MAX_TAKES}, not {takes}",
                             fix="about 30 per board side is what the study recorded (the default)")
    if not 0 <= seed <= 2**32 - 1:  # numpy's generators take no negative seed
        raise ParameterError(f"--seed must be between 0 and {2**32 - 1}, not {seed}",
                             fix="any seed in that range gives its own dataset, e.g. --seed 1")
    test_takes = takes // 5 if test_takes is None else test_takes
    if not 0 <= test_takes < takes:  # a training board needs a training take
        raise ParameterError(f"--test-takes must be between 0 and {takes - 1} (--takes {takes} "
                             f"less one), not {test_takes}",
                             fix=f"leave it out for a fifth ({takes // 5}), or raise --takes")
    if preset not in PRESETS:
        raise ParameterError(f"--preset must be {' or '.join(map(repr, PRESETS))}, not "
                             f"'{preset}'")
    return test_takes


def _write_takes(ds, jobs, *, seed: int, sr: int, duration_s: float, takes: int,
                 test_takes: int, written: list[Path]) -> None:
    """Synthesise and write each (board, side, take number) of ``jobs`` into ``ds``, its row
    into ``ds.takes``, each file named in ``written`` before it is written: a stop inside the
    write (its folder made, the file renamed into place) left the board's folder behind."""
    for spec, side, k in jobs:
        y = synthesize_tap(spec.board, side, rng=take_rng(seed, spec.number, side, k), sr=sr,
                           duration_s=duration_s)
        split = spec.split
        # the last test_takes of each normal training board side: its known-board test takes
        if spec.split == "train" and spec.label == "normal" and k > takes - test_takes:
            split = "test"
        y16 = np.round(np.clip(y, -1, 1) * 32767) / 32767  # what the WAV will hold
        written.append(ds.root / take_path(spec.number, side, k))
        ds.takes.append(write_take(ds, y16, spec, side, k, split=split, sr=sr))


def _take_back(ds, written: list[Path], *, before: set[str]) -> int | None:
    """Take back what a stopped run wrote (:func:`_remove_written`) to its end: a second Ctrl-C
    stopped the taking back, leaving rows whose files were gone and a dataset the rerun refused
    (QA). How many take files it removed; None if a second stop came first (the first stop is
    the one told)."""
    removed = None
    with contextlib.suppress(KeyboardInterrupt), deferred():
        there = sum(path.exists() for path in written)  # the last may be unwritten
        _remove_written(ds, written, before=before)
        removed = there
    return removed


def _refuse_to_add(ds, specs) -> None:
    """Refuse a dataset that holds takes, or take files its manifest does not list, or whose
    board or side folders are links; synth only ever writes a new dataset."""
    from .errors import DatasetError
    from .new_takes import check_take_folder

    if not ds.takes:
        # a board or side folder linked out of the dataset: its takes would be written there,
        # and the dataset then refused (import and record refuse it too); named before the
        # stray takes, which would count the files the link leads to as the dataset's own
        for spec in specs:
            for side in spec.sides:
                check_take_folder(ds, spec.number, side)
                _refuse_linked_folder(ds.root, spec.number, side)
    stray = sum(1 for _ in ds.root.glob("board*/*/take*.wav"))
    if ds.takes or stray:
        raise DatasetError(
            f"already holds {len(ds.takes)} takes" if ds.takes else
            f"holds {stray} take file(s) its manifest does not list (an interrupted run killed "
            "before it could clean up?)", path=ds.root,
            fix="choose another --dataset name, or delete the folder if it holds nothing you "
                "need; synth never adds to or overwrites recordings")


def _remove_written(ds, written: list[Path], *, before: set[str]) -> None:
    """Undo a synth run into ``ds``, which held no takes before it, under its lock: its take
    files and the folders they made, and the manifest (emptied again if it was there). Anything
    else in the folders stays."""
    from .files import stopped_writes
    from .manifest import MANIFEST

    if MANIFEST in before:
        ds.takes.clear()
        ds.write_manifest()
    for path in written:
        path.unlink(missing_ok=True)
        for partial in stopped_writes(path):
            partial.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):  # side, then board
            with contextlib.suppress(OSError):  # not empty: keep it
                folder.rmdir()
    if MANIFEST not in before:
        (ds.root / MANIFEST).unlink(missing_ok=True)


def _remove_made(made: list[Path]) -> None:
    """The dataset's folder and those above it that a synth run made (``made``, deepest
    first: ``--dataset runs/a/demo`` stopped left runs/a behind), once its lock is gone; a
    folder with anything in it stays, and those above it."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # something else is in it now: it and those above stay
            break


def take_path(board: int, side: str, take: int) -> str:
    """Where a synthetic take lies in its dataset: ``boardNN/<side>/takeNNN.wav``."""
    return f"board{board:02d}/{side}/take{take:03d}.wav"


def write_take(ds, y: np.ndarray, spec: BoardSpec, side: str, take: int, *, split: str,
               sr: int):
    """Write one synthetic take into ``ds`` at :func:`take_path` and return its manifest row.

    Parameters
    ----------
    ds : tapcheck.datasets.Dataset
        The dataset written to (its manifest is not written here).
    y : np.ndarray, shape (n_samples,)
        The take, as the 16-bit WAV will hold it.
    spec : BoardSpec
        The board: its number, label and group go into the row.
    side : {"left", "right"}
    take : int
        The take's number on that board side.
    split : {"train", "test"}
    sr : int
        Sampling rate in Hz.

    Returns
    -------
    tapcheck.datasets.Take
    """
    from .audio import peak_dbfs, write_wav
    from .datasets import Take

    rel = take_path(spec.number, side, take)
    write_wav(ds.root / rel, y, sr=sr)
    return Take(path=rel, board=spec.number, side=side, label=spec.label, group=spec.group,
                split=split, take=take, recorded_at="", sample_rate=sr,
                duration_s=round(len(y) / sr, 4), source="synth", peak_dbfs=round(peak_dbfs(y), 2))
