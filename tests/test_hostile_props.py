"""Property-based hostile input: generated settings, manifests, model files, audio headers, logs.

Every example runs real commands through the real entry point, in a small world of folders
(a dataset, a model, a log, a cache, and an ``outside`` folder no command was given), and checks
the invariants of issue 13 for each:

- the exit status is 0, 1 or 2 and no exception escapes (no traceback);
- ``--json`` output is strict JSON (no bare NaN);
- nothing outside the folders given is written, and a file outside that a hostile manifest points
  at is not even read (its access time stays where it was set);
- every earlier take, the model file and every log row are still there, byte for byte.

The world is built once per module from synthetic tones (no synth rig, no big dataset) and the
examples are few, so the file runs in about a minute on two busy cores.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapcheck.cli import main
from tapcheck.config import Config
from tapcheck.datasets import MANIFEST_FIELDS, Dataset
from tapcheck.inspections import InspectionLog

from .conftest import FAST_CONFIG, write_tone

FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the world ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """dataset ds/ (2 boards x 2 sides x 4 takes), models/ae.pt, log/, outside/secret.wav."""
    root = tmp_path_factory.mktemp("world")
    ds = Dataset.create(root / "ds")
    for board in (1, 2):
        for side in ("left", "right"):
            for k in range(4):
                y = _tone(seed=board * 100 + k, shift=0.02 * board + (side == "right") * 0.01)
                ds.add_take(y, sr=44100, board=board, side=side, label="normal")
    (root / "fast.toml").write_text(FAST_CONFIG)
    assert main(["train", "--model", "ae", "--dataset", str(ds.root), "--epochs", "1",
                 "--config", str(root / "fast.toml"), "--out", str(root / "models" / "ae.pt")]
                ) == 0
    write_tone(root / "outside" / "secret.wav", duration_s=3.0)
    write_tone(root / "in" / "clip.wav", duration_s=1.5)
    with InspectionLog(root / "log", create=True) as log:
        for i in range(3):
            log.append(np.zeros(64, np.float32), sr=44100, when=datetime.now(timezone.utc),
                       board=i, model="ae", model_path="ae.pt", score=0.1 * i, threshold=0.15,
                       verdict="NORMAL")
    return root


def _tone(*, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(44100 * 1.5)) / 44100
    start = int(0.3 * 44100)
    y = rng.standard_normal(len(t)) * 1e-3
    ring = sum(np.sin(2 * np.pi * f * (1 + shift) * t[:-start]) * np.exp(-t[:-start] * d)
               for f, d in ((410, 25), (980, 35), (1730, 45)))
    y[start:] += 0.5 * ring / np.abs(ring).max()
    return y.astype(np.float32)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


@contextlib.contextmanager
def _guarded(world: Path, *, writable: tuple[str, ...] = ()):
    """Everything in the world but ``writable`` folders (and the cache) must stay as it was;
    the outside secret must not be read."""
    secret = world / "outside" / "secret.wav"
    kept = {top: _files(world / top) for top in ("ds", "models", "log", "outside", "in")}
    os.utime(secret, (0, secret.stat().st_mtime))  # relatime: a read would move the atime
    tops = set(os.listdir(world))
    yield
    assert secret.stat().st_atime == 0, "a file outside the dataset was read"
    for top, before in kept.items():
        after = _files(world / top)
        if top in writable:  # new files may appear; none that was there may change or go
            # (the manifest gains rows at its end: every earlier row stays as it was)
            assert after["manifest.csv"].startswith(before.pop("manifest.csv")), top
            assert {k: after.get(k) for k in before} == before, top
            assert not [k for k in after if k.endswith(".tmp")], top
        else:
            assert after == before, top
    assert set(os.listdir(world)) - tops <= {"new", "cfg"}, set(os.listdir(world)) - tops


def _run(*args) -> tuple[int, str, str]:
    """``tapcheck ARGS`` in-process; an exception escaping main fails the example."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([os.fspath(a) for a in args])
    assert code in (0, 1, 2), (args, code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def _strict_json(line: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON output: {line}")
    return json.loads(line, parse_constant=refuse)


# -- settings -------------------------------------------------------------------------------------

_KEYS = [(section, key) for section, values in Config().to_dict().items() for key in values]
_VALUES = st.one_of(
    st.integers(-3, 3), st.integers(-2**63, 2**63 - 1), st.sampled_from([0, 1, 2**31, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0]),
    st.booleans(), st.text(max_size=8), st.sampled_from(["sgd", "adam", "knn", "cosine", "ae"]))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(
            value) else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


@FAST
@given(changes=st.dictionaries(st.sampled_from(_KEYS), _VALUES, min_size=1, max_size=4))
def test_generated_settings(world, changes):
    tables: dict[str, list[str]] = {}
    for (section, key), value in changes.items():
        tables.setdefault(section, []).append(f"{key} = {_toml(value)}")
    config = world / "cfg" / "c.toml"
    config.parent.mkdir(exist_ok=True)
    config.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in
                              tables.items()))
    shutil.rmtree(world / "new", ignore_errors=True)
    with _guarded(world):
        code, _, _ = _run("import", world / "in" / "clip.wav", "--dataset", world / "new",
                          "--board", "1", "--side", "left", "--label", "normal", "--config",
                          config)
        code, out, _ = _run("judge", world / "in" / "clip.wav", "--model",
                            world / "models" / "ae.pt", "--config", config, "--json")
        for line in out.splitlines():
            _strict_json(line)


# -- manifests ------------------------------------------------------------------------------------

_PATHS = st.one_of(
    st.sampled_from(["board01/left/take001.wav", "board02/right/take004.wav",
                     "../outside/secret.wav", "../../outside/secret.wav", "", "/etc/hostname",
                     "board01/../../outside/secret.wav", "board01/left/", "./board01/x.wav",
                     "board01\\left\\take001.wav"]),
    st.text(min_size=1, max_size=12))
_CELLS = st.one_of(st.sampled_from(["1", "0", "-1", "nan", "inf", "-inf", "", "1e9", "abc",
                                    "99999999999999999999", "3.5"]), st.text(max_size=6))


@st.composite
def _rows(draw):
    row = {"path": draw(_PATHS), "board": draw(_CELLS), "side": draw(
        st.sampled_from(["left", "right", "../x", "", "é"])),
        "label": draw(st.sampled_from(["normal", "defect", "x"])), "group": "",
        "split": draw(st.sampled_from(["train", "test", "dev"])), "take": draw(_CELLS),
        "recorded_at": "", "sample_rate": draw(_CELLS), "duration_s": draw(_CELLS),
        "source": "", "peak_dbfs": draw(_CELLS)}
    return row


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=st.lists(_rows(), min_size=1, max_size=3))
def test_generated_manifest_rows(world, rows):
    shutil.rmtree(world / "new", ignore_errors=True)
    target = Path(shutil.copytree(world / "ds", world / "new"))
    with open(target / "manifest.csv", "a", encoding="utf-8", newline="") as f:
        csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n").writerows(rows)
    with _guarded(world):
        _run("info", target)
        _run("doctor", "--dataset", target)
        code, _, err = _run("import", world / "in" / "clip.wav", "--dataset", target, "--board",
                            "5", "--side", "left", "--label", "normal")
        assert code in (0, 2)


# -- model files ----------------------------------------------------------------------------------

def _paths(checkpoint: dict) -> list[tuple]:
    found = []
    for key, value in checkpoint.items():
        found.append((key,))
        if isinstance(value, dict):
            found += [(key, *rest) for rest in _paths(value)]
    return found


_JUNK = st.one_of(
    st.none(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.lists(st.integers(-3, 3), max_size=3), st.just({}),
    st.sampled_from(["knn", "prob", "recon"]),
    st.builds(lambda shape, fill: torch.full(shape, fill),
              st.lists(st.integers(0, 3), max_size=2).map(tuple),
              st.sampled_from([0.0, 1.0, math.nan, math.inf])))


@FAST
@given(data=st.data())
def test_generated_model_file_mutations(world, data):
    checkpoint = torch.load(world / "models" / "ae.pt", weights_only=True)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(checkpoint)))
        target = checkpoint
        for key in path[:-1]:
            target = target[key]
        if data.draw(st.booleans()):
            target[path[-1]] = data.draw(_JUNK)
        else:
            del target[path[-1]]
        if not isinstance(target, dict):
            break
    bad = world / "cfg" / "mutant.pt"
    bad.parent.mkdir(exist_ok=True)
    torch.save(checkpoint, bad)
    with _guarded(world):
        code, out, err = _run("judge", world / "in" / "clip.wav", "--model", bad, "--json")
        for line in out.splitlines():
            verdict = _strict_json(line)
            if verdict["verdict"] == "NORMAL":  # only ever on a real, finite comparison
                assert math.isfinite(verdict["score"]) and verdict["score"] <= verdict[
                    "threshold"]


# -- audio headers --------------------------------------------------------------------------------

@FAST
@given(edits=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 2000)))
def test_generated_audio_headers(world, edits, cut):
    data = bytearray((world / "in" / "clip.wav").read_bytes())
    for offset, byte in edits:
        data[offset] = byte
    if cut is not None:
        data = data[:cut]
    clip = world / "cfg" / "hostile.wav"
    clip.parent.mkdir(exist_ok=True)
    clip.write_bytes(bytes(data))
    with _guarded(world, writable=("ds",)):
        code, out, _ = _run("judge", clip, "--model", world / "models" / "ae.pt", "--json")
        for line in out.splitlines():
            _strict_json(line)
        _run("import", clip, "--dataset", world / "ds", "--board", "3", "--side", "left",
             "--label", "normal")


# -- log rows -------------------------------------------------------------------------------------

_SQL_VALUES = st.one_of(st.none(), st.integers(-5, 10**12), st.floats(allow_nan=False),
                        st.text(max_size=8), st.binary(max_size=4),
                        st.sampled_from(["NORMAL", "ANOMALOUS", "2025-05-01T06:00:00+00:00"]))


@FAST
@given(rows=st.lists(st.fixed_dictionaries({  # NOT NULL columns get values, of any type
    "time": _SQL_VALUES.filter(lambda v: v is not None), "board": _SQL_VALUES,
    "score": _SQL_VALUES.filter(lambda v: v is not None),
    "threshold": _SQL_VALUES.filter(lambda v: v is not None),
    "verdict": st.sampled_from(["NORMAL", "ANOMALOUS"]),
    "latency_ms": _SQL_VALUES, "device": _SQL_VALUES}), min_size=1, max_size=3))
def test_generated_log_rows(world, rows):
    shutil.rmtree(world / "new", ignore_errors=True)
    folder = Path(shutil.copytree(world / "log", world / "new"))
    with contextlib.closing(sqlite3.connect(folder / "inspections.sqlite")) as db:
        for row in rows:
            db.execute("INSERT INTO inspections (time, board, model, model_path, score, "
                       "threshold, verdict, clip, latency_ms, device) VALUES (?, ?, 'ae', "
                       "'ae.pt', ?, ?, ?, 'clips/x.wav', ?, ?)",
                       [row[k] for k in ("time", "board", "score", "threshold", "verdict",
                                         "latency_ms", "device")])
        db.commit()
    before = _files(folder)
    old = os.environ.get("TAPCHECK_INSPECTIONS")
    os.environ["TAPCHECK_INSPECTIONS"] = str(folder)
    try:
        with _guarded(world):
            _run("log")
            _, out, _ = _run("log", "--json")
            for line in out.splitlines():
                _strict_json(line)
    finally:
        if old is None:
            os.environ.pop("TAPCHECK_INSPECTIONS", None)
        else:
            os.environ["TAPCHECK_INSPECTIONS"] = old
    assert _files(folder) == before  # reading changed nothing, not even the bad rows
