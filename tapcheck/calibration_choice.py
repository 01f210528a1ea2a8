"""Which calibration a training run does, decided before any training: ``auto`` resolved by the
number of normal boards, a choice the data cannot give warned of (it fell back silently), and
settings no calibration can work with refused (a rate of 1e-300, leave-one-board-out with a
scorer that keeps no reference, too few takes for a kNN threshold).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from .config import Config
from .crossfit import (AUTO_MAX_STRETCH, AUTO_MIN_BOARDS, crossfit_folds, fold_units,
                       resolve_calibration)
from .detectors import SCORERS, representation_of
from .errors import ConfigError, DatasetError, TapcheckWarning
from .training_data import MIN_TAKES_TO_HOLD_OUT, TrainingData

#: the rarest false-alarm rate a new training fits a threshold for (train.far, board_far)
MIN_FAR = 0.0001
# a rate is a share of healthy taps flagged: above a half the threshold lies below the median
# healthy tap, and far = 0.95 (read as a confidence level) flagged every unseen board (QA)
MAX_FAR = 0.5


def with_calibration(config: Config, data: TrainingData, *, root: Path,
                      log: Callable[[str], None] | None) -> Config:
    """``config`` with ``train.calibration`` resolved (``"auto"`` by the number of normal
    boards) to what the detector will do, so the model file and the announce line say what was
    done. Refused here, before any training: a hold-out with ``calib_fraction`` 0, cross-fit
    with fewer than two normal takes, too few takes for a kNN threshold
    (:func:`_check_neighbours`). When the data cannot give what was asked (no board side with
    takes to hold out, one board to leave out) the detector falls back
    (:meth:`~tapcheck.detectors.ThresholdDetector.fit`): an explicit choice replaced, and any
    in-sample threshold, are warned about (they used to pass silently)."""
    boards = np.array([t.board for t in data.fit_takes + data.calib_takes
                       if t.label == "normal"])
    n_boards = len(np.unique(boards))
    asked = config.train.calibration
    stretch = config.train.freq_stretch
    wide = stretch > AUTO_MAX_STRETCH + 1e-9  # where auto holds out and cross-fit misleads
    method = resolve_calibration(asked, n_boards, freq_stretch=stretch)
    if method == "hold-out" and config.train.calib_fraction == 0:
        # without held-out takes the detector would score the reference against itself and
        # the model would state a rate from another calibration than the config asked for
        why = (f"fewer than {AUTO_MIN_BOARDS} normal boards" if n_boards < AUTO_MIN_BOARDS
               else f"freq_stretch {stretch:g} above {AUTO_MAX_STRETCH:g}")
        auto = f" ('auto' with {why})" if method != asked else ""
        raise ConfigError(
            f"'train.calib_fraction' is 0, so calibration 'hold-out'{auto} has no held-out "
            "takes to fit the threshold on", fix="set calib_fraction above 0 (default 0.15), "
            "or calibration = 'leave-one-board-out' (kNN scorers) or 'cross-fit', which use "
            "every take")
    if method == "cross-fit":  # raises with the fix when there are too few normal takes
        crossfit_folds(fold_units(boards), 2, seed=0)
        units = len(np.unique(fold_units(boards)))
        if config.train.crossfit_folds > units and log:  # said, not left to "cross-fit 1/4"
            per, why = (("normal training board", "a fold cannot split a board")
                        if n_boards >= 2 else ("normal take of its one board",
                                               "a fold holds one take at least"))
            log(f"cross-fit: {units} folds, one per {per} (train.crossfit_folds is "
                f"{config.train.crossfit_folds}; {why})")
    done, why = _fallback(method, config.train.scorer, n_boards=n_boards,
                          held_out=bool(data.calib_takes))
    # the model file's config says leave-one-board-out when that is what was done; in-sample
    # and leave-one-clip-out are no settings (the detector's calibration states them)
    stored = "leave-one-board-out" if done == "leave-one-board-out" else method
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   calibration=stored))
    _check_neighbours(config, data, root=root)  # an error first, not a warning and then one
    if method != asked and log:
        up_to = f", at a frequency stretch up to ±{AUTO_MAX_STRETCH * 100:.0f} %" if wide else ""
        boards = f"{n_boards} normal training board{'s' * (n_boards != 1)}"
        log(f"calibration: {done} ({boards}; auto cross-fits from {AUTO_MIN_BOARDS}{up_to}"
            f"{'; ' + why if why else ''})")
    if method == asked == "cross-fit" and wide:
        warnings.warn(
            f"{root}: cross-fitting with a ±{stretch * 100:.0f} % frequency stretch: with ±20 % "
            "it set the threshold far too low (35 % of unseen healthy taps flagged for a stated "
            "5 %, docs/new-boards.md) — train with --calibration hold-out, which held there",
            TapcheckWarning, stacklevel=3)
    if done == "in-sample":
        # the threshold is then fitted on scores of clips the network was trained on: they
        # score lower than any new tap, so the stated rate is far below the real one
        warnings.warn(
            f"{root}: {why}, so the {config.train.scorer} scorer's threshold is fitted on the "
            "clips the model was trained on (in-sample): the stated false-alarm rate does not "
            "hold, new normal taps will be flagged more often — record at least "
            f"{MIN_TAKES_TO_HOLD_OUT} normal takes per board side, or train with --calibration "
            "cross-fit", TapcheckWarning, stacklevel=3)
    elif done != method and method == asked:  # an explicit choice the data cannot give
        strict = (" (for a metric-learning network several times too strict, "
                  "docs/new-boards.md)" if done == "leave-one-board-out" else "")
        fix = (f"record at least {MIN_TAKES_TO_HOLD_OUT} normal takes per board side, or train "
               "with --calibration cross-fit" if method == "hold-out" else
               "record normal takes of more boards")
        warnings.warn(f"{root}: calibration '{method}' cannot be done: {why}; the threshold "
                      f"is {done} instead{strict} — {fix}", TapcheckWarning, stacklevel=3)
    return config


def _fallback(method: str, scorer: str, *, n_boards: int, held_out: bool) -> tuple[str, str]:
    """What the detector's fit does for ``method`` on this data, and why when it differs: a
    hold-out without held-out takes scores the reference itself (embeddings: without each take's
    board, or with one board without the take; other scorers: as it is), a leave-one-board-out
    of one board leaves out each take."""
    knn = representation_of(scorer) == "knn"
    if method == "hold-out" and not held_out:
        why = (f"no normal board side has the {MIN_TAKES_TO_HOLD_OUT} training takes a hold-out "
               "needs to hold one out")
        if not knn:
            return "in-sample", why
        return ("leave-one-board-out" if n_boards >= 2 else "leave-one-clip-out"), why
    if method == "leave-one-board-out" and n_boards < 2:
        return "leave-one-clip-out", ("the training split holds one normal board, so each take "
                                      "is scored against the board's other takes and the rate "
                                      "holds for new taps of it, not for new boards")
    return method, ""


def check_scorer_calibration(config: Config) -> None:
    """Leave-one-board-out rescores a reference without each board: a scorer without a
    reference (``prob``, ``recon``) cannot, and used to fall back silently to a hold-out, or to
    an in-sample threshold. A rate below :data:`MIN_FAR` or above :data:`MAX_FAR` is refused
    too."""
    train = config.train
    for key in ("far", "board_far"):  # before any work: 1e-300 trained, then "diverged"
        if getattr(train, key) < MIN_FAR:
            raise ConfigError(
                f"'train.{key}' {getattr(train, key):g} is below {MIN_FAR:g}, one false alarm in "
                f"{1 / MIN_FAR:,.0f}: no dataset holds the {3 / MIN_FAR:,.0f} normal clips that "
                "would check such a rate, and the tail fit's threshold runs off to infinity near "
                "1e-16; nothing was trained", fix=f"set train.{key} to {MIN_FAR:g} or more")
        if getattr(train, key) > MAX_FAR:
            raise ConfigError(
                f"'train.{key}' {getattr(train, key):g} would flag {getattr(train, key):.0%} of "
                f"healthy {'taps' if key == 'far' else 'boards'}: it is the false-alarm rate "
                "the threshold is set for, not a confidence level; nothing was trained",
                fix=f"set train.{key} to {MAX_FAR:g} or less (default "
                    f"{getattr(type(train)(), key):g})")
    if train.calibration == "leave-one-board-out" and representation_of(train.scorer) != "knn":
        knn = ", ".join(name for name in SCORERS if representation_of(name) == "knn")
        raise ConfigError(
            f"calibration 'leave-one-board-out' scores each board against a reference without "
            f"it, and the {train.scorer} scorer keeps no reference; nothing was trained",
            fix=f"use calibration 'hold-out' or 'cross-fit' with it, or a scorer that keeps "
                f"embeddings ({knn})")


def _check_neighbours(config: Config, data: TrainingData, *, root: Path) -> None:
    """A kNN threshold scored without held-out takes scores each normal take against its
    ``knn_k``-th nearest other take (of another board, when there are several): with fewer,
    that neighbour does not exist and the threshold would come out as NaN after training."""
    train = config.train
    lobo = train.calibration == "leave-one-board-out"
    if (representation_of(train.scorer) != "knn" or train.calibration == "cross-fit"
            or (data.calib_takes and not lobo)):
        return  # cross-fit refuses too few takes itself; held-out takes score against all
    takes = [t for t in data.fit_takes if t.label == "normal"] + (data.calib_takes if lobo else [])
    _, per_board = np.unique([t.board for t in takes], return_counts=True)
    others = len(takes) - (per_board.max() if len(per_board) > 1 else 1)
    if others < train.knn_k:
        # a knn_k set too high in a config is as likely as too few takes: name the largest
        # value these takes allow (each take has `others` candidate neighbours)
        lower = f", or lower train.knn_k to {others} (the most these takes allow)" \
            if others >= 1 else ""
        raise DatasetError(
            f"has {len(takes)} normal takes to calibrate on in the training split, too few to "
            f"score each against its {train.knn_k} nearest "
            f"{'takes of other boards' if len(per_board) > 1 else 'other takes'} (train.knn_k); "
            "nothing was trained", path=root / "manifest.csv",
            fix=f"record or import more normal takes (about 30 per board side){lower}")
