"""Ctrl-C held back until a save (or a read) is done, and acted on right after it."""

from __future__ import annotations

import os
import signal

import pytest
import soundfile as sf

from tapcheck.interrupts import deferred

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
