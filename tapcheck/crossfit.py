"""Cross-fitted calibration: scores of normal boards by networks that never heard them.

A threshold fitted on held-out takes of the training boards is too low for a new board (its
siblings are in the reference), and leave-one-board-out on the final network is far too high for
a metric-learning network (it was trained to push exactly those boards apart; see
``docs/new-boards.md``). What imitates a new board is a board the *network* has not heard:

1. the normal training boards are dealt into ``train.crossfit_folds`` folds (by board);
2. for each fold a network is trained, with the same settings and seed, on the training split
   without that fold's boards (defect classes stay);
3. each fold's normal takes are scored by that network against the reference of the other
   boards' normal takes (embedded by the same network);
4. the threshold of the final network (trained on every board) is the robust fit of these
   out-of-fold scores (:func:`tapcheck.calibration.calibrate`, method ``"cross-fit"``).

With a single normal board (one-class data) the folds hold its takes instead, so each take is
scored as a new tap of that board.

It costs ``crossfit_folds`` more trainings, each on ``(K - 1) / K`` of the normal boards. It
assumes the final network places a new board about as far from its references as the fold
networks placed theirs; ``tapcheck evaluate`` on unseen boards checks that.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .config import Config
from .errors import ModelFileError, ParameterError
from .fitting import fit_members
from .models import ModelSpec
from .models.base import represent_clips
from .runtime import bf16_inference


#: normal training boards from which ``calibration = "auto"`` cross-fits. Measured: with the
#: plant preset's 8 boards the cross-fit rate held on 12 unseen boards (arcface-lite, ±6 %
#: stretch; arcface-resnet18 flagged 9.7 %, one seed); with the demo's 4 boards of 4 different
#: sizes it was several times too strict (docs/new-boards.md)
AUTO_MIN_BOARDS = 8
#: the widest ``train.freq_stretch`` at which ``"auto"`` cross-fits: measured to hold at the
#: default ±6 %; with ±20 % the fold networks, trained to take other board sizes for normal,
#: placed left-out boards close and the threshold flagged 35 % of the plant set's unseen healthy
#: taps for a stated 5 % (hold-out held there: docs/new-boards.md, "Board size")
AUTO_MAX_STRETCH = 0.06


def resolve_calibration(method: str, normal_boards: int, *,
                        freq_stretch: float = AUTO_MAX_STRETCH) -> str:
    """The calibration a training run uses: ``"auto"`` is ``"cross-fit"`` from
    :data:`AUTO_MIN_BOARDS` normal training boards on at a stretch up to
    :data:`AUTO_MAX_STRETCH`, ``"hold-out"`` otherwise; others as given."""
    if method != "auto":
        return method
    return ("cross-fit" if normal_boards >= AUTO_MIN_BOARDS
            and freq_stretch <= AUTO_MAX_STRETCH + 1e-9 else "hold-out")


def fold_units(boards: np.ndarray) -> np.ndarray:
    """What a fold holds, per normal take: its board, or (a single normal board) the take itself.

    Parameters
    ----------
    boards : np.ndarray, shape (n,)
        Board of each normal training take.

    Returns
    -------
    np.ndarray, shape (n,)
    """
    return boards if len(np.unique(boards)) >= 2 else np.arange(len(boards))


def crossfit_folds(units: np.ndarray, folds: int, *, seed: int) -> list[np.ndarray]:
    """The distinct units (boards, or takes) dealt into ``folds`` folds, shuffled by ``seed``.

    Parameters
    ----------
    units : np.ndarray, shape (n,)
        Unit of each normal training take (repeats allowed).
    folds : int
        Number of folds; at most the number of distinct units.
    seed : int

    Returns
    -------
    list of np.ndarray
        The units of each fold (sorted), ``min(folds, n_units)`` non-empty folds.
    """
    distinct = np.unique(units)
    if len(distinct) < 2:
        raise ParameterError(
            f"cross-fit calibration needs at least 2 normal training takes, not {len(distinct)}",
            fix="set train.calibration = \"hold-out\", or record more normal takes")
    order = np.random.default_rng([seed, 3061]).permutation(distinct)
    return [np.sort(part) for part in np.array_split(order, min(folds, len(distinct)))]


def crossfit_scores(data, *, config: Config, spec: ModelSpec, with_classes: Callable,
                    make_detector: Callable, log: Callable[[str], None] | None = None,
                    progress: bool | None = None, done: list[dict] | None = None,
                    on_fold: Callable[[list[dict]], None] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold anomaly scores of every normal training take (fit and held-out).

    Folds hold whole boards; with a single normal board (one-class data) they hold its takes,
    so each take is scored as a new tap of that board by a network that never heard it.

    Parameters
    ----------
    data : tapcheck.training_data.TrainingData
        The training split as the final network sees it (before pseudo-anomaly classes).
    config : Config
        Resolved settings; ``train.crossfit_folds`` and ``train.seed`` are used.
    spec : ModelSpec
    with_classes : callable
        ``TrainingData -> (TrainingData, transform)``: adds pseudo-anomaly classes when a
        fold's network would have only one class (``training._with_classes``).
    make_detector : callable
        ``(Config, TrainingData) -> ThresholdDetector``, unfitted.
    log : callable, optional
        Receives a line per fold and per epoch.
    done : list of dict, optional
        The folds an interrupted run finished, in order: ``{"scores": [...], "groups": [...]}``
        each; they are not trained again.
    on_fold : callable, optional
        Called with the list of finished folds (as ``done``) after each fold, to save them.

    Returns
    -------
    scores : np.ndarray, shape (n_normal,)
        Score of each normal take, from the network trained without its fold.
    boards : np.ndarray, shape (n_normal,)
        Board of each score.
    """
    n = len(data.fit_takes)
    fit_normal = data.fit_normal[:n]
    fit_boards = np.array([t.board for t in data.fit_takes])
    calib_boards = np.array([t.board for t in data.calib_takes])
    # normal takes in order: the fit takes', then the held-out ones
    units = fold_units(np.concatenate([fit_boards[fit_normal], calib_boards]))
    by_board = len(np.unique(calib_boards.tolist() + fit_boards[fit_normal].tolist())) >= 2
    fit_units = np.full(n, -1, dtype=np.int64)  # defect takes: in no fold
    fit_units[fit_normal] = units[:int(fit_normal.sum())]
    calib_units = units[int(fit_normal.sum()):]
    folds = crossfit_folds(units, config.train.crossfit_folds, seed=config.train.seed)
    scores, groups, finished = [], [], list(done or [])
    for i, held in enumerate(folds, start=1):
        what = (f"board(s) {', '.join(str(int(b)) for b in held)}" if by_board else
                f"{len(held)} of its takes")
        mine_fit = np.isin(fit_units, held) & fit_normal
        mine_calib = np.isin(calib_units, held)
        if i <= len(finished):  # a Ctrl-C after it threw every fold away, hours of them (QA)
            kept = finished[i - 1]
            if len(kept["scores"]) != int(mine_fit.sum() + mine_calib.sum()):
                raise ModelFileError(
                    f"the interrupted run's cross-fit network {i} (.partial) scored "
                    f"{len(kept['scores'])} takes, where this run's fold {i} holds "
                    f"{int(mine_fit.sum() + mine_calib.sum())}",
                    fix="delete the .partial file beside the model to start over")
            if log:
                log(f"cross-fit {i}/{len(folds)}: the network without {what}, kept from the "
                    "interrupted run")
            scores.append(np.asarray(kept["scores"], dtype=np.float64))
            groups.append(np.asarray(kept["groups"], dtype=np.int64))
            continue
        if log:
            log(f"cross-fit {i}/{len(folds)}: a network without {what}")
        fold_data, transform = with_classes(_without(data, mine_fit, mine_calib))
        net = _train_fold(fold_data, config=config, spec=spec, transform=transform, log=log,
                          progress=progress)
        scorer = config.train.scorer
        reference = represent_clips(net, fold_data.fit_clips[fold_data.fit_normal],
                                    scorer).numpy()
        detector = make_detector(config, fold_data)
        detector.fit(reference)  # the threshold it sets is not used: only its scores
        query = np.concatenate([data.fit_clips[:n][mine_fit], data.calib_clips[mine_calib]])
        scores.append(detector.anomaly_score(represent_clips(net, query, scorer).numpy()))
        groups.append(np.concatenate([fit_boards[mine_fit], calib_boards[mine_calib]]))
        finished.append({"scores": [float(x) for x in scores[-1]],
                         "groups": [int(b) for b in groups[-1]]})
        if on_fold is not None:
            on_fold(finished)
    return np.concatenate(scores), np.concatenate(groups)


def _without(data, fit_out: np.ndarray, calib_out: np.ndarray):
    """``data`` without the fit takes ``fit_out`` and held-out takes ``calib_out`` (boolean
    masks), classes re-indexed."""
    n = len(data.fit_takes)
    keep, calib_keep = ~fit_out, ~calib_out
    old = np.asarray(data.fit_labels[:n])[keep]
    used = sorted(set(old.tolist()))
    index = {c: j for j, c in enumerate(used)}
    return dataclasses.replace(
        data, fit_clips=data.fit_clips[:n][keep],
        fit_labels=np.array([index[c] for c in old]), fit_normal=data.fit_normal[:n][keep],
        calib_clips=data.calib_clips[calib_keep],
        classes=[data.classes[c] for c in used], class_labels=[data.class_labels[c] for c in used],
        fit_takes=[t for t, k in zip(data.fit_takes, keep, strict=True) if k],
        calib_takes=[t for t, k in zip(data.calib_takes, calib_keep, strict=True) if k])


def _train_fold(data, *, config: Config, spec: ModelSpec, transform, log, progress):
    """One fold's network, trained as the final one is (same settings, same seed)."""
    f = config.features
    X, y = data.samples()
    model, _ = fit_members(
        lambda: spec.build(n_classes=len(data.classes), train=config.train,
                           input_shape=(f.n_bins, f.n_frames)),
        X, y, config=config, validation=data.validation_samples(), progress=progress, log=log,
        transform=transform)
    return model.for_inference(bf16=bf16_inference(bf16=config.train.bf16))
