"""Which boards and takes of a dataset a model has heard.

A model's rates are honest only on takes it was not given: :func:`own_takes` finds a dataset's
takes the model was trained or calibrated on (by their bytes, or by path in older files) and the
boards that makes known; :func:`trained_defect_boards` and :func:`boards_trained_on_defects` read
its training classes' labels; the ``warn_*`` functions say when a manifest's labels or board
numbers disagree with what the model holds. :func:`tapcheck.evaluation.evaluate_model` uses them
to leave in-sample takes out and to count known and unseen boards apart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .datasets import Take


def known_boards_of(checkpoint: dict[str, Any]) -> list[int]:
    """Boards of a model's training classes ("board03/left" -> 3); pseudo classes are none."""
    import re

    found = (re.match(r"board(\d+)/", c) for c in checkpoint.get("classes", []))
    return sorted({int(m.group(1)) for m in found if m})


def _class_labels(checkpoint: dict[str, Any]) -> dict[int, set[str]]:
    """The labels of each board's training classes (``boardNN/side``; pseudo-anomaly classes
    name no board)."""
    import re

    labels = checkpoint.get("class_labels") or ["normal"] * len(checkpoint.get("classes", []))
    seen: dict[int, set[str]] = {}
    for name, label in zip(checkpoint.get("classes", []), labels, strict=False):
        found = re.match(r"board(\d+)/", name)
        if found:
            seen.setdefault(int(found.group(1)), set()).add(label)
    return seen


def trained_defect_boards(checkpoint: dict[str, Any]) -> list[int]:
    """Boards the model was trained on as defective: a training class ``boardNN/side``
    labelled ``defect`` and none of that board labelled ``normal`` (a board with a healthy end
    is one whatever its other end is, as :func:`defect_boards` counts)."""
    return sorted(b for b, got in _class_labels(checkpoint).items()
                  if "defect" in got and "normal" not in got)


def boards_trained_on_defects(checkpoint: dict[str, Any]) -> list[int]:
    """Boards with a training class of defect takes, a healthy end or not: their defect takes'
    recall is not a new defect's (``evaluate``'s ``known defect`` rows)."""
    return sorted(b for b, got in _class_labels(checkpoint).items() if "defect" in got)


def own_takes(checkpoint: dict[str, Any], dataset, takes: Sequence[Take],
              prints: Sequence[str | None], *,
              taps: Sequence[str] | None = None) -> tuple[list[int], np.ndarray]:
    """The boards of ``dataset`` the model was trained on, and which of ``takes`` are its own
    recordings (trained or calibrated on: their scores are in-sample).

    A board number means a board the model heard only where that board's recordings are the
    model's: board 3 of another dataset, or of a copy renumbered, is a board it never heard. A
    model file knows its recordings by their bytes (``dataset.digests``): a board is known when
    the takes at the model's training paths, or any of ``takes``, are its recordings (a copy
    under any name, re-split or renumbered). A file written before 2026-12-03 knows paths
    only: its training classes' boards are known in its own dataset — the folder it names, or
    one of the same name listing every take it trained on (the folder named from another
    working directory) — and none elsewhere. A file from before any provenance counts its
    classes' boards everywhere.

    Parameters
    ----------
    takes : sequence of Take, length n
    prints : sequence of str or None, length n
        Content digests of ``takes`` (:func:`tapcheck.enrolled.fingerprint`; None: no file).
    taps : sequence of str, length n, optional
        Their crops' digests (:func:`tapcheck.features.crop_digest`): a take is the model's
        also when its crops are (the same samples as FLAC), in files from 2026-12-04 on.

    Returns
    -------
    (list of int, np.ndarray of bool, shape (n,))
    """
    from .copies import content_digest
    from .modelfile import provenance

    source = checkpoint.get("dataset") if isinstance(checkpoint.get("dataset"), dict) else {}
    listed = provenance(checkpoint, "takes") + provenance(checkpoint, "calibration_takes")
    digests = set(provenance(checkpoint, "digests"))
    crop_digests = set(provenance(checkpoint, "crop_digests")) if taps is not None else set()
    if digests or crop_digests:
        taps = [None] * len(prints) if taps is None else taps
        own = np.array([d in digests or tap in crop_digests
                        for d, tap in zip(prints, taps, strict=True)], dtype=bool)
        by_path = {t.path: t for t in dataset.takes}
        mine = [by_path[p] for p in listed if p in by_path]
        known = {t.board for t in mine if os.path.isfile(f := dataset.path_of(t))
                 and content_digest(f) in digests}
        return sorted(known | {t.board for t, o in zip(takes, own, strict=True) if o}), own
    if not isinstance(source.get("path"), str):
        return known_boards_of(checkpoint), np.zeros(len(takes), dtype=bool)
    ours = (Path(source["path"]).resolve() == Path(dataset.root).resolve()
            or (source.get("name") == dataset.name
                and set(provenance(checkpoint, "takes")) <= {t.path for t in dataset.takes}))
    own = np.array([ours and t.path in set(listed) for t in takes], dtype=bool)
    return known_boards_of(checkpoint) if ours else [], own


def defect_boards(dataset, boards: Sequence[int]) -> list[int]:
    """Those of ``boards`` whose takes in ``dataset`` (any split) are all labelled ``defect``:
    the demo's boards 5 and 6, trained on as classes, are boards the model knows but no
    healthy board; a board with a normal take is one whatever else it has."""
    healthy = {t.board for t in dataset.takes if t.label == "normal"}
    defective = {t.board for t in dataset.takes if t.label == "defect"}
    return sorted(b for b in boards if b in defective and b not in healthy)


def warn_enrolled_defects(held: Sequence[Take], dataset, model, checkpoint: dict[str, Any],
                           *, prints: dict[str, str | None]) -> list[int]:
    """Warn of enrolled recordings the dataset's manifest labels ``defect`` (a board 8 tap
    enrolled as a new normal board): the model takes taps like them for sound boards, so
    defects that sound alike go unflagged, and no figure of the evaluation shows why."""
    import warnings

    from .enrolled import enrolment_of, those, undo_advice
    from .errors import TapcheckWarning
    from .copies import content_digest

    entries = checkpoint.get("enrolled", [])
    boards = sorted({t.board for t in held if t.label == "defect"})
    found = {}  # board: its defect takes, and the enrolments holding them
    for board in boards:
        takes = [t for t in held if t.board == board and t.label == "defect"]
        holding = set()
        for t in takes:
            # the test takes' digests are read already; a training take's is read here
            path = dataset.path_of(t)
            index = enrolment_of(entries, path, prints.get(t.path) or content_digest(path))
            if index is not None:
                holding.add(index)
        found[board] = takes, holding
    flagged = set().union(*(h for _, h in found.values()))  # each board's line takes it back
    for board, (takes, holding) in found.items():
        # the first enrolment holding one of them: --undo takes back only the last one
        index = min(holding, default=len(entries) - 1)
        warnings.warn(
            f"{dataset.root / 'manifest.csv'}: {len(takes)} take(s) of board {board}, labelled "
            f"defect, are enrolled into {model} as normal references: it takes taps like them "
            f"for sound boards — take {those(holding)} back unless the label is wrong: "
            + undo_advice(model, index=index, count=len(entries), holding=holding,
                          flagged=flagged),
            TapcheckWarning, stacklevel=3)
    return boards


def refiled_copies(checkpoint: dict[str, Any], takes: Sequence[Take],
                   prints: Sequence[str | None], taps: Sequence[str],
                   own: np.ndarray) -> list[tuple[Take, str, int]]:
    """(take, training path, its board) of each of ``takes`` that is a recording the model was
    trained or calibrated on (``own``, :func:`own_takes`) as another board's.

    Such a copy makes its board known (:func:`own_takes`: a renumbered copy of a board is that
    board), so a new board with one training take filed among its own took the known boards'
    rate silently (trial 34). The training path is found by the model file's digests, which
    follow its ``takes`` then ``calibration_takes``; a file without them names none.
    """
    from .boards import board_of_path
    from .modelfile import provenance

    paths = provenance(checkpoint, "takes") + provenance(checkpoint, "calibration_takes")
    origin: dict[str, str] = {}
    for key in ("digests", "crop_digests"):
        digests = provenance(checkpoint, key)
        if len(digests) == len(paths):
            origin.update(zip(digests, paths, strict=True))
    out = []
    for take, digest, tap, is_own in zip(takes, prints, taps, own, strict=True):
        path = (origin.get(digest) or origin.get(tap)) if is_own else None
        # the model file's paths are its dataset's, not the working folder's
        board = None if path is None else board_of_path(path, as_written=True)
        if board is not None and int(board) != take.board:
            out.append((take, path, int(board)))
    return out


def warn_relabelled_defects(checkpoint: dict[str, Any], dataset, known: Sequence[int],
                            takes: Sequence[Any]) -> None:
    """Warn of boards of this dataset the model was trained on as defective whose ``takes``
    (the test takes evaluated) the manifest labels ``normal``: counted as healthy boards the
    model knows, silently (a label swapped by hand). Takes left out (trained on, enrolled) are
    counted as nothing, and the warning said they counted (QA). The other way round, a healthy
    board labelled defect since, is a board cracked since, and not warned of."""
    import warnings

    from .errors import TapcheckWarning

    healthy = {t.board for t in takes if t.label == "normal"}
    for board in sorted(healthy & set(trained_defect_boards(checkpoint)) & set(known)):
        warnings.warn(
            f"{dataset.root / 'manifest.csv'}: board {board}'s takes are labelled normal, "
            f"but the model was trained on board {board} as defective: they count as a healthy "
            "board it knows — if the label is wrong, set it to defect", TapcheckWarning,
            stacklevel=3)


def warn_refiled_copies(checkpoint, dataset, takes, prints, taps, own) -> None:
    """One warning per board holding copies of another board's training recordings."""
    import warnings

    from .errors import TapcheckWarning

    by_board: dict[int, list[tuple[Take, str, int]]] = {}
    for found in refiled_copies(checkpoint, takes, prints, taps, own):
        by_board.setdefault(found[0].board, []).append(found)
    for board, found in sorted(by_board.items()):
        take, path, original = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        warnings.warn(
            f"{dataset.root / 'manifest.csv'}: board {board}'s test take {take.path}{more} is "
            f"a recording the model was trained or calibrated on as board {original}'s "
            f"({path}): left out, "
            f"and board {board} counted as a board the model knows — if board {board} is "
            "another board, take the copy out of the manifest", TapcheckWarning, stacklevel=3)


def trained_on(checkpoint: dict[str, Any]) -> str:
    source = checkpoint.get("dataset")
    name = source.get("path") if isinstance(source, dict) else None
    return name if isinstance(name, str) else "another dataset"


def other_dataset_of_board(checkpoint: dict[str, Any], clips: Sequence[str | os.PathLike],
                           board: int | None) -> Path | None:
    """A dataset holding some of ``clips`` that is not the one the model was trained on, when
    ``board`` is a board it was trained on as healthy; else None.

    Enrolled under a trained board's number, taps join that board's references: ``evaluate``
    counts the board known and the recalibration leaves them out with it. Board 3 of another
    dataset is most likely another board that shares a number (an enrolment from a second
    site's dataset went in as the training board 3 without a word). Clips outside any
    dataset, or a model file that names no dataset, tell nothing.

    Parameters
    ----------
    checkpoint : dict
        The model file's contents (its training classes and ``dataset`` record).
    clips : sequence of path
        The clips being enrolled.
    board : int or None
        The ``--board`` they are enrolled under.

    Returns
    -------
    Path or None
        The first such dataset's folder (as :func:`tapcheck.dataset_folders.dataset_holding`
        finds it).
    """
    from .dataset_folders import dataset_holding
    from .datasets import Dataset
    from .errors import TapcheckError
    from .model_target import same_dataset

    if board is None or int(board) not in set(known_boards_of(checkpoint)) - set(
            trained_defect_boards(checkpoint)):
        return None
    source = checkpoint.get("dataset")
    if not isinstance(source, dict) or not isinstance(source.get("path"), str):
        return None
    roots = sorted({root for c in clips
                    if (root := dataset_holding(os.path.dirname(os.path.abspath(c))))})
    for root in roots:
        try:
            if not same_dataset(checkpoint, Dataset(root)):
                return root
        except (TapcheckError, OSError):  # an unreadable manifest: nothing to tell by
            continue
    return None


def free_board(checkpoint: dict[str, Any], clips: Sequence[str | os.PathLike]) -> int:
    """A board number for ``clips`` that the model neither trained on nor holds enrolled.

    Parameters
    ----------
    checkpoint : dict
        The model file's contents (training classes, ``enrolled`` records).
    clips : sequence of path
        The clips to number.

    Returns
    -------
    int
        The board their ``boardNN`` folders name when they name one and it is free, else one
        past the largest board taken or named.
    """
    from .boards import board_of_path

    taken = set(known_boards_of(checkpoint)) | {
        int(e["board"]) for e in checkpoint.get("enrolled", []) if int(e.get("board", -1)) >= 0}
    named = {int(b) for c in clips if (b := board_of_path(c)) is not None}
    if len(named) == 1 and not named & taken:
        return named.pop()
    return max(taken | named, default=0) + 1
