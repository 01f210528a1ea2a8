"""Finding the strike."""

import numpy as np
import pytest

from tapcheck.errors import NoStrikeError
from tapcheck.strikes import find_strike, ring_down_db


def test_find_strike_rejects_a_weak_bump():
    S = np.ones((513, 100), dtype=np.float32)
    # 10.8 dB: below the 15 dB a strike needs (not exactly 10 dB: the frames before would then
    # tie with the walk-back's 10 dB limit, decided by rounding)
    S[:, 50] = 12.0
    with pytest.raises(NoStrikeError):
        find_strike(S, min_strike_db=15.0)
    assert find_strike(S, min_strike_db=5.0) == 50


def test_ring_down_is_the_first_frames_peak_less_the_crops_last_frames_mean():
    level = np.full(200, -60.0)
    level[50:170] = np.linspace(-10.0, -40.0, 120)  # a tap falling 30 dB over its crops
    level[52] = -5.0  # its peak, within the first 8 frames
    assert ring_down_db(level, 50, end=170) == pytest.approx(-5.0 - np.mean(level[154:170]))
    steady = np.full(200, -20.0)
    assert ring_down_db(steady, 50, end=170) == 0.0
    # crops past the clip's end: the clip's last frames; shorter than 24 frames: after the peak
    assert ring_down_db(level, 50, end=500) == pytest.approx(-5.0 - np.mean(level[184:200]))
    assert ring_down_db(level, 50, end=60) == pytest.approx(-5.0 - np.mean(level[58:60]))
