"""tapcheck doctor: it finds what is really wrong with the machine and the dataset, and says so.

The machine's conditions are made real, not imitated: PortAudio is hidden in a private mount
namespace (a bind mount of /dev/null over the library, visible to that process only), input
devices come from a real PulseAudio server with a null sink, and folder permissions are enforced
by the kernel (see ``obeying_file_modes``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tapcheck.devices import NO_INPUT_FIX, PORTAUDIO_FIX
from tapcheck.runtime import cpu_has_bf16

from .conftest import obeying_file_modes


def _doctor(*args: str, prefix: list[str] = (), env: dict | None = None):
    result = subprocess.run([*prefix, sys.executable, "-m", "tapcheck", "doctor", *args],
                            capture_output=True, text=True, env={**os.environ, **(env or {})})
    return result.returncode, result.stdout, result.stderr


def _lines(out: str, level: str) -> list[str]:
    return [ln.strip() for ln in out.splitlines() if ln.strip().startswith(level)]


def _private_mounts(*mounts: tuple[str, str]) -> list[str]:
    """Command prefix running in a mount namespace of its own with ``(source, target)`` bind
    mounts; nothing outside that process sees them."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to hide a library from one process"
    setup = "; ".join(f"mount --bind {src} {dst}" for src, dst in mounts)
    root = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [unshare, "--mount", "--propagation", "private", *root, "sh", "-ec",
            f'{setup}; exec "$@"', "sh"]


def _portaudio_library() -> str:
    found = sorted(glob.glob("/usr/lib/*/libportaudio.so.2")) + glob.glob(
        "/usr/lib/libportaudio.so.2")
    assert found, "libportaudio2 is not installed (.ci/run installs it)"
    return os.path.realpath(found[0])


def test_missing_portaudio_is_a_note_with_its_fix():
    """A note, not a problem: only record, listen and station need it."""
    hidden = _private_mounts(("/dev/null", _portaudio_library()))
    code, out, err = _doctor(prefix=hidden)
    assert code == 0, err
    (line,) = [ln for ln in _lines(out, "note") if "PortAudio" in ln]
    assert line.startswith("note     PortAudio is not available (")
    assert "; `tapcheck record`, `listen` and `station` need it — " in line
    assert line.endswith(f"— {PORTAUDIO_FIX}")
    assert "Traceback" not in err
    # and every command that needs no microphone still works without it
    result = subprocess.run([*hidden, sys.executable, "-m", "tapcheck", "models"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "arcface-resnet18" in result.stdout


@pytest.fixture
def pulse_server(tmp_path):
    """A real PulseAudio server with a null sink: its monitor is an input device."""
    pulseaudio = shutil.which("pulseaudio")
    assert pulseaudio, "pulseaudio is not installed (.ci/run installs it)"
    runtime = tmp_path / "pulse-home"
    runtime.mkdir()
    env = {"HOME": str(runtime), "XDG_RUNTIME_DIR": str(runtime)}
    server = subprocess.Popen(
        [pulseaudio, "--daemonize=no", "--exit-idle-time=-1", "-n", "--disallow-exit",
         "--load=module-null-sink sink_name=tapcheck_null",
         "--load=module-native-protocol-unix", "--log-target=stderr"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not (runtime / "pulse" / "native").exists():
        assert server.poll() is None, server.stderr.read().decode()
        assert time.monotonic() < deadline, "PulseAudio did not start"
        time.sleep(0.05)
    yield env
    server.terminate()
    server.wait(timeout=20)


def test_input_device_of_a_running_sound_server_is_found(pulse_server, small_train_set):
    code, out, err = _doctor("--dataset", str(small_train_set), env=pulse_server)
    (line,) = [ln for ln in _lines(out, "ok") if "input device" in ln]
    assert "pulse" in line
    assert code == 0 and out.rstrip().endswith("nothing to fix"), out + err


def test_no_input_device_is_a_note(tmp_path):
    """Only record, listen and station need a microphone: an import-and-judge user was told
    "1 problem(s) to fix", exit 1."""
    # no sound server to talk to, and no sound cards: /dev/snd (if any) hidden behind an
    # empty folder
    empty = tmp_path / "empty"
    empty.mkdir()
    mounts = [(str(empty), "/dev/snd")] if os.path.isdir("/dev/snd") else []
    prefix = _private_mounts(*mounts) if mounts else []
    code, out, _ = _doctor(prefix=prefix, env={"PULSE_SERVER": f"unix:{tmp_path}/none",
                                               "XDG_RUNTIME_DIR": str(tmp_path)})
    assert code == 0
    assert (f"note     no input device (microphone) found; `tapcheck record`, `listen` and "
            f"`station` need one — {NO_INPUT_FIX}") in _lines(out, "note")


def test_threads_and_bfloat16_are_reported_truthfully():
    code, out, _ = _doctor(env={"OMP_NUM_THREADS": "1"})
    cpus = len(os.sched_getaffinity(0))
    (threads,) = [ln.strip() for ln in out.splitlines() if "torch " in ln and "CPU" in ln]
    if cpus > 1:
        assert threads == (f"note     torch uses 1 of {cpus} CPUs, so training is slower than it "
                           "could be (OMP_NUM_THREADS=1) — unset OMP_NUM_THREADS to train on "
                           "every core")
    else:
        assert threads == "ok       torch computes on cpu with 1 thread(s); 1 CPU(s) available"
    (bf16,) = [ln.strip() for ln in out.splitlines() if "bfloat16" in ln]
    assert bf16.startswith("ok       bfloat16: native" if cpu_has_bf16() else
                           "note     bfloat16: not native")


def test_unwritable_recordings_folder_is_a_problem(tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    recordings.chmod(0o555)
    code, out, _ = _doctor(prefix=obeying_file_modes(),
                           env={"TAPCHECK_RECORDINGS": str(recordings)})
    assert code == 1
    assert (f"PROBLEM  recordings folder {recordings}: cannot be written (Permission denied) — "
            "choose a folder you may write to, or fix its permissions") in _lines(out, "PROBLEM")
    # the writable ones by their full paths ("writable: models models" read as a typo)
    fine = _lines(out, "ok")
    assert any(line.startswith("ok       writable: models (/") for line in fine), fine


def test_a_file_where_a_folder_belongs_is_told_as_the_commands_tell_it(tmp_path):
    """`TAPCHECK_MODELS=afile tapcheck doctor` said "cannot be written (Not a directory) — a file
    stands where a folder should be; choose another path" while judge and train say what the
    folder keeps and which variable to set."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out, _ = _doctor(env={"TAPCHECK_MODELS": str(afile), "TAPCHECK_CACHE": str(afile)})
    assert code == 1
    problems = _lines(out, "PROBLEM")
    assert (f"PROBLEM  models folder {afile}: is a file, not a folder; model files are kept in a "
            "folder — set $TAPCHECK_MODELS to a folder, or move the file aside") in problems
    # the commands go on without a cache, with one warning: a note, not a problem
    assert (f"note     feature cache folder {afile}: is a file, not a folder; cached features are "
            "kept in a folder; the commands compute the crops each time — set TAPCHECK_CACHE to a "
            "folder you may write to") in _lines(out, "note")
    assert afile.read_text() == "x"


def test_the_inspection_log_is_checked_as_its_readers_read_it(tmp_path, monkeypatch):
    """doctor reads the log listen and station keep: none yet, its judgments, a file that is no
    log, and a row `tapcheck log` and the station's log page refuse — each named with its fix,
    and nothing written (a read-only check)."""
    import sqlite3
    from datetime import datetime

    from tapcheck.doctor import check_inspections
    from tapcheck.inspections import InspectionLog

    folder = tmp_path / "inspections"
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(folder))
    [finding] = check_inspections()
    assert (finding.level, finding.message) == (
        "ok", f"inspection log {folder / 'inspections.sqlite'}: none yet (`tapcheck listen` and "
              "`station` start it)")
    assert not folder.exists()
    with InspectionLog(create=True) as log:
        for hour in (9, 10):
            log.append(np.zeros(4410, np.float32), sr=44100,
                       when=datetime(2025, 5, 2, hour, 0).astimezone(), board=3, model="m",
                       model_path="m.pt", score=0.1, threshold=0.2, verdict="NORMAL")
    [finding] = check_inspections()
    assert (finding.level, finding.message) == (
        "ok", f"inspection log {folder / 'inspections.sqlite'}: 2 judgment(s), the last "
              f"{datetime(2025, 5, 2, 10, 0).astimezone():%Y-%m-%d %H:%M:%S %Z}")
    db = sqlite3.connect(folder / "inspections.sqlite")
    db.execute("UPDATE inspections SET score = 'abc' WHERE id = 2")
    db.commit()
    db.close()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    [finding] = check_inspections()
    assert str(finding) == (
        f"PROBLEM  inspection log {folder / 'inspections.sqlite'}: inspections row 2: score "
        "'abc' is not a finite number — delete or fix the row (sqlite3: DELETE FROM inspections "
        "WHERE id = 2), or move the log aside")
    (folder / "inspections.sqlite").write_bytes(b"not a database")
    [finding] = check_inspections()
    assert str(finding) == (
        f"PROBLEM  inspection log {folder / 'inspections.sqlite'}: is not a usable inspection "
        "log (file is not a database) — move it aside; `tapcheck listen` then starts a new one "
        "(or set $TAPCHECK_INSPECTIONS)")
    assert {p for p in folder.rglob("*") if p.is_file()} == set(before)


def test_an_inspection_log_this_account_may_not_write_is_a_problem(tmp_path):
    """The folder may be written and the log not: another operator's log, made 0644 (SQLite's
    mode, before tapcheck made it itself), refused this account's listen while doctor said
    "ok writable: inspections" (QA)."""
    import sqlite3

    from .conftest import as_another_user

    folder = tmp_path / "inspections"
    folder.mkdir()
    folder.chmod(0o777)
    sqlite3.connect(folder / "inspections.sqlite").close()  # as an older tapcheck made it
    (folder / "inspections.sqlite").chmod(0o644)
    code = "from tapcheck.doctor import check_inspections\nprint(*check_inspections())"
    done = subprocess.run([*as_another_user(54321), sys.executable, "-c", code],
                          env={**os.environ, "TAPCHECK_INSPECTIONS": str(folder)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"PROBLEM  inspection log {folder / 'inspections.sqlite'}: this account may not write "
        "it (user root, mode 644), so listen and station would be refused — its owner can "
        "make it the group's: chmod g+rw (and chgrp to a group you share)")
