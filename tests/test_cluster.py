"""compare --ray: the grid's cells as Ray tasks, on a real local Ray instance.

A cluster that the test starts with `ray start --head` on 127.0.0.1 is not tested here: on this
machine Ray resolves a loopback head to the machine's own network address, and a driver then
never connected (issue 16 stays open for it; see docs/compare-grids.md).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from .conftest import ROOT
from .test_grid import single_thread_env



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_is_one_line(tiny_dataset, tmp_path):
    port = free_port()  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), "--models", "ae", "--epochs", "1", "--out",
                             str(tmp_path), "--ray", f"127.0.0.1:{port}"],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tapcheck: error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert "ray start --head" in last


def test_ray_missing_is_one_line_with_the_fix(tiny_dataset, tmp_path):
    """Without the extra (ray unimportable), --ray fails at once and says how to install it."""
    code = ("import sys; sys.modules['ray'] = None\n"  # what Python does when ray is absent
            "from tapcheck.cli import main\n"
            f"sys.exit(main(['compare', '--dataset', {str(tiny_dataset.root)!r}, '--models', "
            f"'ae', '--out', {str(tmp_path)!r}, '--ray']))")
    result = subprocess.run([sys.executable, "-c", code], env=single_thread_env(),
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == ('tapcheck: error: --ray needs Ray, which is not installed — '
                                     'install the cluster extra: pip install -e ".[cluster]"')
    assert not (tmp_path / "cells").exists()


def test_a_local_ray_instance_gives_the_serial_numbers(small_compare_set, tmp_path):
    """`--ray` with no address starts Ray for the run, and a plain one-seed comparison run there
    is the one run here: same numbers, its model file where it always was."""
    def compare(out, *extra):
        result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", *extra,
                                 "--dataset", str(small_compare_set), "--models", "ae",
                                 "--epochs", "1", "--out", str(out)],
                                env=single_thread_env(), capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((out / "metrics.json").read_text())["models"][0], result.stderr

    serial, _ = compare(tmp_path / "serial")
    on_ray, err = compare(tmp_path / "ray", "--ray")
    assert "1 cell submitted to Ray (local" in err
    for key in ("auc", "pauc", "f1", "false_alarms", "threshold", "board_means"):
        assert on_ray[key] == serial[key], key
    assert on_ray["model_file"] == "models/ae.pt" and (tmp_path / "ray/models/ae.pt").is_file()
