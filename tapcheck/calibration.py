"""Thresholds that keep their promise on boards the model has never heard.

A detector's threshold is a tail quantile of the anomaly scores of normal clips. Which normal
clips decides which boards the stated false-alarm rate holds for:

- scores of clips of a board whose *own* takes are in the reference are small (the nearest
  neighbours are its siblings), so a threshold set on them is too low for a new board;
- **leave-one-board-out** scores (each normal training take scored against the reference without
  its board) imitate a new board; that is what a plant sees, so it is the default.

The fit must survive a few odd clips (a mis-strike scoring 100x the others would otherwise drag a
fit's tail far out): scores beyond a fence on the log scale are set aside, the fit
(:data:`THRESHOLD_FITS`: gamma, or the log-normal predictive quantile) is made on the rest, and
its quantile is taken at the rate left once the set-aside clips are counted as false alarms. A
bootstrap gives the threshold's 95 % interval (over boards for a rate on unseen boards, else over
clips), and a warning says when too few clips support the stated rate (counted for unseen boards
as the independent clips their boards are worth, :func:`effective_clips`). Defect labels never
enter any of it.

Board verdicts (:mod:`tapcheck.boards`) combine ``taps`` taps of one board: by default a majority
over the tap threshold; the ``median`` rule's threshold is fitted on medians of ``taps``
calibration scores drawn within each board.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .console import percent
from .errors import ParameterError, TapcheckWarning

#: clips per stated rate below which the calibration says it is thin: with 3 / far clips about
#: three of them are expected above the threshold, the least a tail fit can be checked against
CLIPS_PER_RATE = 3.0
FENCE_IQR = 3.0  # Tukey's "far out" fence, on log scores


def clips_needed(far: float) -> int:
    """Normal clips a threshold for the false-alarm rate ``far`` needs to be checked
    (:data:`CLIPS_PER_RATE` of them expected above it): ``calibrate`` warns below it, and
    ``doctor`` counts a dataset's calibration clips against it."""
    return math.ceil(CLIPS_PER_RATE / far)


def _shift(scores: np.ndarray) -> float:
    return min(0.0, float(scores.min())) - 1e-9  # gamma and log live on (0, inf)


def fence(scores: np.ndarray) -> float:
    """The score beyond which a clip is far out: Q3 + 3 IQR of the log scores; inf under 8
    clips (too few to tell an odd clip from the tail)."""
    return fences(scores)[1]


def fences(scores: np.ndarray) -> tuple[float, float]:
    """The scores below and beyond which a clip is far out on the log scale: Q1 - 3 IQR and
    Q3 + 3 IQR of the log scores; (-inf, inf) under 8 clips.

    The low one matters as much to a log-normal fit: one score of 0 among 80 (a kNN neighbour
    at distance 0, a cosine rounding below 0) sat at log(1e-9) and spread the fit 12-fold, the
    threshold with it (0.100 became 1.224; a statistics audit)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 8:
        return float("-inf"), float("inf")
    shift = _shift(scores)
    q1, q3 = np.quantile(np.log(scores - shift), [0.25, 0.75])
    spread = FENCE_IQR * max(q3 - q1, 1e-12)
    return float(np.exp(q1 - spread)) + shift, float(np.exp(q3 + spread)) + shift


def outlier_mask(scores: np.ndarray) -> np.ndarray:
    """True for scores beyond :func:`fence` (far-out odd clips), shape (n,)."""
    scores = np.asarray(scores, dtype=np.float64)
    return scores > fence(scores)


#: the fewest clips each fit needs (:func:`_gamma_quantile`, :func:`_lognormal_quantile`); with
#: fewer the threshold is the highest clip
MIN_FIT_CLIPS = {"gamma": 2, "lognormal": 3}

#: the fewest clips whose bootstrap interval is shown. A resample of n clips is one clip n times
#: with probability n^(1-n): 11 % at 3 clips and 1.6 % at 4, near the interval's 2.5 % end, and
#: such a resample's "threshold" is that clip, not a fit (from 3 clips the interval's low end
#: was the lowest of them, a threshold that flags 2 of the 3; QA); 0.16 % at 5
MIN_INTERVAL_CLIPS = 5


def _gamma_quantile(scores: np.ndarray, q: float) -> float:
    import scipy.stats  # only calibration needs it; keep `judge` start-up light

    if scores.size < MIN_FIT_CLIPS["gamma"] or np.ptp(scores) < 1e-12:
        return float(scores.max()) if scores.size else 0.0
    shift = _shift(scores)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, loc, scale = scipy.stats.gamma.fit(scores - shift, floc=0.0)
        threshold = float(scipy.stats.gamma.ppf(q, a, loc=loc, scale=scale)) + shift
    except (ValueError, RuntimeError, FloatingPointError):
        threshold = float("nan")
    return threshold if np.isfinite(threshold) else float(np.quantile(scores, q))


def _lognormal_quantile(scores: np.ndarray, q: float) -> float:
    """Predictive quantile of a log-normal fit: the log scores' mean plus Student's t quantile
    (n - 1 degrees of freedom) times their sd times sqrt(1 + 1/n). For log-normal scores a new
    clip exceeds it with probability exactly ``1 - q`` over calibrations of any size, where a
    plain fitted quantile is exceeded more often the fewer the clips. (On resampled medians, as
    the ``median`` board rule fits, n overstates the independent values: the correction is
    then too small to matter.)"""
    # Student's t quantile from scipy.special, not scipy.stats: importing scipy.stats took 1.1 s
    # of enroll's 2.3 s with arcface-resnet18 (measured, cProfile), for this one number
    from scipy.special import stdtrit

    if scores.size < MIN_FIT_CLIPS["lognormal"] or np.ptp(scores) < 1e-12:
        return float(scores.max()) if scores.size else 0.0
    shift = _shift(scores)
    logs = np.log(scores - shift)
    n = logs.size
    spread = float(stdtrit(n - 1, q)) * logs.std(ddof=1) * np.sqrt(1.0 + 1.0 / n)
    return float(np.exp(logs.mean() + spread)) + shift


#: how the tail of normal scores is fitted (``train.threshold_fit``): the scores of normal clips
#: were closer to log-normal than to gamma in 49 of 52 calibrations measured (kNN and knn-decay,
#: docs/new-boards.md, "Threshold fit"), and the gamma's lighter tail puts the threshold too low
THRESHOLD_FITS = {"gamma": _gamma_quantile, "lognormal": _lognormal_quantile}


def robust_threshold(scores: np.ndarray, *, far: float, fit: str = "lognormal") -> float:
    """The score normal clips exceed with probability ``far``, from a fit odd clips cannot drag.

    Parameters
    ----------
    scores : np.ndarray, shape (n,)
        Anomaly scores of normal clips (higher = more anomalous).
    far : float
        Accepted false-alarm rate, in (0, 1).
    fit : {"gamma", "lognormal"}
        The family fitted to the tail (:data:`THRESHOLD_FITS`).

    Returns
    -------
    float
        The fit's ``1 - far'`` quantile of the scores inside the log-scale fences
        (:func:`fences`), where ``far'`` is what is left of ``far`` after the clips beyond the
        upper fence (alarms at any threshold), as a share of the clips inside both.
    """
    if fit not in THRESHOLD_FITS:
        raise ParameterError(f"unknown threshold fit {fit!r}; one of {', '.join(THRESHOLD_FITS)}")
    if not 0.0 < far < 1.0:
        raise ParameterError(f"far (false-alarm rate) must be between 0 and 1, not {far}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return 0.0
    floor, limit = fences(scores)
    odd = scores > limit  # outlier_mask, with the fence kept for below
    low = scores < floor  # far below the rest: never alarms, and no part of the tail's fit
    kept, share = scores[~odd & ~low], float(odd.mean())
    if share >= far:
        # the odd clips alone use up the rate: the threshold is the fence, just under them, and
        # never under the fit without them. kept.max() was: with 16 clips one odd take (1/17
        # of them) lowered the threshold below the 16's own, so a higher score lowered it.
        return max(limit, THRESHOLD_FITS[fit](kept, 1.0 - far))
    # the kept clips' share of alarms: what is left of far once the odd ones are counted, of
    # the clips neither odd nor far below
    return THRESHOLD_FITS[fit](kept, 1.0 - (far - share) / (1.0 - share - float(low.mean())))


def bootstrap_interval(scores: np.ndarray, *, far: float, groups: np.ndarray | None = None,
                       n_boot: int = 100, seed: int = 0, level: float = 0.95,
                       fit: str = "lognormal") -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`robust_threshold`: over boards when ``groups``
    (the board of each score, two or more) are given, else over clips.

    A threshold for unseen boards varies with the boards it was fitted on: the takes of one
    board score alike (an intraclass correlation of 0.27 on the demo's log scores), and a
    bootstrap over clips gave an interval that held the new boards' true quantile in 71 % of
    simulated calibrations of 8 boards x 20 clips and 46 % of 4 x 40; over boards, 83 % and
    70 % (a statistics audit). Few boards leave it too narrow still.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        t = robust_threshold(scores, far=far, fit=fit)
        return t, t
    rng = np.random.default_rng(seed)
    if groups is not None and len(np.unique(groups)) >= 2:
        groups = np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        draws = (np.concatenate([members[i] for i in rng.integers(0, len(members),
                                                                  len(members))])
                 for _ in range(n_boot))
    else:
        draws = (rng.integers(0, scores.size, scores.size) for _ in range(n_boot))
    values = [robust_threshold(scores[d], far=far, fit=fit) for d in draws]
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def effective_clips(scores: np.ndarray, groups: np.ndarray) -> float:
    """How many independent clips ``scores`` of ``groups`` (boards) are worth to a threshold
    that must hold on new boards: ``n / (1 + (n0 - 1) icc)``, Kish's design effect, with the
    one-way ANOVA intraclass correlation of the log scores (clamped to [0, 1]) and ``n0`` the
    ANOVA's mean group size. 160 clips of 4 boards at the demo's 0.27 are worth about 14.
    """
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    low, high = fences(scores)
    # the clips the threshold's fit uses: one score of 0 at log(1e-9) made the within-board
    # spread huge and the clips "independent" (87 for 53; review)
    inside = (scores >= low) & (scores <= high)
    if inside.sum() >= 2:
        scores, groups = scores[inside], groups[inside]
    n = scores.size
    names, index = np.unique(groups, return_inverse=True)
    k = len(names)
    if k < 2 or n <= k:
        return float(n)
    logs = np.log(scores - _shift(scores))
    sizes = np.bincount(index).astype(np.float64)
    means = np.bincount(index, weights=logs) / sizes
    between = float((sizes * (means - logs.mean()) ** 2).sum()) / (k - 1)
    within = float(((logs - means[index]) ** 2).sum()) / (n - k)
    n0 = (n - float((sizes ** 2).sum()) / n) / (k - 1)
    denominator = between + (n0 - 1) * within
    icc = 0.0 if denominator <= 0 else min(max((between - within) / denominator, 0.0), 1.0)
    return float(n / (1 + (n0 - 1) * icc))


def tap_medians(scores: np.ndarray, groups: np.ndarray | None, *, taps: int, draws: int = 200,
                seed: int = 0, statistic=np.median) -> np.ndarray:
    """Medians of ``taps`` scores drawn within each group (without replacement where it has
    ``taps`` clips), shape (m,).

    The medians a board verdict of ``taps`` taps sees on normal boards, ``draws`` per group.
    A group with fewer than ``taps`` clips draws them with replacement, which keeps its clips'
    own spread (the median of 3 draws from 2 clips is one of them). Skipped, such groups left
    the fit to the boards that had enough: after ``enroll`` of 5 taps per side into a model
    with 2 calibration clips per board, to the enrolled board alone, and the median rule
    flagged half the healthy boards. Without groups all clips are one group. ``statistic``
    (any numpy reduction taking ``axis``) replaces the median for other board rules.
    """
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.zeros(len(scores), dtype=int) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    out = []
    for g in np.unique(groups):
        mine = scores[groups == g]
        if len(mine) < taps:
            picks = rng.integers(0, len(mine), size=(draws, taps))
        else:
            picks = np.argsort(rng.random((draws, len(mine))), axis=1)[:, :taps]
        out.append(statistic(mine[picks], axis=1))
    return np.concatenate(out) if out else scores.copy()


#: how a threshold's normal scores were computed (``calibrate``'s ``method``)
METHODS = ("cross-fit", "leave-one-board-out", "hold-out", "in-sample", "leave-one-clip-out")


def calibrate(scores: np.ndarray, *, far: float, groups: np.ndarray | None = None,
              method: str, board_taps: int = 3, board_far: float = 0.02,
              board_rule: str = "vote", fit: str = "lognormal", source: str = ""
              ) -> dict[str, Any]:
    """Threshold, its interval, the board threshold and a statement of what they hold for.

    Parameters
    ----------
    scores : np.ndarray, shape (n,)
        Anomaly scores of normal clips, computed as ``method`` says.
    far : float
        Stated false-alarm rate per tap.
    groups : np.ndarray, shape (n,), optional
        Board of each score (for the board threshold and the statement).
    method : {"cross-fit", "leave-one-board-out", "hold-out", "in-sample", "leave-one-clip-out"}
    board_taps, board_far : taps per board verdict and the false-alarm rate per board the
        ``median`` rule's threshold is fitted for.
    board_rule : {"vote", "median"}
        How a board's taps make one verdict (:data:`tapcheck.boards.BOARD_RULES`).
    fit : {"gamma", "lognormal"}
        The tail fit of both thresholds (:data:`THRESHOLD_FITS`).
    source : str
        Name for the warning (the model or dataset).

    Returns
    -------
    dict
        ``threshold``, ``threshold_ci`` ([low, high]), ``board_rule``, ``board_threshold``
        (what the rule compares against), ``board_fit`` (the medians' own threshold at
        ``board_far``, what ``median`` compares against; ``evaluate`` reports both rules),
        ``board_taps``, ``board_far``, ``far``, ``method``, ``clips``, ``boards``,
        ``odd_clips``, ``fit``, ``holds_for`` (a sentence) and ``warning`` (a sentence or "").
    """
    from .boards import BOARD_RULES

    if board_rule not in BOARD_RULES:
        raise ParameterError(f"unknown board rule {board_rule!r}; one of "
                             f"{', '.join(BOARD_RULES)}")
    scores = np.asarray(scores, dtype=np.float64)
    n_groups = len(np.unique(groups)) if groups is not None and len(groups) else 0
    # a rate for unseen boards: its interval and its support are counted in boards
    unseen = method in ("leave-one-board-out", "cross-fit") and n_groups > 1
    lo, hi = bootstrap_interval(scores, far=far, fit=fit, groups=groups if unseen else None)
    medians = tap_medians(scores, groups, taps=board_taps)
    holds = {"leave-one-board-out": f"unseen boards (each of {n_groups} training boards scored "
                                    "against the reference without it)",
             "cross-fit": f"unseen boards (each of {n_groups} training boards scored by a "
                          "network trained without it)" if n_groups > 1 else
                          "new taps of the training board (each take scored by a network "
                          "trained without it)",
             "hold-out": "boards in the training split (held-out takes of known boards)",
             "in-sample": "boards in the training split (scored by a model trained on them)",
             "leave-one-clip-out": "boards in the training split (each clip against the others)"}
    needed = clips_needed(far)
    warning = ""
    worth = effective_clips(scores, groups) if unseen else float(len(scores))
    # an enrolment keeps a cross-fit threshold (tapcheck.recalibration.add_references):
    # "enrol more" was advice that left this warning standing however many boards were
    # enrolled (QA); and an enrolled board counts as one board
    # (tapcheck.recalibration.one_board_share): "enrol more normal takes" of one board no
    # longer adds clips past its share (review)
    if method == "cross-fit":
        more = {what: f"record more normal {what} and train again (an enrolment keeps a "
                      "cross-fit threshold)" for what in ("takes", "boards")}
    else:
        more = {"takes": "record more normal takes and train again, or enrol more normal "
                         "boards", "boards": "record or enrol more normal boards"}
    if len(scores) < needed:
        warning = (f"{source + ': ' if source else ''}the threshold rests on {len(scores)} normal "
                   f"clip{'s' * (len(scores) != 1)}; a {percent(far)} false-alarm rate needs "
                   f"at least {needed} to be checked — the stated rate is a guess; "
                   + more["takes"])
    elif worth < needed:  # many clips of few boards: as many boards as clips they are not
        warning = (f"{source + ': ' if source else ''}the threshold rests on {len(scores)} normal "
                   f"clips of {n_groups} boards; their scores cluster by board, so they are "
                   f"worth about {worth:.0f} independent clips, and a {percent(far)} false-alarm "
                   f"rate on unseen boards needs at least {needed} — the stated rate is a guess; "
                   + more["boards"])
    threshold = robust_threshold(scores, far=far, fit=fit)
    board_fit = robust_threshold(medians, far=board_far, fit=fit)
    return {"threshold": threshold, "threshold_ci": [lo, hi], "board_rule": board_rule,
            "board_threshold": BOARD_RULES[board_rule].threshold(threshold, board_fit),
            "board_fit": board_fit, "fit": fit,
            "board_taps": int(board_taps), "board_far": float(board_far), "far": float(far),
            "method": method, "clips": int(len(scores)), "boards": int(n_groups),
            "odd_clips": int(outlier_mask(scores).sum()),
            "holds_for": holds.get(method, method), "warning": warning}


def unfitted(info: dict[str, Any]) -> bool:
    """Whether the threshold is the highest calibration clip, too few clips for its fit."""
    return info["clips"] < MIN_FIT_CLIPS.get(info.get("fit", "gamma"), 3)


def threshold_interval(info: dict[str, Any]) -> list[float] | None:
    """The threshold's 95 % interval, or None when there is none: too few clips
    (:data:`MIN_INTERVAL_CLIPS`; the bootstrap's "interval" of 1 clip was [t, t], which
    ``--json`` gave as exact), or one of no width (a model file from before intervals states
    [t, t])."""
    lo, hi = (float(x) for x in info["threshold_ci"])
    return None if info["clips"] < MIN_INTERVAL_CLIPS or lo >= hi else [lo, hi]


def describe(info: dict[str, Any]) -> str:
    """One line for ``judge``: the threshold, its interval and which boards its rate holds for."""
    from .boards import BOARD_RULES

    board = BOARD_RULES[info.get("board_rule", "median")].statement(info)
    fit = info.get("fit", "gamma")
    n = info["clips"]
    clips = f"{n} clip{'' if n == 1 else 's'}"
    # below the fit's minimum the threshold is the highest clip, and its "interval" ended at it
    # (0.005161-0.009243 for a threshold of 0.009243 from 2 clips): no interval to show, and
    # no fit to name ("too few for the lognormal fit … (hold-out, lognormal fit)"; QA)
    interval = threshold_interval(info)
    if unfitted(info):
        spread, how = f"the highest of {clips}: too few for the {fit} fit or an interval", ""
    elif n < MIN_INTERVAL_CLIPS:
        spread, how = "too few clips for an interval", f", {fit} fit"
    elif interval is None:  # a model file from before intervals: it read "0.3-0.3"
        spread, how = "no interval stored", f", {fit} fit"
    else:
        spread, how = f"95 % interval {interval[0]:.4g}-{interval[1]:.4g}", f", {fit} fit"
    # train's warning that the rate is a guess, said where judge states it: `judge --per-board`
    # said "where a healthy board's are 5% of the time" as a fact of a guessed rate (QA)
    # (of many clips of few boards, their number is not what is too few; review)
    guess = "" if not info.get("warning") else (
        ", too few to check that rate: it is a guess" if n < clips_needed(info["far"]) else
        f", of {info.get('boards', 'too few')} boards, too few to check that rate on unseen "
        "boards: it is a guess")
    return (f"threshold {info['threshold']:.4g} ({spread}) for "
            f"{percent(info['far'])} false alarms per tap on {info['holds_for']}, from "
            f"{clips} ({info['method']}{how}){guess}; board verdict of {info['board_taps']} "
            f"taps: {board}")


def median_fit(info: dict[str, Any]) -> float:
    """The threshold the ``median`` board rule compares against, for ``evaluate``'s comparison
    of both rules (model files from before ``board_rule`` had only that one)."""
    return float(info.get("board_fit", info["board_threshold"]))


def warn_if_thin(info: dict[str, Any]) -> None:
    """Emit the calibration's warning, if it has one, as a TapcheckWarning."""
    if info.get("warning"):
        warnings.warn(info["warning"], TapcheckWarning, stacklevel=3)
