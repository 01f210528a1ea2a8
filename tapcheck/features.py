"""The study's features: strike-region crops of a power spectrogram in dB.

For a clip ``y`` this computes ``power_to_db(|stft(y, n_fft=1024, hop_length=128)|**2)``, finds the
strike, cuts ``n_crops`` windows of 100 frequency bins x 120 frames starting a few frames before
it (each next one shifted later in time), and standardises each crop to mean 0 / std 1. A clip
with several knocks gives the crops of the **strongest** one.

The STFT is computed here with NumPy/SciPy, equal to ``librosa.stft`` (centred, zero-padded,
periodic Hann window; a test checks it) because librosa's first call costs seconds of JIT
start-up that ``tapcheck judge`` should not pay.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.fft

from .audio import load
from .config import AudioConfig, FeatureConfig
from .errors import NoStrikeError, ParameterError

# Bump when the computation changes, so cached features of the old code are never reused.
FEATURES_VERSION = 1
AMIN = 1e-10  # librosa.power_to_db's floor on power


def power_spectrogram(y: np.ndarray, *, n_fft: int = 1024, hop_length: int = 128) -> np.ndarray:
    """``|librosa.stft(y, n_fft=n_fft, hop_length=hop_length)|**2``, without librosa.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    n_fft, hop_length : int

    Returns
    -------
    S : np.ndarray, shape (1 + n_fft // 2, 1 + n_samples // hop_length), float32
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"power_spectrogram needs a mono signal, got shape {y.shape}")
    padded = np.pad(y, n_fft // 2)  # librosa: center=True, pad_mode="constant"
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    step = padded.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(step * hop_length, step), writeable=False)
    # scipy's FFT keeps float32 (complex64): 4x faster than numpy's complex128 path here
    spectrum = scipy.fft.rfft(frames * _hann(n_fft), axis=1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).T.astype(np.float32)


def power_to_db(S: np.ndarray, *, top_db: float | None = 80.0) -> np.ndarray:
    """``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)``."""
    S_db = 10.0 * np.log10(np.maximum(S, AMIN))
    if top_db is not None:
        S_db = np.maximum(S_db, S_db.max() - top_db)
    return S_db.astype(np.float32)


def find_strike(S: np.ndarray, *, min_strike_db: float = 15.0, max_back: int | None = None,
                path: str | os.PathLike | None = None) -> int:
    """Frame where the strongest strike begins.

    The loudest frame (total power over all bins) marks the strongest strike; the onset is found by
    walking back from it while the level stays within 10 dB of that peak, at most ``max_back``
    frames (one STFT window), so a ring-down of an earlier knock cannot drag the onset back.

    Parameters
    ----------
    S : np.ndarray, shape (n_bins, n_frames)
        Power spectrogram (linear power, not dB).
    min_strike_db : float
        How far the peak must stand above the clip's noise floor (its 20th-percentile frame level)
        to count as a strike.
    max_back : int, optional
        Longest walk back from the peak, frames. Default: 8 (n_fft / hop_length of the study).
    path : optional
        Named in the error message.

    Returns
    -------
    onset : int
        Frame index.

    Raises
    ------
    NoStrikeError
        Nothing stands ``min_strike_db`` above the floor: silence, steady noise, hum or DC.
    """
    level = 10.0 * np.log10(S.sum(axis=0) + AMIN)
    peak = int(np.argmax(level))
    floor = float(np.percentile(level, 20))
    rise = float(level[peak] - floor)
    if not rise >= min_strike_db:
        raise NoStrikeError(
            f"no strike found (loudest moment only {rise:.1f} dB above the noise floor; "
            f"a strike needs {min_strike_db:g} dB)", path=path,
            fix="check the clip holds a tap: record closer to the board or strike harder")
    max_back = 8 if max_back is None else max_back
    onset = peak
    while onset > 0 and peak - onset < max_back and level[onset - 1] > level[peak] - 10.0:
        onset -= 1
    return onset


def crop_strike(S_db: np.ndarray, onset: int, *, n_bins: int = 100, fmin_bin: int = 0,
                n_frames: int = 120, pre_frames: int = 4, shift_frames: int = 6,
                n_crops: int = 2) -> np.ndarray:
    """Cut standardised windows around a strike.

    Crop ``i`` covers bins ``fmin_bin .. fmin_bin + n_bins`` and frames starting at
    ``onset - pre_frames + i * shift_frames``. Frames outside the clip (a strike near its start or
    end) are filled with the clip's lowest level, i.e. silence.

    Parameters
    ----------
    S_db : np.ndarray, shape (n_freq, n_time)
    onset : int

    Returns
    -------
    crops : np.ndarray, shape (n_crops, n_bins, n_frames), float32
        Each crop with mean 0 and standard deviation 1.
    """
    if fmin_bin + n_bins > S_db.shape[0]:
        raise ParameterError(
            f"the crop needs bins up to {fmin_bin + n_bins}, the spectrogram has {S_db.shape[0]}",
            fix="lower features.n_bins or features.fmin_bin, or raise features.n_fft")
    band = S_db[fmin_bin:fmin_bin + n_bins]
    first = onset - pre_frames
    last = first + (n_crops - 1) * shift_frames + n_frames
    pad_left, pad_right = max(0, -first), max(0, last - band.shape[1])
    if pad_left or pad_right:
        band = np.pad(band, ((0, 0), (pad_left, pad_right)), constant_values=float(S_db.min()))
    starts = [first + pad_left + i * shift_frames for i in range(n_crops)]
    crops = np.stack([band[:, s:s + n_frames] for s in starts]).astype(np.float32)
    return standardize(crops)


def standardize(crops: np.ndarray) -> np.ndarray:
    """Z-score each crop (study: standardise, not min-max, as strike force varies).

    ``crops`` of shape (n_crops, n_bins, n_frames); a constant crop becomes all zeros.
    """
    mean = crops.mean(axis=(1, 2), keepdims=True)
    std = crops.std(axis=(1, 2), keepdims=True)
    return ((crops - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def strike_crops(y: np.ndarray, *, features: FeatureConfig = FeatureConfig(),
                 path: str | os.PathLike | None = None, return_onset: bool = False):
    """Crops of the strongest strike in a clip: the model input.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono clip at the configured sample rate, any length.
    features : FeatureConfig
    path : optional
        Named in error messages.
    return_onset : bool
        Also return the strike's onset frame.

    Returns
    -------
    crops : np.ndarray, shape (n_crops, n_bins, n_frames), float32
    onset : int, only with ``return_onset``
    """
    f = features
    S = power_spectrogram(y, n_fft=f.n_fft, hop_length=f.hop_length)
    onset = find_strike(S, min_strike_db=f.min_strike_db, max_back=f.n_fft // f.hop_length,
                        path=path)
    crops = crop_strike(power_to_db(S, top_db=f.top_db), onset, n_bins=f.n_bins,
                        fmin_bin=f.fmin_bin, n_frames=f.n_frames, pre_frames=f.pre_frames,
                        shift_frames=f.shift_frames, n_crops=f.n_crops)
    return (crops, onset) if return_onset else crops


def clip_features(path: str | os.PathLike, *, audio: AudioConfig = AudioConfig(),
                  features: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Load a file and compute its crops, shape (n_crops, n_bins, n_frames)."""
    return strike_crops(load(path, sr=audio.sr), features=features, path=path)


def feature_key(audio: AudioConfig, features: FeatureConfig) -> str:
    """A short hash of everything that changes the crops of a given file."""
    settings = {"version": FEATURES_VERSION, "sr": audio.sr, **features.__dict__}
    return hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=8).hexdigest()


class FeatureCache:
    """Crops on disk, keyed by the file's content and the feature settings.

    Retraining, comparing or re-judging never recomputes an STFT of a file it has seen with the
    same settings; editing a file or a setting misses the cache, as it should.

    Parameters
    ----------
    root : str or Path, optional
        Cache folder. Default: ``$TAPCHECK_CACHE`` or ``~/.cache/tapcheck``.
    audio, features : the settings the crops are computed with.
    """

    def __init__(self, root: str | os.PathLike | None = None, *,
                 audio: AudioConfig = AudioConfig(), features: FeatureConfig = FeatureConfig()):
        root = root or os.environ.get("TAPCHECK_CACHE") or Path.home() / ".cache" / "tapcheck"
        self.audio, self.features = audio, features
        self.dir = Path(root) / "features" / feature_key(audio, features)

    def _entry(self, path: Path) -> Path:
        digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        return self.dir / digest[:2] / f"{digest}.npy"

    def get(self, path: str | os.PathLike) -> np.ndarray:
        """Crops of one file, shape (n_crops, n_bins, n_frames), from the cache or computed."""
        path = Path(path)
        try:
            entry = self._entry(path)
        except OSError:
            entry = None  # unreadable: let load() raise its precise AudioError
        if entry is not None and entry.exists():
            try:
                return np.load(entry)
            except (OSError, ValueError):
                pass  # a damaged entry is recomputed
        crops = clip_features(path, audio=self.audio, features=self.features)
        if entry is not None:
            from .files import atomic_write

            with atomic_write(entry) as f:
                np.save(f, crops)
        return crops

    def get_many(self, paths: Sequence[str | os.PathLike], *, progress: bool = False
                 ) -> np.ndarray:
        """Crops of many files, shape (n_files, n_crops, n_bins, n_frames)."""
        items: Iterable = paths
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(paths, desc="features", unit="clip", leave=False)
        return np.stack([self.get(p) for p in items]) if len(paths) else np.zeros(
            (0, self.features.n_crops, self.features.n_bins, self.features.n_frames), np.float32)


_HANN: dict[int, np.ndarray] = {}


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n, fftbins=True))."""
    if n not in _HANN:
        _HANN[n] = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    return _HANN[n]
