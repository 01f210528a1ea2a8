"""False alarms on healthy boards, and whether they contradict the rate a model states.

Taps of one board are not independent, so a rate's interval resamples whole boards
(:func:`rate_interval`); :func:`against_stated` calls a rate off the stated one only when that
interval excludes it. :mod:`tapcheck.evaluation` reports both for every command.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .datasets import Take

#: fewer boards than this under a rate make no verdict against the stated rate. Boards differ
#: (one odd board flags most of its taps), and resampling 3 of them gives an interval from about
#: the quietest board's rate to the loudest's: the demo's unseen 46 % on 3 boards had 1.7-73 %,
#: "within" a stated 5 %. Simulated (20 taps per board, board rates spread as Beta around the
#: mean), a true 30 % is told from a stated 5 % in 42 % of draws at 3 boards and 52 % at 4 when
#: boards differ widely, 70 % at 5 (77 %, 96 %, 100 % when they differ less): from 5 the interval
#: says something of boards at large, below it mostly which boards were drawn
MIN_BOARDS = 5

#: an observed rate this many times the stated one or more gets a plain line, whatever the
#: verdict: three boards cannot contradict a statement, and a rate twice it is still news (a
#: correct 5 % on 60 taps reaches 10 % in about 8 % of draws, 7.5 % in about 18 %)
FAR_ABOVE = 2.0


def false_alarm_rates(takes: Sequence[Take], scores: np.ndarray, *, threshold: float,
                      known_boards: Sequence[int] = (), n_boot: int = 1000, seed: int = 0,
                      stated_far: float | None = None) -> dict[str, Any]:
    """Share of normal takes flagged, on boards the model knows and on boards it has never heard.

    Parameters
    ----------
    takes : sequence of Take, length n
    scores : np.ndarray, shape (n,)
    threshold : float
        A take scoring above it is flagged.
    known_boards : sequence of int
        Boards the model knows: in its training split, or enrolled.
    n_boot, seed : the resampling of :func:`rate_interval`.
    stated_far : float, optional
        The rate the model states; with it, each rate is checked against it.

    Returns
    -------
    dict
        ``false_alarms_known``, ``false_alarms_unseen`` (None where there are no such takes),
        ``normal_known``, ``normal_unseen`` (how many takes each rate rests on),
        ``boards_known``, ``boards_unseen`` (on how many boards) and ``false_alarms_known_ci``,
        ``false_alarms_unseen_ci`` ([low, high], :func:`rate_interval`; None without takes);
        with ``stated_far`` also ``false_alarms_known_vs_stated`` and
        ``false_alarms_unseen_vs_stated`` (:func:`against_stated`, by the number of boards).
    """
    scores = np.asarray(scores, dtype=float)
    normal = np.array([t.label == "normal" for t in takes], dtype=bool)
    board_of = np.array([t.board for t in takes])
    known = np.isin(board_of, list(known_boards))
    out: dict[str, Any] = {}
    for name, mask in (("known", normal & known), ("unseen", normal & ~known)):
        flagged = scores[mask] > threshold
        out[f"false_alarms_{name}"] = float(flagged.mean()) if mask.any() else None
        out[f"normal_{name}"] = int(mask.sum())
        out[f"boards_{name}"] = len(np.unique(board_of[mask]))
        out[f"false_alarms_{name}_ci"] = (rate_interval(flagged, board_of[mask], n_boot=n_boot,
                                                        seed=seed, scores=scores[mask])
                                          if mask.any() else None)
    if stated_far is not None:
        for name in ("known", "unseen"):
            out[f"false_alarms_{name}_vs_stated"] = against_stated(
                out[f"false_alarms_{name}_ci"], stated_far, boards=out[f"boards_{name}"],
                rate=out[f"false_alarms_{name}"])
    return out


def rate_interval(flagged: np.ndarray, boards: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95, scores: np.ndarray | None = None) -> list[float]:
    """Interval of the share of taps flagged: the wider of boards resampled and taps counted.

    Taps of one board are not independent — a board that sounds unlike the references flags
    many of its taps (the demo's board 13: 15 of 60) — so whole boards are resampled with
    replacement and their taps pooled (percentile bootstrap): the spread a new set of boards
    would show. That cannot reach beyond what was seen (no alarm on any board gives 0-0 %), so
    the interval is widened to at least the Wilson interval over the taps. With ``scores`` the
    taps are counted as the independent taps their boards are worth
    (:func:`tapcheck.calibration.effective_clips`): counted whole, no alarm on 160 taps of 8
    boards gave 0-2.3 %, "below" a stated 5 %, in 14-18 % of simulated sets whose boards' true
    rates averaged 5 % and differed as the demo's do (a statistics audit). With few boards it
    is rough, and wide where one board carries the alarms.

    Parameters
    ----------
    flagged : np.ndarray of bool, shape (n,), n >= 1
        Whether each normal tap was flagged.
    boards : np.ndarray, shape (n,)
        Board of each tap.
    n_boot : int
        Resamples of the boards (0: the Wilson interval alone).
    seed : int
    level : float
        Confidence level of both intervals.
    scores : np.ndarray, shape (n,), optional
        The taps' scores, whose clustering by board sets how many independent taps the
        Wilson interval counts.

    Returns
    -------
    list of float
        ``[low, high]``.
    """
    from scipy.stats import binomtest

    flagged = np.asarray(flagged, dtype=bool)
    ci = binomtest(int(flagged.sum()), len(flagged)).proportion_ci(confidence_level=level,
                                                                   method="wilson")
    lo, hi = float(ci.low), float(ci.high)
    names, index = np.unique(np.asarray(boards), return_inverse=True)
    if scores is not None and len(names) >= 2:
        from .calibration import effective_clips

        worth = effective_clips(np.asarray(scores, dtype=float), np.asarray(boards))
        w_lo, w_hi = _wilson(float(flagged.mean()), worth, level=level)
        lo, hi = min(lo, w_lo), max(hi, w_hi)
    if len(names) >= 2 and n_boot > 0:
        hits = np.bincount(index, weights=flagged.astype(float), minlength=len(names))
        taps = np.bincount(index, minlength=len(names)).astype(float)
        # boards in an order of their counts, not their names: the same boards renumbered
        # drew other resamples, and the interval moved with the numbering
        order = np.lexsort((hits, taps))
        hits, taps = hits[order], taps[order]
        picks = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
        rates = hits[picks].sum(axis=1) / taps[picks].sum(axis=1)
        b_lo, b_hi = np.quantile(rates, [(1 - level) / 2, 1 - (1 - level) / 2])
        lo, hi = min(lo, float(b_lo)), max(hi, float(b_hi))
    return [lo, hi]


def _wilson(rate: float, n: float, *, level: float) -> tuple[float, float]:
    """Wilson's score interval of a share ``rate`` observed over ``n`` (not necessarily whole)
    independent trials."""
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - level) / 2))
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def against_stated(interval: Sequence[float] | None, stated: float | None, *,
                   boards: int | None = None, rate: float | None = None) -> str | None:
    """Whether an observed false-alarm rate contradicts the stated one.

    One model file's rate on a few boards scatters both ways around a correct threshold
    (docs/new-boards.md, "Per model file"), so only an interval that excludes the stated rate
    contradicts it, and only an interval over :data:`MIN_BOARDS` boards or more says anything
    either way.

    Parameters
    ----------
    interval : sequence of 2 floats, optional
        The observed rate's 95 % interval (:func:`rate_interval`).
    stated : float, optional
        The rate the model states.
    boards : int, optional
        How many boards the rate rests on (None: not known, judged by the interval alone).
    rate : float, optional
        The observed rate itself.

    Returns
    -------
    {"above", "within", "not told", "below", "too few boards"} or None
        ``too few boards`` under :data:`MIN_BOARDS` boards, whatever the interval;
        ``above``/``below`` when the interval lies wholly above/below ``stated``; ``not told``
        when it holds ``stated`` but ``rate`` is :data:`FAR_ABOVE` times it or more (a wide
        interval: "within" read as a rate that holds, for 2.5 times the stated one); None
        without an interval or a stated rate.
    """
    if interval is None or stated is None:
        return None
    if boards is not None and boards < MIN_BOARDS:
        return "too few boards"
    lo, hi = interval
    if lo > stated:
        return "above"
    if hi < stated:
        return "below"
    return "not told" if rate is not None and rate >= FAR_ABOVE * stated else "within"
