"""scripts/odd_take.py's bound: how often a calibration of n clips like the normal test takes
lands within 0.05 of the recall at their 95th percentile (docs/results/odd-take.md rests on it)."""

import numpy as np
import pytest

from .conftest import script_module


@pytest.fixture(scope="module")
def odd_take():
    return script_module("odd_take")


def test_separated_scores_meet_the_target_from_any_calibration(odd_take):
    # every defect scores far above every normal clip: any threshold near the normal scores
    # finds all of them
    rng = np.random.default_rng(0)
    normal, defect = rng.lognormal(0, 0.3, 30), np.full(40, 100.0)
    assert odd_take.exchangeable_chance(normal, defect, n_clips=9, far=0.05, fit="lognormal",
                                        n_draws=200) == 1.0


def test_overlapping_scores_miss_it_often_even_from_many_clips(odd_take):
    # defects spread over the normal scores' tail: the recall moves with the threshold, a
    # threshold from 9 clips scatters more than one from 60, and even 600 clips miss the target
    # often, because its reference, the 95th percentile of 30 test takes, scatters itself
    rng = np.random.default_rng(1)
    normal, defect = rng.lognormal(0, 0.5, 30), rng.lognormal(1.0, 0.5, 60)
    chance = {n: odd_take.exchangeable_chance(normal, defect, n_clips=n, far=0.05,
                                              fit="lognormal", n_draws=400)
              for n in (9, 60, 600)}
    assert chance[9] < chance[60] < 0.6
    assert chance[600] < 0.6


def test_the_odd_take_set_is_built_with_its_odd_take_among_the_calibration_clips(
        odd_take, tiny_dataset, tmp_path, monkeypatch):
    # the script's dataset builder writes synthetic takes itself: it broke silently once, when
    # the writer's signature changed under it (nothing ran it but the script)
    monkeypatch.setattr(odd_take, "TRAIN_TAKES", 8)
    monkeypatch.setattr(odd_take, "TEST_TAKES", 2)
    ds, odd = odd_take.odd_take_set(tmp_path / "odd", tiny_dataset, seed=0)
    normal = ds.select(board=1, side="left")
    assert [t.split for t in normal].count("train") == 8
    assert [t.split for t in normal].count("test") == 2
    assert {t.board for t in ds.select(split="test", label="defect")} == {7, 8}
    assert odd.split == "train" and odd in normal
    assert ds.path_of(odd).is_file()
