"""The feature cache: crops on disk, keyed by a file's content and the feature settings.

Retraining, comparing or re-judging never recomputes an STFT of a file it has seen with the same
settings; editing a file or a setting misses the cache. A cached clip is one ``.npy`` read.

An entry holds the standardised crops, bit for bit as :func:`~tapcheck.features.clip_features`
gives them, and beside them (``.level.npy``) each crop's mean and spread in dB, from which
explanations have the crops in dB back (to float32 rounding). (Entries of dB crops standardised
on the way out differed from fresh crops in the last bit: numpy's sums round by where an array
sits in memory, and a loaded one sits otherwise.)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .config import AudioConfig, FeatureConfig
from .errors import (AudioError, CacheWarning, FormatWarning, StorageError, TapcheckError,
                     TapcheckWarning)
from .features import CHECKS_VERSION, FEATURES_VERSION, clip_features, standardize

# Bump when what an entry holds changes: 2, each crop's level in dB beside it, and warnings
# with their kind (a format's, grouped on the command line, or a clip's)
ENTRY_FORMAT = 2


def feature_key(audio: AudioConfig, features: FeatureConfig) -> str:
    """A short hash of everything that changes the crops of a given file."""
    settings = {"version": FEATURES_VERSION, "checks": CHECKS_VERSION, "entry": ENTRY_FORMAT,
                "sr": audio.sr, **features.__dict__}
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=8).hexdigest()


class FeatureCache:
    """Crops on disk, keyed by the file's content and the feature settings.

    Retraining, comparing or re-judging never recomputes an STFT of a file it has seen with the
    same settings; editing a file or a setting misses the cache, as it should.

    Parameters
    ----------
    root : str or Path, optional
        Cache folder. Default: ``$TAPCHECK_CACHE`` or ``~/.cache/tapcheck``.
    audio, features : the settings the crops are computed with.
    """

    def __init__(self, root: str | os.PathLike | None = None, *,
                 audio: AudioConfig = AudioConfig(), features: FeatureConfig = FeatureConfig()):
        from .paths import cache_home

        root = root or cache_home()
        self.audio, self.features = audio, features
        self.dir = Path(root) / "features" / feature_key(audio, features)
        self.root = Path(root)
        self.unwritable = False  # set after the first failed write: the rest go uncached
        self.checked = False  # the folder may be written (paths.cache_problem), checked once

    def _check_folder(self) -> None:
        from .paths import cache_problem

        problem = cache_problem(self.root)
        if problem:
            raise StorageError(problem, path=self.root)
        self.checked = True

    def _entry(self, path: Path) -> Path:
        from .copies import content_digest

        digest = content_digest(path)
        return self.dir / digest[:2] / f"{digest}.npy"

    def can_read(self, path: str | os.PathLike) -> bool:
        """Whether crops of ``path`` can be had: the file exists (it may still be unusable)."""
        return Path(path).exists()

    def get(self, path: str | os.PathLike, *, standardized: bool = True) -> np.ndarray:
        """Crops of one file, shape (n_crops, n_bins, n_frames), from the cache or computed;
        unless ``standardized``, in dB (each crop's mean and spread restored, to float32
        rounding of :func:`~tapcheck.features.strike_crops`'s ``standardized=False``)."""
        crops, level = self._get(Path(path))
        return crops if standardized else in_db(crops, level)

    def get_with_levels(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """The standardised crops of one file and each crop's (mean, spread) in dB, shape
        (n_crops, 2): both views in one read (:func:`in_db` makes the dB crops)."""
        return self._get(Path(path))

    def _get(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The standardised crops and each one's (mean, spread) in dB, shape (n_crops, 2)."""
        from .audio import FORMATS_HINT
        from .file_kinds import refuse_special

        refuse_special(path, AudioError, fix=FORMATS_HINT)  # hashing a fifo would block forever
        try:
            entry = self._entry(path)
        except OSError:
            entry = None  # unreadable: let load() raise its precise AudioError
        if entry is not None and entry.exists():
            got = self._load(entry)
            if got is not None and self._replay_warnings(entry, path):
                return got
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            db = clip_features(path, audio=self.audio, features=self.features,
                               standardized=False)
        # standardised here as clip_features does, from the array it would have standardised
        crops = standardize(db)
        level = np.stack([db.mean(axis=(1, 2)), db.std(axis=(1, 2))], axis=1).astype(np.float32)
        ours = [w for w in caught if issubclass(w.category, TapcheckWarning)]
        for w in caught:  # pass everything on, as if nobody had listened
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if entry is not None and not self.unwritable:
            try:
                if not self.checked:
                    self._check_folder()
                self._store(entry, path, crops, level, ours)
            except StorageError as e:
                # the cache only saves time: say once what is wrong with it (not with the takes,
                # as a failed write once did) and go on computing
                self.unwritable = True
                warnings.warn(f"feature cache not used: {e}; set TAPCHECK_CACHE to a folder "
                              "you may write to", CacheWarning, stacklevel=3)
        return crops, level

    def _load(self, entry: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """The entry's crops and levels, or None when it is damaged (then they are recomputed
        and stored again): unreadable or cut short, of another shape than the settings give, or
        holding a NaN or an infinity, which crops of real audio never do (tapcheck.features
        refuses non-finite audio) and which crashed evaluate's metrics far from the cache. An
        all-zeros entry is kept: a constant crop is standardised to zeros. Entries carry no
        checksum (their key is the audio's digest, not theirs); these checks cost one pass over
        a small array."""
        f = self.features
        try:
            crops, level = np.load(entry), np.load(_level_file(entry))
        except (OSError, ValueError):
            return None
        if crops.shape != (f.n_crops, f.n_bins, f.n_frames) or not np.isfinite(crops).all():
            return None
        if level.shape != (f.n_crops, 2) or not np.isfinite(level).all() or (level[:, 1] < 0).any():
            return None
        return crops, level

    @staticmethod
    def _store(entry: Path, path: Path, crops: np.ndarray, level: np.ndarray,
               ours: list) -> None:
        from .files import atomic_write

        note = entry.with_suffix(".warn")
        try:
            if ours:  # the same file must say the same thing from the cache, of the same kind
                prefix = f"{path}: "
                said = [[w.category.__name__, str(w.message).removeprefix(prefix)]
                        for w in ours]
                with atomic_write(note, "w", encoding="utf-8", errors="surrogateescape") as f:
                    json.dump(said, f)
            else:  # a damaged note left from before would be found damaged on every read
                note.unlink(missing_ok=True)
        except OSError as e:  # a folder in its place (review): not a traceback
            raise StorageError(f"cannot be written ({e.strerror})", path=note,
                               fix="check the cache folder") from None
        with atomic_write(_level_file(entry)) as f:  # first: the crops' file says "complete"
            np.save(f, level)
        with atomic_write(entry) as f:
            np.save(f, crops)

    @staticmethod
    def _replay_warnings(entry: Path, path: Path) -> bool:
        """Say again what computing the entry said of its file; False when its note is damaged
        (then the entry is computed and stored again: its warnings belong to the verdict)."""
        note = entry.with_suffix(".warn")
        if not note.exists():
            return True
        try:
            said = json.loads(note.read_text(encoding="utf-8", errors="surrogateescape"))
        except (OSError, ValueError):  # cut short or unreadable
            return False
        # JSON of another shape (`[1]`, `null`) gave evaluate a traceback (QA)
        if not isinstance(said, list) or not all(
                isinstance(item, list) and len(item) == 2
                and all(isinstance(part, str) for part in item) for item in said):
            return False
        for kind, line in said:
            category = FormatWarning if kind == FormatWarning.__name__ else TapcheckWarning
            warnings.warn(f"{path}: {line}", category, stacklevel=4)
        return True

    def get_many(self, paths: Sequence[str | os.PathLike], *, progress: bool = False,
                 levels: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Crops of many files, shape (n_files, n_crops, n_bins, n_frames); with ``levels``,
        also each crop's (mean, spread) in dB, shape (n_files, n_crops, 2).

        Raises
        ------
        AudioError
            One or more files cannot be used; every one of them is in its ``details``, one line
            each, so a user fixes them all in one go rather than one per run.
        """
        items: Iterable = paths
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(paths, desc="features", unit="clip", leave=False)
        from .runtime import limit_threads

        got, bad = [], []
        with limit_threads(1):  # small torch operations between numpy work: see limit_threads
            for p in items:
                try:
                    got.append(self._get(Path(p)))
                except TapcheckError as e:
                    bad.append(str(e))
        if bad:
            raise AudioError(f"{len(bad)} of {len(paths)} clips cannot be used",
                             fix="fix or replace them", details=bad)
        f = self.features
        crops = np.stack([c for c, _ in got]) if got else np.zeros(
            (0, f.n_crops, f.n_bins, f.n_frames), np.float32)
        if not levels:
            return crops
        return crops, (np.stack([lv for _, lv in got]) if got else
                       np.zeros((0, f.n_crops, 2), np.float32))


def _level_file(entry: Path) -> Path:
    """Where an entry's crops' levels (mean and spread in dB) are kept: beside it."""
    return entry.with_suffix(".level.npy")


def in_db(crops: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Standardised crops, shape (..., n_crops, bins, frames), back in dB from each crop's
    (mean, spread), shape (..., n_crops, 2) (:meth:`FeatureCache.get_with_levels`)."""
    return (crops * levels[..., 1, None, None] + levels[..., 0, None, None]).astype(np.float32)
