"""Reading and writing clips: any rate and channel count in, mono 44.1 kHz out, clear errors."""

import warnings

import numpy as np
import pytest
import soundfile as sf
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapcheck.audio import load, peak_dbfs, write_wav
from tapcheck.errors import AudioError, FormatWarning, TapcheckWarning

from .conftest import write_tone


def test_stereo_48k_is_downmixed_and_resampled_with_warnings(tmp_path):
    path = write_tone(tmp_path / "s.wav", sr=48000, channels=2, duration_s=1.0)
    with pytest.warns(TapcheckWarning) as warned:
        y = load(path, sr=44100)
    messages = " ".join(str(w.message) for w in warned)
    assert "averaged to mono" in messages and "resampled from 48000 Hz" in messages
    assert y.ndim == 1 and y.dtype == np.float32 and abs(len(y) - 44100) <= 1


# GSM 6.10 in WAV: libsndfile cannot seek in it, and reading it read as a damaged file (QA)
@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"),
                                          ("WAV", "GSM610")])
def test_other_formats(tmp_path, fmt, subtype):
    path = tmp_path / f"k.{fmt.lower()}"
    sf.write(path, np.sin(np.arange(44100) / 10) * 0.5, 44100, format=fmt, subtype=subtype)
    assert 0 <= len(load(path)) - 44100 < 320  # GSM's frames of 320 samples: the last padded


def test_write_wav_is_atomic_and_round_trips(tmp_path):
    y = (np.sin(np.arange(1000) / 7) * 0.5).astype(np.float32)
    path = write_wav(tmp_path / "x" / "t.wav", y, sr=44100)
    np.testing.assert_allclose(load(path), y, atol=1 / 32767)
    assert not list(path.parent.glob("*.tmp"))


def test_write_wav_failure_keeps_the_old_file(tmp_path):
    path = write_wav(tmp_path / "t.wav", np.zeros(100), sr=44100)
    before = path.read_bytes()
    with pytest.raises((ValueError, RuntimeError)):
        write_wav(path, np.zeros(100), sr=-1)  # invalid rate: soundfile refuses mid-write
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("make, match", [
    (lambda p: None, "file not found"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "not a readable audio file"),
    # a WAV libsndfile cannot lay out (its data chunk before its fmt chunk): said to be a WAV
    # whose header is the problem, not "use a WAV or FLAC recording" (QA)
    (lambda p: p.write_bytes(b"RIFF\x2c\x00\x00\x00WAVEdata\x04\x00\x00\x00\x01\x00\x02\x00"
                             b"fmt \x10\x00\x00\x00\x01\x00\x01\x00\x44\xac\x00\x00"
                             b"\x88\x58\x01\x00\x02\x00\x10\x00"),
     r"bad.wav: is a WAV file whose header cannot be read, damaged or laid out unusually "
     r"\(libsndfile: .+\) — export it again from the recorder or editor as a plain WAV"),
    # the name is there: "file not found — check the path" sent the user to check it (QA)
    (lambda p: p.symlink_to(p.parent / "moved.wav"),
     "bad.wav: is a link to .*moved.wav, which does not exist — point the link at the "),
    # through a second link, to where the chain ends; a relative target from the link's folder
    (lambda p: (p.symlink_to("second.wav"), (p.parent / "second.wav").symlink_to("gone.wav")),
     "bad.wav: is a link to .*/gone.wav, which does not exist"),
])
def test_unreadable_files(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=match) as e:
        load(path)
    assert str(path) in str(e.value) and "—" in str(e.value)  # names the file and a fix


def test_a_clip_in_a_folder_linked_to_nothing_says_so(tmp_path):
    """A board folder moved to another disk: "file not found — check the path" of every take."""
    (tmp_path / "board21").symlink_to(tmp_path / "old-disk" / "board21")
    with pytest.raises(AudioError, match=r"board21/left/take001\.wav: lies in .*board21, a link "
                       r"to .*old-disk/board21, which does not exist"):
        load(tmp_path / "board21" / "left" / "take001.wav")


def test_truncated_wav(tmp_path):
    path = write_tone(tmp_path / "t.wav", duration_s=1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load(path)


@pytest.mark.parametrize("junk", [0, 3000])
def test_a_wav_whose_sizes_were_never_written_reads_to_its_end(tmp_path, junk):
    """A recorder stopped before it wrote the RIFF and data sizes leaves them 0, all its audio
    there; libsndfile read no samples and the clip was refused as "holds no samples —
    re-record" (QA). It reads whole, with a warning naming the mend."""
    import struct

    path = write_tone(tmp_path / "t.wav", duration_s=1.0)
    if junk:  # the data chunk found wherever it lies
        path.write_bytes(_with_junk_chunk(path.read_bytes(), junk))
    whole = load(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[4:8] = data[at + 4:at + 8] = struct.pack("<I", 0)
    unsized = tmp_path / "unsized.wav"
    unsized.write_bytes(bytes(data))
    with pytest.warns(TapcheckWarning, match=r"unsized.wav: its header gives its audio no length "
                      r"\(the recorder stopped before finishing the file\); read to the file's "
                      r"end — re-save it to mend the header"):
        y = load(unsized)
    np.testing.assert_array_equal(y, whole)
    unsized.write_bytes(bytes(data[:at + 8]))  # the header alone: nothing to read
    with pytest.raises(AudioError, match="holds no samples"):
        load(unsized)


def test_libmpg123_prints_nothing_above_the_one_line_error(tmp_path, capfd):
    """A damaged MP3 printed libmpg123's own lines (``Note: Illegal Audio-MPEG-Header``,
    ``Note: Trying to resync...``) on standard error above tapcheck's error (QA)."""
    whole = tmp_path / "whole.mp3"
    sf.write(whole, np.sin(np.arange(3 * 44100) / 10) * 0.5, 44100, format="MP3")
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 800] = bytes(800)  # a stretch of frames zeroed: decoding resyncs
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(AudioError):
        load(damaged)
    assert capfd.readouterr().err == ""
    import sys

    print("after", file=sys.stderr)  # and the descriptor is back
    assert capfd.readouterr().err == "after\n"


@pytest.mark.parametrize("size", [4, 6, 10])
def test_an_au_header_cut_before_its_lengths_is_no_audio_file(tmp_path, size):
    """Reading the AU data length of a `.snd` file of under 12 bytes raised struct.error: a
    traceback that stopped the other clips of the run (review)."""
    path = tmp_path / "short.au"
    path.write_bytes((b".snd" + bytes(8))[:size])
    with pytest.raises(AudioError, match="short.au: "):
        load(path)


def test_mpeg_decoding_in_two_threads_gives_standard_error_back(tmp_path, capfd):
    """Descriptor 2 is the process's: two overlapping swaps to /dev/null left it there for
    good (review). One thread at a time swaps it, and it is back after both."""
    import threading

    whole = tmp_path / "whole.mp3"
    sf.write(whole, np.sin(np.arange(3 * 44100) / 10) * 0.5, 44100, format="MP3")
    data = bytearray(whole.read_bytes())
    data[len(data) // 2:len(data) // 2 + 800] = bytes(800)
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))

    def loads():
        for _ in range(8):
            with pytest.raises(AudioError):
                load(damaged)

    threads = [threading.Thread(target=loads) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    capfd.readouterr()
    import os

    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def _with_junk_chunk(data: bytes, size: int) -> bytes:
    """A WAV with a JUNK chunk of ``size`` bytes before its samples, as recorders pad."""
    import struct

    out = data[:12] + b"JUNK" + struct.pack("<I", size) + bytes(size) + data[12:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


@pytest.mark.parametrize("fmt, subtype, suffix", [
    ("WAV", "PCM_16", "wav"), ("AIFF", "PCM_16", "wav"), ("W64", "PCM_16", "wav"),
    ("RF64", "PCM_16", "wav"), ("OGG", "VORBIS", "ogg"), ("WAV", "PCM_16", "junk.wav"),
    ("AU", "PCM_16", "au")])
@pytest.mark.parametrize("kept", [0.33, 0.9])
def test_a_file_cut_short_is_truncated_in_every_container(tmp_path, fmt, subtype, suffix, kept):
    """libsndfile reads what is left of a cut file without a word: only a WAV whose samples
    began in its first 4 kB was caught; a third of an AIFF, a Wave64, an RF64, an Ogg or an AU
    file (or of a WAV padded with a JUNK chunk) was judged, imported and enrolled as a 1 s
    clip."""
    whole = tmp_path / f"whole.{suffix}"
    sf.write(whole, np.sin(np.arange(3 * 44100) / 10) * 0.5, 44100, format=fmt, subtype=subtype)
    data = whole.read_bytes()
    if suffix == "junk.wav":
        data = _with_junk_chunk(data, 4200)
        whole.write_bytes(data)
    assert len(load(whole)) == 3 * 44100  # whole, it reads
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[:int(len(data) * kept)])
    with pytest.raises(AudioError) as e:
        load(cut)
    assert str(e.value).startswith(f"{cut}: is truncated: its ")
    assert str(e.value).endswith(" — copy or record the file again")


def _ogg(tmp_path) -> bytes:
    path = tmp_path / "whole.ogg"
    sf.write(path, np.sin(np.arange(3 * 44100) / 10) * 0.5, 44100, format="OGG")
    return path.read_bytes()


@pytest.mark.parametrize("after", [b"TAG" + bytes(125), bytes(512)], ids=["id3", "padding"])
def test_a_whole_ogg_file_with_bytes_after_its_last_page_reads(tmp_path, after):
    """An ID3 tag or a copy's block padding after the last page was called a cut page."""
    path = tmp_path / "tagged.ogg"
    path.write_bytes(_ogg(tmp_path) + after)
    assert len(load(path)) == 3 * 44100


def test_an_ogg_stream_not_marked_as_ended_reads_with_a_warning(tmp_path):
    """A recorder killed at a page boundary leaves a whole last page without the end-of-stream
    flag: libsndfile reads it all, and it may end early: a warning, not an error."""
    import struct

    from tapcheck.containers import _ogg_crc

    data = bytearray(_ogg(tmp_path))
    last = data.rfind(b"OggS")
    data[last + 5] &= ~0x04  # the flag off, and the page's checksum made right again
    data[last + 22:last + 26] = bytes(4)
    data[last + 22:last + 26] = struct.pack("<I", _ogg_crc(bytes(data[last:])))
    path = tmp_path / "unended.ogg"
    path.write_bytes(bytes(data))
    with pytest.warns(TapcheckWarning, match="its last Ogg page is not marked as the end of the "
                                             "stream"):
        assert len(load(path)) == 3 * 44100


def test_fake_ogg_page_headers_are_refused_after_a_few_checksums(tmp_path, monkeypatch):
    """128 kB of "OggS" headers claiming long pages took 18 s of checksums (a hostile file):
    at most 64 headers are checksummed now."""
    from tapcheck import containers

    checked, crc = [], containers._ogg_crc
    monkeypatch.setattr(containers, "_ogg_crc", lambda page: checked.append(1) or crc(page))
    path = tmp_path / "fake.ogg"
    path.write_bytes((b"OggS" + bytes(22) + b"\x01" + b"\x00") * 4000)
    with pytest.raises(AudioError, match="is truncated: its last Ogg page is cut off"):
        load(path)
    assert len(checked) == containers._OGG_CANDIDATES


def test_a_flac_without_its_length_is_named_so(tmp_path):
    """A streamed FLAC's sample count of 0 (legal: "unknown") read as SF_COUNT_MAX frames, and
    the clip was refused as "209146758205324 s long — cut the clip around the strike"."""
    path = tmp_path / "stream.flac"
    sf.write(path, np.sin(np.arange(44100) / 10) * 0.5, 44100, format="FLAC")
    data = bytearray(path.read_bytes())
    data[8 + 13] &= 0xF0  # STREAMINFO's 36-bit sample count: 4 bits, then 4 bytes
    data[8 + 14:8 + 18] = bytes(4)
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (
        f"{path}: does not give its length (a FLAC streamed without its sample count?), and "
        "libsndfile cannot read it without one — re-encode it, e.g. sox in.flac out.wav (a WAV "
        "states its length)")


@pytest.mark.parametrize("scale", [1000.0, 1e30])
def test_a_mis_scaled_float_file_is_named_so(tmp_path, scale):
    """A float file scaled by 1e30 was "heavily clipped — lower the input gain" (the 16-bit
    steps of its quiet stretches, scaled past 0.9, read as flat tops); one scaled by 1000 was
    judged, with false clipping and DC offset warnings."""
    tap = (np.round(np.sin(np.arange(44100) / 10) * np.exp(-np.arange(44100) / 4000) * 9000)
           / 32767)
    path = tmp_path / "loud.wav"
    sf.write(path, (tap * scale).astype(np.float32), 44100, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (f"{path}: reaches {np.abs(tap).max() * scale:.3g} times full scale, "
                            "which no recording does — the file is corrupt or mis-scaled; "
                            "re-export it")


def test_8_bit_audio_is_named_in_a_warning(tmp_path):
    """8-bit copies of healthy takes read ANOMALOUS 4 times in 12 (16-bit: once), and the only
    word was a "DC offset … (a faulty microphone or cable?)"."""
    path = tmp_path / "u8.wav"
    sf.write(path, np.sin(np.arange(44100) / 10) * 0.5, 44100, subtype="PCM_U8")
    with pytest.warns(TapcheckWarning, match=r"is 8-bit audio: its steps of 1/128 of full scale"
                                             r" add noise .* record or export at 16 bits"):
        y = load(path)
    # the rounding's offset is taken out with it, not left for "DC offset removed (a faulty
    # microphone or cable?)", which followed every 8-bit file (QA)
    from tapcheck.features import MAX_DC_OFFSET

    assert abs(float(np.mean(y, dtype=np.float64))) < MAX_DC_OFFSET / 10


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    y = np.zeros(1000, dtype=np.float32)
    y[10] = np.nan
    sf.write(path, y, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load(path)


def test_peak_dbfs():
    assert peak_dbfs(np.array([0.5, -0.25])) == pytest.approx(-6.02, abs=0.01)
    assert peak_dbfs(np.zeros(3)) == float("-inf")


# -- property: any file load() accepts comes out right; anything else is a TapcheckError ----------

RATES = st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]) | st.integers(
    min_value=1000, max_value=200_000)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=0, max_value=2 * 48000), sr=RATES,
       channels=st.integers(min_value=1, max_value=4),
       amplitude=st.sampled_from([0.0, 1e-6, 0.01, 0.5, 1.0]) | st.floats(0, 8),
       content=st.sampled_from(["tap", "noise", "silence", "dc", "nan", "inf"]),
       subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]))
def test_load_any_file(n, sr, channels, amplitude, content, subtype):
    import tempfile
    import warnings
    from pathlib import Path

    from tapcheck.errors import TapcheckError

    rng = np.random.default_rng(n)
    with np.errstate(invalid="ignore"):  # inf x amplitude 0 is NaN: also a case to load
        y = {"tap": np.sin(np.arange(n) * 0.07) * np.exp(-np.arange(n) / max(1, n / 8)),
             "noise": rng.standard_normal(n), "silence": np.zeros(n), "dc": np.ones(n),
             "nan": np.full(n, np.nan), "inf": np.full(n, np.inf)}[content] * amplitude
    data = np.repeat(y[:, None], channels, axis=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        sf.write(path, data, sr, subtype=subtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = load(path, sr=44100)
            except TapcheckError as e:
                assert str(path) in str(e)
                event(f"refused: {type(e).__name__}")
                return
    assert all(issubclass(w.category, TapcheckWarning) for w in caught), [
        str(w.message) for w in caught]
    assert out.dtype == np.float32 and out.ndim == 1
    assert np.isfinite(out).all()
    assert abs(len(out) - n * 44100 / sr) <= 1
    assert (channels > 1) == any("averaged to mono" in str(w.message) for w in caught)
    assert (sr != 44100) == any("resampled from" in str(w.message) for w in caught)


def test_rates_too_low_for_the_crop_are_refused(tmp_path):
    from tapcheck.config import FeatureConfig
    from tapcheck.features import required_sample_rate

    need = required_sample_rate(FeatureConfig(), sr=44100)
    assert need == pytest.approx(2 * 100 * 44100 / 1024)  # the crop's top bin, 4307 Hz, x 2
    # every bin up to Nyquist: the config's own rate is enough
    assert required_sample_rate(FeatureConfig(n_bins=513), sr=44100) == 44100
    low = write_tone(tmp_path / "8k.wav", sr=8000)
    with pytest.raises(AudioError, match="is sampled at 8000 Hz"):
        load(low, min_sr=need)
    with pytest.warns(TapcheckWarning, match="resampled from 16000 Hz"):
        assert len(load(write_tone(tmp_path / "16k.wav", sr=16000), min_sr=need)) == 44100


def _claiming_rate(path, rate: int):
    """``path`` (a WAV) with its header's sample rate (bytes 24-27) and byte rate (28-31, the
    rate times the block size at 32-33) set to ``rate``: the samples stay as they were."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt "  # a plain header: the rate is where the test patches it
    block = int.from_bytes(data[32:34], "little")
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * block % 2**32).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_header_claiming_1_hz_is_refused_for_its_rate_not_its_length(tmp_path):
    """2 s of samples at a claimed 1 Hz were "88200 s long; a tap clip is a few seconds — cut
    the clip", a fix for another problem: the rate is what is wrong, and checked first."""
    from tapcheck.features import load_clip  # as judge, import and train read clips

    path = _claiming_rate(write_tone(tmp_path / "one.wav", duration_s=2.0), 1)
    with pytest.raises(AudioError) as e:
        load_clip(path)
    assert str(e.value) == (f"{path}: is sampled at 1 Hz, so it holds sound up to 0.5 Hz only; "
                            "tapcheck listens up to 4307 Hz — record at 44100 Hz (at least "
                            "8614 Hz)")


@pytest.mark.parametrize("rate", [0, 2**31, 0xFFFFFFF0])
def test_a_wav_header_with_an_invalid_rate_is_named_so(tmp_path, rate):
    """libsndfile cannot take these ("SF_INFO struct incomplete"), which read as "not a
    readable audio file — use a WAV, FLAC or OGG recording" of what is a WAV."""
    path = _claiming_rate(write_tone(tmp_path / "bad-rate.wav"), rate)
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (f"{path}: its header gives an invalid sample rate ({rate} Hz) — "
                            "re-export the recording")


def test_a_wav_header_whose_rate_and_byte_rate_disagree_is_damaged(tmp_path):
    """One field edited to 22050 Hz of a 44.1 kHz take was resampled, with a note, and judged
    with a confident score far from the take's (QA)."""
    path = write_tone(tmp_path / "t.wav")
    data = bytearray(path.read_bytes())
    data[24:28] = (22050).to_bytes(4, "little")  # the byte rate stays 88200
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load(path)
    assert str(e.value) == (f"{path}: its header is damaged: its sample rate (22050 Hz) and its "
                            "byte rate (88200 bytes/s, 44100 frames/s) disagree — re-export the "
                            "recording (or copy it again from the recorder)")


@pytest.mark.parametrize("rate", [384001, 10_000_000, 2**31 - 1])
def test_a_rate_no_audio_interface_records_is_refused_for_its_rate(tmp_path, rate):
    """A header claiming 10 MHz (a damaged one) was resampled to a few hundred samples and then
    called "too short — record longer clips", a fix for another problem; the largest rate
    libsndfile takes is not "invalid" to it, but no recording is made at it either."""
    from tapcheck.config import AudioConfig
    from tapcheck.features import load_clip  # as judge, import and train read clips

    path = _claiming_rate(write_tone(tmp_path / "fast.wav", duration_s=3.0), rate)
    with pytest.raises(AudioError) as e:
        load_clip(path)
    assert str(e.value) == (f"{path}: is sampled at {rate} Hz, faster than the 384000 Hz "
                            "tapcheck reads (a damaged header?) — re-export the recording at "
                            "44100 Hz")
    with pytest.raises(AudioError) as e:  # the fix names the settings' rate
        load_clip(path, audio=AudioConfig(sr=96000))
    assert str(e.value).endswith("— re-export the recording at 96000 Hz")


def test_the_fastest_audio_interface_rate_is_read(tmp_path):
    path = write_tone(tmp_path / "384k.wav", sr=384000, duration_s=0.5)
    with pytest.warns(TapcheckWarning, match="resampled from 384000 Hz"):
        assert len(load(path)) == 22050


def test_heavy_clipping_is_refused_and_a_clipped_peak_warned(tmp_path):
    y = np.sin(np.arange(3 * 44100) * 0.02) * np.exp(-np.arange(3 * 44100) / 4000)
    sf.write(tmp_path / "heavy.wav", np.clip(y * 3, -1, 1), 44100)
    with pytest.raises(AudioError, match="is heavily clipped"):
        load(tmp_path / "heavy.wav")
    sf.write(tmp_path / "peak.wav", np.clip(y * 1.05, -1, 1), 44100)
    with pytest.warns(TapcheckWarning, match=r"clipped for 0\.\d ms"):
        load(tmp_path / "peak.wav")


INTERRUPTED = """
import io, os, signal, sys
import soundfile
import tapcheck.audio
from tapcheck.audio import load, write_wav


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


class Lib:  # libsndfile, Ctrl-C arriving as a handle is freed but not yet forgotten
    def __getattr__(self, name):
        return getattr(real, name)

    def sf_close(self, handle):
        err = real.sf_close(handle)
        ctrl_c()
        return err


class File(io.FileIO):  # Ctrl-C arriving inside soundfile's callback asking for the length
    def seek(self, offset, whence=0):
        if whence == io.SEEK_END:
            ctrl_c()
        return super().seek(offset, whence)


if "{moment}" == "close":
    real, soundfile._snd = soundfile._snd, Lib()
else:
    tapcheck.audio.open = lambda path, mode: File(path, "r")
try:
    {call}
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
"""


@pytest.mark.parametrize("moment, call", [
    ("callback", "load(sys.argv[1])"), ("close", "load(sys.argv[1])"),
    ("close", "write_wav(sys.argv[1] + '.out.wav', [0.1] * 100, sr=44100)")])
def test_ctrl_c_while_soundfile_works_stops_cleanly(tmp_path, moment, call):
    """Ctrl-C inside soundfile's Python callbacks was lost ("Exception ignored", the read
    failing as "not a readable audio file"), and between libsndfile's close and soundfile
    forgetting the handle it left the handle to be closed again at exit ('double free', the
    process aborted) — both seen stopping `tapcheck import`. Reading and encoding now finish
    first; the interrupt is acted on after."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    clip = write_tone(tmp_path / "c.wav", duration_s=1.0)
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED.replace("{moment}", moment).replace("{call}", call))
    done = subprocess.run([sys.executable, str(script), str(clip)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (done.returncode, done.stdout.strip(), done.stderr) == (130, "interrupted", "")


def test_a_folder_given_as_a_clip_is_told_to_give_its_files(tmp_path):
    """The fix named 'folder/*.wav' whatever the folder was called, and whatever it held: a
    board's folder holds left/ and right/, where 'board23/*.wav' matched nothing."""
    folder = tmp_path / "my takes"
    folder.mkdir()

    def fix() -> str:
        with pytest.raises(AudioError) as e:
            load(folder)
        assert e.value.problem == "is a folder, not an audio file"
        return e.value.fix

    assert fix() == ("no audio files (.wav, .flac, .ogg) lie in it or two folders down; pass "
                     "the clips themselves")
    (folder / "board01" / "left").mkdir(parents=True)  # a dataset's folder
    (folder / "board01" / "left" / "TAKE001.WAV").write_bytes(b"")
    assert fix() == f"pass the audio files inside it, e.g. '{folder}'/*/*/*.WAV"  # as spelled
    (folder / "left").mkdir()
    (folder / "left" / "take001.flac").write_bytes(b"")
    assert fix() == f"pass the audio files inside it, e.g. '{folder}'/*/*.flac"
    (folder / "take001.wav").write_bytes(b"")
    assert fix() == f"pass the audio files inside it, e.g. '{folder}'/*.wav"
    # several kinds: the commonest first, each named (12 .wav and a .flac: "*.flac", QA)
    for name in ("take002.wav", "take003.wav", "take004.flac", "a.ogg"):
        (folder / name).write_bytes(b"")
    assert fix() == (f"pass the audio files inside it, e.g. '{folder}'/*.wav '{folder}'/*.flac "
                     f"'{folder}'/*.ogg")


def test_a_dash_is_told_apart_from_a_missing_file(tmp_path, monkeypatch):
    """`arecord | tapcheck judge -` said "-: file not found — check the path"."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AudioError) as e:
        load("-")
    assert (e.value.problem, e.value.fix) == (
        "names standard input, which tapcheck does not read clips from",
        "save the clip to a file and pass its path")


def test_channels_that_cancel_are_not_called_silent(tmp_path):
    """Trial 34: a stereo clip of opposite channels read "is silent (every sample is 0) — check
    that the microphone is plugged in"."""
    tone = np.sin(np.linspace(0, 2000, 44100)).astype(np.float32) * 0.3
    sf.write(tmp_path / "inverted.wav", np.stack([tone, -tone], axis=1), 44100)
    import warnings

    with pytest.raises(AudioError) as e, warnings.catch_warnings():
        warnings.simplefilter("error", TapcheckWarning)  # no "averaged to mono" before it
        load(tmp_path / "inverted.wav")
    assert e.value.problem == "its 2 channels cancel out when averaged to mono"


def test_the_rate_advised_is_the_settings_own(tmp_path):
    """With [audio] sr = 96000 and a crop reaching 37.5 kHz, a 44.1 kHz clip was told "record
    at 44100 Hz (at least 75000 Hz)": the advice contradicted itself."""
    from tapcheck.audio import load

    path = write_tone(tmp_path / "cd.wav", duration_s=1.0)
    with pytest.raises(AudioError) as e:
        load(path, sr=96000, min_sr=75000)
    assert e.value.fix == "record at 96000 Hz (at least 75000 Hz)"


def test_a_proc_file_is_not_called_empty():
    # /proc files report a size of 0 and hold text: "is empty (0 bytes) — the recording or
    # copy failed" sent the user looking for a failed copy (QA: judge /proc/self/status)
    with pytest.raises(AudioError, match=r"says it is 0 bytes long yet holds data .* not a "
                                         r"recording — use a WAV") as e:
        load("/proc/self/status")
    assert "is empty" not in str(e.value)


def test_a_quoted_pattern_is_named_as_one(tmp_path, monkeypatch):
    # `judge 'board12/left/take00*.wav'`: "file not found — check the path" of a right path
    monkeypatch.chdir(tmp_path)
    for n in (1, 2):
        write_tone(tmp_path / f"take00{n}.wav")
    with pytest.raises(AudioError) as e:
        load("take00*.wav")
    assert (e.value.problem, e.value.fix) == (
        "file not found", "it is a pattern the shell did not expand (it was quoted?), matching "
                          "2 file(s): write it without quotes")
    with pytest.raises(AudioError, match=r"check the path \(a pattern, which matches no file"):
        load("nothing*.wav")


@pytest.mark.parametrize("fmt, subtype, name, said", [
    ("MP3", "MPEG_LAYER_III", "k.mp3", "is MP3, a lossy coding"),
    ("MP3", "MPEG_LAYER_III", "k.wav", "is MP3 (though named .wav), a lossy coding"),
    ("OGG", "VORBIS", "k.ogg", "is Ogg Vorbis, a lossy coding"),
    ("WAV", "GSM610", "k.wav", "is GSM 6.10, a lossy coding"),
    ("WAV", "PCM_16", "k.wav", None), ("FLAC", "PCM_24", "k.flac", None),
    ("WAV", "FLOAT", "k.wav", None)])
def test_a_lossy_recording_is_read_with_a_warning(tmp_path, fmt, subtype, name, said):
    """QA: an MP3 (even named .wav) was judged without a word, where its coding moved a healthy
    tap's score by up to 39 %, as much as 8-bit audio, which is warned of."""
    path = tmp_path / name
    sf.write(path, np.sin(np.arange(44100) / 10) * 0.5, 44100, format=fmt, subtype=subtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(path)
    lossy = [str(w.message) for w in caught if "lossy" in str(w.message)]
    if said is None:
        assert lossy == []
    else:
        assert lossy == [f"{path}: {said}, which changes the spectrum the model reads (healthy "
                         "taps scored up to 1.4 times as much as MP3 or Ogg Vorbis, 3.4-3.7 "
                         "times as Opus or GSM); its score may be off — record or export WAV or "
                         "FLAC"]
        assert issubclass(caught[0].category, FormatWarning)
