"""Shared fixtures: real files, real models, tiny sizes.

Every test runs with its own recordings, models and cache folders (environment variables), so
nothing touches the user's data. The session-scoped tiny dataset and tiny model are built once
through the same code paths a user runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
KNOCKS = ROOT.parent / "shared" / "data" / "knocks"


def knock_files(material: str | None = None) -> list[Path]:
    """The real knock recordings of ../shared/data/knocks; fails loudly when they are missing."""
    pattern = f"{material}/*.wav" if material else "*/*.wav"
    files = sorted(KNOCKS.glob(pattern))
    assert files, f"real knock recordings not found under {KNOCKS} (see DEVELOPERS.md)"
    return files


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Each test gets empty recordings/models folders; the feature cache is shared per session."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(base / "recordings"))
    monkeypatch.setenv("TAPCHECK_MODELS", str(base / "models"))
    monkeypatch.setenv("TAPCHECK_CACHE", str(_session_cache(tmp_path_factory)))
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(base / "inspections"))
    monkeypatch.delenv("TAPCHECK_DEBUG", raising=False)


_CACHE: list[Path] = []


def _session_cache(factory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The study's boards, 5 takes per board side (90 takes), built by the synth rig."""
    from tapcheck.synth import make_study_dataset

    root = tmp_path_factory.mktemp("data") / "tiny"
    return make_study_dataset(root, takes=5, test_takes=1, seed=3)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset):
    """arcface-resnet18 trained for one epoch on the tiny dataset, saved as a model file."""
    from tapcheck.config import Config
    from tapcheck.features import FeatureCache
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.training import train_model

    config = Config().replace("train", epochs=1, batch_size=16)
    cache = FeatureCache(tmp_path_factory.mktemp("model-cache"))
    checkpoint = train_model(tiny_dataset, config=config, cache=cache, progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("models") / "arcface-resnet18.pt", checkpoint)


def write_tone(path: Path, *, sr: int = 44100, duration_s: float = 1.0, channels: int = 1,
               tap_at_s: float | None = 0.3, amplitude: float = 0.5, seed: int = 0,
               subtype: str = "PCM_16") -> Path:
    """A synthetic knock (decaying partials after a click) or, with tap_at_s=None, quiet noise."""
    rng = np.random.default_rng(seed)
    n = int(sr * duration_s)
    y = rng.standard_normal(n) * 1e-3
    if tap_at_s is not None:
        start = int(tap_at_s * sr)
        t = np.arange(n - start) / sr
        ring = sum(np.sin(2 * np.pi * f * t) * np.exp(-t * d)
                   for f, d in ((410, 25), (980, 35), (1730, 45), (2900, 60)))
        y[start:] += amplitude * ring / np.abs(ring).max()
    data = np.repeat(y[:, None], channels, axis=1) if channels > 1 else y
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def pulse():
    """A real PulseAudio server with a null sink and room noise (tests/pulse.py).

    Tests that record through it fail, never skip, when it cannot start.
    """
    from .pulse import PulseServer

    try:
        server = PulseServer().start()
    except RuntimeError as e:
        pytest.fail(f"the audio tests need a PulseAudio server: {e}")
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    if "sounddevice" in sys.modules:  # PortAudio listed the devices before the server existed
        sd = sys.modules["sounddevice"]
        sd._terminate()
        sd._initialize()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def run_cli(capsys):
    """Run ``tapcheck ARGS`` in-process through the real entry point; returns (code, out, err)."""
    from tapcheck.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


os.environ.setdefault("TQDM_DISABLE", "1")
