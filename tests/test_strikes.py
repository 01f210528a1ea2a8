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


def _taps(*gains, seed=0):
    """A healthy demo-board take again and again, each time scaled by a gain (3 s each)."""
    from tapcheck.synth import study_boards, synthesize_tap, take_rng

    board = {b.number: b for b in study_boards(seed=seed)}[1].board
    take = synthesize_tap(board, "left", rng=take_rng(seed, 1, "left", 0))
    return np.concatenate([g * take for g in gains]).astype(np.float32)


@pytest.mark.parametrize("gains, expected", [
    ((1.0,), [0.0]),  # one tap
    ((1.0, 0.3, 0.3), [0.0, 3.0, 6.0]),  # a board's three taps in one file, two 10 dB softer
    ((0.3, 1.0), [0.0, 3.0]),  # the loudest comes second
    ((1.0, 0.03), [0.0]),  # 30 dB softer: beyond OTHER_STRIKE_DB, not counted ("at least")
])
def test_the_taps_of_a_clip_are_its_knocks_a_second_or_more_apart(gains, expected):
    """QA: a file of a board's three taps was judged NORMAL by its loudest, where a softer tap
    alone scored ANOMALOUS, and nothing said the clip held more."""
    from tapcheck.strikes import tap_onsets_s

    y = _taps(*gains)
    taps = tap_onsets_s(y, sr=44100)
    assert len(taps) == len(expected)
    assert np.allclose(taps - taps[0], expected, atol=0.01), taps
    assert 0.0 < taps[0] < 3.0


def test_taps_of_several_knocks_each_are_told_apart_on_real_knocks():
    """Review: a hand's knock is 2-6 knocks within 0.8 s; measured from the knock before, the
    knocks of three real clips in one file chained into one tap (6 of 18 files warned of).
    From each tap's first knock, every file of three clips holds more than one tap, and no
    single clip does."""
    from tapcheck.audio import load
    from tapcheck.strikes import tap_onsets_s

    from .conftest import KNOCKS

    for material in ("wood", "ceramic", "marble"):
        clips = [load(KNOCKS / material / f"{i}.wav", sr=44100) for i in range(1, 19)]
        assert all(len(tap_onsets_s(y, sr=44100)) == 1 for y in clips), material
        for k in range(0, 18, 3):
            taps = tap_onsets_s(np.concatenate(clips[k:k + 3]), sr=44100)
            assert len(taps) >= 2 and np.all(np.diff(taps) >= 1.0), (material, k, taps)


def test_a_knock_inside_the_crops_is_no_second_tap_and_silence_holds_none():
    from tapcheck.strikes import other_knocks, strike_onset, tap_onsets_s
    from tapcheck.spectrogram import frame_levels, frame_power

    y = _taps(1.0)
    onset = int(np.argmax(np.abs(y)))
    y[onset + 4410:] += 0.5 * y[onset - 100:len(y) - 4410 - 100]  # itself again 0.1 s later
    level = frame_levels(frame_power(y, n_fft=1024, hop_length=128))
    assert other_knocks(level, strike_onset(level, max_back=8))  # warned of as the crops are made
    assert len(tap_onsets_s(y, sr=44100)) == 1
    assert len(tap_onsets_s(np.zeros(3 * 44100, np.float32), sr=44100)) == 0
    # a click in the clip's last frames (an editor's cut, a GSM encoder's burst) is no second
    # tap: it was warned of as one (QA)
    clicked = _taps(1.0)
    clicked[-88:-44] += 10 ** (-30 / 20)
    assert len(tap_onsets_s(clicked, sr=44100)) == 1
