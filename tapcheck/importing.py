"""Bringing existing audio files into a dataset (``tapcheck import``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .config import Config
from .datasets import Dataset, Take, check_slug
from .errors import StorageError, TapcheckError
from .interrupts import deferred


@dataclass
class ImportResult:
    """What :func:`import_clips` did: the takes it added and one error line per refused file."""

    imported: list[tuple[Path, Take]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: int = 0  # files not tried after a storage error


def import_clips(files: Sequence[str | os.PathLike], dataset: str | os.PathLike | Dataset, *,
                 board: int, side: str,
                 label: str, group: str = "", split: str = "train", config: Config | None = None,
                 on_take: Callable[[Path, Take], None] | None = None) -> ImportResult:
    """Convert each file to mono at ``config.audio.sr`` and add it as the next take of a board.

    A file that cannot be read, or whose crops (``config.features``) cannot be cut because it
    holds no strike or is too short, is refused with one line naming it; the others are imported.

    Parameters
    ----------
    files : sequence of path
    dataset : str, PathLike or Dataset
        A dataset, or its name or folder: created (only once the labels are checked) if new.
    board, side, label, group, split : the manifest columns of every imported take.
    config : Config, optional
        The audio and feature settings the takes must suit (default: the defaults).
    on_take : callable, optional
        Called with (source file, new take) after each take is written.
    """
    from .features import load_clip, strike_crops

    config = config or Config()
    check_slug(side, "side")  # before a new dataset's folder is made
    if group:
        check_slug(group, "group")
    if not isinstance(dataset, Dataset):
        dataset = Dataset.create(dataset)
    result = ImportResult()
    with dataset.locked():  # one importer (or recorder) at a time; a second is told who
        dataset.check_take_folder(board, side)  # a linked board folder: refused before any take
        for path in map(Path, files):
            # Ctrl-C or kill wait until the take is read, and its WAV and manifest row are both
            # written: every object of a take (soundfile's among them) is released inside
            with deferred():
                try:
                    y = load_clip(path, audio=config.audio, features=config.features)
                    # crops only to refuse a clip without a usable tap
                    strike_crops(y, sr=config.audio.sr, features=config.features, path=path)
                except TapcheckError as e:
                    result.errors.append(str(e))
                    continue
                try:
                    take = dataset.add_take(y, sr=config.audio.sr, board=board, side=side,
                                            label=label, group=group, split=split,
                                            source="import")
                except StorageError as e:  # a full or read-only disk: the next file fares no better
                    result.errors.append(str(e))
                    result.stopped = len(files) - len(result.imported) - len(result.errors)
                    break
            result.imported.append((path, take))
            if on_take is not None:
                on_take(path, take)
    return result
