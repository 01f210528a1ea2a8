"""Ctrl-C held back until a save (or a read) is done, and acted on right after it."""

from __future__ import annotations

import os
import signal

import pytest
import soundfile as sf

from tapcheck.interrupts import (Interrupted, deferred, enrolment_stops, file_identity,
                                 reporting, training_stops)

from .conftest import write_tone


def test_deferred_holds_ctrl_c_to_the_end_of_the_block_then_raises_it():
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nested_deferred_blocks_pass_ctrl_c_out_once():
    with pytest.raises(KeyboardInterrupt), deferred():
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
        # the inner block handed the signal to the outer one, which still holds it
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler


def _watch_finalisers(monkeypatch) -> list[str]:
    """Watch every SoundFile's __del__ from now on: a Ctrl-C landing in one is printed as
    "Exception ignored" and lost (CI saw it stopping `tapcheck import`), so each must run while
    Ctrl-C is held. Returns a list that fills with the files finalised with Python's own handler
    live."""
    unguarded: list[str] = []
    finalise = sf.SoundFile.__del__

    def watched(self):
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            unguarded.append(getattr(self.name, "name", self.name))
        finalise(self)

    monkeypatch.setattr(sf.SoundFile, "__del__", watched)
    return unguarded


def test_load_lets_go_of_the_sound_file_while_ctrl_c_is_held(tmp_path, monkeypatch):
    from tapcheck.audio import load
    from tapcheck.errors import AudioError

    clip = write_tone(tmp_path / "c.wav")
    cut = tmp_path / "cut.wav"  # decoding fails inside libsndfile: the error path
    cut.write_bytes(clip.read_bytes()[:44] + b"\xff" * 3)
    unguarded = _watch_finalisers(monkeypatch)
    assert load(clip, sr=44100).shape == (44100,)
    with pytest.raises(AudioError):
        load(cut, sr=44100)
    assert unguarded == []


def test_import_reads_and_saves_each_take_while_ctrl_c_is_held(tmp_path, monkeypatch):
    from tapcheck.datasets import Dataset
    from tapcheck.importing import import_clips

    clips = [write_tone(tmp_path / f"c{i}.wav", duration_s=3.0, seed=i) for i in range(3)]
    clips.append(write_tone(tmp_path / "silent.wav", duration_s=3.0, tap_at_s=None))
    clips.append(tmp_path / "noise.wav")
    clips[-1].write_bytes(b"RIFF" + bytes(range(256)) * 4)
    unguarded = _watch_finalisers(monkeypatch)
    result = import_clips(clips, Dataset.create(tmp_path / "ds"), board=1, side="left",
                          label="normal")
    assert len(result.imported) == 3 and len(result.errors) == 2
    assert unguarded == []


def _replace(path, data: bytes) -> None:
    """Rewrite ``path`` as tapcheck's atomic writes do: a new file renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_reporting_stops_on_ctrl_c_and_kill_with_what_was_kept_then(sig):
    """The sentence is asked for after the block has unwound, and SIGTERM's handler is put
    back: `kill` outside the block is `kill` again."""
    unwound = []

    def kept():
        return f"kept after {unwound}"

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped:
        with reporting(kept):
            try:
                os.kill(os.getpid(), sig)
            finally:
                unwound.append("the block")
    assert stopped.value.kept == "kept after ['the block']" and stopped.value.exit_code == 130
    assert not isinstance(stopped.value, (KeyboardInterrupt, Exception))  # click's Abort: no
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("where", ["__del__", "weakref callback"])
def test_a_signal_arriving_in_a_finalizer_still_stops_the_block(sig, where, monkeypatch):
    """Raised inside a ``__del__`` or a weak reference's callback, KeyboardInterrupt is
    printed as "Exception ignored in …" and dropped: a SIGTERM to compare while it wrote its
    report was lost in a WeakSet's callback, and compare finished, exit status 0 (QA). The
    signal is sent again once the finalizer has returned."""
    import sys
    import time
    import weakref

    from tapcheck.interrupts import terminate_as_interrupt

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)

    def signal_self(*_):
        os.kill(os.getpid(), sig)
        for _ in range(10_000):  # bytecodes: the handler runs here, inside the finalizer
            pass

    class Finalized:
        if where == "__del__":
            __del__ = signal_self

    ran_on = []
    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            thing = Finalized()
            if where != "__del__":
                watcher = weakref.ref(thing, signal_self)  # noqa: F841 (kept alive to fire)
            del thing
            ran_on.append("after the finalizer")  # it ran to its end, undisturbed
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
    assert ran_on == ["after the finalizer"] and dropped == []


def test_a_resent_signal_that_comes_before_its_timer_has_started_still_stops_the_block(
        monkeypatch):
    """On a loaded machine (CI) the re-send's 10 ms passed while the hook still waited for its
    timer's thread to start: the handler ran inside the hook, and its KeyboardInterrupt, the
    hook's own, was dropped for good (`test_a_signal_arriving_in_a_finalizer…` failed once in
    33 min of CI). A first timer that fires at once stands for that machine."""
    import sys
    import threading
    import time
    import weakref

    from tapcheck import interrupts

    class LoadedMachineTimer(threading.Timer):
        def __init__(self, interval, *args, **kwargs):
            super().__init__(0.0 if interval == 0.01 else interval, *args, **kwargs)

    monkeypatch.setattr(interrupts.threading, "Timer", LoadedMachineTimer)
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)

    def signal_self(*_):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # bytecodes: the handler runs here, inside the finalizer
            pass

    class Finalized:
        pass

    with pytest.raises(KeyboardInterrupt):
        with interrupts.terminate_as_interrupt():
            thing = Finalized()
            watcher = weakref.ref(thing, signal_self)  # noqa: F841 (kept alive to fire)
            del thing
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
    assert dropped == []


def test_an_uninterrupted_block_is_left_alone():
    with reporting(lambda: "never asked"):
        done = "done"
    assert done == "done"
    with pytest.raises(ValueError), reporting(lambda: "never asked"):
        raise ValueError("an error stays itself")


def _stopped_training(out, partial, *, watch=True, during=None, resume_with=None) -> str:
    with pytest.raises(Interrupted) as stopped:
        with training_stops() as watch_:
            if watch:
                watch_(out, partial, resume_with=resume_with)
            if during is not None:
                during()
            os.kill(os.getpid(), signal.SIGTERM)
    return stopped.value.kept


def test_what_an_interrupted_train_kept(tmp_path):
    out, partial = tmp_path / "m.pt", tmp_path / "m.pt.partial"
    assert _stopped_training(out, partial, watch=False) == "nothing was written"
    assert _stopped_training(out, partial) == (
        f"stopped before the first epoch was saved; {out} was not written")
    out.write_bytes(b"yesterday's model")
    assert _stopped_training(out, partial) == (
        f"stopped before the first epoch was saved; {out} is unchanged")
    assert _stopped_training(out, partial, during=lambda: partial.write_bytes(b"epoch 1")) == (
        f"the finished epochs are saved in {partial} — continue with `tapcheck train --resume` "
        "and the same options")
    assert _stopped_training(out, partial, during=lambda: _replace(out, b"today's model")) == (
        f"the model was already saved to {out}")
    again = "tapcheck train --dataset bench --out m.pt --resume"
    assert _stopped_training(out, partial, resume_with=again) == (
        f"the finished epochs are saved in {partial} — continue with `{again}`")


def _stopped_enrolment(model, *, undo, during=None) -> str:
    with pytest.raises(Interrupted) as stopped:
        with enrolment_stops(model, undo=undo, clips=3):
            if during is not None:
                during()
            os.kill(os.getpid(), signal.SIGINT)
    return stopped.value.kept


def test_what_an_interrupted_enroll_kept(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"a model")
    assert _stopped_enrolment(model, undo=False) == f"{model} is unchanged, nothing was enrolled"
    assert _stopped_enrolment(model, undo=True) == f"{model} is unchanged"

    def rewrite():
        _replace(model, b"a model, rewritten")

    assert _stopped_enrolment(model, undo=True, during=rewrite) == (
        f"the last enrolment was already removed from {model}")
    assert _stopped_enrolment(model, undo=False, during=rewrite) == (
        f"the enrolment was already saved: 3 clip(s) enrolled into {model} — `tapcheck enroll "
        f"--model {model} --list` shows it, `tapcheck enroll --model {model} --undo` takes it "
        "back")


def test_file_identity_tells_an_atomic_rewrite_from_the_file_seen_before(tmp_path):
    path = tmp_path / "m.pt"
    assert file_identity(path) is None
    path.write_bytes(b"same size")
    before = file_identity(path)
    assert file_identity(path) == before
    _replace(path, b"same size")
    assert file_identity(path) != before


AT_EXIT = """
import atexit, sys, time
from tapcheck.cli import main

atexit.register(time.sleep, 20)  # an exit that takes a while, as torch's callbacks can
sys.argv = ["tapcheck", "datasets"]
sys.exit(main())
"""


@pytest.mark.parametrize("signals", [1, 2])
def test_a_ctrl_c_after_the_command_is_kept_from_pythons_exit(tmp_path, signals):
    """A Ctrl-C just after a command's last line printed "Exception ignored in atexit callback
    … KeyboardInterrupt" (QA). A first one now changes nothing, the command's status stands;
    a second ends an exit that hangs at once, with the command's status: 130 read as "stopped"
    after an import that had printed its summary (`timeout -s INT` signals twice, QA)."""
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-c", AT_EXIT], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline().startswith("no datasets")  # the command is done
    time.sleep(0.5)  # in the atexit callback by now
    for _ in range(signals):
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
    started = time.monotonic()
    if signals == 1:
        process.send_signal(signal.SIGTERM)  # the second: ends the 20 s exit now
    code = process.wait(timeout=10)
    err = process.stderr.read()
    assert time.monotonic() - started < 5
    assert "KeyboardInterrupt" not in err and "Exception ignored" not in err, err
    assert code == 0  # `datasets` finished


def test_a_signal_dropped_at_the_blocks_very_end_still_stops_it(monkeypatch):
    """Sent again 10 ms after the finalizer, a signal dropped in the block's last moment
    arrived after it, when quiet_exit's handler let it go: exit 0 (review). It is raised as
    the block ends."""
    import sys
    import time

    from tapcheck.interrupts import terminate_as_interrupt

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the handler runs here, inside the finalizer
                pass

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as quiet_exit lets one go
    try:
        with pytest.raises(KeyboardInterrupt):
            with terminate_as_interrupt():
                thing = Finalized()
                del thing  # the block's last act: no bytecode after it to take the re-send
    finally:
        time.sleep(0.1)  # a re-send still under way lands on the no-op, not on pytest
        signal.signal(signal.SIGTERM, previous)
    assert dropped == []


IN_TEARDOWN = """
import os, signal, sys, time
import tapcheck.entry

class Late:
    def __del__(self):  # freed in Python's teardown of the modules, after the atexit callbacks
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)

tapcheck.entry.late = Late()
sys.argv = ["tapcheck", "datasets"]
sys.exit(tapcheck.entry.main())
"""


def test_a_ctrl_c_in_pythons_teardown_leaves_the_commands_status(tmp_path):
    """After the atexit callbacks Python puts the default handlers back and frees the modules,
    which takes a moment with torch loaded: a Ctrl-C there ended `enroll`, which had printed
    that it enrolled, with status 130 and no word (QA). The process now ends before that."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", IN_TEARDOWN], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("no datasets"), result.stderr
    assert result.returncode == 0, result.stderr
