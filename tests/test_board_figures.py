"""A test split's board verdicts: consecutive taps of one board side combined, with intervals."""

from __future__ import annotations

import numpy as np
import pytest

from tapcheck.board_figures import board_verdicts

from .test_evaluation import take


def test_board_verdicts_group_consecutive_taps_of_one_board_side():
    # board 11: taps 0-2 one high (healthy by median and vote), taps 3-5 two high (flagged);
    # taps 6-7 are fewer than 3 and make no verdict; defect board 7: one verdict, found
    takes = [take(11, k) for k in range(8)] + [take(7, k, "defect") for k in range(3)]
    scores = np.array([0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.2, 0.8, 0.8])
    got = board_verdicts(takes, scores, taps=3, threshold=0.5, board_threshold=0.5)
    assert (got["healthy"], got["defective"]) == (2, 1)
    assert got["vote_healthy_flagged"] == got["median_healthy_flagged"] == 0.5
    assert got["median_defective_found"] == 1.0
    # the median rule answers to its own threshold, the vote to the per-tap one
    strict = board_verdicts(takes, scores, taps=3, threshold=0.5, board_threshold=0.95)
    assert strict["median_healthy_flagged"] == 0.0 and strict["vote_healthy_flagged"] == 0.5


def test_board_verdict_rates_carry_an_interval_that_no_flag_does_not_close():
    """0 of 60 healthy board verdicts flagged is not "0 %": the interval reaches the Wilson
    bound (6.0 %), which says how far such a count is from showing a 2 % rate."""
    takes = [take(b, k) for b in (11, 12, 13, 14) for k in range(45)]
    got = board_verdicts(takes, np.zeros(len(takes)), taps=3, threshold=0.5, board_threshold=0.5,
                         n_boot=200)
    assert got["healthy"] == 60 and got["vote_healthy_flagged"] == 0.0
    assert got["vote_healthy_ci"][0] == 0.0 and got["vote_healthy_ci"][1] == pytest.approx(
        0.0602, abs=5e-4)
    assert got["vote_defective_ci"] is None
    # one board flags all its verdicts: the interval spans boards, not verdicts
    lumped = np.where(np.array([t.board for t in takes]) == 11, 0.9, 0.1)
    got = board_verdicts(takes, lumped, taps=3, threshold=0.5, board_threshold=0.5, n_boot=200)
    assert got["vote_healthy_flagged"] == 0.25 and got["vote_healthy_ci"][1] >= 0.5
