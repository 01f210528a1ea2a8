"""Training data: a dataset's training split as crops in memory, ready for a model.

Classes are the (board, side) identities of the training split; a share of each normal class's
takes is held out for calibration (:func:`split_calibration`); a single normal class gets
self-made defect classes (:func:`add_pseudo_anomalies`). :func:`dataset_crops` is how any
command reads a list of takes as crops, naming every missing or unusable take at once.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import PSEUDO_ANOMALIES, PseudoAnomalyBatches
from .config import Config, default_toml
from .datasets import Dataset, Take, folder_take_error
from .errors import AudioError, DatasetError, TapcheckWarning
from .featurecache import FeatureCache
from .codings import lossy_takes_warning
from .copies import refuse_copies
from .locks import writer
from .misfiled import refuse_misfiled

#: takes a normal class needs before :func:`split_calibration` holds any out: with fewer, its
#: reference would be one or two takes
MIN_TAKES_TO_HOLD_OUT = 4


@dataclass
class TrainingData:
    """Crops of a dataset's training split, ready for a model."""

    fit_clips: np.ndarray  # (n_fit, n_crops, bins, frames)
    fit_labels: np.ndarray  # (n_fit,) class index per clip
    fit_normal: np.ndarray  # (n_fit,) bool: clip of a normal class
    calib_clips: np.ndarray  # (n_calib, n_crops, bins, frames), normal only
    classes: list[str]  # class names, "board03/left"
    class_labels: list[str]  # "normal" or "defect" per class
    fit_takes: list[Take]
    calib_takes: list[Take]
    # median strike rise (features.clip_rise_db) of the normal takes; None where their files
    # are not at hand
    strike_rise_db: float | None = None

    @functools.cached_property
    def crop_digests(self) -> list[str]:
        """:func:`tapcheck.features.crop_digest` of each fit clip, then each calibration clip:
        how ``train --resume`` and the model file know the run's takes (once per run)."""
        from .features import crop_digest

        return [crop_digest(c) for c in (*self.fit_clips, *self.calib_clips)]

    def validation_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibration crops (normal only) with their class indices, for validation loss."""
        index = {name: i for i, name in enumerate(self.classes)}
        n, c = self.calib_clips.shape[:2]
        X = torch.from_numpy(self.calib_clips).reshape(n * c, 1, *self.calib_clips.shape[2:])
        y = torch.tensor([index[t.class_name] for t in self.calib_takes]).repeat_interleave(c)
        return X, y.long()

    def samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every crop as a training sample: (n_fit * n_crops, 1, bins, frames) and labels."""
        n, c = self.fit_clips.shape[:2]
        X = torch.from_numpy(self.fit_clips).reshape(n * c, 1, *self.fit_clips.shape[2:])
        y = torch.from_numpy(np.repeat(self.fit_labels, c)).long()
        return X, y


def split_calibration(takes: list[Take], *, fraction: float, seed: int
                      ) -> tuple[list[Take], list[Take]]:
    """Hold out ``fraction`` of each normal class's takes (at least one when it has
    :data:`MIN_TAKES_TO_HOLD_OUT` or more)."""
    rng = np.random.default_rng([seed, 1009])
    fit, calib = [], []
    by_class: dict[str, list[Take]] = {}
    for t in takes:
        by_class.setdefault(t.class_name, []).append(t)
    for name in sorted(by_class):
        group = by_class[name]
        n_out = 0
        if group[0].label == "normal" and len(group) >= MIN_TAKES_TO_HOLD_OUT and fraction > 0:
            # never all of them: the class's reference would be empty (calib_fraction 0.99)
            n_out = min(len(group) - 1, max(1, int(round(fraction * len(group)))))
        held = set(rng.choice(len(group), size=n_out, replace=False).tolist()) if n_out else set()
        for i, t in enumerate(group):
            (calib if i in held else fit).append(t)
    return fit, calib


def prepare_data(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None,
                 progress: bool = False) -> TrainingData:
    """Load the training split's crops and split off the calibration takes."""
    takes = dataset.select(split="train")
    busy = writer(dataset.root / ".lock")
    by = f"PID {busy}" if busy else "another process"
    if busy is not None and not takes:
        # "mark some takes split=train" of a dataset synth was still writing (QA)
        raise DatasetError(f"has no takes in the training split yet: {by} is writing it "
                           "(import, record or synth)", path=dataset.root / "manifest.csv",
                           fix="wait for it to finish, then train")
    if busy is not None:
        warnings.warn(f"{dataset.root}: {by} is writing it (import, record or synth): "
                      f"training uses the {len(takes)} training takes saved so far",
                      TapcheckWarning, stacklevel=2)
    if not takes:
        raise DatasetError("has no takes in the training split", path=dataset.root / "manifest.csv",
                           fix="mark some takes split=train (tapcheck import/record --split train)")
    if not any(t.label == "normal" for t in takes):
        raise DatasetError(
            "has no normal takes in the training split; the threshold is learned from normal "
            "boards only", path=dataset.root / "manifest.csv",
            fix="record or import normal boards with --split train")
    _refuse_mixed_sides(takes, manifest=dataset.root / "manifest.csv")
    refuse_misfiled(takes, every=dataset.takes, manifest=dataset.root / "manifest.csv",
                    split="training")
    lossy = lossy_takes_warning(dataset.root, (t.source for t in takes), what="training takes")
    if lossy:  # the network learns the coding's spectrum as healthy
        warnings.warn(lossy, TapcheckWarning, stacklevel=2)
    # a copy could sit in the reference while its twin calibrates the threshold
    refuse_copies(dataset, takes, split="training")
    cache = cache or FeatureCache(audio=config.audio, features=config.features)
    fit, calib = split_calibration(takes, fraction=config.train.calib_fraction,
                                   seed=config.train.seed)
    classes = sorted({t.class_name for t in takes})
    label_of = {t.class_name: t.label for t in takes}
    index = {name: i for i, name in enumerate(classes)}
    clips = dataset_crops(dataset, fit + calib, cache=cache, progress=progress)
    fit_clips, calib_clips = clips[:len(fit)], clips[len(fit):]
    rise = training_rise(dataset, [t for t in fit + calib if t.label == "normal"],
                         config=config)
    return TrainingData(
        fit_clips=fit_clips, fit_labels=np.array([index[t.class_name] for t in fit]),
        fit_normal=np.array([t.label == "normal" for t in fit]), calib_clips=calib_clips,
        classes=classes, class_labels=[label_of[c] for c in classes], fit_takes=fit,
        calib_takes=calib, strike_rise_db=rise)


def training_rise(dataset: Dataset, takes: list[Take], *, config: Config) -> float | None:
    """The median :func:`tapcheck.features.clip_rise_db` of ``takes`` (about 5 ms a take).
    None without takes, or where their files are not at hand (a compare cell gets crops)."""
    from .features import clip_rise_db, load_clip

    paths = [dataset.path_of(t) for t in takes]
    if not paths or not all(os.path.isfile(p) for p in paths):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each take's warnings were given as its crops were made
        rises = np.array([clip_rise_db(load_clip(p, audio=config.audio,
                                                 features=config.features),
                                       features=config.features) for p in paths])
    heard = rises[np.isfinite(rises)]  # a take of digital silence only has no rise
    return float(np.median(heard)) if len(heard) else None


#: the fix for a training board side with both labels (train refuses it, doctor names it)
MIXED_SIDE_FIX = ("give each training board side one label (a cracked end its own side name, "
                  "e.g. right-crack), or mark the odd takes split=test")


def mixed_sides(takes: list[Take]) -> list[str]:
    """The board sides (class names) among ``takes`` holding both normal and defect takes.

    A board side of the training split is one class, healthy or cracked: with takes of both
    labels, its first take decided whether it was held out for calibration (a cracked take
    could set the threshold) and its last one the class's label in the model file.
    """
    labels: dict[str, set[str]] = {}
    for t in takes:
        labels.setdefault(t.class_name, set()).add(t.label)
    return sorted(name for name, found in labels.items() if len(found) > 1)


def mixed_side_problem(name: str, *, more: int = 0) -> str:
    """What is wrong with training side ``name`` (and ``more`` others) holding both labels."""
    others = f" (and {more} more side(s))" if more else ""
    return (f"training side {name}{others} holds both normal and defect takes; a board side is "
            "one class, healthy or cracked")


def _refuse_mixed_sides(takes: list[Take], *, manifest: Path) -> None:
    mixed = mixed_sides(takes)
    if mixed:
        raise DatasetError(mixed_side_problem(mixed[0], more=len(mixed) - 1), path=manifest,
                           fix=MIXED_SIDE_FIX)


def dataset_crops(dataset: Dataset, takes: list[Take], *, cache: FeatureCache,
                  progress: bool = False, split: str = "training") -> np.ndarray:
    """Crops of every take, shape (n_takes, n_crops, bins, frames).

    Every missing or unusable take is listed at once (one line each, then one line with their
    count, the first few and the fix), so a user fixes them all in one go; then nothing is
    trained or judged. Missing files used to stop the run before the others were read: a
    dataset with one take deleted and one emptied named the first alone, and the second only on
    the next run.
    """
    paths = [dataset.path_of(t) for t in takes]
    # the cache says what it can read: a cache of crops shipped to a cluster worker has no files
    missing = [i for i, p in enumerate(paths) if not cache.can_read(p)]
    verb = "trained" if split == "training" else "judged"
    # a row naming a folder (board01/left): the row is wrong, not a clip given on a command line
    folders = [i for i, p in enumerate(paths) if i not in missing and os.path.isdir(p)]
    present = sorted(set(range(len(takes))) - set(missing) - set(folders))
    try:
        crops = cache.get_many([paths[i] for i in present], progress=progress)
    except AudioError as e:
        unusable = list(e.details)
    else:
        if not missing and not folders:
            return crops
        unusable = []
    unusable = [str(folder_take_error(paths[i])) for i in folders] + unusable
    if len(missing) == 1 and not unusable:  # the list and its summary would say it twice
        raise _missing_take(dataset, paths[missing[0]], split)
    if len(unusable) == len(takes) > 3:  # all of them: one cause, likely not 250 files
        raise DatasetError(
            f"none of the {len(takes)} {split} takes can be used (the first 3 listed "
            f"above); nothing was {verb}", path=dataset.root / "manifest.csv",
            details=unusable[:3],
            fix="when every recording fails alike, suspect the settings first: the "
                f"config's [audio] and [features] ({default_toml()} has the study's)")
    # the first few in manifest order, missing or not (each unusable line names its file first)
    bad = sorted(missing + folders + [i for i in present if any(
        line.startswith(f"{os.fspath(paths[i])}: ") for line in unusable)])
    kinds = [f"{n} {what}" for n, what in (
        (len(missing), "file missing" if len(missing) == 1 else "files missing"),
        (len(unusable), "unusable")) if n]
    few = ", ".join(takes[i].path for i in bad[:3]) + (", …" if len(bad) > 3 else "")
    raise DatasetError(
        f"{len(missing) + len(unusable)} of {len(takes)} {split} takes cannot be used "
        f"({', '.join(kinds)}; listed above), e.g. {few}; nothing was {verb}",
        path=dataset.root / "manifest.csv",
        fix="restore, re-record or replace those files, or delete their rows (tapcheck doctor "
            "lists them)",
        details=[f"{paths[i]}: file not found — restore it or delete its row" for i in missing]
        + unusable)


def _missing_take(dataset: Dataset, path, split: str) -> DatasetError:
    return DatasetError(f"file not found (a {split} take that {dataset.root / 'manifest.csv'} "
                        "lists)", path=path, fix="restore it or delete its row")


def add_pseudo_anomalies(data: TrainingData, *, per_batch: bool = False
                         ) -> tuple[TrainingData, PseudoAnomalyBatches | None]:
    """One normal class only: add self-made defect classes made from its crops.

    Metric-learning and classification objectives need at least two classes. With a single
    normal (board, side) there is nothing to tell apart, so, as the survey source did with
    synthetic defects, each transform of :data:`tapcheck.augment.PSEUDO_ANOMALIES` (modes moved
    up or down, a silenced band, a faster decay) turns the normal clips into one pseudo-anomaly
    class. Pseudo clips are trained on but never become references or calibration clips.

    With ``per_batch`` the classes are added but not their clips: the returned hook for
    :func:`~tapcheck.fitting.fit_model` draws them per batch (an epoch the size of the normal
    data instead of five times it). Otherwise every pseudo clip is materialised and the hook is
    ``None``.
    """
    n_real = len(data.classes)
    data = dataclasses.replace(data, classes=data.classes + list(PSEUDO_ANOMALIES),
                               class_labels=data.class_labels + ["pseudo"] * len(PSEUDO_ANOMALIES))
    if per_batch:
        normal = [i for i, label in enumerate(data.class_labels) if label == "normal"]
        return data, PseudoAnomalyBatches(n_real, normal)
    normal = data.fit_clips[data.fit_normal]
    clips, labels = [data.fit_clips], [data.fit_labels]
    for j, transform in enumerate(PSEUDO_ANOMALIES.values()):
        clips.append(transform(normal))
        labels.append(np.full(len(normal), n_real + j))
    n_extra = len(PSEUDO_ANOMALIES) * len(normal)
    return dataclasses.replace(
        data, fit_clips=np.concatenate(clips), fit_labels=np.concatenate(labels),
        fit_normal=np.concatenate([data.fit_normal, np.zeros(n_extra, bool)])), None
