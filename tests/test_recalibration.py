"""Recalibration after enrolment (tapcheck/recalibration.py); enroll's own tests are in
test_enroll.py, add_references against the calibration in test_calibration.py."""

import numpy as np

from tapcheck.recalibration import one_board_share


def test_one_board_share_thins_a_board_to_the_best_calibrated_others_count():
    scores = np.array([5.0, 1.0, 2.0, 3.0, 4.0, 0.5, 9.0, 7.0, 8.0, 6.0, 0.1])
    groups = np.array([1, 1, 2, 2, 2, 7, 7, 7, 7, 7, 7])
    kept, kept_groups = one_board_share(scores, groups, group=7)
    # board 2's three scores are the most any other board has: board 7 keeps three of its six
    # (0.1 0.5 6 7 8 9), one from the middle of each third, in order
    assert kept.tolist() == [5.0, 1.0, 2.0, 3.0, 4.0, 0.5, 7.0, 9.0]
    assert kept_groups.tolist() == [1, 1, 2, 2, 2, 7, 7, 7]
    # one score per other board: the median, not the lowest (review)
    one, _ = one_board_share(np.array([.1, .2, .3, .4, .5, .6, .7]),
                             np.array([1, 2, 3, 9, 9, 9, 9]), group=9)
    assert one.tolist() == [.1, .2, .3, .6]
    for few in ([1, 1, 2, 2, 2, 7, 7, 7, 1, 1, 1], [7] * 11):  # as many as another, or alone
        assert one_board_share(scores, np.array(few), group=7)[0].tolist() == scores.tolist()
