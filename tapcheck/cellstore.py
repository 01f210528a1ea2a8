"""A report folder's finished cells: ``cells/<model>/<cell>-<key>.json`` (and ``.pt``), written
whole and read back only when they are a cell's record of this run's kind (:mod:`tapcheck.grid`
runs the cells; a killed or extended grid resumes from these)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .files import atomic_write
from .validate import is_real

if TYPE_CHECKING:
    from .grid import Cell


class CellStore:
    """The finished cells of a report folder: ``cells/<model>/<cell>-<key>.json`` (+ ``.pt``)."""

    def __init__(self, out: Path, *, models_beside: bool):
        self.out = Path(out)
        # a plain comparison keeps its model files where they always were: models/<name>.pt
        self.models_beside = models_beside

    def json_path(self, cell: Cell, key: str) -> Path:
        return self.out / "cells" / cell.model / f"{cell.stem}-{key}.json"

    def model_path(self, cell: Cell, key: str, *, beside: bool | None = None) -> Path:
        """Where the cell's model file is kept: ``models/<name>.pt`` for a plain comparison
        (``beside``, default this store's kind), else beside the cell's record."""
        if self.models_beside if beside is None else beside:
            return self.out / "models" / f"{cell.model}.pt"
        return self.json_path(cell, key).with_suffix(".pt")

    def other_keys(self, cell: Cell, key: str) -> list[Path]:
        """The records of ``cell`` stored under another key than ``key``."""
        mine = self.json_path(cell, key)
        return [p for p in sorted(mine.parent.glob(f"{cell.stem}-*.json"))
                if p != mine and p.stem.rpartition("-")[0] == cell.stem]

    def load(self, cell: Cell, key: str, *, need_model: bool,
             threads: int | None = None) -> dict | None:
        """The stored cell, or None (to run again) when it is missing, unreadable, not a cell's
        record, trained on other than ``threads`` torch threads (its numbers differ in the last
        bits, and training amplifies them: a Ray cell's 0.375 was reused as a serial run's
        0.380; QA), or its model file is not the one it was written with (another run wrote
        models/<name>.pt since)."""
        try:
            stored = json.loads(self.json_path(cell, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not _is_cell(stored):  # "[]" or a row without its fields: a traceback, or averaged
            return None
        if threads is not None and stored.get("threads", threads) != threads:
            return None
        if need_model:
            path = self.model_path(cell, key)
            if stored.get("model_sha1") is not None and not os.path.lexists(path) and \
                    self._adopt(cell, key, stored["model_sha1"]):
                stored["row"]["model_file"] = path.relative_to(self.out).as_posix()
                self._write(cell, key, stored)
            if stored.get("model_sha1") is None or not path.is_file() or (
                    _sha1(path.read_bytes()) != stored["model_sha1"]):
                return None
        return stored

    def _adopt(self, cell: Cell, key: str, sha1: str) -> bool:
        """Move the cell's model file from where a run of the other kind keeps it (a plain
        comparison: ``models/<name>.pt``; a grid: beside the cell's record), if it is the one
        the record names. A grid after a plain comparison trained its first cell again and left
        ``models/<name>.pt`` unrecorded, and every later run into the folder was refused as
        over a model `train` wrote (QA)."""
        from .errors import ModelFileError
        from .locks import exclusive, lock_path

        other = self.model_path(cell, key, beside=not self.models_beside)
        try:
            # held as train and enroll hold it: a grid takes no lock on models/<name>.pt
            with exclusive(lock_path(other), what=other, error=ModelFileError, remove=True):
                if other.is_symlink() or not other.is_file() or \
                        _sha1(other.read_bytes()) != sha1:
                    return False
                here = self.model_path(cell, key)
                here.parent.mkdir(parents=True, exist_ok=True)
                os.replace(other, here)
        except OSError:  # left where it is: the cell is trained again, as before
            return False
        if other.parent.name == "models":  # a grid's report has no models/ folder
            try:
                other.parent.rmdir()
            except OSError:  # other models there still
                pass
        return True

    def save(self, cell: Cell, key: str, result: dict) -> dict:
        """Write the model file (if any), then the cell file: a cell file means a whole cell."""
        stored = {k: v for k, v in result.items() if k != "model_bytes"}
        stored.update(cell=dataclasses.asdict(cell), key=key, model_sha1=None)
        if result.get("model_bytes") is not None:
            path = self.model_path(cell, key)
            with atomic_write(path) as f:
                f.write(result["model_bytes"])
            stored["model_sha1"] = _sha1(result["model_bytes"])
            stored["row"]["model_file"] = path.relative_to(self.out).as_posix()
        self._write(cell, key, stored)
        if self.models_beside:
            # a grid's model file of this cell, trained again here (on other threads): named
            # after the cell, it disagreed with the cell's record (QA). A grid's own run into
            # the folder leaves models/<name>.pt alone: `tapcheck train` may have written it
            stale = self.model_path(cell, key, beside=False)
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        return stored

    def _write(self, cell: Cell, key: str, stored: dict) -> None:
        with atomic_write(self.json_path(cell, key), "w", encoding="utf-8") as f:
            json.dump(stored, f, indent=1, default=float)


def _is_cell(stored: Any) -> bool:
    """Whether a cell file holds what the report reads: a row with its model's scorer, the
    training time, and an AUC and pAUC that are shares (or null: no defect takes)."""
    row = stored.get("row") if isinstance(stored, dict) else None
    if not isinstance(row, dict) or not isinstance(row.get("scorer"), str):
        return False
    seconds = row.get("train_seconds")
    if not (is_real(seconds) and math.isfinite(seconds) and seconds >= 0):
        return False
    return all(row.get(k) is None or (is_real(row[k]) and 0.0 <= row[k] <= 1.0)
               for k in ("auc", "pauc"))


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _stored_cells(out: Path, model: str = "*") -> Iterator[dict]:
    """The cell records under ``out/cells/<model>/`` that read as cells."""
    for path in sorted((Path(out) / "cells").glob(f"{model}/*.json")):
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _is_cell(stored):
            yield stored


def holds_cells(out: Path) -> bool:
    """Whether the report folder ``out`` holds a finished cell: an empty ``cells/`` made by
    hand let ``compare`` replace a user's index.html and metrics.csv (QA)."""
    return next(_stored_cells(out), None) is not None


def wrote_model(out: Path, model: str, path: Path) -> bool:
    """Whether a cell of ``model`` in ``out`` recorded the model file at ``path`` (its SHA-1):
    ``compare --out .`` replaced the model ``train`` had written at ``models/<model>.pt`` since,
    because the folder held an earlier comparison (QA)."""
    wanted = {stored.get("model_sha1") for stored in _stored_cells(out, model)} - {None}
    try:
        return bool(wanted) and _sha1(Path(path).read_bytes()) in wanted
    except OSError:
        return False
