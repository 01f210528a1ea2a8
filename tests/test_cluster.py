"""compare --ray: the grid's cells as Ray tasks, on a local Ray instance and on a one-machine
cluster that the test starts with `ray start --head` on 127.0.0.1.

Ray 2.60 turns token authentication on for `ray start --head` once ~/.ray/auth_token exists
(any local `ray.init()` writes it), and a driver given an explicit address sends no token unless
RAY_AUTH_MODE=token: that, not the node's IP, is why a driver never got in here before (issue
16). The test cluster gets its own token and --temp-dir, so it meets neither ~/.ray nor another
Ray on the machine, and is stopped by killing the processes of its own session (`ray stop` would
kill every Ray process on the machine, other people's too).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_grid import cell_metrics, single_thread_env


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


@pytest.mark.parametrize("address", ["a:b:c", "host:notaport", ":6379"])
def test_an_address_of_no_form_is_one_line(tiny_dataset, tmp_path, address):
    """It was a traceback: ValueError: Invalid address format (QA)."""
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), "--models", "ae", "--epochs", "1", "--out",
                             str(tmp_path), "--ray", address],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"tapcheck: error: --ray address '{address}' is not host:port — pass the address `ray "
        "start --head` printed (e.g. 127.0.0.1:6379), auto, or leave it out for a local Ray "
        "instance")


def test_a_ray_client_address_is_one_line(tiny_dataset, tmp_path):
    """`--ray ray://host:10001` was a traceback: "Ray Client requires pip package ray[client]"
    (options QA); compare joins a cluster as a driver on one of its machines."""
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), "--models", "ae", "--epochs", "1", "--out",
                             str(tmp_path), "--ray", "ray://192.0.2.1:10001"],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "tapcheck: error: --ray address 'ray://192.0.2.1:10001' is a Ray Client address, which "
        "compare does not use")


def test_more_cpus_per_cell_than_the_cluster_has_is_one_line(tiny_dataset, tmp_path):
    """A cell needing 64 CPUs on a local instance of a few waited forever (QA)."""
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), "--models", "ae", "--epochs", "1", "--out",
                             str(tmp_path), "--ray", "--cpus-per-cell", "64"],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "tapcheck: error: --cpus-per-cell 64 is more than the "), result.stderr
    assert "of the Ray cluster at local: no cell could ever start — use --cpus-per-cell" in (
        result.stderr), result.stderr
    assert not list((tmp_path / "cells").rglob("*.json"))


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
                                     'install the cluster extra: pip install '
                                     '"tapcheck[cluster]" (in a checkout: pip install -e '
                                     '".[cluster]")')
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


def test_kill_stops_a_ray_grid_as_ctrl_c_does(small_compare_set, tmp_path):
    """ray.init put its own SIGTERM handler over tapcheck's: `kill` ended compare --ray with a
    stack dump and exit 1 (QA). It stops as Ctrl-C does: "interrupted", 130, cells kept."""
    from .pulse import LiveCommand

    live = LiveCommand("compare", "--dataset", small_compare_set, "--models", "ae", "--epochs",
                       "1", "--seeds", "0-5", "--out", tmp_path, "--ray",
                       env=single_thread_env())
    live.expect(r"cells submitted to Ray", stream="err", timeout=300)
    live.proc.send_signal(signal.SIGTERM)
    assert live.wait(timeout=120) == 130, live.err
    assert live.err[-1].startswith("tapcheck: interrupted"), live.err
    assert not any("SIGTERM received" in line for line in live.err), live.err


# --- a one-machine cluster started with `ray start --head` on 127.0.0.1 ---------------------------

def session_processes(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid``: the head's `ray start` was started as
    a session leader, and every process of the cluster — GCS, raylet, agents, workers (which
    get process groups of their own, but not sessions) — stays in its session."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
            if os.getsid(int(entry)) == sid and state != "Z":
                pids.append(int(entry))
        except (OSError, IndexError):
            pass  # gone meanwhile
    return pids


def kill_session(sid: int, *, timeout: float = 30) -> list[int]:
    """SIGKILL every process of session ``sid``; the pids still alive after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (pids := session_processes(sid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    return session_processes(sid)


def run_bounded(cmd: list[str], *, env: dict, timeout: float, log: Path) -> tuple[int, str]:
    """Run ``cmd`` in a session of its own, its output in ``log`` (not a pipe, which a daemon
    left behind would hold open), and fail the test — never hang it — after ``timeout`` s."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.wait()
            pytest.fail(f"hung: `{' '.join(cmd)}` did not finish within {timeout:.0f} s; its last "
                        f"output:\n{log.read_text()[-3000:]}")
    return code, log.read_text()


def cluster_env(token: str | None) -> dict:
    env = {k: v for k, v in single_thread_env().items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    if token:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    return env


@dataclass
class Head:
    address: str
    token: str
    sid: int  # the session of its processes
    temp: Path

    def state(self) -> str:
        """For a failure message: whether the cluster still runs, and its GCS's last words."""
        logs = sorted(self.temp.glob("session_*/logs/gcs_server.*"))
        tail = "".join(log.read_text()[-1500:] for log in logs)
        return f"cluster processes alive: {session_processes(self.sid)}\n{tail}"


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --node-ip-address 127.0.0.1 --num-cpus 2` on a free port, with its own
    --temp-dir and token (a test-made one, in RAY_AUTH_TOKEN: ~/.ray is neither read nor
    written); yields its :class:`Head` and always stops it, checking that no process of it
    survives. `ray start` returns once the head is up, its daemons left running in the session
    it was started in."""
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the cluster's processes in /proc")
    temp = Path(tempfile.mkdtemp(prefix="tapcheck-ray-"))  # short: Ray's socket paths live in it
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "ray.scripts.scripts",  # `ray`, of the Python running the tests
           "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
           "--temp-dir", str(temp)]
    with open(temp / "start.log", "w") as log:
        head = subprocess.Popen(cmd, env=cluster_env(token), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        try:
            code = head.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hung: `ray start --head` did not return within 180 s:\n"
                        f"{(temp / 'start.log').read_text()[-3000:]}")
        assert code == 0, (temp / "start.log").read_text()[-3000:]
        yield Head(f"127.0.0.1:{port}", token, head.pid, temp)
    finally:
        survivors = kill_session(head.pid)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
        assert not survivors, f"processes of the test's Ray cluster survived: {survivors}"


def test_a_cluster_on_127_0_0_1_gives_the_serial_numbers(ray_head, small_compare_set, tmp_path):
    """Issue 16: a tiny grid run serially and on a cluster started with `ray start --head` on
    127.0.0.1 gives identical metrics, cell by cell (both on one torch thread per cell)."""
    address = ray_head.address

    def compare(out, env, *extra):
        code, output = run_bounded(
            [sys.executable, "-m", "tapcheck", "compare", "--dataset", str(small_compare_set),
             "--models", "ae", "--epochs", "1", "--seeds", "0-1", "--out", str(out), *extra],
            env=env, timeout=900, log=tmp_path / f"{out.name}.log")
        assert code == 0, f"{output[-3000:]}\n{ray_head.state()}"
        return output

    compare(tmp_path / "serial", single_thread_env())
    output = compare(tmp_path / "ray", cluster_env(ray_head.token), "--ray", address)
    assert f"2 cells submitted to Ray ({address}, 2 CPUs, 1 per cell)" in output
    serial, on_ray = cell_metrics(tmp_path / "serial"), cell_metrics(tmp_path / "ray")
    assert sorted(serial) == [("ae", 0, None), ("ae", 1, None)]
    assert on_ray == serial
    assert (sorted(p.name for p in (tmp_path / "ray/cells/ae").iterdir())
            == sorted(p.name for p in (tmp_path / "serial/cells/ae").iterdir()))


def test_a_cluster_wanting_a_token_is_one_line(ray_head, small_compare_set, tmp_path):
    """Without RAY_AUTH_MODE=token the driver sends no token and the head refuses it: one line
    that says so, not a claim that nothing listens there."""
    address = ray_head.address
    code, output = run_bounded(
        [sys.executable, "-m", "tapcheck", "compare", "--dataset", str(small_compare_set),
         "--models", "ae", "--epochs", "1", "--out", str(tmp_path / "out"), "--ray", address],
        env=cluster_env(None), timeout=300, log=tmp_path / "compare.log")
    assert code == 2, f"{output[-3000:]}\n{ray_head.state()}"
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"tapcheck: error: the Ray cluster at {address} refused this driver: "
                           "it uses token authentication"), last
    assert "RAY_AUTH_MODE=token" in last
