"""Which folders belong to a dataset: where a dataset of a name lies, and that nothing but takes
is written into one (where a new one may be made: :mod:`tapcheck.new_datasets`).

``compare --out`` once put a report and ``judge --explain-dir`` pictures among a dataset's
takes, where ``tapcheck datasets`` and training then met them. :func:`dataset_holding` finds
the dataset a folder is or lies in; :func:`refuse_dataset_folder` refuses a write there before
any work.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DatasetError, ParameterError, StorageError
from .manifest import MANIFEST, SLUG, missing_columns
from .paths import check_folder, recordings_home


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
    start = Path(os.path.abspath(recordings_home()))
    for candidate in (start, *start.parents[:DATASET_DEPTH]):
        if _tapcheck_manifest(candidate / MANIFEST):
            return candidate
    return None


def _tapcheck_manifest(path: Path) -> bool:
    """Whether ``path`` is a regular file (links followed) whose first line names every column
    of a tapcheck manifest; reads at most 4 KiB. A fifo is never opened (it would block)."""
    import csv


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


def dataset_path(name: str | os.PathLike) -> Path:
    """``NAME`` → ``recordings/NAME``; a path with a slash (or an existing folder) is used as is
    (``a/../b`` as ``b`` where ``a`` does not exist);
    the path of a dataset's ``manifest.csv`` means its dataset's folder, for reading and writing
    alike (``info``, ``import``, ``record``: a manifest given was "no such dataset", or, to
    ``import``, "cannot be written (File exists)")."""
    text = os.fspath(name)
    given = Path(text)
    as_path = os.sep in text or "/" in text  # `a/../b` stays a path when it reads `b`
    if _missing_before_up(given):
        # `--dataset a/../b` made an empty folder a beside the new dataset b, and named it
        # "a/../b", a path the shell cannot follow once a is gone (QA): the folder meant. Only
        # then: where a exists (a link, perhaps), a/.. is where the file system leads
        given = Path(os.path.normpath(given))
        text = os.fspath(given)
    if given.name == MANIFEST and given.is_file():
        # a bare "manifest.csv" or "../manifest.csv": a folder with a name, for messages and
        # the dataset's name
        return given.parent if given.parent.name else Path(os.path.abspath(given.parent))
    # a file here is a path too ("info stereo.wav" was "not a usable dataset name"): the
    # callers then say it is a file, not a dataset's folder
    if as_path or (Path(text).is_dir() and (Path(text) / MANIFEST).exists()) \
            or (not SLUG.match(text) and os.path.lexists(text) and not Path(text).is_dir()):
        return Path(text)
    if not SLUG.match(text):
        # the example without an option's name: `judge --references ""` was told to give
        # "--dataset bench-1", an option judge does not have (QA)
        why = "" if text.strip() else " (it is empty)" if not text else " (it is blank)"
        raise ParameterError(f"'{text}' is not a usable dataset name{why}",
                             fix="use ASCII letters, digits, '-' and '_', beginning with a "
                                 "letter or digit, e.g. bench-1")
    # a file there: "afile/small: no such dataset … make one with `tapcheck synth`", advice
    # that failed, where `datasets` said what was wrong
    return check_folder(recordings_home(), "datasets", "TAPCHECK_RECORDINGS") / text


def _missing_before_up(path: Path) -> bool:
    """Whether a folder ``path`` goes up from (``x`` in ``x/..``) does not exist."""
    parts = path.parts
    return any(part == ".." and k and parts[k - 1] != ".." and not os.path.lexists(Path(*parts[:k]))
               for k, part in enumerate(parts))


def recordings_folder() -> Path:
    """The recordings folder (:func:`tapcheck.paths.recordings_home`), refused when it is a
    file or itself a dataset: `datasets` said "no datasets … try `tapcheck synth --dataset
    demo`", and the synth then failed (QA). (A dataset named in such a folder is refused by
    :func:`dataset_path`'s callers as lying inside it.)

    Raises
    ------
    StorageError
    """
    home = check_folder(recordings_home(), "datasets", "TAPCHECK_RECORDINGS")
    if (home / MANIFEST).exists():
        raise StorageError("is a dataset (it holds manifest.csv), not the folder of datasets",
                           path=home, fix="set $TAPCHECK_RECORDINGS to the folder that holds "
                                          f"it, {home.absolute().parent}")
    return home


def as_given(root: Path) -> str:
    """A dataset folder as a user passes it to ``--dataset``, quoted for the shell: its name
    when it lies in the recordings folder and is a usable name, else its path (from here when
    below the working folder, not ``.``)."""
    import shlex

    home = recordings_home()
    if root.parent in (Path(os.path.abspath(home)), home.resolve()) and SLUG.match(root.name):
        return root.name
    here = Path.cwd()
    shown = os.path.relpath(root, here) if root.is_relative_to(here) and root != here else \
        os.fspath(root)
    # a relative path needs a slash to be read as a path, not a dataset's name
    return shlex.quote(shown if os.sep in shown or os.path.isabs(shown) else f"./{shown}")


def list_datasets() -> list[str]:
    """Names of the datasets under :func:`recordings_home`: folders holding a ``manifest.csv``,
    whatever it is (a folder, or a link that leads nowhere or in a loop, is a broken dataset to
    name, not one to pass over: ``datasets`` left them out without a word)."""
    return sorted(p.name for p, holds in _recordings_folders() if holds)


def unenterable_folders() -> list[Path]:
    """Folders under :func:`recordings_home` this account may not enter, so whether they hold a
    dataset is not known (a dataset another account made under umask 077 was left out of
    `datasets` without a word; data QA). ``lost+found``, a file system's own, is none."""
    return [p for p, holds in _recordings_folders() if holds is None and p.name != "lost+found"]


def _recordings_folders() -> list[tuple[Path, bool | None]]:
    """Each folder under :func:`recordings_home`, sorted, and whether it holds a manifest (any
    entry of that name, a broken link too); None where it may not be entered to tell."""
    home = recordings_home()
    if not home.is_dir():
        return []
    found = []
    for p in sorted(home.iterdir()):
        if not p.is_dir():
            continue
        try:
            os.lstat(p / MANIFEST)
        except PermissionError:
            found.append((p, None))
        except OSError:
            found.append((p, False))
        else:
            found.append((p, True))
    return found


def missing_dataset(root: Path, *, given: str | os.PathLike) -> DatasetError:
    """Why ``root`` (:func:`dataset_path` of ``given``), which holds no ``manifest.csv``, is no
    dataset: a take or other file, a folder inside a dataset, the path of a manifest that is
    not there, or no dataset at all (with the datasets there are)."""
    from .file_kinds import non_folder_kind

    known = ", ".join(sorted(list_datasets())) or "none yet"
    kind = non_folder_kind(root)
    if kind:  # a take given for its dataset: say which, not "no such dataset"
        holder = dataset_holding(root.parent)
        return DatasetError(
            f"is {kind}, not a dataset's folder", path=root,
            fix=f"give its dataset, {as_given(holder)}" if holder is not None else
            f"give a dataset's name or folder (datasets here: {known})")
    if root.name == MANIFEST:  # dataset_path takes a manifest that is a file as its folder
        # as import says it; judge --references and train said "no such dataset (no
        # manifest.csv)" of a manifest's path (QA)
        return DatasetError(f"is no {MANIFEST} file; a dataset is the folder holding its "
                            f"{MANIFEST}", path=root,
                            fix=f"give the dataset's folder or name (datasets here: {known})")
    holder = dataset_holding(root) if root.is_dir() else None
    if holder is not None:  # a board or side folder: its dataset is meant
        return DatasetError(
            f"is a folder inside dataset {as_given(holder)}, not a dataset", path=root,
            fix=f"give the dataset, {as_given(holder)}")
    if os.fspath(given).endswith("/") and root.name in list_datasets() and \
            os.path.abspath(root) != os.path.abspath(recordings_home() / root.name):
        # `--dataset plant/`: a path from here, while the list named plant
        return DatasetError(
            "no such dataset (no manifest.csv)", path=root,
            fix=f"{root.name}, without a slash, names "
                f"{recordings_home() / root.name}; a path with a slash is a folder "
                "from here")
    return DatasetError(
        "no such dataset (no manifest.csv)", path=root,
        fix=f"datasets here: {known}; make one with `tapcheck synth`, `record` or `import`")
