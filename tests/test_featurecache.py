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


def test_a_cache_in_a_dataset_or_a_missing_home_is_not_written(tmp_path, monkeypatch):
    """TAPCHECK_CACHE inside a dataset put a tree of .npy files among its takes (the inspection
    log is refused there); HOME=/nonexistent was made, as mkdir -p. Now the crops are computed,
    nothing is written, and one warning says why."""
    from tapcheck.errors import TapcheckWarning

    clip = write_tone(tmp_path / "a.wav")
    dataset = tmp_path / "recordings" / "bench"
    dataset.mkdir(parents=True)
    (dataset / "manifest.csv").write_text("path,board,side,label,group,split,take\n")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path / "recordings"))
    home = tmp_path / "gone"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TAPCHECK_CACHE", raising=False)  # the default, ~/.cache/tapcheck
    for root, problem in [(dataset / "cache", f"lies in dataset {dataset}, among its takes"),
                          (None, f"lies in the home folder {home}, which does not exist")]:
        cache = FeatureCache(root)
        with pytest.warns(TapcheckWarning, match="feature cache not used") as warned:
            crops = cache.get(clip)
        assert problem in str(warned[0].message)
        assert crops.shape[0] == 2 and np.isfinite(crops).all()
    assert sorted(p.name for p in dataset.iterdir()) == ["manifest.csv"]
    assert not home.exists()
