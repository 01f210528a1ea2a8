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
    (entry,) = entries(tmp_path / "cache")
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


def entries(cache):
    """The cache's entries of crops (not their levels beside them)."""
    return [p for p in cache.rglob("*.npy") if not p.name.endswith(".level.npy")]


def test_an_all_zeros_entry_is_trusted(tmp_path):
    """A constant crop is standardised to zeros, so zeros are plausible crops: kept (the entry
    has no checksum to tell them from damage)."""
    clip = write_tone(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache")
    fresh = cache.get(clip)
    (entry,) = entries(tmp_path / "cache")
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


def test_an_entry_gives_the_crops_of_the_file_bit_for_bit_and_their_db(tmp_path):
    """An entry's crops are exactly those of clip_features, from the cache as when fresh (their
    digests tell a model's own takes); the crops in dB come back from each crop's level beside
    it, to float32 rounding. (Entries of dB crops standardised on the way out differed in the
    last bit for 2 of 3 of the demo's takes: numpy's sums round by where an array sits.)"""
    from tapcheck.features import clip_features

    for k in range(4):
        clip = write_tone(tmp_path / f"a{k}.wav", seed=k, duration_s=3.0, tap_at_s=1.0)
        cache = FeatureCache(tmp_path / "cache")
        fresh, cached = cache.get(clip), cache.get(clip)  # computed, then read back
        assert np.array_equal(fresh, clip_features(clip)) and np.array_equal(cached, fresh)
        db = cache.get(clip, standardized=False)
        assert np.allclose(db, clip_features(clip, standardized=False), atol=1e-3)
        assert db.std() > 1.0 and abs(float(cached.mean())) < 1e-5  # dB, and standardised


def test_a_format_warning_stays_one_from_the_cache(tmp_path):
    """The command line groups a format's warnings (resampled, channels averaged) over many
    files: read back from the cache they must still be of that kind, and a clip's own warning
    of its kind."""
    import warnings

    import soundfile as sf

    from tapcheck.errors import FormatWarning

    y = sf.read(write_tone(tmp_path / "a.wav"))[0]
    stereo = tmp_path / "b.wav"
    sf.write(stereo, np.stack([y, y], axis=1), 22050)
    cache = FeatureCache(tmp_path / "cache")
    for _ in range(2):  # computed, then from the cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache.get(stereo)
        kinds = {str(w.message).split(": ", 1)[1].split(" ")[0]: w.category for w in caught}
        assert kinds == {"2": FormatWarning, "resampled": FormatWarning}, kinds


@pytest.mark.parametrize("note", ["[1]", "null", '{"a": 1}', '[["TapcheckWarning"]]', "[[", ""])
def test_a_damaged_warnings_note_is_computed_again(tmp_path, note):
    """An entry's note of its file's warnings holding JSON of another shape ended `evaluate` in
    a traceback (QA); one cut short lost the warnings. Either way the entry is computed again,
    its warnings said, and the note stored again; a note left from before is removed once the
    file has nothing to say."""
    import warnings

    import soundfile as sf

    y = sf.read(write_tone(tmp_path / "a.wav"))[0]
    stereo = tmp_path / "b.wav"
    sf.write(stereo, np.stack([y, y], axis=1), 22050)
    cache = FeatureCache(tmp_path / "cache")

    def said(path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache.get(path)
        return sorted(str(w.message) for w in caught)

    fresh = said(stereo)
    assert len(fresh) == 2
    (entry,) = entries(tmp_path / "cache")
    stored = entry.with_suffix(".warn").read_text()
    entry.with_suffix(".warn").write_text(note)
    assert said(stereo) == fresh
    assert entry.with_suffix(".warn").read_text() == stored

    clean = write_tone(tmp_path / "c.wav")
    assert said(clean) == []
    (entry,) = [e for e in entries(tmp_path / "cache") if not e.with_suffix(".warn").exists()]
    entry.with_suffix(".warn").write_text(note)
    assert said(clean) == [] and not entry.with_suffix(".warn").exists()


def test_a_warnings_note_that_is_a_folder_turns_the_cache_off_with_a_warning(tmp_path):
    """A folder in the place of an entry's note gave a traceback once the entry was computed
    again (review): the cache is turned off for the run, said once, and the crops computed."""
    import soundfile as sf

    from tapcheck.errors import TapcheckWarning

    y = sf.read(write_tone(tmp_path / "a.wav"))[0]
    stereo = tmp_path / "b.wav"
    sf.write(stereo, np.stack([y, y], axis=1), 22050)
    fresh = FeatureCache(tmp_path / "cache").get(stereo)
    (entry,) = entries(tmp_path / "cache")
    entry.with_suffix(".warn").unlink()
    entry.with_suffix(".warn").mkdir()
    cache = FeatureCache(tmp_path / "cache")
    with pytest.warns(TapcheckWarning, match="feature cache not used"):
        assert np.array_equal(cache.get(stereo), fresh)
