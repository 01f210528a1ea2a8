"""Finding the strike."""

import numpy as np
import pytest

from tapcheck.errors import NoStrikeError
from tapcheck.strikes import find_strike


def test_find_strike_rejects_a_weak_bump():
    S = np.ones((513, 100), dtype=np.float32)
    # 10.8 dB: below the 15 dB a strike needs (not exactly 10 dB: the frames before would then
    # tie with the walk-back's 10 dB limit, decided by rounding)
    S[:, 50] = 12.0
    with pytest.raises(NoStrikeError):
        find_strike(S, min_strike_db=15.0)
    assert find_strike(S, min_strike_db=5.0) == 50
