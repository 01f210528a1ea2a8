"""A comparison's report folder, before any work: what ``compare --out`` may write over (only an
earlier comparison's files and the model files its cells recorded), and what it reads of an
earlier report there (its ``metrics.json``).

``compare --out`` once replaced a user's ``index.html`` or ``metrics.csv``, put a report beside
a dataset's takes, and replaced a model ``train`` had written at ``models/<name>.pt`` (QA).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from .cellstore import holds_cells, wrote_model
from .dataset_folders import refuse_dataset_folder
from .console import one_line
from .errors import StorageError, TapcheckWarning
from .file_kinds import check_replaceable, sniff
from .model_target import check_model_target
from .models import MODELS
from .paths import models_home


def check_report_folder(out: str | os.PathLike, names: list[str], *, warn: bool = True,
                        dataset: Any = None) -> None:
    """Before any work: ``out`` may take the report of comparing ``names``.

    ``compare --out`` once replaced a user's ``index.html`` or ``metrics.csv`` and put a report
    beside a dataset's takes. Each file the report writes must be nothing yet, or part of an
    earlier comparison here — told, as ``bench`` tells its JSON, by the folder's ``metrics.json``
    holding a comparison's ``meta`` and ``models``: its PNGs and CSV carry no mark of their own.
    Model files under ``models/`` are then checked by
    :func:`~tapcheck.model_target.check_model_target`.

    Raises
    ------
    StorageError
        ``out`` is the models folder or holds a dataset (``manifest.csv``), a file the report
        would replace that no comparison wrote, a model file under ``models/`` that no cell of
        a comparison there recorded (``train`` wrote it, or wrote it again since), or
        ``models``/``cells`` that is not a plain folder.

    ``dataset``: the :class:`~tapcheck.datasets.Dataset` compared; a model file of an earlier
    comparison of another dataset is not replaced, as ``train`` replaces none (it was, and the
    two comparisons' cells were mixed in one folder: QA).

    ``warn``: say so of other files in ``out`` (the first check; compare checks again once it
    holds the folder's lock, and said it twice, then of its own lock file)."""
    out = Path(out)
    fix = "choose another --out, e.g. reports/<dataset>"
    refuse_dataset_folder(out, why="a report would mix its files with the takes",
                          home_why="a report would mix its files with the datasets' folders",
                          fix=fix)
    # as the recordings folder: index.html, figures and cells/ went in among the user's model
    # files, and the report's own models into models/models/ (QA)
    if out.resolve() == models_home().resolve():
        raise StorageError("is the models folder, which holds the model files train writes; a "
                           "report would mix its files with them", path=out, fix=fix)
    for sub in ("models", "cells"):
        path = out / sub
        if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
            raise StorageError("is not a folder, and the report keeps its models and cells in "
                               "one", path=path, fix=fix)
    # a run stopped after its first figures but before metrics.json leaves its cells/: a rerun
    # finishes it (compare --help), replacing those figures
    before = _comparison(out / "metrics.json")
    earlier = before is not None or holds_cells(out)
    # a comparison over seeds keeps no model file to refuse it by: its report of another
    # dataset was replaced without a word, where a plain comparison's is refused (QA)
    folder = (before or {}).get("meta", {}).get("dataset folder")
    if dataset is not None and isinstance(folder, str) and not _same_folder(folder,
                                                                            dataset.root):
        raise StorageError(f"holds the report of comparing another dataset "
                           f"({one_line(folder)}), which this comparison would replace", path=out,
                           fix=f"{fix} (a dataset moved since: delete {out / 'metrics.json'} to "
                               "compare it here again)")
    files = ["index.html", "metrics.csv", "metrics.json", "roc.png", "training.png"]
    files += [f"{kind}-{name}.png" for name in names for kind in ("tsne", "scores")]
    if not earlier and warn:
        _warn_of_strangers(out, files)
    for name in files:
        check_replaceable(out / name, ours=lambda _: earlier, what="file of a comparison report")
    for name in names:
        # <out>/models/<name>.pt is where `train` writes when <out> is the working folder
        # (`--out .`, or an empty `--out ''`): a plainly trained model was replaced there
        model = out / "models" / f"{name}.pt"
        # only over tapcheck's own model files, and a comparison's of this dataset
        check_model_target(model, dataset=dataset, elsewhere=fix)
        if os.path.lexists(model) and not wrote_model(out, name, model):
            raise StorageError("exists, and no comparison here wrote it: the report's "
                               f"{name} model would replace a model tapcheck train wrote",
                               path=model, fix=fix)


def _same_folder(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one folder; a name no folder can have (a NUL edited into a
    report's metrics.json) names none (it was a traceback; review)."""
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _warn_of_strangers(out: Path, files: list[str]) -> None:
    """Say so when a new report goes into a folder holding other things, as ``import`` says of
    a new dataset: ``compare --out cfg`` wrote index.html, figures, models/ and cells/ among a
    user's config files without a word (QA)."""
    try:
        # a report's own lock (metrics.json.lock) is none: every compare into a new folder
        # warned of it (QA)
        ours = {*files, *(f"{name}.lock" for name in files), "models", "cells"}
        others = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")
                        and p.name not in ours)
    except OSError:  # missing, or not to be listed: writing says what is wrong
        return
    if others:
        warnings.warn(TapcheckWarning(
            f"{out}: holds {len(others)} other file(s) or folder(s) (e.g. {others[0]}); the "
            "report's files, models/ and cells/ go in beside them — to keep them apart, give a "
            "new folder instead, e.g. --out reports/<dataset>"), stacklevel=3)


def _comparison(path: Path) -> dict | None:
    """The ``metrics.json`` of a comparison (plain or grid) at ``path``, or None."""
    text = None if os.path.islink(path) else sniff(path)
    try:
        document = json.loads(text) if text is not None else None
    except ValueError:  # not JSON, or not UTF-8
        return None
    if (isinstance(document, dict) and isinstance(document.get("meta"), dict)
            and "tapcheck" in document["meta"] and isinstance(document.get("models"), list)):
        return document
    return None


def compared_models(path: Path) -> list[str]:
    """The registered models the comparison at ``path`` (its ``metrics.json``) reports on."""
    document = _comparison(path) or {"models": []}
    names = [row.get("model") for row in document["models"] if isinstance(row, dict)]
    # a name from the file becomes a file name: only registered ones, never "../x"
    return [name for name in names if isinstance(name, str) and name in MODELS]
