"""Sounds listen hears and does not judge (tapcheck/live_refusals.py)."""

import numpy as np

from tapcheck.config import FeatureConfig
from tapcheck.features import strike_crops
from tapcheck.live_refusals import not_a_tap

SR = 44100


def _refusal(y):
    _, onset = strike_crops(y, sr=SR, return_onset=True)
    return not_a_tap(y, y, onset, label="10:00:00", sr=SR, device_sr=SR,
                     features=FeatureConfig())


def test_a_tap_is_judged_and_steady_noise_or_a_clipped_tap_is_not():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    tap = rng.normal(0, 1e-4, 2 * SR).astype(np.float32)
    tap[SR // 2:SR // 2 + SR] += (0.5 * np.sin(2 * np.pi * 900 * t) * np.exp(-30 * t)
                                  ).astype(np.float32)
    assert _refusal(tap) == (None, [])
    noise = rng.normal(0, 1e-4, 2 * SR).astype(np.float32)
    noise[SR // 2:] += rng.normal(0, 0.3, 2 * SR - SR // 2).astype(np.float32)
    refused, _ = _refusal(noise)
    assert refused.startswith("10:00:00: a sound that did not die away (") and refused.endswith(
        "dB down at the end of its crops; a tap rings down by 6 dB or more) — not judged: noise, "
        "not a tap; tap again when it is quiet")
    clipped = np.clip(tap * 50, -1, 1)
    refused, _ = _refusal(clipped)
    assert refused.startswith("10:00:00: is heavily clipped") and refused.endswith(
        "— not judged: lower the input gain (or strike softer) and tap again")


def test_a_burst_of_hiss_is_not_judged_and_every_real_knock_is():
    """A 0.3 s burst of white noise dies away when it stops, and listen logged it as an
    ANOMALOUS tap of the board in hand (QA); its spectrum is flat, which a tap's ringing is not.
    Every real knock (marble's the flattest) and a tap in white room noise are still judged."""
    import warnings

    from tapcheck.audio import load

    from .conftest import knock_files

    rng = np.random.default_rng(0)
    for ms in (30, 300):
        burst = rng.normal(0, 1e-4, 2 * SR).astype(np.float32)
        burst[SR // 2:SR // 2 + SR * ms // 1000] += rng.normal(0, 0.25, SR * ms // 1000)
        refused, _ = _refusal(burst)
        assert refused is not None and refused.startswith("10:00:00: a hiss, not a tap (its "
                                                          "spectrum is as flat as noise's"), ms
        assert refused.endswith("— not judged: tap again when it is quiet")
    for path in knock_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short or doubled knocks: judged with warnings
            y = load(path, sr=SR)
            assert _refusal(y)[0] is None, path
    t = np.arange(SR) / SR
    tap = rng.normal(0, 0.5 * 10 ** (-16 / 20), 2 * SR).astype(np.float32)  # 16 dB under
    tap[SR // 2:SR // 2 + SR] += (np.sin(2 * np.pi * 900 * t) * np.exp(-30 * t)).astype(np.float32)
    assert _refusal(tap)[0] is None
