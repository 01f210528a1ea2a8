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
from .calibration_choice import check_scorer_calibration, with_calibration
from .config import Config
from .crossfit import (crossfit_scores)
from .datasets import Dataset
from .detectors import SCORERS, KNNDetector, ThresholdDetector, representation_of
from .errors import ModelFileError, TapcheckWarning
from .featurecache import FeatureCache
from .fingerprint import fingerprint
from .fitting import fit_members
from .modelfile import new_checkpoint
from .models import get_spec
from .models.base import TapModel, represent_clips
from .resume import check_partial, progress_saver
from .runtime import bf16_inference
from .training_data import (TrainingData, add_pseudo_anomalies,
                            prepare_data)



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


#: a training accuracy under this many times chance (1 / classes) at its best epoch: the network
#: learned little of the boards. One epoch of arcface-lite on the plant set ended at 3.6 %, about
#: chance, and was saved with a threshold "at 5% false alarms" without a word; evaluate then gave
#: AUC 0.556 (QA). Trained as the docs say, the same model passes 15 % by its fourth epoch.
UNLEARNED_CHANCES = 2.0


def _warn_if_unlearned(history: list[dict], *, n_classes: int, name: str) -> None:
    """Warn when a network's training accuracy never rose well above chance (models that
    classify the training classes; an autoencoder's history has no accuracy). Each member of
    an ensemble on its own: one good member hid two at chance (review)."""
    members: dict[int, list[float]] = {}
    for h in history:
        if "accuracy" in h:
            members.setdefault(int(h.get("member", 0)), []).append(float(h["accuracy"]))
    if n_classes < 2:
        return
    chance = 1.0 / n_classes
    # twice chance is all of it for 2 classes: halfway to 100 % there (95 % of 2 warned; review)
    cutoff = min(UNLEARNED_CHANCES * chance, (1.0 + chance) / 2)
    # "under twice chance for 3 classes (33.3%)" read as if 33.3 % were twice chance (QA): the
    # bar, then what chance is
    bar = f"{cutoff:.1%}, " + ("twice chance" if cutoff == UNLEARNED_CHANCES * chance else
                               "halfway from chance to 100%")
    bar += f" (chance is {chance:.1%} for {n_classes} classes)"
    for member, accuracies in members.items():
        if max(accuracies) < cutoff:
            who = name if len(members) == 1 else f"{name} (member {member + 1} of {len(members)})"
            warnings.warn(
                f"{who}: its training accuracy reached {max(accuracies):.1%} at best in "
                f"{len(accuracies)} epoch(s), under {bar}: the network has learned little of "
                "the boards, and its verdicts are not to be trusted — train more epochs "
                "(leave out --epochs for the model's own), then check it with `tapcheck "
                "evaluate`", TapcheckWarning, stacklevel=3)
            return


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

    _warn_if_unlearned(history, n_classes=len(data.classes), name=spec.name)
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


def check_trainable(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None,
                    log: Callable[[str], None] | None = None) -> None:
    """Raise what :func:`train_model` would refuse before its first epoch, training nothing.

    ``compare`` checks every cell of a grid so: a fold too thin for its kNN threshold was
    refused after the cells before it had trained (QA). Warnings are left to the training;
    ``log`` hears what it would say of its calibration (a fold count cut to the boards).

    Raises
    ------
    ConfigError, DatasetError
        As :func:`train_model` does.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TapcheckWarning)
        _prepared(dataset, config=config, cache=cache, progress=False, log=log)


def _prepared(dataset: Dataset, *, config: Config, cache: FeatureCache | None, progress: bool,
              log: Callable[[str], None] | None) -> tuple[Any, Config, TrainingData]:
    """The model's spec, the config resolved for it, and the training data: every check that
    needs no training done (a refusal before any epoch, not after)."""
    spec = get_spec(config.train.model)
    config = dataclasses.replace(config, train=spec.resolve(config.train))
    if SCORERS[config.train.scorer].reads_decay:  # refuse a crop too small now, not after training
        from .decay import crop_decay

        crop_decay(np.zeros((config.features.n_bins, config.features.n_frames)))
    check_scorer_calibration(config)
    base = prepare_data(dataset, config=config, cache=cache, progress=progress)
    return spec, with_calibration(config, base, root=dataset.root, log=log), base


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
