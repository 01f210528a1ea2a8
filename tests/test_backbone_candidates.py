"""scripts/backbone_candidates.py measures each candidate network's training speed: every one
must train a step (the study's ResNet18 failed, its last layer is fc5, not fc; nothing ran it)."""

import pytest

from .conftest import script_module

CANDIDATES = script_module("backbone_candidates").CANDIDATES


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_every_candidate_trains_a_step(name):
    script = script_module("backbone_candidates")
    assert script.train_samples_per_s(script.CANDIDATES[name](), batch=4, steps=1) > 0
