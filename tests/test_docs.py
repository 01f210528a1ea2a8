"""The docs stay true: their commands run, and their figures are what the result files say.

Every ``tapcheck …`` line of a fenced ``sh`` block in README.md and docs/ runs, in order, in a
sandbox holding tiny synthetic datasets named as the docs name them (``demo``, ``bench``) and a
``clips/`` folder of takes. Commands that train get ``--epochs 1`` and ``synth`` gets
``--takes 5``, so the suite stays in minutes; nothing else of the line changes. A block that
cannot run here is preceded by ``<!-- not run: REASON -->``.
"""

from __future__ import annotations

import glob
import re
import shlex
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

FENCE = re.compile(r"(?:<!-- not run: (?P<reason>.*?) -->\n)?```sh\n(?P<body>.*?)```", re.S)
TRAINS = {"train", "compare", "demo"}


def shell_blocks(path: Path) -> list[tuple[str | None, list[str]]]:
    """(not-run reason or None, tapcheck command lines) of each ``sh`` block of a file."""
    blocks = []
    for m in FENCE.finditer(path.read_text(encoding="utf-8")):
        lines = [line.split("  #")[0].strip() for line in m["body"].splitlines()]
        blocks.append((m["reason"], [line for line in lines if line.startswith("tapcheck ")]))
    return blocks


DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
        if any(reason is None and lines for reason, lines in shell_blocks(p))]


def scaled_down(args: list[str]) -> list[str]:
    """The command on the tiny scale: one epoch of training, five takes of synthesis."""
    if args[0] in TRAINS and "--epochs" not in args:
        args = [*args, "--epochs", "1"]
    if args[0] == "synth" and "--takes" not in args:
        args = [*args, "--takes", "5", "--test-takes", "1"]
    return args


def expand(args: list[str], cwd: Path) -> list[str]:
    """Globs as a shell would expand them (relative to the sandbox)."""
    out = []
    for a in args:
        hits = sorted(glob.glob(a, root_dir=cwd)) if any(c in a for c in "*?[") else []
        out.extend(hits or [a])
    return out


@pytest.fixture
def sandbox(tmp_path, tiny_dataset, monkeypatch) -> Path:
    """A folder as a new user has it: recordings/, clips/, configs/; the docs' dataset names."""
    monkeypatch.chdir(tmp_path)
    recordings = tmp_path / "recordings"
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(recordings))
    monkeypatch.setenv("TAPCHECK_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path / "inspections"))
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, take in enumerate(tiny_dataset.select(board=2, side="left")[:3], start=1):
        _new_tap(tiny_dataset.path_of(take), clips / f"board2-left-{i}.wav")
    for i, take in enumerate(tiny_dataset.select(board=13, side="left")[:3], start=1):
        _new_tap(tiny_dataset.path_of(take), clips / f"board21-{i}.wav")  # a new board
    _new_tap(tiny_dataset.path_of(tiny_dataset.select(board=8)[0]), clips / "board8-right-1.wav")
    return tmp_path


def _new_tap(take: Path, clip: Path) -> None:
    """A clip like ``take``, struck a little softer: the docs' clips are new taps, and a copy of a
    take would be refused by ``import`` into the dataset that holds it (the same recording)."""
    import soundfile as sf

    y, sr = sf.read(take, dtype="float32")
    sf.write(clip, y * 0.9, sr, subtype="PCM_16")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tapcheck", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=600)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_of_the_docs_runs(doc, sandbox, tiny_dataset, one_thread):
    blocks = shell_blocks(doc)
    commands = [line for reason, lines in blocks if reason is None for line in lines]
    synthesised = any(re.match(r"tapcheck synth .*--dataset demo", c) for c in commands)
    for name in ("demo", "bench"):
        if not (name == "demo" and synthesised):
            shutil.copytree(tiny_dataset.root, sandbox / "recordings" / name)
    for line in commands:
        args = expand(scaled_down(shlex.split(line)[1:]), sandbox)
        result = _run(args, sandbox)
        assert result.returncode in (0, 1), (
            f"{doc.name}: `{line}` exited {result.returncode}\n{result.stderr[-2000:]}")
        assert "Traceback" not in result.stderr, f"{doc.name}: `{line}`\n{result.stderr}"


def test_docs_have_runnable_commands():
    """The scan itself works: the README's own commands are found, not-run blocks are seen, and
    every not-run block of every file gives its reason."""
    for path in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for reason, _ in shell_blocks(path):
            assert reason is None or len(reason.strip()) > 10, f"{path}: give the reason"
    assert len(DOCS) >= 3
    readme = shell_blocks(ROOT / "README.md")
    run = [c for reason, lines in readme if reason is None for c in lines]
    assert "tapcheck demo" in run and any(c.startswith("tapcheck judge") for c in run)
    assert any(reason for reason, _ in readme)  # the microphone blocks


def test_figures_are_rendered_from_the_result_files():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "results.py"), "render",
                             "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_option_reference_is_the_commands_help(tmp_path):
    """docs/cli.md is written from the commands; an option changed without rerunning the
    script fails here, and the check itself catches an edit."""
    script = ROOT / "scripts" / "cli_reference.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "docs" / "cli.md").read_text()
    assert "| `--taps-per-board N` |" in text and "## `tapcheck enroll`" in text
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    (copy / "docs").mkdir()
    (copy / "docs" / "cli.md").write_text(text.replace("--taps-per-board N", "--taps N", 1))
    result = subprocess.run([sys.executable, str(copy / "scripts" / "cli_reference.py"),
                             "--check"], capture_output=True, text=True, cwd=copy,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and "docs/cli.md differs" in result.stderr, result.stderr


def test_a_hand_edited_figure_is_caught(tmp_path):
    """Change one figure of a rendered block: the check must fail on it."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    shutil.copyfile(ROOT / "README.md", copy / "README.md")
    readme = copy / "README.md"
    text = readme.read_text()
    assert "AUC 0." in text
    readme.write_text(text.replace("AUC 0.", "AUC 1.", 1))
    result = subprocess.run([sys.executable, str(copy / "scripts" / "results.py"), "render",
                             "--check"], capture_output=True, text=True, cwd=copy,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "README.md" in result.stdout, result.stdout + result.stderr
