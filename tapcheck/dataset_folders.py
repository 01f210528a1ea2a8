"""Which folders belong to a dataset, so that nothing but takes is written into one.

``compare --out`` once put a report and ``judge --explain-dir`` pictures among a dataset's
takes, where ``tapcheck datasets`` and training then met them. :func:`dataset_holding` finds
the dataset a folder is or lies in; :func:`refuse_dataset_folder` refuses a write there before
any work.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import StorageError


#: how far above a folder outside the recordings folder a dataset's manifest.csv is looked
#: for: a dataset's takes lie at <dataset>/boardNN/<side>/, and one folder below that is the
#: deepest a folder inside it is expected
DATASET_DEPTH = 3


def dataset_holding(folder: str | os.PathLike) -> Path | None:
    """The dataset folder ``folder`` is or lies in, else None: the nearest folder at or above
    it holding a ``manifest.csv`` (a link too), looked for up to the recordings folder
    (:func:`tapcheck.paths.recordings_home`) when ``folder`` lies in it, else up to
    :data:`DATASET_DEPTH` folders above it (a dataset kept elsewhere, ``/srv/bench``, holds
    takes all the same).

    In the recordings folder any ``manifest.csv`` counts, by its name alone. Outside it only
    one whose first line is a tapcheck manifest's header (:func:`_tapcheck_manifest`): a
    ``manifest.csv`` of something else, a parts list in the working folder or ``~``, made
    ``./inspections`` and ``~/pictures`` "inside dataset ." and stopped ``listen``.

    ``folder`` is followed both as written and as its links lead (a link to a board's folder
    puts the files among that board's takes); it need not exist yet (a folder made inside a
    dataset is inside it too).
    """
    from .manifest import MANIFEST  # manifest.py imports this module
    from .paths import recordings_home

    home = recordings_home()
    stops = {Path(os.path.abspath(home)), home.resolve()}
    for start in (Path(os.path.abspath(folder)), Path(folder).resolve()):
        inside = any(start.is_relative_to(stop) for stop in stops)
        above = start.parents if inside else start.parents[:DATASET_DEPTH]
        for candidate in (start, *above):
            manifest = candidate / MANIFEST
            if os.path.lexists(manifest) and (inside or _tapcheck_manifest(manifest)):
                return candidate
            if candidate in stops:
                break
    return None


def recordings_in_dataset() -> Path | None:
    """The dataset the recordings folder itself is or lies in, else None: run from inside a
    dataset's folder, ``./recordings`` is among its takes, and :func:`dataset_holding` looks no
    higher than the recordings folder (a new dataset was made there unseen). Only a tapcheck
    manifest counts (:func:`_tapcheck_manifest`), up to :data:`DATASET_DEPTH` folders up."""
    from .paths import recordings_home

    start = Path(os.path.abspath(recordings_home()))
    for candidate in (start, *start.parents[:DATASET_DEPTH]):
        if _tapcheck_manifest(candidate / "manifest.csv"):
            return candidate
    return None


def _tapcheck_manifest(path: Path) -> bool:
    """Whether ``path`` is a regular file (links followed) whose first line names every column
    of a tapcheck manifest; reads at most 4 KiB. A fifo is never opened (it would block)."""
    import csv

    from .manifest import missing_columns

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    first = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    return not missing_columns(next(csv.reader(first), []))


def refuse_dataset_folder(folder: str | os.PathLike, *, why: str, fix: str,
                          home_why: str) -> None:
    """Before any work: refuse to write into a dataset's folder or any folder inside it (one
    holding a ``manifest.csv`` at or above it, :func:`dataset_holding`), or into the recordings
    folder itself, where ``compare --out`` once put a report and ``judge --explain-dir``
    pictures among the takes (only a dataset's own folder was refused: a board's folder, or
    the recordings folder, took the files).

    Parameters
    ----------
    why : str
        What would go wrong in a dataset ("a report would mix its files with the takes").
    fix : str
        Which option to change, e.g. "choose another --out, e.g. reports/<dataset>".
    home_why : str
        What would go wrong in the recordings folder, whose every folder ``tapcheck datasets``
        takes for a dataset.

    Raises
    ------
    StorageError
    """
    from .manifest import MANIFEST
    from .paths import recordings_home

    dataset = dataset_holding(folder)
    if dataset is not None:
        if dataset in (Path(os.path.abspath(folder)), Path(folder).resolve()):
            raise StorageError(f"is a dataset folder (it holds {MANIFEST}); {why}", path=folder,
                               fix=fix)
        shown = os.path.relpath(dataset)
        shown = shown if not shown.startswith("..") and shown != "." else os.fspath(dataset)
        raise StorageError(f"is inside dataset {shown} (its folder holds {MANIFEST}); {why}",
                           path=folder, fix=fix)
    home = recordings_home()
    if Path(folder).resolve() == home.resolve():
        raise StorageError(f"is the recordings folder, which holds the datasets; {home_why}",
                           path=folder, fix=fix)
