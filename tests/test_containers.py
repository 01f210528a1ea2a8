"""What a WAV header promises against what the file holds (tapcheck.containers), through
:func:`tapcheck.audio.load`, as every command reads audio."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from tapcheck.audio import load
from tapcheck.errors import AudioError, TapcheckWarning

from .conftest import write_tone


def _patched(path, at: int, value: int, width: int = 2):
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt " and data[36:40] == b"data"  # a plain 44-byte header
    data[at:at + width] = value.to_bytes(width, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_header_whose_sample_width_does_not_fit_its_frames_is_damaged(tmp_path):
    """A 16-bit take whose header said 7 bits was read by libsndfile as 8-bit noise at twice
    its length and refused as "heavily clipped — lower the input gain" (QA)."""
    path = _patched(write_tone(tmp_path / "t.wav"), 34, 7)  # bits per sample
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (f"{path}: its header is damaged: its 7-bit samples take 1 byte(s) "
                            "each, but its frames of 1 channel(s) are 2 bytes — re-export the "
                            "recording (or copy it again from the recorder)")


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "ULAW"])
def test_every_sample_width_libsndfile_writes_passes_the_width_check(tmp_path, subtype):
    path = tmp_path / f"{subtype}.wav"
    y = 0.3 * np.sin(np.arange(44100) * 0.05)
    sf.write(path, np.stack([y, y], axis=1), 44100, subtype=subtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 8-bit and two channels are noted; not the point here
        assert len(load(path)) == 44100


def test_a_sample_width_padded_to_whole_bytes_is_read(tmp_path):
    """12-bit samples in 2 bytes, as the WAVE format allows (and some recorders write)."""
    path = _patched(write_tone(tmp_path / "t.wav"), 34, 12)
    assert len(load(path)) == 44100


def _with_short_data_chunk(path, held_bytes: int):
    """``path`` with its data chunk's length set to ``held_bytes``; the samples stay."""
    return _patched(path, 40, held_bytes, width=4)


def test_audio_past_a_data_chunk_the_header_made_short_is_warned_of(tmp_path):
    """A recorder stopped between two header updates: half a take was judged, and the only
    word was that the strike lay near its end — "record the tap earlier" (QA)."""
    path = _with_short_data_chunk(write_tone(tmp_path / "t.wav", duration_s=3.0), 132300)
    with pytest.warns(TapcheckWarning) as w:
        y = load(path)
    assert len(y) == 66150  # what the header says is read: the rest may be junk
    assert [str(m.message) for m in w] == [
        f"{path}: its header's data chunk holds 1.50 s of audio, but 132300 more bytes that "
        "form no chunk follow it (the recorder stopped before it updated the header?); only "
        "the first 1.50 s are read — if the rest is audio, mend the header (sox "
        "--ignore-length in.wav out.wav)"]


def test_chunks_and_a_little_junk_after_the_audio_are_no_warning(tmp_path):
    """Metadata chunks (LIST, id3) follow the audio in many recorders' files, and a few
    hundred bytes of padding in some tools'."""
    path = write_tone(tmp_path / "t.wav", duration_s=3.0)
    info = b"INFOISFT\x06\x00\x00\x00sox 1\x00"
    data = path.read_bytes() + b"LIST" + len(info).to_bytes(4, "little") + info \
        + b"id3 " + (5000).to_bytes(4, "little") + bytes(5000) + bytes(1000)
    path.write_bytes(data[:4] + (len(data) - 8).to_bytes(4, "little") + data[8:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load(path)) == 3 * 44100


def test_a_file_of_many_channels_is_refused_before_it_is_read(tmp_path):
    """A 16-channel 384 kHz file of 119 s passed the length and rate limits and took 6 GB of
    memory before it was found to be silent (QA). Here 10 s of it: a sparse file of 123 MB,
    refused from its header."""
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((384, 16), dtype=np.int16), 384000, subtype="PCM_16")
    data_bytes = 10 * 384000 * 16 * 2
    head = bytearray(path.read_bytes()[:44])
    assert head[36:40] == b"data"
    head[40:44] = data_bytes.to_bytes(4, "little")
    head[4:8] = (36 + data_bytes).to_bytes(4, "little")
    path.write_bytes(bytes(head))
    with open(path, "r+b") as f:
        f.truncate(44 + data_bytes)  # zeros, not written: the test stays small on disk
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (f"{path}: holds 16 channels of 10 s at 384000 Hz, 61 million "
                            "samples; tapcheck reads up to 46 million (a tap clip is a few "
                            "seconds of one channel) — keep the microphone's channel and cut "
                            "the clip around the strike (e.g. sox in.wav out.wav remix 1 trim "
                            "0 3)")


def test_a_file_of_many_channels_and_no_length_is_refused_for_its_channels(tmp_path):
    """A FLAC streamed without its sample count is read up to the limit: with 8 channels the
    limit is the samples', and it said "is over 60 s long — cut the clip" of a file that may
    hold 120 s (review)."""
    path = tmp_path / "eight.flac"
    y = np.zeros((96000 * 61, 8), dtype=np.int16)
    y[::4800] = 1000  # not silence: the refusal must come from the length
    sf.write(path, y, 96000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    data[8 + 13] &= 0xF0  # its 36-bit sample count: 0, "not given"
    data[8 + 14:8 + 18] = bytes(4)
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: holds 8 channels of over 60 s at 96000 Hz, over 46 "
                                   "million samples; tapcheck reads up to 46 million")
