"""scripts/decay_probe.py's damping estimate: it reads a known loss factor off a ringing signal
(the figures of docs/results/decay-*.md rest on it)."""


import numpy as np
import pytest

from .conftest import script_module

@pytest.fixture(scope="module")
def probe():
    return script_module("decay_probe")


def ringing(eta: float, *, sr: int = 44100, freqs_hz=(689.0, 1378.0, 2412.0)) -> np.ndarray:
    """Modes at bin centres decaying at sigma = pi f eta after a strike at 0.5 s, over noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * sr)) / sr
    y = 1e-4 * rng.standard_normal(t.size)
    after = t >= 0.5
    for f in freqs_hz:
        y[after] += np.exp(-np.pi * f * eta * (t[after] - 0.5)) * np.sin(2 * np.pi * f * t[after])
    return y.astype(np.float32)


@pytest.mark.parametrize("eta", [0.005, 0.015, 0.03])
def test_damping_estimate_reads_the_loss_factor(probe, eta):
    assert probe.damping_estimate(ringing(eta), sr=44100) == pytest.approx(eta, rel=0.1)


def test_damping_estimate_without_ringing_is_nan(probe):
    noise = np.random.default_rng(1).standard_normal(44100).astype(np.float32) * 1e-3
    assert np.isnan(probe.damping_estimate(noise, sr=44100))
