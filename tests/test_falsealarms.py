"""False alarms on known and unseen healthy boards, their intervals over boards, and whether
they contradict the stated rate."""

from __future__ import annotations

import numpy as np
import pytest

from tapcheck.falsealarms import against_stated, false_alarm_rates, rate_interval

from .test_evaluation import take


def test_false_alarms_are_split_into_known_and_unseen_boards():
    takes = [take(1, k) for k in range(4)] + [take(11, k) for k in range(4)]
    scores = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.1])
    rates = false_alarm_rates(takes, scores, threshold=0.5, known_boards=[1])
    intervals = {k: rates.pop(k) for k in ("false_alarms_known_ci", "false_alarms_unseen_ci")}
    assert rates == {"false_alarms_known": 0.25, "normal_known": 4, "boards_known": 1,
                     "false_alarms_unseen": 0.5, "normal_unseen": 4, "boards_unseen": 1}
    for (lo, hi), rate in zip(intervals.values(), (0.25, 0.5), strict=True):
        assert 0.0 <= lo < rate < hi <= 1.0


def test_an_observed_rate_contradicts_the_stated_one_only_when_its_interval_excludes_it():
    assert against_stated([0.069, 0.159], 0.05) == "above"
    assert against_stated([0.0, 0.031], 0.05) == "below"
    assert against_stated([0.0, 0.217], 0.05, boards=8) == "within"
    # 3 boards: an interval from about the quietest board to the loudest says nothing either way
    assert against_stated([0.017, 0.733], 0.05, boards=3) == "too few boards"
    assert against_stated([0.069, 0.159], 0.05, boards=4) == "too few boards"
    assert against_stated([0.069, 0.159], 0.05, boards=5) == "above"
    assert against_stated(None, 0.05) is None and against_stated([0.0, 0.1], None) is None


def test_the_rate_interval_resamples_boards_and_is_never_narrower_than_the_taps_allow():
    """5 % of 80 taps either way: one alarm on each of 4 boards gives every resample of boards
    the same 5 %, so the taps' Wilson interval is the answer; four alarms on one board reach
    further (resamples with that board twice) and down to 0 (without it). No alarm at all on
    several boards still leaves room above 0. One board: Wilson over its taps."""
    from scipy.stats import binomtest


    def wilson(k, n):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        return [ci.low, ci.high]

    boards = np.repeat([1, 2, 3, 4], 20)
    spread = np.zeros(80, dtype=bool)
    spread[[0, 20, 40, 60]] = True
    lumped = np.zeros(80, dtype=bool)
    lumped[:4] = True
    assert rate_interval(spread, boards) == pytest.approx(wilson(4, 80))
    lo, hi = rate_interval(lumped, boards)
    assert lo == 0.0 and hi > wilson(4, 80)[1]
    lo, hi = rate_interval(np.zeros(80, dtype=bool), boards)
    assert lo == 0.0 and hi == pytest.approx(wilson(0, 80)[1]) and hi > 0.03
    # the same boards renumbered (or given in another order) give the same interval
    eight = np.repeat(np.arange(1, 9), 20)
    varied = np.concatenate([np.arange(20) < k for k in (0, 1, 2, 3, 5, 8, 10, 12)])
    renamed = np.repeat([13, 5, 21, 7, 2, 30, 11, 8], 20)
    shuffled = np.random.default_rng(1).permutation(len(eight))
    assert rate_interval(varied, renamed) == rate_interval(varied, eight)
    assert rate_interval(varied[shuffled], eight[shuffled]) == rate_interval(varied, eight)
    one = np.zeros(60, dtype=bool)
    one[:3] = True
    assert rate_interval(one, np.ones(60)) == pytest.approx(wilson(3, 60))


def test_no_alarm_on_boards_whose_takes_score_alike_is_no_proof_of_a_lower_rate():
    """No alarm on 160 taps of 8 boards gave 0-2.3 % (the taps counted as independent), "below"
    a stated 5 %, in 14-18 % of simulated sets whose boards' rates averaged 5 % (a statistics
    audit). With the scores, the taps count as the independent taps their boards are worth."""
    from scipy.stats import binomtest

    from tapcheck.calibration import effective_clips
    from tapcheck.falsealarms import _wilson

    rng = np.random.default_rng(0)
    boards = np.repeat(np.arange(8), 20)
    scores = np.exp(rng.normal(0, 0.41, 8)[boards] + rng.normal(0, 0.67, 160))  # demo's spread
    none = np.zeros(160, dtype=bool)
    counted_whole = rate_interval(none, boards)
    assert counted_whole[1] < 0.05 and against_stated(counted_whole, 0.05, boards=8) == "below"
    worth = effective_clips(scores, boards)
    assert 20 < worth < 100
    clustered = rate_interval(none, boards, scores=scores)
    assert clustered == pytest.approx([0.0, _wilson(0.0, worth, level=0.95)[1]])
    assert against_stated(clustered, 0.05, boards=8) == "within"
    # Wilson's interval itself, against scipy's for whole counts
    ci = binomtest(7, 60).proportion_ci(method="wilson")
    assert _wilson(7 / 60, 60, level=0.95) == pytest.approx((ci.low, ci.high))
    # scores of independent taps: the interval of the taps counted whole, or near it
    independent = np.exp(rng.normal(0, 1, 160))
    assert rate_interval(none, boards, scores=independent)[1] < 0.04
