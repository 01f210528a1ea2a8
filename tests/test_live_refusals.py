"""Sounds listen hears and does not judge (tapcheck/live_refusals.py)."""

import numpy as np

from tapcheck.config import FeatureConfig
from tapcheck.features import strike_crops
from tapcheck.live_refusals import not_a_tap

SR = 44100


def _refusal(y):
    _, onset = strike_crops(y, sr=SR, return_onset=True)
    return not_a_tap(y, y, onset, label="10:00:00", device_sr=SR, features=FeatureConfig())


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
