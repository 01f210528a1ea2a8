"""The feature cache: a damaged entry is recomputed, never handed on."""

from __future__ import annotations

import numpy as np
import pytest

from tapcheck.featurecache import FeatureCache

from .conftest import write_tone


@pytest.mark.parametrize("damage", ["nan", "inf", "one nan", "cut short", "another shape"])
def test_a_damaged_entry_is_recomputed_and_stored_again(tmp_path, damage):
    """A NaN entry used to be returned as crops: `evaluate` then died in metrics.pauc with
    "Input contains NaN" and a traceback. Crops of real audio are finite and of the settings'
    shape, so anything else is damage, recomputed as a truncated entry already was."""
    clip = write_tone(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache")
    fresh = cache.get(clip)
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    if damage == "cut short":
        entry.write_bytes(entry.read_bytes()[:200])
    else:
        bad = {"nan": np.full_like(fresh, np.nan), "inf": np.full_like(fresh, -np.inf),
               "one nan": np.where(np.arange(fresh.size).reshape(fresh.shape) == 7, np.nan,
                                   fresh).astype(np.float32),
               "another shape": fresh[:, :-1]}[damage]
        np.save(entry, bad)
    assert np.array_equal(cache.get(clip), fresh)
    assert np.array_equal(np.load(entry), fresh)  # repaired on disk, not recomputed each time


def test_an_all_zeros_entry_is_trusted(tmp_path):
    """A constant crop is standardised to zeros, so zeros are plausible crops: kept (the entry
    has no checksum to tell them from damage)."""
    clip = write_tone(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache")
    fresh = cache.get(clip)
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    np.save(entry, np.zeros_like(fresh))
    assert not cache.get(clip).any()
