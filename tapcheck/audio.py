"""Reading and writing clips.

:func:`load` is the one door audio comes in by: any rate, mono or multichannel, WAV/FLAC/OGG (and
whatever else libsndfile reads). It returns mono float32 at the requested rate or raises an
:class:`~tapcheck.errors.AudioError` that names the file, the problem and the fix.
:func:`write_wav` writes atomically, so a crash never leaves half a take behind.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, TapcheckWarning
from .files import atomic_write

FORMATS_HINT = "use a WAV, FLAC or OGG recording"
MAX_DURATION_S = 120.0  # longer than any tap clip; guards against importing a whole session


def load(path: str | os.PathLike, *, sr: int = 44100,
         max_duration_s: float = MAX_DURATION_S) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr``.

    Stereo (or more channels) is averaged to mono and another sample rate is resampled (soxr), each
    with a :class:`~tapcheck.errors.TapcheckWarning`, as these are recoverable.

    Parameters
    ----------
    path : str or PathLike
        The file.
    sr : int
        Sample rate of the result, Hz.
    max_duration_s : float
        Longer files are refused: a tap clip is seconds long, and reading an hour-long file into
        memory by mistake helps nobody.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32

    Raises
    ------
    AudioError
        Missing, a folder, empty, unreadable, truncated, too long, not finite.
    """
    path = Path(path)
    info = _open_info(path)
    if info.frames == 0:
        raise AudioError("holds no samples", path=path, fix="re-record or re-export the clip")
    if info.frames / info.samplerate > max_duration_s:
        raise AudioError(
            f"is {info.frames / info.samplerate:.0f} s long; a tap clip is a few seconds",
            path=path, fix="cut the clip around the strike (e.g. with sox trim) and try again")
    try:
        y, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot be decoded ({e})", path=path, fix=FORMATS_HINT) from None
    if y.shape[0] == 0:
        raise AudioError("holds no samples", path=path, fix="re-record or re-export the clip")
    if not np.isfinite(y).all():
        raise AudioError("contains NaN or infinite samples", path=path,
                         fix="the file is corrupt; re-record or re-export it")
    if y.shape[1] > 1:
        warnings.warn(f"{path}: {y.shape[1]} channels averaged to mono (the study records mono)",
                      TapcheckWarning, stacklevel=2)
    y = y.mean(axis=1)
    if file_sr != sr:
        warnings.warn(f"{path}: resampled from {file_sr} Hz to {sr} Hz", TapcheckWarning,
                      stacklevel=2)
        y = resample(y, orig_sr=file_sr, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); ``y`` of shape (n_samples,)."""
    if orig_sr == target_sr:
        return y
    import soxr  # librosa's own resampler backend; imported here to keep `import tapcheck` light

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)


def _open_info(path: Path):
    if not path.exists():
        raise AudioError("file not found", path=path, fix="check the path")
    if path.is_dir():
        raise AudioError("is a folder, not an audio file", path=path,
                         fix="pass the audio files inside it, e.g. folder/*.wav")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4096)
    except PermissionError:
        raise AudioError("cannot be read (permission denied)", path=path,
                         fix="check the file's permissions (chmod u+r)") from None
    except OSError as e:
        raise AudioError(f"cannot be read ({e.strerror})", path=path,
                         fix="check the file") from None
    if size == 0:
        raise AudioError("is empty (0 bytes)", path=path,
                         fix="the recording or copy failed; record or copy it again")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        detail = str(e).split(":", 1)[-1].strip() or "unknown format"
        raise AudioError(f"is not a readable audio file ({detail})", path=path,
                         fix=FORMATS_HINT) from None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        _check_wav_complete(path, head, size)
    return info


def _check_wav_complete(path: Path, head: bytes, size: int) -> None:
    """libsndfile silently reads what is there of a truncated WAV; say so instead."""
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = struct.unpack("<4sI", head[pos:pos + 8])
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mean "unknown length" (streamed writers, RF64); nothing to check
            if length not in (0, 0xFFFFFFFF) and pos + 8 + length > size:
                have = size - pos - 8
                raise AudioError(
                    f"is truncated: its header promises {length} bytes of audio, the file holds "
                    f"{have}", path=path, fix="copy or record the file again")
            return
        pos += 8 + length + (length & 1)


def write_wav(path: str | os.PathLike, y: np.ndarray, *, sr: int,
              subtype: str = "PCM_16") -> Path:
    """Write ``y`` (shape (n_samples,)) as a WAV file atomically (see :mod:`tapcheck.files`)."""
    path = Path(path)
    with atomic_write(path) as f:
        sf.write(f, np.clip(y, -1.0, 1.0), sr, format="WAV", subtype=subtype)
    return path


def peak_dbfs(y: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for silence)."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")
