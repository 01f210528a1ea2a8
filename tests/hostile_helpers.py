"""Shared pieces of the hostile-input tests: a real dataset copy, a real model, subprocesses."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import FAST_CONFIG, ROOT


def _tapcheck(*args, prefix=(), env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """``tapcheck ARGS`` in a subprocess of this checkout (real signals, mounts, locks)."""
    return subprocess.run([*prefix, sys.executable, "-m", "tapcheck", *map(os.fspath, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kwargs)


def _one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("tapcheck: error: ")]
    assert lines, err
    assert any(all(f in ln for f in fragments) for ln in lines), err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def copy_dataset(small_train_set, tmp_path) -> Path:
    """Fixture ``dataset_copy``: the small training set, copied for a test to change."""
    return Path(shutil.copytree(small_train_set, tmp_path / "ds"))


def train_ae(small_train_set, tmp_path_factory) -> Path:
    """An autoencoder trained one epoch on the small set through the CLI (narrow crops)."""
    from tapcheck.cli import main

    folder = tmp_path_factory.mktemp("ae")
    (folder / "fast.toml").write_text(FAST_CONFIG)
    out = folder / "ae.pt"
    code = main(["train", "--model", "ae", "--dataset", str(small_train_set), "--epochs", "1",
                 "--config", str(folder / "fast.toml"), "--out", str(out)])
    assert code == 0 and out.is_file()
    return out


def _append_row(dataset: Path, **changes) -> int:
    """Append a copy of the manifest's first row with ``changes``; returns its line number."""
    path = dataset / "manifest.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    row = {**rows[0], **{k: str(v) for k, v in changes.items()}}
    with open(path, "a", encoding="utf-8", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n").writerow(row)
    return len(rows) + 2


def _private_mounts(setup: str) -> list[str]:
    """Command prefix: a mount namespace of its own, set up by ``setup`` (sh)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed for a private full or read-only disk"
    root = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [unshare, "--mount", "--propagation", "private", *root, "sh", "-ec",
            f'{setup}; exec "$@"', "sh"]


