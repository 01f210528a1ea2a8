"""Shared fixtures: real files, real models, tiny sizes.

Every test runs with its own recordings, models and cache folders (environment variables), so
nothing touches the user's data. The session-scoped tiny dataset and tiny model are built once
through the same code paths a user runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
# The real recordings live beside the project, not in it (their README asks so); a checkout
# elsewhere points at them with TAPCHECK_KNOCKS.
KNOCKS = Path(os.environ.get("TAPCHECK_KNOCKS", ROOT.parent / "shared" / "data" / "knocks"))


def knock_files(material: str | None = None) -> list[Path]:
    """The real knock recordings of ../shared/data/knocks; fails loudly when they are missing."""
    pattern = f"{material}/*.wav" if material else "*/*.wav"
    files = sorted(KNOCKS.glob(pattern))
    assert files, (f"real knock recordings not found under {KNOCKS}: check out the project "
                   "next to shared/, or set TAPCHECK_KNOCKS to the knocks folder")
    return files


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _isolated(request, tmp_path_factory, monkeypatch):
    """Each test gets empty recordings/models folders; the feature cache is shared per session.

    A passing test's folders are removed after it, as ``tmp_path_retention_policy = "failed"``
    removes its ``tmp_path``: kept, the suite's datasets and models filled 17 GB of /tmp a run,
    and a CI run on a fuller disk failed when it ran out (stop 53's)."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(base / "recordings"))
    monkeypatch.setenv("TAPCHECK_MODELS", str(base / "models"))
    monkeypatch.setenv("TAPCHECK_CACHE", str(_session_cache(tmp_path_factory)))
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(base / "inspections"))
    monkeypatch.delenv("TAPCHECK_DEBUG", raising=False)
    restored = _interruptible()
    if restored and _PREVIOUS:
        # which test leaves the process so is not yet known: say it where the suite's summary
        # shows it, so that a run of the whole suite names it
        warnings.warn(f"SIGINT was {restored} after {_PREVIOUS[-1]}; restored",
                      pytest.PytestWarning, stacklevel=1)
    _PREVIOUS[:] = [request.node.nodeid]
    yield
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(base, ignore_errors=True)


_PREVIOUS: list[str] = []


def _interruptible() -> str:
    """Children started by a test must get Ctrl-C as a user's shell gives it. An ignored SIGINT
    (or a blocked one) is inherited across exec, and then `record`/`import`/`listen` never see
    the SIGINT the interrupt tests send (the full suite ended with four such failures in stop 11,
    each passing alone): restore Python's own handler and unblock it before every test.

    Returns what was restored ("" when nothing was)."""
    import signal

    restored = []
    handler = signal.getsignal(signal.SIGINT)
    if handler in (signal.SIG_IGN, signal.SIG_DFL, None):
        restored.append({signal.SIG_IGN: "ignored", signal.SIG_DFL: "at its default"}.get(
            handler, "handled outside Python"))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if blocked & {signal.SIGINT, signal.SIGTERM}:
        restored.append("blocked")
    return " and ".join(restored)


def default_signals() -> None:
    """A child's ``preexec_fn``: Ctrl-C, ``kill`` and a hang-up as a user's terminal gives
    them. A suite run under ``nohup`` (or as a script's background job) hands its children an
    ignored SIGHUP (SIGINT), which tapcheck leaves ignored, as it should: the fresh-clone run
    under nohup failed the two tests that send SIGHUP."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


_CACHE: list[Path] = []


def _session_cache(factory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The study's boards, 5 takes per board side (90 takes), built by the synth rig."""
    from tapcheck.synth_dataset import make_study_dataset

    root = tmp_path_factory.mktemp("data") / "tiny"
    return make_study_dataset(root, takes=5, test_takes=1, seed=3)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset):
    """arcface-resnet18 trained for one epoch on the tiny dataset, saved as a model file."""
    from tapcheck.config import Config
    from tapcheck.featurecache import FeatureCache
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.training import train_model

    config = Config().replace("train", epochs=1, batch_size=16)
    cache = FeatureCache(tmp_path_factory.mktemp("model-cache"))
    checkpoint = train_model(tiny_dataset, config=config, cache=cache, progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("models") / "arcface-resnet18.pt", checkpoint)


@pytest.fixture(scope="session")
def small_train_set(tiny_dataset, tmp_path_factory) -> Path:
    """Boards 1 and 2 of the tiny dataset, both sides, training takes only (16 takes)."""
    from tapcheck.datasets import Dataset

    root = tmp_path_factory.mktemp("small") / "small"
    _copy_takes(tiny_dataset, tiny_dataset.select(board=[1, 2], split="train"),
                Dataset.create(root))
    return root


def _copy_takes(source, takes, target) -> None:
    """Copy takes (files and manifest rows) from one dataset into another."""
    for take in takes:
        path = target.root / take.path
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path_of(take), path)
        target.takes.append(take)
    target.write_manifest()


@pytest.fixture(scope="session")
def small_compare_set(tiny_dataset, small_train_set, tmp_path_factory) -> Path:
    """The small training set plus a test split: held-out takes of boards 1 and 2 (normal) and
    board 8 (defective) — what `compare` needs to score."""
    from tapcheck.datasets import Dataset

    root = shutil.copytree(small_train_set, tmp_path_factory.mktemp("compare") / "small")
    _copy_takes(tiny_dataset, tiny_dataset.select(board=[1, 2, 8], split="test"),
                Dataset.open(root))
    return root


@pytest.fixture
def one_thread(monkeypatch):
    """Train on one thread: on a machine shared by other jobs, two OpenMP threads spin-waiting
    for each other make a tiny epoch ten times slower (measured: 15 s against 1.5 s)."""
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # subprocesses; configure_threads respects it
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST_CONFIG = """\
# narrower crops and a small network: tests of the pipeline's plumbing, not of the model
[features]
n_frames = 32

[train]
batch_size = 8
embedding_dim = 32
"""


def copy_with_manifest(source: Path, target: Path, edit) -> Path:
    """A copy of the dataset folder ``source`` at ``target`` whose manifest rows (dicts of the
    CSV's columns) ``edit(rows)`` changes in place or replaces (by returning new rows)."""
    import csv

    from tapcheck.manifest import MANIFEST_FIELDS

    shutil.copytree(source, target)
    with open(target / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = edit(rows) or rows
    with open(target / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return target


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


def error_under_file_modes(lines: str, *, error: str = "TapcheckError") -> str:
    """The error ``lines`` of Python raise (``error``, from tapcheck.errors), as printed by a
    subprocess under :func:`obeying_file_modes`: what a user of that account is told."""
    import subprocess

    body = "\n".join("    " + line for line in lines.strip().splitlines())
    code = (f"from tapcheck.errors import {error}\ntry:\n{body}\nexcept {error} as e:\n"
            "    print(e)\n")
    result = subprocess.run([*obeying_file_modes(), sys.executable, "-c", code],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def obeying_file_modes() -> list[str]:
    """Command prefix under which file permissions apply, to root too.

    Root reads and writes any file whatever its mode (capabilities CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH); ``setpriv`` (util-linux, in every Debian) drops them from the child, so
    the kernel enforces a file's mode as it does for any user. Ordinary users need nothing.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test file permissions as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def as_another_user(uid: int, *, groups: tuple[int, ...] = ()) -> list[str]:
    """Command prefix that runs a child as user ``uid`` (its own group ``uid``), a member of
    ``groups``: a second account of a team. It may read and traverse any folder (this Python
    lies under /root), and writes as that user. Needs root: the suite runs as root in CI."""
    if os.geteuid() != 0:
        pytest.skip("acting as another user needs root (CI runs as root)")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to act as another user"
    return [setpriv, f"--reuid={uid}", f"--regid={uid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


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


#: how an explanation's sentence ends: its window, then maybe the clip's end or padding, then
#: maybe a second band
SENTENCE_END = (r"ms after the strike( \(the clip ends there\)| \(past the clip's end at \d+ ms: "
                r"padding\))?(; nearly as much at [0-9.-]+ kHz)?$")


def training_recordings(model) -> Path:
    """The folder holding a model file's training dataset. Set as ``TAPCHECK_RECORDINGS`` it is
    the recordings folder of the place the model was trained in, the one folder explanations
    read the model's own references from
    (:func:`tapcheck.explain_references.training_references`)."""
    import torch

    return Path(torch.load(model, weights_only=True)["dataset"]["path"]).parent


def separating_taps(folder: Path, taps) -> list[Path]:
    """New takes of the :func:`separating_model`'s boards (its seed, 11), as WAV files in
    ``folder``: ``taps`` lists (board, side, take number) — take numbers beyond its training's
    for taps it never heard."""
    from tapcheck.audio import write_wav
    from tapcheck.synth import study_boards, synthesize_tap, take_rng

    boards = {b.number: b for b in study_boards(seed=11)}
    return [write_wav(folder / f"board{number}-{k}.wav",
                      synthesize_tap(boards[number].board, side, rng=take_rng(11, number, side, k)),
                      sr=44100)
            for number, side, k in taps]


@pytest.fixture
def run_cli(capsys):
    """Run ``tapcheck ARGS`` in-process through the real entry point; returns (code, out, err)."""
    from tapcheck.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def script_module(name: str):
    """A script of scripts/ imported as a module (its functions are what its results rest on)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def separating_model(tmp_path_factory):
    """A model that tells normal from cracked synthetic boards (test_listen plays taps to
    it, test_explain explains it): arcface-resnet18, 6 epochs on 8 takes each of boards 1, 2
    (normal) and 5, 6 (cracked), seed 11, its kNN threshold refitted on 24 further normal takes
    at 1 % false alarms. Its training dataset stays in place, so explanations find their references.

    Returns the model file's path.
    """
    from tapcheck.config import Config
    from tapcheck.datasets import Dataset
    from tapcheck.detectors import KNNDetector
    from tapcheck.featurecache import FeatureCache
    from tapcheck.features import strike_crops
    from tapcheck.modelfile import load_model, save_checkpoint
    from tapcheck.models.base import represent_clips
    from tapcheck.synth import study_boards, synthesize_tap, take_rng
    from tapcheck.training import train_model

    seed = 11
    root = tmp_path_factory.mktemp("separating-model")
    boards = {b.number: b for b in study_boards(seed=seed)}

    def tap(number, side, take):
        return synthesize_tap(boards[number].board, side, rng=take_rng(seed, number, side, take))

    ds = Dataset.create(root / "dataset")
    for number, side in ((1, "left"), (2, "left"), (5, "left"), (6, "right")):
        for k in range(8):
            ds.add_take(tap(number, side, k), sr=44100, board=number, side=side,
                        label=boards[number].label, source="synth")
    config = Config().replace("train", epochs=6, batch_size=16)
    checkpoint = train_model(ds, config=config, cache=FeatureCache(root / "cache"),
                             progress=False)
    path = save_checkpoint(root / "separating.pt", checkpoint)
    model = load_model(path)

    def represent(taps):
        crops = np.stack([strike_crops(tap(*t)) for t in taps])
        return represent_clips(model.module, crops, "knn").numpy()

    # the detector's reference rows stay those of training (explanations map them to takes);
    # only the threshold is refitted on more normal takes
    calibration = [(n, s, k) for n, s in ((1, "left"), (2, "left")) for k in range(20, 32)]
    reference = model.detector.reference_.numpy()
    detector = KNNDetector(k=5, far=0.01).fit(reference, X_calib=represent(calibration))
    checkpoint["detector"] = detector.get_state()
    return save_checkpoint(path, checkpoint)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, through Playwright: the station's pages as users see them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def station_url(tmp_path, monkeypatch, request):
    """A station app on a free loopback port over a log of two judgments (ids 1 and 2); with
    a token when parametrised with one (``indirect=True``)."""
    from datetime import datetime

    from tapcheck.inspections import InspectionLog
    from tapcheck.station import Station

    with InspectionLog(tmp_path, create=True) as log:
        for verdict in ("NORMAL", "ANOMALOUS"):
            log.append(np.zeros(4410, np.float32), sr=44100,
                       when=datetime(2025, 5, 2, 10, 0).astimezone(), board=3, model="m",
                       model_path="m.pt", score=0.1, threshold=0.2, verdict=verdict)
    monkeypatch.chdir(tmp_path.parent)  # a relative log folder, as the station's default
    station = Station(None, tmp_path.name, explain=False)  # no judge: nothing is tapped here
    with served_station(station, tmp_path.name, token=getattr(request, "param", None)) as url:
        yield url


@contextlib.contextmanager
def served_station(station, root, *, token=None, port=0):
    """``station``'s app (its marks over the log in ``root``) served by uvicorn on a loopback
    port (a free one by default), in a thread, as `tapcheck station` serves it: yields its
    address."""
    import threading
    import time

    import uvicorn

    from tapcheck.http_deadline import uvicorn_config
    from tapcheck.marks import MarkBook
    from tapcheck.station_access import bind
    from tapcheck.webapp import make_app

    marks = MarkBook(root)
    sock = bind("127.0.0.1", port)
    app = make_app(station, marks, token=token, address=sock.getsockname()[:2])
    # served as `tapcheck station` serves it: with its deadline for slow requests
    server = uvicorn.Server(uvicorn_config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        station.close()
        marks.close()
        sock.close()
