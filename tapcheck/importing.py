"""Bringing existing audio files into a dataset (``tapcheck import``).

A recording is imported once: one given twice in a call (the same bytes under any name) refuses
the call before anything is written, and a clip whose stored samples would be those of a take the
dataset holds already (the same clip imported again, or its lossless copy) is refused as one bad
file. Imported twice, one tap would count twice in training and calibration, which ``judge
--per-board`` and ``enroll`` refuse as well.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .config import Config
from .new_datasets import creatable_path, missing_folders, remove_made_folders
from .datasets import Dataset, Take
from .manifest import check_slug
from .errors import VERDICT_OFF, ParameterError, StorageError, TapcheckError
from .interrupts import Interrupted, deferred
from .new_takes import (check_take_folder, inherited_group, warn_of_other_group,
                        warn_of_other_rate)


@dataclass
class ImportResult:
    """What :func:`import_clips` did: the takes it added and one error line per refused file."""

    imported: list[tuple[Path, Take]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: int = 0  # files not tried after a storage error
    #: the dataset's folder when this call made it, imported nothing and removed it again
    removed: Path | None = None
    # each error's traceback, in the same order: what ``--debug`` shows before its line
    traces: list[str] = field(default_factory=list, repr=False)

    def refused(self, error: TapcheckError) -> None:
        """Note a refused file: its one line, and how it came about."""
        self.errors.append(str(error))
        self.traces.append(traceback.format_exc())


def import_clips(files: Sequence[str | os.PathLike], dataset: str | os.PathLike | Dataset, *,
                 board: int, side: str,
                 label: str, group: str | None = None, split: str = "train",
                 config: Config | None = None,
                 on_take: Callable[[Path, Take], None] | None = None) -> ImportResult:
    """Convert each file to mono at ``config.audio.sr`` and add it as the next take of a board.

    A file that cannot be read, or whose crops (``config.features``) cannot be cut because it
    holds no strike or is too short, is refused with one line naming it; the others are imported.

    Parameters
    ----------
    files : sequence of path
    dataset : str, PathLike or Dataset
        A dataset, or its name or folder: created (only once the labels are checked) if new,
        and removed again if nothing could be imported into it (``ImportResult.removed``).
    board, side, label, group, split : the manifest columns of every imported take; ``group``
        None: the group the board's takes of that label share (:func:`inherited_group`).
    config : Config, optional
        The audio and feature settings the takes must suit (default: the defaults).
    on_take : callable, optional
        Called with (source file, new take) after each take is written.
    """
    config = config or Config()
    check_slug(side, "side")  # before a new dataset's folder is made
    if group:
        check_slug(group, "group")
    _refuse_repeats(files)
    made: list[Path] = []  # the folders Dataset.create makes: the dataset's, and any above it
    if not isinstance(dataset, Dataset):
        made = missing_folders(creatable_path(dataset))
        dataset = Dataset.create(dataset)
    result = ImportResult()
    with dataset.locked():  # one importer (or recorder) at a time; a second is told who
        if group is None:  # the board's other takes' group, read under the lock
            group = inherited_group(dataset, board=board, label=label)
        warn_of_other_group(dataset, board=board, label=label, group=group)
        warn_of_other_rate(dataset, sr=config.audio.sr)
        try:
            _import_into(dataset, files, result, board=board, side=side, label=label,
                         group=group, split=split, config=config, on_take=on_take)
        except KeyboardInterrupt:  # Ctrl-C or kill: "interrupted" alone left the user guessing
            raise Interrupted(_kept_after_stop(dataset, result, len(files))) from None
        finally:  # Ctrl-C too
            if made and not result.imported:
                result.removed = remove_made_folders(dataset, made, board=board, side=side)
    return result


def _kept_after_stop(dataset: Dataset, result: "ImportResult", given: int) -> str:
    if not result.imported:
        return f"nothing was imported into {dataset.root}"
    takes = [take.take for _, take in result.imported]
    numbers = f"{min(takes)}-{max(takes)}" if len(takes) > 1 else f"{takes[0]}"
    if len(takes) + len(result.errors) >= given:  # stopped after the last clip (QA)
        return (f"{len(takes)} of {given} clip(s) were imported into {dataset.root} (take "
                f"{numbers}) and are kept; no clip was left to import")
    # the same recording is refused by its samples, not its name (it said "by name", QA)
    return (f"{len(takes)} of {given} clip(s) were imported into {dataset.root} (take "
            f"{numbers}) and are kept; to import the rest, pass the clips not yet imported (the "
            "same command refuses each clip the dataset holds already)")


def _as_take(text: str) -> str:
    """A clip's warning as said of a take being imported: no verdict is given now, and the
    take is kept ("the verdict may be off" of an import read as if it had been judged; QA)."""
    return text.replace(VERDICT_OFF, "imported all the same, though its score may be off (in "
                                     "training, calibration or evaluate)")


def _import_into(dataset: Dataset, files, result: ImportResult, *, board: int, side: str,
                 label: str, group: str, split: str, config: Config,
                 on_take: Callable[[Path, Take], None] | None) -> None:
    """The body of :func:`import_clips`, holding the dataset's lock: each file into ``result``."""
    from .codings import import_source
    from .features import load_clip, strike_crops
    from .strikes import warn_of_taps

    # a linked board folder, or a label the side's training takes lack: before any take
    check_take_folder(dataset, board, side, label=label, split=split)
    stored = StoredTakes(dataset)
    # a clip imported at another rate (`--config` with another [audio] sr) was let in again:
    # its samples at this rate are no take's (QA). Read again at each rate the takes have.
    other_rates = sorted({t.sample_rate for t in dataset.takes} - {config.audio.sr})
    for path in map(Path, files):
        # Ctrl-C or kill wait until the take is read, and its WAV and manifest row are both
        # written: every object of a take (soundfile's among them) is released inside
        with deferred():
            try:
                with warnings.catch_warnings(record=True) as said:
                    warnings.simplefilter("always")  # given below, once the clip is taken
                    y = load_clip(path, audio=config.audio, features=config.features)
                    # crops only to refuse a clip without a usable tap
                    strike_crops(y, sr=config.audio.sr, features=config.features, path=path)
                    warn_of_taps(y, sr=config.audio.sr, features=config.features, path=path,
                                 done="used")
                _refuse_stored(path, y, sr=config.audio.sr, dataset=dataset, stored=stored)
                for rate in other_rates:
                    _refuse_stored_at(path, rate, config=config, dataset=dataset, stored=stored)
            except TapcheckError as e:  # its warnings unsaid: a padded clip's came before
                result.refused(e)       # "is already take …" (QA)
                continue
            for w in said:
                warnings.warn_explicit(_as_take(str(w.message)), w.category, w.filename,
                                       w.lineno)
            try:
                take = dataset.add_take(y, sr=config.audio.sr, board=board, side=side,
                                        label=label, group=group, split=split,
                                        source=import_source(path))
            except StorageError as e:  # a full or read-only disk: the next file fares no better
                result.refused(e)
                result.stopped = len(files) - len(result.imported) - len(result.errors)
                break
            result.imported.append((path, take))  # inside: a stop here still counts it
            stored.add(take)
            if on_take is not None:  # inside too: a stop as the block ended printed one
                on_take(path, take)  # "->" line fewer than the summary counted


def _refuse_repeats(files: Sequence[str | os.PathLike]) -> None:
    """One recording named twice in a call (by its bytes, however it is named): refused before
    the dataset is touched. Files that cannot be read repeat nothing; they get their own line."""
    from .copies import content_digest, first_repeat, repeat_problem

    def digest(path) -> str | None:
        if not os.path.isfile(path):  # missing, a folder, or a fifo (reading it would block)
            return None
        try:
            return content_digest(path)
        except OSError:
            return None

    repeat = first_repeat(files, [digest(f) for f in files])
    if repeat:
        raise ParameterError(f"{repeat_problem(*repeat)}; imported twice it would be two takes of "
                             "one tap and count twice (in training, or in evaluate's rates); "
                             "nothing imported", path=repeat[0], fix="name each clip once")


PEAK_SLACK = 2  # hundredths of a dB a copy's peak may lie from its take's manifest row


def _level(take: Take) -> tuple:
    return take.sample_rate, take.duration_s, take.peak_dbfs


class StoredTakes:
    """A dataset's takes as one ``import`` compares clips with them: by their manifest's rate,
    length and peak, the few a clip could repeat, and the digest of each one's samples, read
    once per run.

    Level-normalised takes of one length all share a rate, length and peak: each clip was
    compared with every such take, read anew, and an import into 750 of them took 0.39 s a file
    against 0.10 s into 0 (QA). Each take is now read once a run, whatever it is compared with.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.by_level: defaultdict[tuple, list[Take]] = defaultdict(list)
        self._digests: dict[str, str | None] = {}
        for take in dataset.takes:
            self.add(take)

    def add(self, take: Take) -> None:
        self.by_level[_level(take)].append(take)

    def candidates(self, *, sr: int, duration_s: float, peak_dbfs: float) -> list[Take]:
        """The takes whose manifest row has this rate and length, and a peak within
        :data:`PEAK_SLACK` hundredths of a dB."""
        return [take for step in range(-PEAK_SLACK, PEAK_SLACK + 1)
                for take in self.by_level.get((sr, duration_s,
                                               round(peak_dbfs + step / 100, 2)), ())]

    def digest(self, take: Take) -> str | None:
        """:func:`samples_digest` of the take's file; None when it cannot be read (no
        candidate: info, train and doctor name it)."""
        if take.path not in self._digests:
            import soundfile as sf

            digest = None
            try:
                file = self.dataset.path_of(take)
                if os.path.isfile(file):
                    with open(file, "rb") as f:  # a file object: names that are not UTF-8 too
                        digest = samples_digest(sf.read(f, dtype="int32")[0])
            except (TapcheckError, OSError, sf.LibsndfileError):
                pass
            self._digests[take.path] = digest
        return self._digests[take.path]


def samples_digest(samples) -> str:
    """SHA-1 of integer samples and their shape: the same take, whatever its file's header."""
    import hashlib

    import numpy as np

    samples = np.ascontiguousarray(samples)
    return hashlib.sha1(repr(samples.shape).encode() + samples.tobytes()).hexdigest()


def _refuse_stored_at(path: Path, rate: int, *, config: Config, dataset: Dataset,
                      stored: StoredTakes) -> None:
    """:func:`_refuse_stored` for ``path`` read at ``rate``, another rate than the config's:
    a take stored at that rate holds the samples this read gives."""
    import dataclasses
    import warnings

    from .features import load_clip

    try:
        with warnings.catch_warnings():  # said as it was read at the config's rate
            warnings.simplefilter("ignore")
            y = load_clip(path, audio=dataclasses.replace(config.audio, sr=rate),
                          features=config.features)
    except TapcheckError:  # unreadable at that rate (too low for the crops): no take there
        return
    _refuse_stored(path, y, sr=rate, dataset=dataset, stored=stored)


def _refuse_stored(path: Path, y, *, sr: int, dataset: Dataset, stored: StoredTakes) -> None:
    """Refuse a clip whose samples, as they would be stored, are those of a take of the dataset.

    The candidates are the takes whose manifest row has the rate, length and peak this take's
    would have (computed as :meth:`Dataset.add_take` computes them); only they are read, each
    once a run (:class:`StoredTakes`).
    """
    import soundfile as sf

    from .audio import encode_wav, peak_dbfs

    # a manifest's peak is that of the samples before they were rounded to 16 bits, a copy's
    # that of its file: they differ by up to 0.013 dB (at -40 dBFS), and one rounded to -13.23
    # and the other to -13.24 let a copy of a take in (QA)
    candidates = stored.candidates(sr=sr, duration_s=round(len(y) / sr, 4),
                                   peak_dbfs=peak_dbfs(y))
    if not candidates:
        return
    ours = samples_digest(sf.read(encode_wav(y, sr=sr), dtype="int32")[0])
    for take in candidates:
        if stored.digest(take) == ours:
            raise ParameterError(f"is already take {take.path} of this dataset (the same "
                                 "samples); imported again it would count twice (in training, "
                                 "or in evaluate's rates); not imported", path=path,
                                 fix="leave it out")
