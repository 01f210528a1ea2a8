"""Reading and writing clips.

:func:`load` is the one door audio comes in by: any rate, mono or multichannel, WAV or FLAC, and
whatever else libsndfile reads (OGG and MP3 with a warning of their lossy coding:
:mod:`tapcheck.codings`). It returns mono float32 at the requested rate or raises an
:class:`~tapcheck.errors.AudioError` that names the file, the problem and the fix.
:func:`write_wav` writes atomically, so a crash never leaves half a take behind.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .c_stderr import quiet_c_stderr
from .clipping import check_clipping
from .containers import (SizedHeader, check_wav_rates, truncation, unfinished, unread_tail,
                         unsized_wav_data)
from .codings import LOSSY_CODINGS, lossy_warning
from .errors import VERDICT_OFF, AudioError, FormatWarning, TapcheckWarning
from .files import atomic_write, check_path
from .file_kinds import refuse_special
from .interrupts import deferred

FORMATS_HINT = "use a WAV or FLAC recording"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")  # the usual recordings' formats, by file name
MAX_DURATION_S = 120.0  # longer than any tap clip; guards against importing a whole session
# The fastest rate audio interfaces record at (384 kHz, the top of the common 44.1/48 kHz x 8
# family). A header past it is damaged, not a recording: 10 MHz turned 3 s of samples into 13 ms,
# which was resampled and then refused as "too short — record longer clips".
MAX_SAMPLE_RATE = 384_000
# Samples read at most, over all channels: 120 s of one channel at 384 kHz (184 MB as float32).
# A 16-channel 384 kHz file of 119 s passed the length and rate limits and took 6 GB of memory
# before it was found to be silent (QA).
MAX_SAMPLES = int(MAX_DURATION_S * MAX_SAMPLE_RATE)
_UNKNOWN_FRAMES = 2**62  # libsndfile reports SF_COUNT_MAX (2**63 - 1) for a length not given
# Samples past 16x full scale (+24 dBFS) are no recording: a float file's headroom is a few dB.
# A file scaled by 1000 was judged, with false "clipped" and "DC offset" warnings (its quiet
# stretches' repeated 16-bit steps, scaled past 0.9, read as flat tops); one scaled by 1e30 was
# called "heavily clipped — lower the input gain".
MAX_AMPLITUDE = 16.0


def load(path: str | os.PathLike, *, sr: int = 44100,
         max_duration_s: float = MAX_DURATION_S, min_sr: float = 0) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr``.

    Stereo (or more channels) is averaged to mono and another sample rate is resampled (soxr), each
    with a :class:`~tapcheck.errors.TapcheckWarning`, as these are recoverable. So is a clip whose
    strike clipped briefly; a heavily clipped one is an error (see
    :func:`tapcheck.clipping.clipped_samples`).

    Parameters
    ----------
    path : str or PathLike
        The file; any name the file system allows, also bytes that are not UTF-8.
    sr : int
        Sample rate of the result, Hz.
    max_duration_s : float
        Longer files are refused: a tap clip is seconds long, and reading an hour-long file into
        memory by mistake helps nobody.
    min_sr : float
        Lowest sample rate accepted, Hz: a file recorded at a lower rate holds no sound in the
        upper part of the band the features look at (see
        :func:`tapcheck.features.required_sample_rate`), and resampling cannot invent it.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32

    Raises
    ------
    AudioError
        Missing, a folder, empty, unreadable, truncated, too long, too low or too high a sample
        rate (above :data:`MAX_SAMPLE_RATE`), not finite, heavily clipped.
    """
    path = Path(path)
    # Ctrl-C waits until the file is read and closed: soundfile reads a file object through
    # Python callbacks, and an interrupt raised inside one is printed as "Exception ignored" and
    # lost, the read failing as "not a readable audio file"; raised as it closes, it leaves the
    # handle to be closed twice at exit ("double free"). Both seen stopping `tapcheck import`.
    # The SoundFile's __del__ is Python code too: an interrupt landing in it is likewise
    # "ignored" and lost, so the last reference goes while Ctrl-C is still held.
    with deferred():
        try:
            with _open(path) as info:  # one open file for the checks and the samples
                y = _read(info, path=path, sr=sr, max_duration_s=max_duration_s, min_sr=min_sr)
        except AudioError as e:  # its traceback (and context) hold the SoundFile: drop them here
            e.__context__ = None
            raise e.with_traceback(None) from None
        finally:
            info = None
    return y


def _read(info: sf.SoundFile, *, path: Path, sr: int, max_duration_s: float,
          min_sr: float) -> np.ndarray:
    if info.frames == 0:
        raise AudioError("holds no samples", path=path, fix="re-record or re-export the clip")
    # the rate first: the length is counted in it, and a header claiming 1 Hz made a 2 s clip
    # "44100 s long", with the fix to cut it
    if info.samplerate < min_sr:
        raise AudioError(
            f"is sampled at {info.samplerate} Hz, so it holds sound up to "
            f"{info.samplerate / 2:g} Hz only; tapcheck listens up to {min_sr / 2:.0f} Hz",
            # the settings' own rate: "record at 44100 Hz (at least 58594 Hz)" under sr 300000
            path=path, fix=f"record at {sr} Hz (at least {math.ceil(min_sr)} Hz)")
    if info.samplerate > MAX_SAMPLE_RATE:
        # "faster than any audio interface records" was untrue of ultrasonic recorders, and
        # its fix's 44100 Hz was refused under settings of another rate (QA)
        raise AudioError(
            f"is sampled at {info.samplerate} Hz, faster than the {MAX_SAMPLE_RATE} Hz "
            "tapcheck reads (a damaged header?)", path=path,
            fix=f"re-export the recording at {sr} Hz")
    # libsndfile's SF_COUNT_MAX: a length the header leaves open (a streamed FLAC's sample
    # count of 0, legal) was "209146758205324 s long"; such a file is read up to the limit
    known = info.frames < _UNKNOWN_FRAMES
    limit = int(max_duration_s * info.samplerate) + 1
    if known and info.frames > limit:
        _too_long(info.frames / info.samplerate, path)
    if known and info.frames * info.channels > MAX_SAMPLES:
        _too_many(info, info.frames, path)
    by_channels = MAX_SAMPLES // info.channels + 1
    channels_limit = by_channels < limit  # what stops reading a length not given
    limit = min(limit, by_channels)  # a length not given: read up to it
    try:
        file_sr = info.samplerate
        with quiet_c_stderr(info.format == "MP3"):
            # a count, not -1, where libsndfile cannot seek (GSM 6.10 in WAV: soundfile's
            # "frames must be specified" read as a damaged file)
            whole = known and info.seekable()
            y = info.read(frames=-1 if whole else min(info.frames, limit) if known else limit,
                          dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        if not known:  # libsndfile cannot seek in a FLAC without its sample count
            raise AudioError("does not give its length (a FLAC streamed without its sample "
                             "count?), and libsndfile cannot read it without one", path=path,
                             fix="re-encode it, e.g. sox in.flac out.wav (a WAV states its "
                                 "length)") from None
        # the format was recognised at open: its data is damaged (a FLAC cut short: "lost sync")
        raise AudioError(f"cannot be decoded ({e})", path=path,
                         fix="the file is damaged or cut short; copy or record it again") from None
    if y.shape[0] == 0:
        raise AudioError("holds no samples", path=path, fix="re-record or re-export the clip")
    if not known and y.shape[0] >= limit:
        if channels_limit:  # the channels' limit, not the length's: "over 60 s long —
            # cut the clip" of a file 120 s may hold (review)
            _too_many(info, y.shape[0], path, more=True)
        _too_long(y.shape[0] / info.samplerate, path, more=True)
    if known and y.shape[0] < info.frames:  # a FLAC cut between its frames decodes what is left
        raise AudioError(f"is truncated: its header promises {info.frames} samples, the file "
                         f"holds {y.shape[0]}", path=path, fix="copy or record the file again")
    if not np.isfinite(y).all():
        raise AudioError("contains NaN or infinite samples", path=path,
                         fix="the file is corrupt; re-record or re-export it")
    peak = float(np.abs(y).max())
    if peak > MAX_AMPLITUDE:  # before the clipping check, which would misname it
        raise AudioError(f"reaches {peak:.3g} times full scale, which no recording does",
                         path=path, fix="the file is corrupt or mis-scaled; re-export it")
    if info.subtype in LOSSY_CODINGS:
        warnings.warn(lossy_warning(path, subtype=info.subtype, container=info.format),
                      FormatWarning, stacklevel=3)
    if info.subtype in ("PCM_U8", "PCM_S8"):
        warnings.warn(f"{path}: is 8-bit audio: its steps of 1/128 of full scale add noise (and "
                      f"a small DC offset) that 16-bit takes do not have; {VERDICT_OFF} — record "
                      "or export at 16 bits", FormatWarning, stacklevel=3)
        # the offset of up to one step is the rounding's, said above: the features' "DC offset
        # removed (a faulty microphone or cable?)" then followed every 8-bit file (QA)
        offset = y.mean(axis=0, dtype=np.float64)
        if np.all(np.abs(offset) <= 1 / 128):
            y = (y - offset).astype(np.float32)
    check_clipping(y, sr=file_sr, path=path)
    mono = y.mean(axis=1)
    # cancel: under 1/1000 of the channels' peak is left (16-bit rounding leaves a bit)
    if y.shape[1] > 1 and y.any() and np.abs(mono).max() <= 1e-3 * np.abs(y).max():
        # channels in opposite phase (a balanced cable's two legs, a channel inverted): "is
        # silent — check the microphone" sent users to a microphone that had recorded sound
        raise AudioError(f"its {y.shape[1]} channels cancel out when averaged to mono",
                         path=path, fix="keep one channel (e.g. sox in.wav out.wav remix 1) "
                                        "and pass that file")
    if y.shape[1] > 1:  # after the refusal: a warning that it was averaged, then an error, misled
        warnings.warn(f"{path}: {y.shape[1]} channels averaged to mono (the study records mono)",
                      FormatWarning, stacklevel=3)
    y = mono
    if file_sr != sr:
        warnings.warn(f"{path}: resampled from {file_sr} Hz to {sr} Hz", FormatWarning,
                      stacklevel=3)
        y = resample(y, orig_sr=file_sr, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def _too_many(info: sf.SoundFile, frames: int, path: Path, *, more: bool = False) -> None:
    over = "over " if more else ""
    raise AudioError(
        f"holds {info.channels} channels of {over}{frames / info.samplerate:.0f} s at "
        f"{info.samplerate} Hz, {over}{frames * info.channels / 1e6:.0f} million samples; "
        f"tapcheck reads up to {MAX_SAMPLES / 1e6:.0f} million (a tap clip is a few seconds of "
        "one channel)", path=path,
        fix="keep the microphone's channel and cut the clip around the strike (e.g. sox in.wav "
            "out.wav remix 1 trim 0 3)")


def _too_long(duration_s: float, path: Path, *, more: bool = False) -> None:
    raise AudioError(f"is {'over ' if more else ''}{duration_s:.0f} s long; a tap clip is a few "
                     "seconds", path=path,
                     fix="cut the clip around the strike (e.g. with sox trim) and try again")


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); ``y`` of shape (n_samples,)."""
    if orig_sr == target_sr:
        return y
    import soxr  # librosa's own resampler backend; imported here to keep `import tapcheck` light

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)


def _folder_fix(folder: Path) -> str:
    """The fix for a folder given as a clip: a pattern that names the audio files in it, or in
    its subfolders (``board23/`` holds ``left/`` and ``right/``: "board23/*.wav" matched
    nothing), in the folder's own spelling ("folder/*.wav" was copied as written)."""
    quoted = shlex.quote(os.fspath(folder))
    for pattern in ("*", "*/*", "*/*/*"):  # a dataset's takes lie at board*/side/
        # as spelled: "*.wav" matches no TAKE001.WAV; the commonest first, each of them named
        # (12 .wav and a .flac were told "folder/*.flac", QA)
        counts = Counter(p.suffix for p in folder.glob(pattern)
                         if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if counts:
            shown = sorted(counts, key=lambda suffix: (-counts[suffix], suffix))
            return ("pass the audio files inside it, e.g. "
                    + " ".join(f"{quoted}/{pattern}{suffix}" for suffix in shown))
    return (f"no audio files ({', '.join(AUDIO_SUFFIXES)}) lie in it or two folders down; "
            "pass the clips themselves")


def _not_found_fix(path: Path) -> str:
    """The fix for a clip not found: a pattern the shell did not expand (it was quoted) is said
    to be one — "check the path" of 'board12/left/take00*.wav' sent the user to a path that was
    right (QA)."""
    spelt = os.fspath(path)
    if not any(c in spelt for c in "*?["):
        return "check the path"
    import glob

    matches = glob.glob(spelt)
    if not matches:
        return "check the path (a pattern, which matches no file either)"
    return (f"it is a pattern the shell did not expand (it was quoted?), matching "
            f"{len(matches)} file(s): write it without quotes")


def _dangling(path: Path) -> None:
    """Refuse a clip that is, or lies in a folder that is, a link to nothing (its target moved
    or deleted), naming where the links end; a loop of links is
    :func:`tapcheck.files.check_path`'s. Returns when there is no such link."""
    from .files import dangling_link

    link = dangling_link(path)
    if link is None:
        return
    end = link
    for _ in range(40):  # through a chain of links, to the name that is not there
        if not end.is_symlink():
            break
        end = Path(os.path.normpath(os.path.join(end.parent, os.readlink(end))))
    where = "is a link" if link == path else f"lies in {link}, a link"
    raise AudioError(f"{where} to {end}, which does not exist", path=path,
                     fix="point the link at the recording, or name the recording")


@contextlib.contextmanager
def _open(path: Path) -> Iterator[sf.SoundFile]:
    """The file opened for reading, after the checks that need no decoding."""
    # an AudioError, so that judge and import list this clip and go on with the others
    check_path(path, AudioError)
    if not path.exists():
        if os.fspath(path) == "-":  # a Unix habit: "-" for standard input, read as a file name
            raise AudioError("names standard input, which tapcheck does not read clips from",
                             path=path, fix="save the clip to a file and pass its path")
        _dangling(path)  # the name is there: "file not found" sent the user to check it (QA)
        raise AudioError("file not found", path=path, fix=_not_found_fix(path))
    if path.is_dir():
        raise AudioError("is a folder, not an audio file", path=path, fix=_folder_fix(path))
    refuse_special(path, AudioError, fix=FORMATS_HINT)
    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the samples are read
        head = f.read(12)  # RIFF....WAVE: the chunks are read from the file
        f.seek(0)
    except PermissionError:
        raise AudioError("cannot be read (permission denied)", path=path,
                         fix="check the file's permissions (chmod u+r)") from None
    except OSError as e:
        raise AudioError(f"cannot be read ({e.strerror})", path=path,
                         fix="check the file") from None
    with f:
        if size == 0 and head:  # /proc and /sys files say 0 bytes and hold text (QA)
            raise AudioError("says it is 0 bytes long yet holds data (a /proc or /sys file, "
                             "or one still being written), not a recording", path=path,
                             fix=FORMATS_HINT)
        if size == 0:
            raise AudioError("is empty (0 bytes)", path=path,
                             fix="the recording or copy failed; record or copy it again")
        wav = head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        if wav:
            check_wav_rates(path, f, size)
        cut = truncation(f, size)  # before libsndfile, which calls a cut header "malformed"
        if cut:
            raise AudioError(f"is truncated: {cut}", path=path, fix="copy or record the file again")
        early = unfinished(f, size) or (unread_tail(f, size) if wav else None)
        if early:
            warnings.warn(f"{path}: {early}", TapcheckWarning, stacklevel=4)
        source = f
        start = unsized_wav_data(f, size) if wav else None
        if start is not None:  # all the audio is there: read it to the file's end
            warnings.warn(f"{path}: its header gives its audio no length (the recorder stopped "
                          "before finishing the file); read to the file's end — re-save it to "
                          "mend the header (sox --ignore-length in.wav out.wav)",
                          TapcheckWarning, stacklevel=4)
            source = SizedHeader(f, {4: min(size - 8, 0xFFFFFFFF),
                                     start - 4: min(size - start, 0xFFFFFFFF)})
        try:
            # a file object: soundfile cannot encode file names that are not UTF-8
            with quiet_c_stderr(_looks_mpeg(head)):
                info = sf.SoundFile(source)
        except (sf.LibsndfileError, RuntimeError) as e:
            detail = str(e).split(":", 1)[-1].strip() or "unknown format"
            if "does not exist" in detail:  # the file is open here: libsndfile's words for
                # bytes that begin like an MP3 frame and are none ("File does not exist or is
                # not a regular file (possibly a pipe?)." of 100 random bytes; QA)
                detail = "its bytes are no audio format libsndfile knows"
            if wav:  # "use a WAV or FLAC recording" of a WAV file, with libsndfile's own words
                # only ("No 'data' chunk marker" of one that has a data chunk, after its data; QA)
                raise AudioError(f"is a WAV file whose header cannot be read, damaged or laid "
                                 f"out unusually (libsndfile: {detail})", path=path,
                                 fix="export it again from the recorder or editor as a "
                                     "plain WAV") from None
            raise AudioError(f"is not a readable audio file ({detail})", path=path,
                             fix=FORMATS_HINT) from None
        with info:
            yield info


def _looks_mpeg(head: bytes) -> bool:
    """Whether a file beginning with ``head`` may be MPEG audio (an ID3 tag, a frame sync)."""
    return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def write_wav(path: str | os.PathLike, y: np.ndarray, *, sr: int,
              subtype: str = "PCM_16") -> Path:
    """Write ``y`` (shape (n_samples,)) as a WAV file atomically (see :mod:`tapcheck.files`)."""
    path = Path(path)
    # encode in memory, then write the bytes: libsndfile writing to a file object does so from a
    # cffi callback, where a full disk's OSError is printed as "Exception ignored" and lost
    buffer = encode_wav(y, sr=sr, subtype=subtype)
    with atomic_write(path) as f:
        f.write(buffer.getbuffer())
    return path


def encode_wav(y: np.ndarray, *, sr: int, subtype: str = "PCM_16") -> io.BytesIO:
    """The WAV file :func:`write_wav` writes for ``y``, in memory (``import`` compares a clip's
    stored samples with the dataset's takes before writing it).

    A signal beyond full scale (a float file, which holds it unclipped) is written as 32-bit
    float whatever ``subtype`` asks: cut to 16 bits it became a take that ``train`` refuses as
    heavily clipped, of a sound that was not."""
    y = np.asarray(y)
    if subtype.startswith("PCM") and y.size and float(np.max(np.abs(y))) > 1.0:
        subtype = "FLOAT"
    else:
        y = np.clip(y, -1.0, 1.0)
    buffer = io.BytesIO()
    with deferred():  # soundfile's callbacks and close, as in load()
        sf.write(buffer, y, sr, format="WAV", subtype=subtype)
    buffer.seek(0)
    return buffer


def peak_dbfs(y: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for silence)."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")
