"""scripts/noise_robustness.py: the noise it adds and the tables docs/results/noise-demo.md
rests on."""

import numpy as np
import pytest

from .conftest import script_module


@pytest.fixture(scope="module")
def noise():
    return script_module("noise_robustness")


def test_the_noise_added_has_the_stated_level_and_none_adds_nothing(noise):
    silence = np.zeros(3 * 44100, dtype=np.float32)
    rms = float(np.sqrt(np.mean(noise.noisy(silence, -40.0, seed=1) ** 2)))
    assert 20 * np.log10(rms) == pytest.approx(-40.0, abs=0.05)
    assert noise.noisy(silence, None, seed=1) is silence
    assert not np.array_equal(noise.noisy(silence, -40.0, seed=1),
                              noise.noisy(silence, -40.0, seed=2))


def test_the_summary_counts_taps_by_how_far_below_the_training_strike_rise_they_stood(noise):
    clips = [{"rise_db": 55.0, "flagged": False, "defect": False},   # 0 dB less
             {"rise_db": 40.0, "flagged": True, "defect": False},    # 15 dB less
             {"rise_db": 39.5, "flagged": False, "defect": False},   # 15.5 dB less
             {"rise_db": 40.0, "flagged": True, "defect": True}]
    row = {"noise_dbfs": -45.0, "refused_no_strike": 0.0, "median_rise_db": 40.0,
           "auc": 0.9, "healthy_known_flagged": 0.5, "healthy_unseen_flagged": None,
           "defective_found": 1.0, "clips": clips}
    out, page = noise.summary({"model": "m.pt", "dataset": "d", "threshold": 0.1, "takes": 4,
                               "seed": 0, "training_rise_db": 55.0, "rows": [row]})
    assert "clips" not in out["rows"][0]
    bins = {tuple(b["deficit_db"]): b for b in out["by_deficit"]}
    assert bins[(-100, 4)]["healthy"] == 1 and bins[(-100, 4)]["healthy_flagged"] == 0.0
    assert bins[(14, 16)]["healthy"] == 2 and bins[(14, 16)]["healthy_flagged"] == 0.5
    assert bins[(14, 16)]["defective_found"] == 1.0 and bins[(4, 8)]["defective_found"] is None
    assert "| -45 | 0.0 % | 40.0 | 0.900 | 50.0 % | – | 100.0 % |" in page
    assert "| 14 to 16 | 2 | 50.0 % | 1 | 100.0 % |" in page
