"""The normal crops an explanation compares a clip with, and where they may be read from.

An explanation (:mod:`tapcheck.explain`) replaces parts of a clip's crop by the same parts of its
nearest normal references. Those are the takes the model's reference embeddings came from, read
from its training dataset in the recordings folder and checked by their digests to be the same
recordings; or, named by the user (``judge --references``, ``station --references``), another
dataset's normal training takes. Nothing outside the folders the user gave is read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CacheWarning, DatasetError, TapcheckError, TapcheckWarning
from .judge import Judge
from .manifest import SLUG

__all__ = ["References", "dataset_references", "training_references"]


@dataclass
class References:
    """Normal clips to explain against: their crops and the files they came from.

    ``crops`` has shape (n_ref, n_crops, bins, frames), standardised as the model sees them
    (the feature cache's, bit for bit); ``levels`` (n_ref, n_crops, 2) each crop's mean and
    spread in dB, from which :attr:`db` has the crops in dB that explanations describe;
    ``paths[i]`` is the file of ``crops[i]``, ``boards[i]`` its board as the manifest's
    ``board`` column says (a take filed outside its ``boardNN/`` folder is still its board's).
    """

    crops: np.ndarray
    levels: np.ndarray
    paths: list[Path]
    boards: list[int]

    def __post_init__(self):
        if not len(self.paths) == len(self.crops) == len(self.levels):
            raise ValueError(f"{len(self.crops)} reference crops, {len(self.levels)} levels "
                             f"and {len(self.paths)} files")
        if len(self.boards) != len(self.paths):
            raise ValueError(f"{len(self.boards)} boards for {len(self.paths)} files")

    @functools.cached_property
    def db(self) -> np.ndarray:
        """The crops in dB, shape (n_ref, n_crops, bins, frames)."""
        from .featurecache import in_db

        return in_db(self.crops, self.levels)

    def __len__(self) -> int:
        return len(self.crops)


def training_references(judge: Judge) -> References:
    """Crops of the normal takes the model's reference embeddings came from, in their order.

    They are read from the model's training dataset as the recordings folder holds it
    (``recordings/<its name>``, :func:`tapcheck.paths.recordings_home`), never from the folder
    the model file names: that path may be anywhere (``train --dataset /srv/bench``, another
    machine's), and nothing is read outside the folders the user gave. Elsewhere, the user
    names it: ``judge --references``.

    Raises
    ------
    DatasetError
        The recordings folder holds no dataset of the training dataset's name, or it no longer
        holds the model's normal takes.
    """
    from .datasets import MANIFEST, Dataset
    from .featurecache import FeatureCache
    from .copies import content_digest
    from .modelfile import provenance
    from .paths import recordings_home

    info = judge.model.checkpoint.get("dataset")
    info = info if isinstance(info, dict) else {}
    name, trained = info.get("name"), info.get("path")
    home = recordings_home()
    root = home / name if isinstance(name, str) and SLUG.fullmatch(name) else None
    fix = "pass --references DATASET (a dataset with normal takes of the same boards)"
    if root is None or not (root / MANIFEST).exists():
        if (isinstance(trained, str) and trained
                and (root is None or Path(trained).resolve() != root.resolve())):
            # not looked at: it is no folder the user gave (it may not even exist here)
            raise DatasetError(
                f"its training dataset {trained} is outside the recordings folder ({home}) and "
                "read only when named", path=judge.model.path,
                fix=f"pass --references {shlex.quote(trained)} to explain them")
        raise DatasetError(f"its training dataset is not at {root or '(unknown)'}; "
                           "explanations compare with its normal takes",
                           path=judge.model.path, fix=fix)
    ds = Dataset(root)
    label = {t.path: t.label for t in ds.takes}
    trained = [p for p in info.get("takes", []) if isinstance(p, str)]
    unlisted = [p for p in trained if p not in label]
    if unlisted:
        # its normal takes were those the manifest still called normal: with rows deleted the
        # explanations compared with fewer boards, the sentences changed, and nothing said so
        raise DatasetError(f"no longer lists {len(unlisted)} of the {len(trained)} takes "
                           f"{judge.model.path} was trained on (e.g. {unlisted[0]})",
                           path=ds.root / MANIFEST, fix=fix)
    normal = [p for p in trained if label.get(p) == "normal"]
    n_ref = len(judge.model.detector.reference_)
    if len(normal) != n_ref:
        # leave-one-board-out calibration keeps the held-out takes as references too (and
        # `tapcheck enroll` appends clips; then the crops are embedded anew, see Explainer)
        normal += [p for p in info.get("calibration_takes", []) if label.get(p) == "normal"]
    if not normal or any(not (ds.root / p).exists() for p in normal):
        raise DatasetError(f"no longer holds the normal takes {judge.model.path} was "
                           "trained on", path=ds.root, fix=fix)
    by_path = {t.path: t for t in ds.takes}
    files = [ds.path_of(by_path[p]) for p in normal]  # a take linked out of it: refused, unread
    # the same name and paths on another site (another synth seed, another bench) hold other
    # recordings: explained against them, taps read "resonance at 689 Hz instead of 43 Hz"
    listed = provenance(judge.model.checkpoint, "takes") + provenance(judge.model.checkpoint,
                                                                      "calibration_takes")
    digests = provenance(judge.model.checkpoint, "digests")
    known = dict(zip(listed, digests, strict=True)) if len(digests) == len(listed) else {}
    # a few files tell (another dataset differs in all): not every reference hashed per verdict
    checked = [(p, f) for p, f in zip(normal, files, strict=True)
               if p in known and os.path.isfile(f)][:5]
    if any(content_digest(f) != known[p] for p, f in checked):
        raise DatasetError(f"holds other recordings than the ones {judge.model.path} was "
                           "trained on, under the same names (another dataset of that name?)",
                           path=ds.root, fix=fix)
    cache = FeatureCache(audio=judge.config.audio, features=judge.config.features)
    with _unsaid():
        crops, levels = cache.get_many(files, levels=True)
    return References(crops, levels, [Path(f) for f in files],
                      boards=[by_path[p].board for p in normal])


def dataset_references(name: str | os.PathLike, judge: Judge) -> tuple[References, list[str]]:
    """Crops of a dataset's normal training-split takes (``--references``), and warning lines.

    The references only shape explanations, never a verdict, so a take that cannot be used
    (missing, unreadable, linked out of the dataset: never read) is left out with one line
    naming it, then one naming the manifest and the count; only when none is left is it an error.

    Raises
    ------
    DatasetError
        No such dataset, no normal training takes, or none of them can be used.
    """
    from .datasets import MANIFEST, Dataset, folder_take_error
    from .featurecache import FeatureCache

    ds = Dataset.open(name)
    manifest = ds.root / MANIFEST
    takes = [t for t in ds.select(split="train") if t.label == "normal"]
    if not takes:
        raise DatasetError("has no normal takes in its training split to compare with",
                           path=ds.root, fix="choose a dataset with normal boards")
    cache = FeatureCache(audio=judge.config.audio, features=judge.config.features)
    got, paths, boards, bad = [], [], [], []
    for t in takes:
        try:
            path = ds.path_of(t)
            if not path.exists():  # a row's file, not a path the user typed: as training says
                raise DatasetError(f"file not found (a reference take that {manifest} lists)",
                                   path=path, fix="restore it or delete its row")
            if path.is_dir():  # told "pass the clips themselves", a command line's fix (QA)
                raise folder_take_error(path)
            with _unsaid():
                got.append(cache.get_with_levels(path))
            paths.append(path)
            boards.append(t.board)
        except TapcheckError as e:
            bad.append(str(e))
    fix = "restore or replace those files, or delete their rows (tapcheck doctor lists them)"
    if not got:
        shown = "the first 3 listed above" if len(bad) > 3 else "listed above"
        raise DatasetError(f"none of its {len(takes)} normal training takes can be used as "
                           f"references ({shown})", path=manifest,
                           details=bad[:3], fix=fix + "; or pass another --references dataset")
    if bad:
        bad.append(f"{manifest}: {len(bad)} of {len(takes)} reference takes cannot be used "
                   f"(listed above); explanations compare with the other {len(got)} — {fix}")
    # one take was "the healthy boards nearest it", without a word (QA): an explanation
    # weighs the clip's difference from its k nearest healthy taps against theirs from other
    # boards' nearest, which takes more than k takes (Explainer._normal_limits) of two boards
    k = getattr(judge.model.detector, "k", 5)
    if len(got) <= k or len(set(boards)) < 2:
        bad.append(f"{manifest}: {len(got)} normal training take(s) of {len(set(boards))} "
                   f"board(s) to explain with: too few to measure how healthy boards differ "
                   f"among themselves (that takes more than {k} takes of two boards or more), so "
                   "a difference may be claimed that healthy boards show too — pass a "
                   "--references dataset with more normal boards")
    return References(np.stack([c for c, _ in got]), np.stack([lv for _, lv in got]),
                      paths, boards=boards), bad


@contextlib.contextmanager
def _unsaid():
    """Reading references, their takes' warnings unsaid: "resampled" or "the verdict may be
    off" of a take no verdict is given for read as more of the clips' (judge printed "29 more
    files likewise" after the clips' own count). A take that cannot be used is still named.
    The process's filters: used where the references are read, before the station's listener
    thread starts, and in judge's one thread."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TapcheckWarning)
        # the cache's own is about the run ("feature cache not used"), and was lost here (QA)
        warnings.simplefilter("default", CacheWarning)
        yield
