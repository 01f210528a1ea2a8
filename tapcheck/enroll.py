"""Enrolment: known-good taps join a model's normal references, without retraining.

Metric learning's promise is that a new class needs only reference embeddings. ``enroll`` embeds
the given clips with the model's own network and feature settings, appends them to the kNN
reference as one board (group), and recalibrates the threshold leave-one-board-out, which takes
seconds. The model file is rewritten atomically and keeps a list of enrolments, each with the
threshold state before it, so ``--undo`` gives back the previous model's every value exactly
(enrolments made by tapcheck before 2026-12-02 to within a rounding step of the references).
Every check is made before anything is written: on any error the model file is unchanged. A
recording enrolled twice would count twice in the calibration (a stricter threshold from no new
tap), so a clip whose bytes or crops are already enrolled, or repeated in one call, is refused
(crops: the same tap saved as WAV and as FLAC).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import Config
from .detectors import KNNDetector
from .enroll_checks import (refuse_anomalous_board, refuse_defect_board, refuse_defective,
                            refuse_labelled_defects, refuse_near_copies, refuse_own,
                            refuse_repeats)
from .enrolled import fingerprint
from .errors import ModelFileError, ParameterError, TapcheckError
from .features import crop_digest, load_clip, strike_crops
from .strikes import warn_of_taps
from .judge import Judge, check_same_features, unused_train_settings
from .known_boards import free_board, other_dataset_of_board
from .locks import exclusive, lock_path
from .manifest import MAX_BOARD
from .interrupts import file_identity
from .model_rewrite import check_rewritable, write_if_loadable
from .modelfile import load_model
from .paths import model_command
from .recalibration import add_references, reference_groups


def _embed(judge: Judge, clips: Sequence[str | os.PathLike]) -> tuple[np.ndarray, list[str]]:
    """The clips' embeddings (n, D) and their crops' digests (:func:`crop_digest`)."""
    from .models.base import represent_clips

    crops, problems = [], []
    for p in clips:  # every clip's problem, not the first: one rerun per bad clip (QA)
        try:
            y = load_clip(p, audio=judge.config.audio, features=judge.config.features)
            crops.append(strike_crops(y, sr=judge.config.audio.sr,
                                      features=judge.config.features, path=p))
        except TapcheckError as e:
            problems.append(e)
            continue
        warn_of_taps(y, sr=judge.config.audio.sr, features=judge.config.features, path=p,
                     done="enrolled")  # its loudest alone is enrolled
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ParameterError(f"{len(problems)} of {len(clips)} clips cannot be enrolled (listed "
                             "above); nothing was enrolled", details=[str(e) for e in problems],
                             fix="fix those clips or leave them out")
    return (represent_clips(judge.net, np.stack(crops), judge.model.scorer).numpy(),
            [crop_digest(c) for c in crops])


#: enroll's refusal of an enrolment whose model no command could load ({problem}: why)
REFUSED_UNLOADABLE = ("cannot take these clips: enrolled, the model would be one that {problem}; "
                      "nothing enrolled, the file is unchanged")


def enroll(model: str | os.PathLike, clips: Sequence[str | os.PathLike], *,
           board: int | None = None, force: bool = False, config: Config | None = None
           ) -> dict[str, Any]:
    """Add known-good clips to a kNN model's references and recalibrate; rewrite the file.

    Parameters
    ----------
    model : str or PathLike
        A model file with a ``knn`` scorer.
    clips : sequence of paths, length n >= 1
        Audio files of normal taps, all of one board (or batch).
    board : int, optional
        Their board number (a group of its own for leave-one-board-out); default: a new group.
    force : bool
        Enrol clips even if the model scores them as clearly defective, or judges their board
        ANOMALOUS by its board rule, or their dataset labels them defect, or under a ``board``
        the model was trained on as defective (:func:`tapcheck.known_boards.trained_defect_boards`).
    config : Config, optional
        Settings the caller intends; other feature settings than the model's are an error.

    Returns
    -------
    dict
        ``clips``, ``board``, ``scores`` (before enrolment), ``over_threshold`` ((path, score)
        of clips the model judged ANOMALOUS but below the refusal limit, or forced: enrolled,
        to be warned of), ``other_board_folders`` ((path, board) of clips whose ``boardNN``
        folder names another board than ``board``), ``other_dataset`` (a dataset holding
        clips enrolled under a board the model was trained on, not the model's own:
        :func:`tapcheck.known_boards.other_dataset_of_board`, or None), ``free_board`` (a
        number to enrol them under instead, when there is such a dataset, else None),
        ``folder_boards`` (without ``board``: the boards the clips' ``boardNN`` folders name,
        not taken as their number),
        ``threshold_before``, ``threshold`` (after), ``references`` (after), ``seconds``,
        ``unused_settings`` (warnings for ``config``'s ``[train]`` settings, which enrolment
        does not use: :func:`tapcheck.judge.unused_train_settings`).

    Raises
    ------
    ModelFileError, AudioError, ParameterError
        Missing or foreign model file, a scorer without references, clips that cannot be
        read or computed with the model's settings, an empty list, clearly defective clips or
        a board the model judges ANOMALOUS, takes their dataset labels defect, a
        recording given twice or already enrolled, a ``board`` the model was trained on as
        defective.
    """
    started = time.perf_counter()
    path = Path(model)
    if not clips:
        raise ParameterError("no clips to enrol; name the WAV files of known-good taps, e.g. "
                             f"`{model_command(path, 'enroll', '--board 21 board21/*/*.wav')}`")
    check_rewritable(path)
    # one writer of a model file at a time: a second enroll (or a train to the same file) would
    # otherwise rewrite it from the same old copy and lose the first one's clips
    with exclusive(lock_path(path), what=path, error=ModelFileError, remove=True):
        seen = file_identity(path)
        loaded = _load_knn(path, config=config)
        # [train] far = 0.01 was silently ignored: the recalibration keeps the model's rate
        unused = unused_train_settings(loaded, config) if config is not None else []
        if board is not None and not force:  # before any clip is read: nothing to weigh
            refuse_defect_board(loaded.checkpoint, int(board), clips, model=path)
        detector = loaded.detector
        emb, taps = _embed(Judge(loaded), clips)  # every clip read and checked as audio first
        prints = [fingerprint(c) for c in clips]
        refuse_repeats(clips, prints, taps, list(loaded.checkpoint.get("enrolled", [])),
                        model=path)
        refuse_own(clips, prints, taps, loaded.checkpoint)  # its defect takes said as such
        refuse_near_copies(loaded.detector, emb, clips, list(loaded.checkpoint.get(
            "enrolled", [])), model=path)  # the same taps resampled: other bytes and crops
        refuse_labelled_defects(clips, force=force)
        scores = detector.anomaly_score(emb)
        before = detector.threshold_
        refuse_defective(detector, scores, clips, force=force)
        refuse_anomalous_board(detector, scores, clips, board=board, force=force)
        groups = reference_groups(detector)
        # taps of no board named: a group of their own beyond every board number (max + 1000
        # was shared by a later --board of that number, and the two boards weighed as one)
        group = int(board) if board is not None else int(max(groups.max(), MAX_BOARD)) + 1
        # the state before, without its largest part: undo takes the reference's first rows
        # back (in its place: the restored file holds the same keys in the same order)
        previous = {k: None if k == "reference" else v for k, v in detector.get_state().items()}
        first_row = len(detector.reference_)
        add_references(detector, emb, group=group)
        checkpoint = dict(loaded.checkpoint)
        checkpoint["detector"] = detector.get_state()
        checkpoint["enrolled"] = list(checkpoint.get("enrolled", [])) + [{
            # absolute: `enroll --list` showed `tap one.wav`, relative to wherever enroll ran
            "clips": [os.path.abspath(c) for c in clips], "digests": prints, "crop_digests": taps,
            "board": -1 if board is None else int(board),
            "group": group, "first_row": first_row, "rows": len(emb), "forced": bool(force),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "previous_detector": previous}]
        # a threshold of nan was written (references all in one board group, hand-edited),
        # and no command could load the file, --undo included
        write_if_loadable(path, checkpoint, seen, refused=REFUSED_UNLOADABLE)
    from .boards import board_of_path, other_board_folders

    over = [(os.fspath(c), float(x)) for c, x in zip(clips, scores, strict=True) if x > before]
    elsewhere = [] if board is None else other_board_folders(clips, str(board))
    # without --board the number is never read from the path (a folder name is no proof of
    # which board was struck), but a user who kept boardNN/ folders likely meant it: say so
    folders = [] if board is not None else sorted(
        {int(b) for c in clips if (b := board_of_path(c)) is not None})
    other = other_dataset_of_board(checkpoint, clips, board)
    return {"clips": len(emb), "board": board, "scores": [float(s) for s in scores],
            "unused_settings": unused,
            "other_dataset": other, "free_board": free_board(checkpoint, clips) if other else None,
            "over_threshold": over, "other_board_folders": elsewhere, "folder_boards": folders,
            "threshold_before": before, "threshold": detector.threshold_,
            "references": len(detector.reference_), "calibration": detector.calibration_,
            "seconds": time.perf_counter() - started}


def _load_knn(path: Path, *, config: Config | None):
    """The model file, refused unless it scores by references (kNN) and matches ``config``."""
    loaded = load_model(path)
    if config is not None:
        check_same_features(loaded, config)
    if not isinstance(loaded.detector, KNNDetector):  # knn, knn-decay, knn-ldn: references
        raise ModelFileError(f"scores with '{loaded.scorer}', which has no reference clips to "
                             "enrol into", path=path,
                             fix="train a model with --scorer knn (or knn-decay, knn-ldn)")
    return loaded


def undo_enrollment(model: str | os.PathLike) -> dict[str, Any]:
    """Remove the last enrolment: references and threshold as they were before it.

    Returns
    -------
    dict
        The removed enrolment's ``clips`` (paths), ``threshold`` (restored), ``references``.
    """
    path = Path(model)
    check_rewritable(path)
    with exclusive(lock_path(path), what=path, error=ModelFileError, remove=True):
        return _undo_last(path)


def _undo_last(path: Path) -> dict[str, Any]:
    from .modelfile import read_checkpoint

    seen = file_identity(path)
    loaded = load_model(path)  # the same checks as any use of the file
    checkpoint = dict(read_checkpoint(path))
    enrolled = list(checkpoint.get("enrolled", []))
    if not enrolled and not isinstance(loaded.detector, KNNDetector):
        _load_knn(path, config=None)  # its one line: a scorer without references takes none
    if not enrolled:
        raise ModelFileError("has no enrolment to undo", path=path,
                             fix="enrol clips first with "
                                 f"`{model_command(path, 'enroll', 'CLIPS')}`")
    last = enrolled.pop()  # load_model checked the list (modelcheck.check_enrolled)
    state = dict(last["previous_detector"])
    state["reference"] = checkpoint["detector"]["reference"][:last["first_row"]].clone()
    checkpoint["detector"], checkpoint["enrolled"] = state, enrolled
    if not enrolled:  # a file that was never enrolled into has no list
        checkpoint.pop("enrolled")
    # a state edited by hand is refused, the file kept as is
    write_if_loadable(path, checkpoint, seen, refused=(
        "has a damaged enrolment record: undoing it would leave a model that {problem}; the "
        "file is unchanged"))
    return {"clips": list(last["clips"]), "threshold": -float(state["offset"]),
            "references": int(state["reference"].shape[0])}
