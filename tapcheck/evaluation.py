"""How a model did on a dataset's test split: one evaluation for every command that reports it.

:func:`evaluate_scores` turns the anomaly scores of test takes into what ``demo``, ``compare``
and ``evaluate`` report: a row per board (takes, mean score, how many flagged), AUC with a
bootstrap interval, pAUC, F1 and false alarms at the model's threshold, and the study's own
board check (:func:`tapcheck.board_figures.study_board_check`), written here once.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from .board_figures import board_rows, board_verdicts, ratio, row_name, study_board_check
from .datasets import Take
from .errors import ModelFileError
from .manifest import MANIFEST
from .falsealarms import MIN_BOARDS, false_alarm_rates
from .known_boards import (boards_trained_on_defects, defect_boards, own_takes, trained_on,
                           warn_enrolled_defects, warn_refiled_copies,
                           warn_relabelled_defects)
from .metrics import auc, best_f1_threshold, bootstrap_ci, f1_at, pauc, tpr_at_fpr


def evaluate_scores(takes: Sequence[Take], scores: np.ndarray, *, threshold: float,
                    n_boot: int = 1000, seed: int = 0, known_boards: Sequence[int] = (),
                    known_defect_boards: Sequence[int] | None = None,
                    stated_far: float | None = None, board_threshold: float | None = None,
                    board_taps: int = 3, board_rule: str | None = None) -> dict[str, Any]:
    """Every figure tapcheck reports for scored test takes.

    Parameters
    ----------
    takes : sequence of Take, length n
        The judged takes; ``label == "defect"`` are the positives.
    scores : np.ndarray, shape (n,)
    threshold : float
        The model's threshold (learned from normal clips only).
    n_boot, seed : bootstrap of the AUC's and pAUC's 95 % intervals (over clips, and over
        boards), and of the false-alarm rates' intervals over boards (:func:`rate_interval`).
    known_boards : sequence of int
        Boards the model knows (its training split, enrolled boards): their normal takes count
        as *known*, other normal boards as *unseen*; a defective board it knows is a row's
        ``known defect`` (a board it was trained on as a class: its recall is not a new
        defect's), one it does not, ``defect``.
    known_defect_boards : sequence of int, optional
        Those of ``known_boards`` whose defect takes the model was trained on
        (:func:`boards_trained_on_defects`). A known board outside them is a healthy board the
        model knows, and its defect row (cracked since) says ``known``, as its normal row does.
        Default: every known board with a defect row.
    stated_far : float, optional
        The false-alarm rate per tap the model states, reported beside the observed ones.
    board_threshold : float, optional
        The ``median`` rule's threshold for the median of ``board_taps`` taps (the
        calibration's ``board_fit``; default: ``threshold``).
    board_taps : int
        Taps per board verdict (:func:`tapcheck.board_figures.board_verdicts`).
    board_rule : str, optional
        The rule the model judges boards by, named in ``board_verdicts["rule"]``.

    :func:`model_options` gives the last four from a model's calibration.

    Returns
    -------
    dict
        ``auc``, ``auc_ci_low``, ``auc_ci_high`` (over clips), ``auc_boards_ci_low``,
        ``auc_boards_ci_high`` (over boards, :func:`tapcheck.metrics.bootstrap_ci`; None with
        fewer than :data:`~tapcheck.falsealarms.MIN_BOARDS` boards of a label), ``pauc`` with
        the same four, ``ci_boards`` ({"normal": boards, "defect": boards}: what the interval
        over boards rests on), ``tpr_at_5fpr``, ``threshold``,
        ``f1``, ``false_alarms`` (share of normal takes flagged), ``best_f1``,
        ``best_f1_threshold``, ``board8_over_board7``, ``board_means`` ({"board": mean}; a
        board with takes of both labels as "11 normal" and "11 defect") and ``boards``
        (:func:`tapcheck.board_figures.board_rows`); and the rates of :func:`false_alarm_rates`,
        ``recall_per_board`` (a board's share of its defect takes flagged),
        ``board_verdicts`` (:func:`tapcheck.board_figures.board_verdicts`) and
        ``false_alarms_known_vs_stated``, ``false_alarms_unseen_vs_stated``
        (:func:`tapcheck.falsealarms.against_stated`).
    """
    scores = np.asarray(scores, dtype=float)
    unusable = np.flatnonzero(~np.isfinite(scores))
    if len(unusable):  # sklearn's pAUC raised "Input contains NaN"; a NaN counted as NORMAL
        raise ModelFileError(
            f"the model gives no usable score (NaN or infinite) for {len(unusable)} of "
            f"{len(scores)} test take(s), e.g. {takes[int(unusable[0])].path}",
            fix="check those clips; if every clip gets this, retrain the model")
    labels = np.array([t.label == "defect" for t in takes], dtype=bool)
    lo, hi = bootstrap_ci(labels, scores, n_boot=n_boot, seed=seed)
    plo, phi = bootstrap_ci(labels, scores, metric=pauc, n_boot=n_boot, seed=seed)
    # a board's takes score alike, so the interval over clips is narrower than the spread a
    # new set of boards shows; over boards it is that spread — from MIN_BOARDS boards of each
    # label, as the rates' verdicts: simulated (7 healthy boards of 12 clips, board effects),
    # it held the true AUC 68 % of the time with 2 defective boards, 78 % with 3, 86 % with 5
    boards = np.array([t.board for t in takes])
    enough = min(len(set(boards[labels].tolist())),
                 len(set(boards[~labels].tolist()))) >= MIN_BOARDS
    over_boards = {}
    for name, metric in (("auc", auc), ("pauc", pauc)):
        bounds = bootstrap_ci(labels, scores, metric=metric, groups=boards, n_boot=n_boot,
                              seed=seed) if enough else (float("nan"),) * 2  # null in JSON
        over_boards.update({f"{name}_boards_ci_low": bounds[0],
                            f"{name}_boards_ci_high": bounds[1]})
    # F1 needs both labels, as the AUC does: without defect takes it was 0.0 and its best
    # threshold a number, without normal ones a trivial 0.99
    both = bool(labels.any() and (~labels).any())
    best_threshold, best_f1 = best_f1_threshold(labels, scores) if both else (None, None)
    rows = board_rows(takes, scores, threshold=threshold)
    # the study's check compares the sawn board struck near (8) and far (7) from the cut: on
    # another set boards 7 and 8 may be healthy ones (the plant set's), and are no such pair
    means = {r["board"]: r["mean score"] for r in rows if r["label"] == "defect"}
    known_set = set(known_boards)
    known_defect = known_set if known_defect_boards is None else set(known_defect_boards)
    for r in rows:
        known = r["board"] in known_set
        if r["label"] == "defect":  # "known" alone read as a known healthy board
            r["board is"] = ("known defect" if r["board"] in known_defect else "known") \
                if known else "defect"
        else:
            r["board is"] = "known" if known else "unseen"
    normal = ~labels
    return {
        "auc": auc(labels, scores), "auc_ci_low": lo, "auc_ci_high": hi,
        "pauc": pauc(labels, scores), "tpr_at_5fpr": tpr_at_fpr(labels, scores, fpr=0.05),
        "threshold": float(threshold),
        "f1": f1_at(labels, scores, threshold=threshold) if both else None,
        "false_alarms": float((scores[normal] > threshold).mean()) if normal.any() else None,
        "best_f1": best_f1, "best_f1_threshold": best_threshold,
        "board8_over_board7": study_board_check(means)[0],
        "board_means": {row_name(r): r["mean score"] for r in rows},
        "boards": rows, "pauc_ci_low": plo, "pauc_ci_high": phi, "stated_far": stated_far,
        **over_boards,
        "ci_boards": {"normal": len(set(boards[~labels].tolist())),
                      "defect": len(set(boards[labels].tolist()))},
        **false_alarm_rates(takes, scores, threshold=threshold, known_boards=known_boards,
                            n_boot=n_boot, seed=seed, stated_far=stated_far),
        "recall_per_board": {str(r["board"]): ratio(r["flagged"]) for r in rows
                             if r["label"] == "defect"},
        "board_verdicts": {**board_verdicts(
            takes, scores, taps=board_taps, threshold=threshold,
            board_threshold=threshold if board_threshold is None else board_threshold,
            n_boot=n_boot, seed=seed), "rule": board_rule},
    }


def model_options(calibration: dict[str, Any]) -> dict[str, Any]:
    """:func:`evaluate_scores`'s ``stated_far``, ``board_threshold``, ``board_taps`` and
    ``board_rule`` from a detector's ``calibration_``."""
    from .calibration import median_fit

    return {"stated_far": calibration["far"], "board_threshold": median_fit(calibration),
            "board_taps": max(int(calibration["board_taps"]), 1),
            "board_rule": calibration.get("board_rule", "median")}


def evaluate_model(model, dataset, *, cache=None, n_boot: int = 1000,
                   progress: bool = False) -> dict[str, Any]:
    """Judge a dataset's test split with an existing model file: :func:`evaluate_scores` and
    what the model states about its threshold.

    Parameters
    ----------
    model : str, PathLike or LoadedModel
    dataset : Dataset
    cache : FeatureCache, optional
        Default: one with the model's own feature settings.
    n_boot : int
        Bootstrap resamples for the AUC/pAUC and false-alarm-rate intervals.

    Returns
    -------
    dict
        :func:`evaluate_scores` plus ``model``, ``dataset``, ``scorer``, ``calibration`` (the
        model's statement, see :mod:`tapcheck.calibration`), ``scores`` (per test take judged,
        manifest order) and ``paths`` (those takes, as the manifest names them),
        ``enrolled_left_out`` (test takes enrolled into the model: its references now, so left
        out; the boards of every take of ``dataset`` enrolled — by its
        bytes, :func:`tapcheck.enrolled.enrolled_takes` — count as known, and no board by the
        number ``--board`` gave alone), ``training_left_out`` (test takes the model
        was trained or calibrated on, left out), ``copies_left_out`` (test takes that are a
        reference's tap resampled or requantised, left out:
        :func:`tapcheck.copies.left_out_copies`), ``known_boards`` (the boards of ``dataset``
        counted as known), ``known_defect_boards`` (those of them the manifest labels
        ``defect`` and never ``normal``: the model heard them, but they have no healthy taps to
        count as a known board's), ``enrolled_defect_boards`` (boards whose takes the manifest
        labels ``defect`` and the model holds enrolled as normal references; each warned of)
        and ``trained_on`` (the model's training
        dataset when no board of ``dataset`` holds its recordings (:func:`own_takes`): then no
        board counts as known by its number, else None).
    """
    from .copies import left_out_copies, refuse_copies, take_digests
    from .enrolled import enrolled_mask, enrolled_takes
    from .errors import DatasetError
    from .featurecache import FeatureCache
    from .features import crop_digest
    from .judge import Judge
    from .misfiled import refuse_misfiled
    from .modelfile import enrolled_digests
    from .training_data import dataset_crops

    judge = Judge(model)
    test = dataset.select(split="test")
    if not test:
        raise DatasetError("has no takes in the test split: nothing to evaluate",
                           path=dataset.root / "manifest.csv",
                           fix="record or import new takes of each board into it with --split test "
                               "(tapcheck record --split test, or tapcheck import --split test); "
                               "takes the model was trained on tell nothing of new ones")
    # per-board rates group the takes as their rows say, judge --per-board as their folders do
    refuse_misfiled(test, every=dataset.takes, manifest=dataset.root / "manifest.csv",
                    split="test")
    checkpoint = judge.model.checkpoint
    files = [dataset.path_of(t) for t in test]
    # read once: for copies among the test takes and for the model's own or enrolled ones
    prints = take_digests(dataset, test)
    refuse_copies(dataset, test, split="test", digests=prints)  # would count twice in a rate
    enrolled = enrolled_mask(checkpoint, files, prints=prints)
    # a board of this dataset some of whose recordings were enrolled (with or without --board,
    # from any split) is in the reference; a --board number alone makes no board known here
    read = {t.path: p for t, p in zip(test, prints, strict=True)}
    held = enrolled_takes(checkpoint, dataset, prints=read)
    defective = warn_enrolled_defects(held, dataset, judge.model.path, checkpoint, prints=read)
    # a take the model trained or calibrated on, marked test since (a manifest edited by
    # hand, a copy re-split): its score is in-sample, near 0 or inside the threshold's own fit
    config = judge.model.config
    cache = cache or FeatureCache(audio=config.audio, features=config.features)
    crops = dataset_crops(dataset, test, cache=cache, progress=progress, split="test")
    # the same samples in another format (a FLAC of a training or enrolled WAV) have other
    # bytes but the same crops: they counted as an unseen board's takes (trial 34)
    taps = [crop_digest(c) for c in crops]
    # and a FLAC of a test take among the test takes counted twice, which judge refuses
    refuse_copies(dataset, test, split="test", digests=taps, same="samples")
    by_crops = np.isin(taps, list(enrolled_digests(checkpoint, "crop_digests")))
    enrolled |= by_crops
    known, trained = own_takes(checkpoint, dataset, test, prints, taps=taps)
    known = sorted(set(known) | {t.board for t, m in zip(test, by_crops, strict=True) if m})
    warn_refiled_copies(checkpoint, dataset, test, prints, taps, trained)
    keep = ~(enrolled | trained)
    test = [t for t, k in zip(test, keep, strict=True) if k]
    rows = judge.represent(crops[keep]) if keep.any() else np.zeros((0, 0))
    # the same taps resampled or requantised: other bytes, other crops (QA: a 48 kHz copy of a
    # test take, enrolled, and the take scored against it)
    copied = left_out_copies(judge.model.detector, rows, test, manifest=dataset.root / MANIFEST)
    test, rows = [t for t, c in zip(test, copied, strict=True) if not c], rows[~copied]
    warn_relabelled_defects(checkpoint, dataset, known, test)
    if not test:
        copies = " or copies of those (resampled or requantised)" if copied.any() else ""
        raise DatasetError("has only test takes the model was trained on or given (enrolled)"
                           f"{copies}: nothing left to evaluate",
                           path=dataset.root / "manifest.csv",
                           fix="evaluate on takes the model has not been given")
    scores = judge.model.detector.anomaly_score(rows)
    quiet = _short_of_training_rise(judge, dataset, test)
    info = judge.model.detector.calibration_
    known_boards = sorted(set(known) | {t.board for t in held})
    known_defect = defect_boards(dataset, known_boards)
    # a row's "known defect" is a board whose defect takes the model was trained on, as demo
    # and compare say it; known_defect (no healthy take in this dataset) is what the rates miss
    result = evaluate_scores(test, scores, threshold=judge.threshold, n_boot=n_boot,
                             known_boards=known_boards,
                             known_defect_boards=boards_trained_on_defects(checkpoint),
                             **model_options(info))
    return json_safe({"model": str(judge.model.path), "dataset": str(dataset.root),
                      "scorer": judge.model.scorer, "calibration": info, **result,
                      "scores": [float(x) for x in scores],
                      "paths": [t.path for t in test],
                      "enrolled_left_out": int(enrolled.sum()),
                      "copies_left_out": int(copied.sum()),
                      "training_left_out": int(trained.sum()), "known_boards": known_boards,
                      "known_defect_boards": known_defect,
                      "enrolled_defect_boards": defective,
                      "trained_on": None if known else trained_on(checkpoint),
                      "short_of_training_rise": quiet})


def _short_of_training_rise(judge, dataset, test) -> list[str] | None:
    """The test takes whose strike stands more than ``RISE_MARGIN_DB`` less above the room's
    noise than the model's training takes (judge warns of each; healthy ones are flagged
    more often): a test split recorded in a louder room measures that room, not the model.
    None for a model file that states no training rise."""
    from .features import RISE_MARGIN_DB, clip_rise_db, load_clip

    ref = judge.training_rise_db
    if ref is None:
        return None
    short = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each take's warnings were said as its crops were made
        for t in test:
            y = load_clip(dataset.path_of(t), audio=judge.config.audio,
                          features=judge.config.features)
            if ref - clip_rise_db(y, features=judge.config.features) > RISE_MARGIN_DB:
                short.append(t.path)
    return short


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float as None, in nested dicts and lists: a figure
    that cannot be computed (an AUC without defective takes) is ``null`` in JSON, which every
    parser reads; ``json.dumps`` would write a bare ``NaN``, which strict parsers refuse.
    NumPy scalars become Python ones first."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
