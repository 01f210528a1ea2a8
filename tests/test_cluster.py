"""compare --ray: the grid's cells as tasks on a real Ray cluster started here on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import ROOT
from . import test_grid
from .test_grid import GRID, cell_metrics, single_thread_env

serial_grid = test_grid.serial_grid  # the fixture: the serial run the Ray run must match


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_under(folder: str) -> list[int]:
    """Processes whose command line names ``folder``: this cluster's, and no one else's."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # bytes: another process's arguments need not be UTF-8
                if folder.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass  # it ended meanwhile
    return pids


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU Ray head on 127.0.0.1, stopped with every process it started.

    ``ray start --block`` keeps the head's processes children of one process group of ours, so
    the teardown ends exactly those (never `ray stop`, which would stop any Ray on the machine).
    """
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--object-store-memory", str(100 * 2**20), "--include-dashboard", "false",
         "--disable-usage-stats", "--temp-dir", temp],
        env={**single_thread_env(), "RAY_USAGE_STATS_ENABLED": "0"}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    try:
        # minutes, not seconds: on the shared 2-core machine at load 15 the head once took
        # more than 3 minutes to accept a driver
        deadline = time.monotonic() + 600
        while True:
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not come up in 10 minutes"
            try:
                probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address="
                                        f"'{address}', logging_level='ERROR'); ray.shutdown()"],
                                       capture_output=True, env=single_thread_env(), timeout=180)
            except subprocess.TimeoutExpired:
                continue
            if probe.returncode == 0:
                break
            time.sleep(2)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        deadline = time.monotonic() + 30
        while _processes_under(temp) and time.monotonic() < deadline:
            time.sleep(1)
        for pid in _processes_under(temp):  # workers that left the process group
            os.kill(pid, signal.SIGKILL)


def test_grid_on_a_ray_cluster_gives_the_serial_numbers(ray_cluster, serial_grid, tiny_dataset,
                                                        tmp_path):
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), *GRID, "--out", str(out), "--ray",
                             ray_cluster], env=single_thread_env(), capture_output=True,
                            text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"8 cells submitted to Ray ({ray_cluster}, 2 CPUs, 1 per cell)" in result.stderr
    assert cell_metrics(out) == cell_metrics(serial_grid[0])
    ray_doc = json.loads((out / "metrics.json").read_text())
    serial_doc = json.loads((serial_grid[0] / "metrics.json").read_text())
    assert ray_doc["pairs"] == serial_doc["pairs"]
    assert "Ray (127.0.0.1" in ray_doc["meta"]["ran on"]
    # the driver wrote the cells and the plotted cells' model files from the tasks' results
    assert len(list(out.glob("cells/*/*.json"))) == 8 and len(list(out.glob("cells/*/*.pt"))) == 2
    assert (out / "tsne-arcface-shallow.png").stat().st_size > 5000


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
