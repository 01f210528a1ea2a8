"""The catalogue of bad input: every wrong file gets one clear line, and nothing is lost.

Three tables of bad inputs — clips, model files, datasets — each row a function that makes the
bad thing in a folder, and the fragment of the one-line error it must get (or, for what tapcheck
accepts, the warning). Each table runs through every command that reads such input
(:data:`CLIP_COMMANDS`, :data:`MODEL_COMMANDS`, :data:`DATASET_COMMANDS`): a command is a function
that turns the bad input into the command line to run. A new command joins the catalogue as one
entry there, as ``compare`` did::

    DATASET_COMMANDS["compare"] = lambda root, ctx: ["compare", "--dataset", root, ...]

Every case asserts: exit status 2, a line ``tapcheck: error: <the file>: <problem> — <fix>``, no
traceback, and nothing written (no take imported, no model file); accepted cases assert the
command's success status and the warning line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import torch

from tapcheck.datasets import Dataset, Take
from tapcheck.modelfile import save_checkpoint

from .conftest import FAST_CONFIG, obeying_file_modes, write_tone

SR = 44100


@dataclass(frozen=True)
class Case:
    """A bad input: ``make(folder)`` creates it and returns the path the message must name."""

    name: str
    make: Callable[[Path], Path]
    error: str | None  # fragment of the one-line error; None: accepted
    warning: str | None = None  # fragment of the warning an accepted input gets
    # commands that answer otherwise: command -> (error, warning)
    otherwise: dict[str, tuple[str | None, str | None]] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    def expected(self, command: str) -> tuple[str | None, str | None]:
        return self.otherwise.get(command, (self.error, self.warning))


# -- clips ---------------------------------------------------------------------------------------

def _tap(path: Path, **kwargs) -> Path:
    return write_tone(path, duration_s=3.0, tap_at_s=1.0, **kwargs)


def _tap_samples(n: int = 3 * SR, at_s: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    y = np.random.default_rng(0).standard_normal(n) * 1e-3
    i = int(at_s * SR)
    t = np.arange(min(SR // 2, n - i)) / SR
    y[i:i + len(t)] += amplitude * np.sin(2 * np.pi * 900 * t) * np.exp(-30 * t)
    return y


def _write(path: Path, y: np.ndarray, *, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(path, y, sr, subtype=subtype)
    return path


def _truncated(d: Path) -> Path:
    path = _tap(d / "truncated.wav")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _with_sample(value: float, name: str):
    def make(d: Path) -> Path:
        y = _tap_samples()
        y[SR // 2] = value
        return _write(d / name, y, subtype="FLOAT")
    return make


def _clipped(gain: float, name: str):
    def make(d: Path) -> Path:
        return _write(d / name, np.clip(_tap_samples() * gain, -1, 1))
    return make


def _knocks(*knocks: tuple[float, float], name: str):
    def make(d: Path) -> Path:
        y = np.zeros(3 * SR)
        for at_s, amplitude in knocks:
            y += _tap_samples(at_s=at_s, amplitude=amplitude)
        return _write(d / name, y)
    return make


def _ten_minutes(d: Path) -> Path:
    y = np.zeros(600 * SR, dtype=np.int16)
    y[:3 * SR] = (_tap_samples() * 32767).astype(np.int16)
    return _write(d / "ten-minutes.wav", y)


def _folder(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _file(name: str, data: bytes):
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


CLIPS = [
    Case("missing", lambda d: d / "missing.wav", "file not found"),
    # a take's row naming a folder is told to fix the row, not to pass the files inside it
    Case("a folder", _folder, "is a folder, not an audio file", otherwise={
        c: ("is a folder, not a take's audio file", None) for c in ("train", "compare")}),
    Case("empty", _file("empty.wav", b""), "is empty (0 bytes)"),
    Case("truncated WAV", _truncated, "is truncated"),
    Case("random bytes", _file("random.wav", np.random.default_rng(0).bytes(20000)),
         "is not a readable audio file (Format not recognised.)"),
    # 100 random bytes that begin like an MP3 frame: libsndfile said "File does not exist or is
    # not a regular file (possibly a pipe?)" of a file that exists (QA)
    Case("bytes like an MP3 frame", _file("mp3ish.wav", bytes.fromhex(
        "fff397a66cd7cdee3f78680823736703ab67b60c3ec1ebdca63f781418c1983188a5645397bc1f8dd947f3"
        "3e85988ab0024f07931f5d1ba0c59b83736341f1badeb402ba59a08c84ec60c35abd6fc8af8309604e3e04"
        "509a3bfa4436836ba2d58612c51a")),
         "is not a readable audio file (its bytes are no audio format libsndfile knows)"),
    Case("NaN samples", _with_sample(np.nan, "nan.wav"), "contains NaN or infinite samples"),
    Case("Inf samples", _with_sample(np.inf, "inf.wav"), "contains NaN or infinite samples"),
    Case("all zeros", lambda d: _write(d / "zeros.wav", np.zeros(3 * SR)),
         "is silent (every sample is 0)"),
    Case("DC offset only", lambda d: _write(d / "dc.wav", np.full(3 * SR, 0.3)),
         "holds only a constant offset (+0.300"),
    Case("DC offset under a tap", lambda d: _write(d / "dc-tap.wav", _tap_samples() + 0.05),
         None, "DC offset of +0.050 removed"),
    Case("heavy clipping", _clipped(20.0, "clipped.wav"), "is heavily clipped"),  # 56 ms
    Case("clipping, 11 ms", _clipped(4.0, "clip-11ms.wav"), "is heavily clipped"),
    Case("clipping, 2 ms", _clipped(2.5, "clip-2ms.wav"), None, "clipped for 2.1 ms"),
    Case("stereo", lambda d: _tap(d / "stereo.wav", channels=2), None, "2 channels averaged"),
    Case("8 kHz", lambda d: _tap(d / "8k.wav", sr=8000), "is sampled at 8000 Hz"),
    Case("96 kHz", lambda d: _tap(d / "96k.wav", sr=96000), None, "resampled from 96000 Hz"),
    Case("10 MHz header", lambda d: _write(d / "10mhz.wav", _tap_samples(), sr=10_000_000),
         "is sampled at 10000000 Hz, faster than the 384000 Hz tapcheck reads"),
    Case("0.05 s", lambda d: write_tone(d / "short.wav", duration_s=0.05, tap_at_s=0.01),
         "is too short"),
    Case("10 minutes", _ten_minutes, "is 600 s long"),
    Case("several strikes, apart", _knocks((0.3, 0.3), (2.0, 0.5), name="apart.wav"), None),
    Case("several strikes, close", _knocks((1.0, 0.5), (1.08, 0.4), name="close.wav"), None,
         "more knock(s) inside the crops"),
    Case("non-ASCII path", lambda d: _tap(d / "Brett-ä-板" / "Klopfen-ß.wav"), None),
]


@dataclass
class Context:
    """What the commands need besides the bad input."""

    folder: Path
    model: Path
    clip: Path  # a good clip
    train_set: Path  # a small dataset to add a bad take to
    compare_set: Path  # the same with a test split, for compare
    fast_config: Path

    def dataset_with(self, bad: Path, *, name: str = "with-bad-take",
                     base: Path | None = None) -> tuple[Path, Path]:
        """A copy of the small dataset plus one training take: ``bad`` moved in as its file."""
        root = shutil.copytree(base or self.train_set, self.folder / name)
        take = root / "board09" / "left" / "take001.wav"
        take.parent.mkdir(parents=True)
        if os.path.lexists(bad):
            shutil.move(bad, take)
        ds = Dataset.open(root)
        ds.takes.append(Take(path="board09/left/take001.wav", board=9, side="left",
                             label="normal", group="", split="train", take=1, recorded_at="",
                             sample_rate=SR, duration_s=3.0, source="test", peak_dbfs=-6.0))
        ds.write_manifest()
        return root, take


def _import(bad: Path, ctx: Context) -> tuple[list, Path]:
    return ["import", bad, "--dataset", "bench", "--board", "1", "--side", "left",
            "--label", "normal"], bad


def _judge(bad: Path, ctx: Context) -> tuple[list, Path]:
    return ["judge", bad, "--model", ctx.model], bad


def _train(bad: Path, ctx: Context) -> tuple[list, Path]:
    root, take = ctx.dataset_with(bad, name=f"dataset-{bad.stem}")  # its name in the path
    return ["train", "--dataset", root, "--epochs", "1", "--config", ctx.fast_config,
            "--out", ctx.folder / "out" / "model.pt"], take


def _compare_args(root: Path, ctx: Context) -> list:
    return ["compare", "--dataset", root, "--models", "ae", "--epochs", "1", "--config",
            ctx.fast_config, "--out", ctx.folder / "out" / "report"]


def _compare(bad: Path, ctx: Context) -> tuple[list, Path]:
    root, take = ctx.dataset_with(bad, name=f"dataset-{bad.stem}", base=ctx.compare_set)
    return _compare_args(root, ctx), take


# command -> (bad clip, context) -> (command line, the file its message must name)
CLIP_COMMANDS = {"import": _import, "judge": _judge, "train": _train, "compare": _compare}
SUCCESS = {"import": {0}, "judge": {0, 1}, "train": {0}, "info": {0},  # 1 = anomalous verdict
           "compare": {0}}


@pytest.fixture
def ctx(tmp_path, tiny_model, tiny_dataset, small_train_set, small_compare_set,
        one_thread) -> Context:
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    return Context(folder=tmp_path, model=tiny_model, clip=tiny_dataset.path_of(
        tiny_dataset.takes[0]), train_set=small_train_set, compare_set=small_compare_set,
        fast_config=config)


def _assert_one_clear_line(code: int, out: str, err: str, *, named: Path, fragment: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    # "<file>: problem" or, for a manifest row, "<file>:<line>: problem"
    names = re.compile(re.escape(f"tapcheck: error: {named}") + r"(:\d+)?: (.*)")
    mine = [m for m in map(names.fullmatch, lines) if m]
    assert len(mine) == 1, err  # ONE line for the file ...
    problem, _, fix = mine[0].group(2).partition(" — ")
    assert fragment in problem, err  # ... saying what is wrong ...
    assert fix, err  # ... and what to do about it


def _assert_accepted(command: str, code: int, out: str, err: str, *, warning: str | None):
    assert code in SUCCESS[command], (out, err)
    assert "tapcheck: error" not in err and "Traceback" not in err
    if warning:
        assert any(ln.startswith("tapcheck: warning: ") and warning in ln
                   for ln in err.splitlines()), err


@pytest.mark.parametrize("case", CLIPS, ids=str)
@pytest.mark.parametrize("command", CLIP_COMMANDS)
def test_bad_clip(command, case, ctx, run_cli):
    bad = case.make(ctx.folder / "inputs")
    args, named = CLIP_COMMANDS[command](bad, ctx)
    code, out, err = run_cli(*args)
    error, warning = case.expected(command)
    if error:
        _assert_one_clear_line(code, out, err, named=named, fragment=error)
        assert not (ctx.folder / "out" / "model.pt").exists()
        assert not (ctx.folder / "out" / "report").exists()
        if command == "import":
            assert "imported 0 of 1" in out and not Dataset.create("bench").takes
    else:
        _assert_accepted(command, code, out, err, warning=warning)
        if command == "judge":
            assert f"{bad}" in out.splitlines()[0]
        if command == "import":
            assert "imported 1 of 1" in out and len(Dataset.open("bench").takes) == 1
        if command == "train":
            assert (ctx.folder / "out" / "model.pt").is_file()
        if command == "compare":
            assert (ctx.folder / "out" / "report" / "index.html").is_file()


def _run(args: list, *, prefix: list[str] = (), env: dict | None = None):
    result = subprocess.run([*prefix, sys.executable, "-m", "tapcheck", *map(os.fspath, args)],
                            capture_output=True, env=env)
    return (result.returncode, result.stdout.decode("utf-8", "surrogateescape"),
            result.stderr.decode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("command", CLIP_COMMANDS)
def test_unreadable_clip(command, ctx):
    """A clip without read permission, with the kernel enforcing the mode (also for root)."""
    bad = _tap(ctx.folder / "inputs" / "locked.wav")
    args, named = CLIP_COMMANDS[command](bad, ctx)
    named.chmod(0)
    code, out, err = _run(args, prefix=obeying_file_modes())
    _assert_one_clear_line(code, out, err, named=named,
                           fragment="cannot be read (permission denied)")


@pytest.mark.parametrize("command", CLIP_COMMANDS)
def test_file_name_that_is_not_utf8(command, ctx):
    """Bytes no encoding decodes (an old Windows share): read, named, printed as they are."""
    good = _tap(ctx.folder / "tmp.wav")
    bad = Path(os.fsdecode(os.fsencode(ctx.folder / "inputs") + b"/Brett-\xe4.wav"))
    os.rename(good, bad)
    args, named = CLIP_COMMANDS[command](bad, ctx)
    # strict output encoding, as in most UTF-8 locales: a surrogate must not end the command
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    code, out, err = _run(args, env=env)
    assert code in SUCCESS[command], err
    assert "Traceback" not in err
    if command not in ("train", "compare"):  # these two do not print take names
        assert "Brett-\udce4.wav" in out  # the original bytes, written back unchanged


def test_judge_json_writes_a_name_that_is_not_utf8_as_text_strict_parsers_read(ctx):
    """json.dumps wrote the name's byte as the lone surrogate "\\udce4", which RFC 8259 leaves
    to the parser and jq turned into U+FFFD (QA); now the JSON is UTF-8 every parser reads,
    with the byte as the text \\xe4, as a terminal shows it escaped."""
    good = _tap(ctx.folder / "tmp.wav")
    bad = Path(os.fsdecode(os.fsencode(ctx.folder / "inputs") + b"/Brett-\xe4.wav"))
    os.rename(good, bad)
    code, out, err = _run(["judge", "--json", "--model", ctx.model, bad])
    assert code in SUCCESS["judge"], err
    (line,) = out.splitlines()
    line.encode("utf-8")  # no surrogate left: strict UTF-8
    row = json.loads(line)
    assert row["path"].endswith("/Brett-\\xe4.wav"), row["path"]
    assert "\\udc" not in line and "\udce4" not in json.dumps(row, ensure_ascii=False)


def test_an_error_line_prints_a_name_that_is_not_utf8_as_its_bytes(tmp_path):
    """stderr's default is backslashreplace: the error line read "Brett-\\udce4.wav" while
    stdout printed the name's own bytes; now both print the bytes."""
    bad = Path(os.fsdecode(os.fsencode(tmp_path) + b"/Brett-\xe4.wav"))
    bad.write_bytes(b"not audio")
    code, out, err = _run(["doctor", bad])  # a usage error naming it
    assert code == 2 and "Brett-\udce4.wav" in err and "\\udc" not in err, err
    # a terminal whose encoding lacks a character of the line ("—" in Latin-1): escaped, as
    # stderr always did, not a UnicodeEncodeError that lost the line and exited 1
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    code, out, err = _run(["doctor", bad], env=env)
    assert code == 2 and "Brett-\udce4.wav" in err and "\\u2014" in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


# -- model files ---------------------------------------------------------------------------------

class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _edited(name: str, **changes):
    def make(model: Path, d: Path):
        ck = torch.load(model, weights_only=True)
        for key, value in changes.items():
            if key == "features":
                ck["config"]["features"].update(value)
            elif callable(value):  # an edit of that part in place
                value(ck[key])
            else:
                ck[key] = value
        return save_checkpoint(d / name, ck), []
    return make


def _other_config(d: Path, text: str):
    path = d / "other.toml"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class ModelCase:
    """A model file: ``make(good model, folder)`` -> (the model path, extra arguments)."""

    name: str
    make: Callable[[Path, Path], tuple[Path, list]]
    error: str | None

    def __str__(self) -> str:
        return self.name


def _malicious(model: Path, d: Path):
    path = d / "evil.pt"
    torch.save({"format": "tapcheck-model", "payload": _Payload(d / "pwned")}, path)
    return path, []


def _bytes(name: str, data: Callable[[Path], bytes]):
    def make(model: Path, d: Path):
        (d / name).write_bytes(data(model))
        return d / name, []
    return make


def _state_dict_only(model: Path, d: Path):
    torch.save(torch.load(model, weights_only=True)["state_dict"], d / "weights.pt")
    return d / "weights.pt", []


def _folder_model(model: Path, d: Path):
    (d / "folder.pt").mkdir()
    return d / "folder.pt", []


MODELS = [
    ModelCase("missing", lambda m, d: (d / "none.pt", []), "model file not found"),
    ModelCase("a folder", _folder_model, "is a folder, not a model file"),
    ModelCase("empty", _bytes("empty.pt", lambda m: b""), "is not a tapcheck model file"),
    ModelCase("random bytes", _bytes("random.pt", lambda m: np.random.default_rng(1).bytes(5000)),
              "is not a tapcheck model file"),
    ModelCase("truncated", _bytes("half.pt", lambda m: m.read_bytes()[: m.stat().st_size // 2]),
              "is not a tapcheck model file"),
    ModelCase("weights without the rest", _state_dict_only, "is not a tapcheck model file"),
    ModelCase("pickled code", _malicious, "refuses to load"),
    ModelCase("another model format", _edited("v99.pt", format_version=99, tapcheck_version="9.0"),
              "was written by tapcheck 9.0 in model format 99"),
    ModelCase("a format version that is a tensor", _edited("fv.pt",
                                                           format_version=torch.tensor(2)),
              "is damaged: its format version is a Tensor (tensor(2)), not a number"),
    ModelCase("other feature code", _edited("f0.pt", features_version=0),
              "trained on features of version 0"),
    ModelCase("feature settings unlike its network", _edited("fx.pt", features={"n_bins": 80}),
              "stores feature settings for 80x120 crops but its network takes 100x120"),
    ModelCase("judged with other feature settings",
              lambda m, d: (m, ["--config", _other_config(d, "[features]\nn_fft = 2048\n")]),
              "features.n_fft 1024 (config: 2048)"),
    ModelCase("judged at another sample rate",
              lambda m, d: (m, ["--config", _other_config(d, "[audio]\nsr = 48000\n")]),
              "audio.sr 44100 (config: 48000)"),
    # hand-edited parts that loaded, then failed later: enroll's IndexError, torch's
    # AttributeError
    ModelCase("a board group for a few references only",
              _edited("groups.pt", detector=lambda d: d.update(
                  reference_groups=d["reference_groups"][:3])),
              "its reference board groups (3 int64) are not one integer per reference"),
    ModelCase("a weight whose name is a number",
              _edited("key5.pt", state_dict=lambda w: w.update({5: torch.zeros(3)})),
              "its weights hold an entry named 5, not a layer's name"),
    # a threshold edited away from the scores it was fitted to: 0 flagged every tap, 1e6
    # passed every tap, exit 0
    ModelCase("a threshold of 0", _edited("t0.pt", detector=lambda d: d.update(offset=-0.0)),
              "threshold 0 is not fitted to its calibration scores"),
    ModelCase("a threshold of a million", _edited("t6.pt", detector=lambda d: d.update(
        offset=-1e6)), "threshold 1e+06 is not fitted to its calibration scores"),
    # edits the threshold check could not see (QA): references scaled up scored -991 and
    # judged every tap NORMAL, exit 0; no calibration scores let a threshold of 1e6 pass
    ModelCase("references scaled by 1000", _edited("ref1000.pt", detector=lambda d: d.update(
        reference=d["reference"] * 1000)), "knn reference embeddings are not of unit length "
                                            "(lengths 1000-1000)"),
    ModelCase("integer references", _edited("refint.pt", detector=lambda d: d.update(
        reference=d["reference"].long())), "knn reference embeddings are int64, not real numbers"),
    ModelCase("no calibration scores and a threshold of a million",
              _edited("noscores.pt", detector=lambda d: d.update(
                  calibration_scores=d["calibration_scores"][:0],
                  calibration_groups=d["calibration_groups"][:0], offset=-1e6)),
              "it holds no calibration scores, so its threshold cannot be checked"),
    ModelCase("fewer calibration scores than its clips",
              _edited("fewscores.pt", detector=lambda d: d.update(
                  calibration_scores=d["calibration_scores"][:3],
                  calibration_groups=d["calibration_groups"][:3])),
              "its calibration states 8 clips but holds 3 calibration scores"),
    ModelCase("another tapcheck version, same format", _edited("old.pt", tapcheck_version="0.0.1"),
              None),
    ModelCase("judged with its own settings", lambda m, d: (m, [
        "--config", Path(__file__).parents[1] / "configs" / "default.toml"]), None),
]

# command -> (model path, extra arguments, context) -> command line
MODEL_COMMANDS = {"judge": lambda model, extra, ctx: ["judge", ctx.clip, "--model", model, *extra]}


@pytest.mark.parametrize("case", MODELS, ids=str)
@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_bad_model_file(command, case, ctx, run_cli):
    model, extra = case.make(ctx.model, ctx.folder / "inputs")
    code, out, err = run_cli(*MODEL_COMMANDS[command](model, extra, ctx))
    if case.error:
        _assert_one_clear_line(code, out, err, named=model, fragment=case.error)
    else:
        _assert_accepted(command, code, out, err, warning=None)
    assert not (ctx.folder / "inputs" / "pwned").exists()  # no pickled code ever ran


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_unreadable_model_file(command, ctx):
    model = shutil.copyfile(ctx.model, ctx.folder / "locked.pt")
    model.chmod(0)
    code, out, err = _run(MODEL_COMMANDS[command](model, [], ctx), prefix=obeying_file_modes())
    _assert_one_clear_line(code, out, err, named=model,
                           fragment="cannot be read (permission denied)")


# -- datasets ------------------------------------------------------------------------------------

def _rows(edit: Callable[[list[dict]], None]):
    """Edit a manifest's rows as a person with a spreadsheet would, and write it back."""
    def make(root: Path) -> Path:
        import csv

        manifest = root / "manifest.csv"
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        edit(rows)
        with open(manifest, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        return manifest
    return make


def _set(key: str, value: str, *, row: int | None = None):
    def edit(rows):
        for r in rows if row is None else [rows[row]]:
            r[key] = value
    return edit


def _delete_take(root: Path) -> Path:
    take = sorted(root.glob("board*/*/take*.wav"))[0]
    take.unlink()
    return take


def _excel_bom(root: Path) -> Path:
    manifest = root / "manifest.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    return manifest


def _latin1(root: Path) -> Path:
    """Saved by an editor in Latin-1, with an accented value (a source "Mikrofon Böhm")."""
    manifest = root / "manifest.csv"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    head, *cells = lines[2].split(",")
    cells[-2] = "Mikrofon B\u00f6hm"  # source, the next-to-last column
    lines[2] = ",".join([head, *cells])
    manifest.write_bytes("".join(lines).encode("latin-1"))
    return manifest


def _short_row(root: Path) -> Path:
    manifest = root / "manifest.csv"
    with open(manifest, "a", encoding="utf-8") as f:
        f.write("board01/left/take005.wav,1,left\n")
    return manifest


def _long_row(root: Path) -> Path:
    """A value past the last column, on a take's row: read without a word, it was dropped."""
    manifest = root / "manifest.csv"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    lines[2] += ",spare"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _replace_manifest(data: bytes | None):
    def make(root: Path) -> Path:
        manifest = root / "manifest.csv"
        if data is None:
            manifest.unlink()
            return root
        manifest.write_bytes(data)
        return manifest
    return make


# `info` only describes a dataset and `import` adds to it: what stops training is not their
# business (a missing take is news to info, though)
FINE = {"info": (None, None), "import": (None, None)}

DATASETS = [
    Case("a take's file missing", _delete_take, "file not found",
         otherwise={**FINE, "info": (None, "1 take(s) in the manifest have no file")}),
    Case("duplicate rows", _rows(lambda rows: rows.append(dict(rows[0]))), "duplicate row"),
    Case("unknown label", _rows(_set("label", "cracked", row=3)), "unknown label 'cracked'"),
    Case("unknown split", _rows(_set("split", "validation", row=3)), "unknown split"),
    Case("malformed row", _rows(_set("board", "three", row=3)), "malformed row"),
    Case("a row with too few fields", _short_row, "has 3 field(s), the header names 12"),
    Case("a row with too many fields", _long_row, "has 13 field(s), the header names 12"),
    Case("saved as Latin-1", _latin1, "is not UTF-8 text: byte 0xf6 at column"),
    # a normal tap into a side of defect training takes: a side is one class (import refuses)
    Case("no normal takes in the training split", _rows(_set("label", "defect")),
         "has no normal takes in the training split", otherwise={**FINE, "import": (
             "board 1 left holds defect training takes, and a board side is one class", None)}),
    Case("no training split", _rows(_set("split", "test")), "has no takes in the training split",
         otherwise=FINE),
    # import refuses to start a manifest beside them: it listed the new take alone, and every
    # take already on disk dropped out of the dataset without a word (QA)
    Case("no manifest", _replace_manifest(None), "no such dataset",
         otherwise={"import": ("take file(s) and no manifest.csv: a dataset whose manifest was "
                               "moved or deleted?", None)}),
    Case("empty manifest", _replace_manifest(b""), "is empty, not a tapcheck manifest"),
    Case("not a manifest", _replace_manifest(b"name,size\nx,1\n"), "is not a tapcheck manifest"),
    Case("saved by Excel (byte-order mark)", _excel_bom, None),
]

# command -> (dataset folder, context) -> command line
DATASET_COMMANDS = {
    "train": lambda root, ctx: ["train", "--dataset", root, "--epochs", "1", "--config",
                                ctx.fast_config, "--out", ctx.folder / "out" / "model.pt"],
    "info": lambda root, ctx: ["info", root],
    # a new tap: ctx.clip is a take of the datasets copied here, which import refuses as such
    "import": lambda root, ctx: ["import", _tap(ctx.folder / "inputs" / "new.wav"), "--dataset",
                                 root, "--board", "1", "--side", "left", "--label", "normal"],
    "compare": _compare_args,
}


@pytest.mark.parametrize("case", DATASETS, ids=str)
@pytest.mark.parametrize("command", DATASET_COMMANDS)
def test_bad_dataset(command, case, ctx, run_cli):
    base = ctx.compare_set if command == "compare" else ctx.train_set
    root = shutil.copytree(base, ctx.folder / "dataset")
    named = case.make(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out, err = run_cli(*DATASET_COMMANDS[command](root, ctx))
    error, warning = case.expected(command)
    if error:
        _assert_one_clear_line(code, out, err, named=named, fragment=error)
        assert not (ctx.folder / "out" / "model.pt").exists()
    else:
        _assert_accepted(command, code, out, err, warning=warning)
    # whatever the answer, nothing that was there is lost or changed (but an import's manifest)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    changed = {p for p in before if after.get(p) != before[p]}
    assert changed <= ({root / "manifest.csv"} if command == "import" and not error else set())


# -- batches: every good file is handled, the bad ones listed at the end ---------------------------

def test_judge_batch_judges_every_good_clip(ctx, run_cli):
    d = ctx.folder / "inputs"
    clips = [ctx.clip, _file("empty.wav", b"")(d), _tap(d / "good.wav"), d / "missing.wav",
             _tap(d / "stereo.wav", channels=2)]
    code, out, err = run_cli("judge", *clips, "--model", ctx.model)
    assert code == 2
    judged = out.strip().splitlines()
    assert [ln.rsplit("  ", 1)[1] for ln in judged] == [str(c) for c in clips[::2]]
    errors = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    assert errors == [f"tapcheck: error: {clips[1]}: is empty (0 bytes) — the recording or copy "
                      "failed; record or copy it again",
                      f"tapcheck: error: {clips[3]}: file not found — check the path"]
    assert err.rstrip().endswith("tapcheck: 2 of 5 clip(s) could not be judged")


def test_import_batch_imports_every_good_clip(ctx, run_cli):
    d = ctx.folder / "inputs"
    zeros = next(c for c in CLIPS if c.name == "all zeros")
    clips = [_tap(d / "a.wav"), _file("random.wav", b"x" * 300)(d), _tap(d / "b.wav", sr=48000),
             zeros.make(d)]
    code, out, err = run_cli("import", *clips, "--dataset", "bench", "--board", "2", "--side",
                             "right", "--label", "normal")
    assert code == 2 and "imported 2 of 4" in out
    assert [t.path for t in Dataset.open("bench").takes] == ["board02/right/take001.wav",
                                                             "board02/right/take002.wav"]
    errors = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    assert [e.split(": ")[2] for e in errors] == [str(clips[1]), str(clips[3])]


def test_train_lists_every_bad_take_and_trains_nothing(ctx, run_cli):
    root, take = ctx.dataset_with(_file("junk.wav", b"junk" * 100)(ctx.folder / "inputs"))
    second = root / "board01" / "left" / "take002.wav"
    second.write_bytes(b"")
    code, _, err = run_cli(*DATASET_COMMANDS["train"](root, ctx))
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    assert len(errors) == 3
    assert {e.split(": ")[2] for e in errors[:2]} == {str(take), str(second)}
    assert errors[2].startswith(f"tapcheck: error: {root / 'manifest.csv'}: 2 of 17 training "
                                "takes cannot be used (2 unusable; listed above), e.g. ")
    assert "; nothing was trained — restore, re-record or replace those files" in errors[2]
    assert not (ctx.folder / "out" / "model.pt").exists()


def test_debug_shows_the_traceback_before_the_line(ctx, run_cli):
    code, _, err = run_cli("--debug", "judge", ctx.clip, "--model", _file("e.pt", b"")(ctx.folder))
    assert code == 2 and err.startswith("Traceback (most recent call last):")
    assert "tapcheck.errors.ModelFileError: " in err
    assert err.splitlines()[-1].startswith("tapcheck: error: ")
    assert "is not a tapcheck model file" in err.splitlines()[-1]


# -- places tapcheck may not write ----------------------------------------------------------------

def test_import_into_a_read_only_dataset_changes_nothing(ctx):
    root = shutil.copytree(ctx.train_set, ctx.folder / "ro")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        folder.chmod(0o555)
    try:
        code, out, err = _run(["import", _tap(ctx.folder / "in.wav"), "--dataset", root,
                               "--board", "1", "--side", "left", "--label", "normal"],
                              prefix=obeying_file_modes())
    finally:
        for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
    _assert_one_clear_line(code, out, err, named=root,
                           fragment="cannot be written (Permission denied)")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_synth_into_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code, out, err = _run(["synth", "--dataset", folder / "demo", "--takes", "1"],
                          prefix=obeying_file_modes())
    _assert_one_clear_line(code, out, err, named=folder / "demo",
                           fragment="cannot be written (Permission denied)")


def test_train_into_a_read_only_folder_fails_before_training(ctx):
    folder = ctx.folder / "models-ro"
    folder.mkdir()
    folder.chmod(0o555)
    code, out, err = _run(["train", "--dataset", ctx.train_set, "--epochs", "1",
                           "--out", folder / "m.pt"], prefix=obeying_file_modes())
    _assert_one_clear_line(code, out, err, named=folder,
                           fragment="cannot be written (Permission denied)")
    assert "epoch" not in err  # refused before any training

