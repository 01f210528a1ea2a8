"""Training: from a dataset's training split to a self-describing model file.

1. The training split's takes become crops (from the feature cache) held in memory as one tensor
   (:mod:`tapcheck.training_data`). Classes are the (board, side) identities of the training split.
2. A share of each normal class's takes is held out for **calibration**: they are neither trained
   on nor used as reference, so their scores are honest scores of unseen normal clips.
3. The model trains with its objective under a warm-up + cosine learning-rate schedule
   (OneCycle), bfloat16 autocast where the CPU supports it.
4. The detector is fitted: reference = the normal training takes, threshold = a robust tail fit
   (gamma, or log-normal with ``train.threshold_fit``) of the held-out takes' scores
   (:mod:`tapcheck.calibration`: interval, board threshold, which boards the rate holds for). With
   ``train.calibration = "leave-one-board-out"`` (kNN) every normal take is the reference and is
   scored against it *without its board* instead; with ``"cross-fit"`` the threshold comes from
   networks trained without each fold of boards (:mod:`tapcheck.crossfit`, ``crossfit_folds`` more
   trainings). Defect labels never set it.
5. Everything goes into one checkpoint, written atomically only at the end.

The training loop itself is :mod:`tapcheck.fitting`. A run saves its progress after every epoch
to a partial checkpoint beside the model file (``models/<name>.pt.partial``, see
:mod:`tapcheck.resume`), so a killed run loses at most one epoch and ``tapcheck train --resume``
continues it to the same result.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .augment import PseudoAnomalyBatches
from .calibration import warn_if_thin
from .config import Config
from .crossfit import (AUTO_MAX_STRETCH, AUTO_MIN_BOARDS, crossfit_folds, crossfit_scores,
                       fold_units, resolve_calibration)
from .datasets import Dataset
from .detectors import SCORERS, KNNDetector, ThresholdDetector, representation_of
from .errors import ConfigError, DatasetError, ModelFileError, TapcheckWarning
from .featurecache import FeatureCache
from .fingerprint import fingerprint
from .fitting import fit_members
from .modelfile import check_partial, new_checkpoint
from .models import get_spec
from .models.base import TapModel, represent_clips
from .resume import progress_saver
from .runtime import bf16_inference
from .training_data import (MIN_TAKES_TO_HOLD_OUT, TrainingData, add_pseudo_anomalies,
                            prepare_data)


#: the rarest false-alarm rate a new training fits a threshold for (train.far, board_far)
MIN_FAR = 0.0001
# a rate is a share of healthy taps flagged: above a half the threshold lies below the median
# healthy tap, and far = 0.95 (read as a confidence level) flagged every unseen board (QA)
MAX_FAR = 0.5


def make_detector(config: Config, data: TrainingData) -> ThresholdDetector:
    """The configured scorer, not yet fitted."""
    train = config.train
    board = {"far": train.far, "board_taps": train.board_taps, "board_far": train.board_far,
             "board_rule": train.board_rule, "threshold_fit": train.threshold_fit}
    if issubclass(SCORERS[train.scorer], KNNDetector):  # knn, knn-ldn
        return SCORERS[train.scorer](k=train.knn_k, metric=train.knn_metric, exp=train.knn_exp,
                                     **board)
    if train.scorer == "prob":
        normal = [i for i, label in enumerate(data.class_labels) if label == "normal"]
        return SCORERS["prob"](normal_classes=normal, **board)
    return SCORERS[train.scorer](**board)


def _fit_detector(detector: ThresholdDetector, net: TapModel, data: TrainingData, *,
                  config: Config, name: str) -> None:
    """Reference and threshold from the normal training takes (see step 4 above)."""
    scorer = config.train.scorer
    # fit_takes are the real takes; pseudo-anomaly clips, appended after them, are never normal
    normal_fit = [t for t in data.fit_takes if t.label == "normal"]
    reference = represent_clips(net, data.fit_clips[data.fit_normal], scorer).numpy()
    calib = represent_clips(net, data.calib_clips, scorer).numpy() if len(
        data.calib_clips) else np.zeros((0, *reference.shape[1:]), dtype=np.float32)
    boards = np.array([t.board for t in normal_fit])
    calib_boards = np.array([t.board for t in data.calib_takes])
    # a decay column (knn-decay) varies whatever the network does: look at the embeddings
    _warn_if_collapsed(reference[:, :-1] if detector.reads_decay else reference, name=name)
    # embedding scorers can leave a board out (prob and recon have no reference to leave it from)
    if representation_of(scorer) == "knn" and config.train.calibration == "leave-one-board-out":
        detector.fit(np.concatenate([reference, calib]),
                     groups=np.concatenate([boards, calib_boards]))
    else:
        detector.fit(reference, X_calib=calib if len(calib) else None, groups=boards,
                     calib_groups=calib_boards)
    if config.train.calibration != "cross-fit":  # cross-fit replaces this calibration
        warn_if_thin(detector.calibration_)
    if getattr(detector, "decay_reads_nothing", False):
        warnings.warn(f"{name}: the knn-decay scorer found no mode that rings and dies inside "
                      "the crops of the normal takes (their decays do not vary), so it scores "
                      "as knn; see docs/new-boards.md, \"Decay\"", TapcheckWarning, stacklevel=3)


def _warn_if_collapsed(reference: np.ndarray, *, name: str) -> None:
    """Warn when every normal clip got the same representation: the scores would be constant.

    A metric-learning loss can sit at its trivial point (all embeddings equal, loss = margin);
    such a model calls every clip normal or every clip anomalous and must not pass silently.
    """
    if len(reference) > 1 and float(np.ptp(reference, axis=0).max()) < 1e-6:
        warnings.warn(f"{name}: training collapsed — every clip maps to the same embedding, so "
                      "its scores cannot tell boards apart; retrain with another --seed, a lower "
                      "train.lr, or another model", TapcheckWarning, stacklevel=3)


def train_model(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None,
                progress: bool | None = None, log: Callable[[str], None] | None = None,
                partial: str | Path | None = None, resume: bool = False) -> dict:
    """Train the configured model on ``dataset`` and return its checkpoint (not yet saved).

    Parameters
    ----------
    dataset : Dataset
    config : Config
        ``config.train.model`` names the model; ``None`` fields take the model's defaults.
    cache : FeatureCache, optional
    progress : bool, optional
        Progress bars; default: when stderr is a terminal.
    log : callable, optional
        Receives one line per epoch.
    partial : str or Path, optional
        Save progress here after every epoch (see :func:`tapcheck.modelfile.partial_path`); the
        caller removes it once the model file is written.
    resume : bool
        Continue the interrupted run saved in ``partial`` (same dataset and settings), giving
        the model an uninterrupted run would have given.

    Returns
    -------
    dict
        The checkpoint, see :mod:`tapcheck.modelfile`.
    """
    partial = None if partial is None else Path(partial)
    check_partial(partial, resume=resume)
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    spec, config, base = _prepared(dataset, config=config, cache=cache, progress=show, log=log)
    data, transform = _with_classes(base, spec=spec, root=dataset.root,
                                    per_batch=config.train.pseudo_per_batch)
    f = config.features
    X, y = data.samples()
    state, on_epoch = progress_saver(partial, resume=resume, config=config, data=data,
                                     dataset=dataset)
    last = [state]  # the latest progress saved: the cross-fit folds are saved with it

    def save_epoch(progress: dict) -> None:
        last[0] = progress
        on_epoch(progress)

    model, history = fit_members(
        lambda: spec.build(n_classes=len(data.classes), train=config.train,
                           input_shape=(f.n_bins, f.n_frames)),
        X, y, config=config, validation=data.validation_samples(), progress=progress, log=log,
        resume=state, on_epoch=None if on_epoch is None else save_epoch, transform=transform)

    detector = make_detector(config, data)
    net = model.for_inference(bf16=bf16_inference(bf16=config.train.bf16))  # as judge does
    _fit_detector(detector, net, data, config=config, name=spec.name)
    if config.train.calibration == "cross-fit":
        # each finished fold is saved with the run's progress, and a resumed run keeps them
        on_fold = None if on_epoch is None or last[0] is None else (
            lambda folds: on_epoch({**last[0], "crossfit_done": folds}))
        try:
            _cross_fit(detector, base, config=config, spec=spec, root=dataset.root, log=log,
                       progress=progress, done=(state or {}).get("crossfit_done"),
                       on_fold=on_fold)
        except ModelFileError as e:  # a kept fold that does not fit: name the file (review)
            if e.path is not None or partial is None:
                raise
            raise ModelFileError(e.problem, path=partial, fix=e.fix) from None
    resumed = [] if not state else state["history"] + [  # epochs an interrupted run had done
        h for member in state.get("members_done", []) for h in member["history"]]
    seconds = time.perf_counter() - started + sum(h["seconds"] for h in resumed)
    return new_checkpoint(
        name=spec.name, model_args=model.model_args, config=config.to_dict(),
        classes=data.classes, class_labels=data.class_labels,
        state_dict=model.state_dict(), detector=detector.get_state(), history=history,
        # checked at every load: weights changed after training are refused
        fingerprint=fingerprint(model, input_shape=(f.n_bins, f.n_frames),
                                representation=representation_of(config.train.scorer)),
        dataset=_provenance(dataset, data),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        train_seconds=seconds)


def check_trainable(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None
                    ) -> None:
    """Raise what :func:`train_model` would refuse before its first epoch, training nothing.

    ``compare`` checks every cell of a grid so: a fold too thin for its kNN threshold was
    refused after the cells before it had trained (QA). Warnings are left to the training.

    Raises
    ------
    ConfigError, DatasetError
        As :func:`train_model` does.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TapcheckWarning)
        _prepared(dataset, config=config, cache=cache, progress=False, log=None)


def _prepared(dataset: Dataset, *, config: Config, cache: FeatureCache | None, progress: bool,
              log: Callable[[str], None] | None) -> tuple[Any, Config, TrainingData]:
    """The model's spec, the config resolved for it, and the training data: every check that
    needs no training done (a refusal before any epoch, not after)."""
    spec = get_spec(config.train.model)
    config = dataclasses.replace(config, train=spec.resolve(config.train))
    if SCORERS[config.train.scorer].reads_decay:  # refuse a crop too small now, not after training
        from .decay import crop_decay

        crop_decay(np.zeros((config.features.n_bins, config.features.n_frames)))
    _check_scorer_calibration(config)
    base = prepare_data(dataset, config=config, cache=cache, progress=progress)
    return spec, _with_calibration(config, base, root=dataset.root, log=log), base


def _cross_fit(detector: ThresholdDetector, base: TrainingData, *, config: Config, spec,
               root: Path, log, progress, done: list[dict] | None = None,
               on_fold: Callable[[list[dict]], None] | None = None) -> None:
    """Replace the detector's calibration by out-of-fold scores (:mod:`tapcheck.crossfit`);
    ``done``/``on_fold``: the folds an interrupted run finished, and the saver of each fold."""
    scores, boards = crossfit_scores(
        base, config=config, spec=spec, make_detector=make_detector, log=log, progress=progress,
        done=done, on_fold=on_fold,
        with_classes=lambda d: _with_classes(d, spec=spec, root=root,
                                             per_batch=config.train.pseudo_per_batch))
    detector.calibration_scores_, detector.calibration_groups_ = scores, boards
    detector.recalibrate(method="cross-fit")
    warn_if_thin(detector.calibration_)


def _with_calibration(config: Config, data: TrainingData, *, root: Path,
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


def _check_scorer_calibration(config: Config) -> None:
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


def _with_classes(data: TrainingData, *, spec, root: Path, per_batch: bool
                  ) -> tuple[TrainingData, PseudoAnomalyBatches | None]:
    """One class only, for a model that needs several: add pseudo-anomaly classes (in full, or
    drawn per batch by the returned transform), and say so."""
    if not (spec.family.needs_classes and len(data.classes) == 1):
        return data, None
    data, transform = add_pseudo_anomalies(data, per_batch=per_batch)
    # not a problem, but the user should know what the model was taught
    warnings.warn(f"{root}: the training split holds one class ({data.classes[0]}); "
                  f"{spec.name} learns it against {len(data.classes) - 1} pseudo-anomaly "
                  "classes made from its crops (modes shifted, a notch, extra damping) — "
                  "record more boards or sides for a stronger model", TapcheckWarning,
                  stacklevel=3)
    return data, transform


def _provenance(dataset: Dataset, data: TrainingData) -> dict:
    """Where the model's takes came from, for the model file (explanations find them again),
    and their content digests when the files are here (a grid cell on a worker has only crops):
    ``evaluate`` knows the model's own recordings by them under any name or split (the
    feature cache hashed the same bytes a moment ago; 0.1 s for the demo's 252 takes)."""
    from .copies import content_digest

    takes = data.fit_takes + data.calib_takes
    files = [dataset.path_of(t) for t in takes]
    here = all(os.path.isfile(f) for f in files)
    # `--dataset .` has no name of its own ("."): its folder's, by which the recordings folder
    # holds it (explain and train look for the model's dataset there)
    named = dataset.name not in ("", ".", "..")
    return {"name": dataset.name if named else Path(os.path.abspath(dataset.root)).name,
            "path": str(dataset.root),
            "fit_clips": len(data.fit_takes), "calibration_clips": len(data.calib_takes),
            "takes": [t.path for t in data.fit_takes],
            "calibration_takes": [t.path for t in data.calib_takes],
            # the same samples in another format (a FLAC of a training WAV) have other bytes
            # but the same crops: enroll refused the WAV and took the FLAC (trial 34)
            "crop_digests": data.crop_digests,
            # judge warns of a tap standing far less above the room's noise (a louder room)
            **({"strike_rise_db": data.strike_rise_db} if data.strike_rise_db is not None
               else {}),
            **({"digests": [content_digest(f) for f in files]} if here else {})}
