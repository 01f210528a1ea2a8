"""Datasets on disk: ``recordings/<name>/board<NN>/<side>/take<NNN>.wav`` plus ``manifest.csv``.

The manifest has one row per take (see :data:`MANIFEST_FIELDS`) and is the truth about labels and
splits; the folder layout only keeps files findable by hand. Adding a take locks the dataset,
numbers the take after the last one on disk or in the manifest (so nothing is ever overwritten),
writes the WAV atomically and then rewrites the manifest atomically: a crash at any moment leaves
every earlier take and a manifest that parses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Collection, Iterator

import numpy as np

from . import manifest
from .audio import peak_dbfs, write_wav
from .dataset_folders import dataset_path, missing_dataset
from .new_datasets import creatable_path, dangling_manifest, warn_of_strangers
from .new_takes import check_take_folder, next_take
from .errors import DatasetError, StorageError
from .files import check_path, remove_stopped_writes, storage_error
from .locks import exclusive, holding, moved_away
from .manifest import LABELS, MANIFEST, MANIFEST_FIELDS, SPLITS  # noqa: F401 - re-exported
from .manifest import check_row_values



@dataclass(frozen=True, slots=True)  # slots: no per-row __dict__ (10^5 rows: 148 -> 142 MB)
class Take:
    """One row of a manifest."""

    path: str  # relative to the dataset folder
    board: int
    side: str
    label: str
    group: str
    split: str
    take: int
    recorded_at: str
    sample_rate: int
    duration_s: float
    source: str
    peak_dbfs: float

    @property
    def class_name(self) -> str:
        """The identity metric-learning models separate: ``board03/left``."""
        return f"board{self.board:02d}/{self.side}"


class Dataset:
    """A dataset folder and its manifest.

    Parameters
    ----------
    root : str or Path
        The dataset folder (holding ``manifest.csv``).

    Examples
    --------
    >>> ds = Dataset.open("demo")                                  # doctest: +SKIP
    >>> ds.select(split="train", label="normal")[:2]               # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.name = self.root.name
        self.takes: list[Take] = []
        self._seen: tuple | None = None  # the manifest's identity when last read or written
        self._appendable = False  # our header exactly: a new row can be appended
        self._own_columns: list[str] = []  # the manifest's columns tapcheck does not keep
        self._reload()

    def _stamp(self) -> tuple | None:
        try:
            st = (self.root / MANIFEST).stat()
        except FileNotFoundError:
            if (self.root / MANIFEST).is_symlink():  # read as none, a writer wrote over it
                raise dangling_manifest(self.root) from None
            return None
        except OSError as e:
            raise DatasetError(f"cannot be read ({e.strerror})", path=self.root / MANIFEST,
                               fix="check the folder's permissions") from None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _reload(self) -> None:
        """Re-read the manifest unless it is as we last saw it (no re-parse per take)."""
        stamp = self._stamp()
        if stamp is not None and stamp == self._seen:
            return
        if stamp is not None and self.leads_out(MANIFEST):
            # as a take linked out of the dataset is refused: nothing is read outside the
            # folder given (a manifest linked to another dataset's was read as this one's, QA)
            raise DatasetError(
                f"is a link to {(self.root / MANIFEST).resolve()}, outside the dataset; "
                "nothing was read", path=self.root / MANIFEST,
                fix="replace the link by the file it leads to (cp --remove-destination "
                    "\"$(readlink -f manifest.csv)\" manifest.csv, in the dataset's folder)")
        self.takes, self._appendable, self._own_columns = (
            manifest.read_manifest(self.root / MANIFEST, Take) if stamp is not None
            else ([], False, []))
        self._seen = stamp

    @classmethod
    def open(cls, name: str | os.PathLike) -> "Dataset":
        """Open an existing dataset by name or path (the path of its manifest.csv means the
        dataset: "no such dataset (no manifest.csv)" for a manifest given was a puzzle)."""
        root = dataset_path(name)
        check_path(root / MANIFEST, DatasetError)  # a link loop is not "no such dataset"
        if (root / MANIFEST).is_symlink() and not (root / MANIFEST).exists():
            # it read "is a folder inside dataset X, not a dataset — give the dataset, X": the
            # dataset itself, sent back to itself
            raise dangling_manifest(root)
        if not (root / MANIFEST).exists():
            raise missing_dataset(root, given=name)
        return cls(root)

    @classmethod
    def create(cls, name: str | os.PathLike) -> "Dataset":
        """Open a dataset, creating its folder if needed.

        Raises
        ------
        DatasetError
            A file stands where the folder goes (:func:`creatable_path`).
        StorageError
            The folder cannot be made.
        """
        root = creatable_path(name)
        warn_of_strangers(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage_error(e, root) from None
        return cls(root)

    def __len__(self) -> int:
        return len(self.takes)

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, takes={len(self.takes)})"

    def select(self, *, split: str | Collection[str] | None = None,
               label: str | Collection[str] | None = None,
               board: int | Collection[int] | None = None,
               side: str | Collection[str] | None = None,
               group: str | Collection[str] | None = None) -> list[Take]:
        """Takes matching every given filter; each accepts one value or a collection."""
        def ok(value, wanted) -> bool:
            if wanted is None:
                return True
            if isinstance(wanted, (str, int)):
                return value == wanted
            return value in wanted

        return [t for t in self.takes if ok(t.split, split) and ok(t.label, label)
                and ok(t.board, board) and ok(t.side, side) and ok(t.group, group)]

    def path_of(self, take: Take) -> Path:
        """Path of a take's audio file, which must lie inside the dataset folder.

        The manifest's rows are checked when read (no absolute or ``..`` paths); this also
        refuses a take reached through a symlink that leads out of the folder.
        """
        path = self.root / take.path
        if self.leads_out(take.path):
            raise DatasetError(f"take {take.path} is a link to a file outside the dataset",
                               path=self.root / MANIFEST,
                               fix="copy the file into the dataset folder, or delete the row")
        return path

    def leads_out(self, rel: str) -> bool:
        """Whether ``rel`` (which need not exist yet) leads out of the dataset folder through
        a symbolic link: the one test of reading a take (:meth:`path_of`) and of writing one
        (:func:`tapcheck.new_takes.check_take_folder`)."""
        try:
            return not (self.root / rel).resolve().is_relative_to(self.root.resolve())
        except (RuntimeError, OSError):  # a loop: RuntimeError before Python 3.13
            # a take linked to itself gave evaluate, info, doctor and train a traceback (QA)
            raise DatasetError(f"{rel} loops through symbolic links",
                               path=self.root / MANIFEST,
                               fix="fix the links (ls -l shows where each points), or delete "
                                   "the row") from None

    def missing_files(self) -> list[Take]:
        """Takes whose audio file is not on disk."""
        return [t for t in self.takes if not self.path_of(t).is_file()]

    @contextlib.contextmanager
    def locked(self, *, remove: bool = False) -> Iterator["Dataset"]:
        """Hold the dataset's writer lock and see the manifest as it is now.

        A writing session (import, record, synth) holds it throughout; another one gets a
        :class:`DatasetError` "in use by PID N" at once (see :mod:`tapcheck.locks`). With
        ``remove`` the lock file is deleted afterwards, while still held (a session that made
        it and may leave the folder as it found it).
        """
        if moved_away(self.root / ".lock"):
            # the folder deleted mid-session was made again here, and record numbered its
            # next take 1 in an empty manifest, saying all was saved (QA)
            raise DatasetError("was deleted, moved or replaced while this session wrote to it",
                               path=self.root, fix="keep a dataset's folder while a session "
                                                   "writes to it, and start the session again")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage_error(e, self.root) from None
        first = not holding(self.root / ".lock")  # not again for each take of a session
        with exclusive(self.root / ".lock", what=self.root, error=DatasetError, remove=remove):
            self._reload()
            self._check_manifest_writable()
            if first:
                remove_stopped_writes(self.root)
            yield self

    @property
    def own_columns(self) -> list[str]:
        """The manifest's columns tapcheck does not keep (a row added would drop them)."""
        return list(self._own_columns)

    def _check_manifest_writable(self) -> None:
        """A manifest that cannot take a row (read-only, immutable) fails the session now: found
        only after a tap, it left that take's WAV without its row. So does one with columns of
        its own: a row added rewrites it with tapcheck's columns only, and an inspector's notes
        column was dropped without a word."""
        manifest = self.root / MANIFEST
        if self._own_columns:
            own = ", ".join(f"'{c}'" for c in self._own_columns)
            raise DatasetError(
                f"has column(s) {own} that tapcheck does not keep: adding a take would rewrite "
                "it without them; nothing was written", path=manifest,
                fix="move those columns to a file of their own (keyed by path), then run again")
        if manifest.is_symlink():  # add_take replaces a linked manifest, never writes through it
            return
        try:
            os.close(os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))  # writes nothing
        except FileNotFoundError:
            return  # a new dataset: written with its first take
        except OSError as e:
            found = storage_error(e, manifest)
            if isinstance(found, StorageError):
                raise found from None

    def add_take(self, y: np.ndarray, *, sr: int, board: int, side: str, label: str,
                 group: str = "", split: str = "train", source: str = "",
                 recorded_at: str | None = None) -> Take:
        """Store a new take: WAV first, then the manifest row, both atomically.

        Parameters
        ----------
        y : np.ndarray, shape (n_samples,)
        sr : int
        board, side, label, group, split, source
            As in the manifest.
        recorded_at : str, optional
            ISO 8601 time; default now (UTC).

        Returns
        -------
        Take
            The row written.
        """
        check_row_values(board=board, side=side, label=label, split=split, group=group)
        with self.locked():
            check_take_folder(self, board, side)  # before a byte is written through a link
            number = next_take(self, board, side)
            rel = f"board{board:02d}/{side}/take{number:03d}.wav"
            write_wav(self.root / rel, y, sr=sr)
            take = Take(
                path=rel, board=board, side=side, label=label, group=group, split=split,
                take=number,
                recorded_at=recorded_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                sample_rate=sr, duration_s=round(len(y) / sr, 4), source=source,
                peak_dbfs=round(peak_dbfs(y), 2))
            try:
                self._add_row(take)
            except (OSError, StorageError):
                # the row failed (a disk full between the WAV and its row): a WAV without a row
                # stayed for good, the next take numbered after it (QA)
                (self.root / rel).unlink(missing_ok=True)
                raise
            return take

    def _add_row(self, take: Take) -> None:
        """Append ``take``'s row to the manifest, or rewrite it; :attr:`takes` only when done."""
        if (self._appendable and self._stamp() == self._seen
                and not (self.root / MANIFEST).is_symlink()  # else replaced, not followed
                # a second name is a hard-linked backup (`cp -al`, rsync --link-dest): an
                # appended row landed in the backup's manifest too; a rewrite parts them
                and (self.root / MANIFEST).stat().st_nlink == 1):
            manifest.append_row(self.root / MANIFEST, dataclasses.asdict(take))
            self.takes.append(take)
            self._seen = self._stamp()
        else:
            self.takes.append(take)
            try:
                self.write_manifest()
            except (OSError, StorageError):  # written whole or not at all: not written
                self.takes.pop()
                raise

    def write_manifest(self) -> None:
        """Rewrite ``manifest.csv`` atomically from :attr:`takes`."""
        manifest.write_manifest(self.root / MANIFEST, [dataclasses.asdict(t) for t in self.takes])
        self._seen, self._appendable = self._stamp(), True

    def stats(self) -> dict:
        """Counts for ``tapcheck datasets``: takes, boards, normal, defect, train, test."""
        return {"dataset": self.name, "takes": len(self),
                "boards": len({t.board for t in self.takes}),
                "normal": len(self.select(label="normal")),
                "defect": len(self.select(label="defect")),
                "train": len(self.select(split="train")), "test": len(self.select(split="test"))}

    def summary(self) -> list[dict]:
        """One row per (board, side, label, group), with its split counts: a side's takes of
        two labels (its test takes defective, a normal training take imported later) were one
        row under the first take's label, counting the normal take as a defective one (QA)."""
        rows: dict[tuple[int, str, str, str], dict] = {}
        for t in self.takes:
            row = rows.setdefault((t.board, t.side, t.label, t.group), {
                "board": t.board, "side": t.side, "label": t.label, "group": t.group,
                "train": 0, "test": 0})
            row[t.split] += 1
        return [rows[k] for k in sorted(rows)]


def folder_take_error(path: str | os.PathLike) -> DatasetError:
    """A take whose path is a folder, as every command that reads takes says it."""
    return DatasetError("is a folder, not a take's audio file", path=path,
                        fix="fix its row's path or delete the row")


def class_counts(takes: list[Take]) -> Counter:
    """Takes per (board, side) class name."""
    return Counter(t.class_name for t in takes)
