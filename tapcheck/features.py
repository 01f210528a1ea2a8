"""The study's features: strike-region crops of a power spectrogram in dB.

For a clip ``y`` this computes ``power_to_db(|stft(y, n_fft=1024, hop_length=128)|**2)``, finds the
strike, cuts ``n_crops`` windows of 100 frequency bins x 120 frames starting a few frames before
it (each next one shifted later in time), and standardises each crop to mean 0 / std 1. A clip
with several knocks gives the crops of the **strongest** one (with a warning when another knock
falls inside those crops).

What a clip must be for its crops to carry a verdict (:func:`strike_crops` raises or warns): at
least as long as the crops, finite, at sane levels, not silent or a constant, with a strike; a
DC offset is removed with a warning. A file must also be sampled fast enough to fill the crop's
band (:func:`required_sample_rate`, checked by :func:`load_clip`).

The spectrogram is :mod:`tapcheck.spectrogram`'s, the strike is found by :mod:`tapcheck.strikes`.

**Only the frames the crops need.** A 3 s clip has 1034 frames; the crops use 126. The strike is
found from each frame's total power, which Parseval's theorem gives from the waveform without an
FFT (:func:`frame_power`), so :func:`strike_crops` transforms only the crops' frames. The crops
are those of the full spectrogram whenever the two numbers that need the whole picture are known
without it: the loudest bin (``top_db`` counts from it) lies inside the crops' frames when no
other frame's *total* power exceeds it, and the clip's quietest level is needed only when a crop
runs off the clip's edge. When either is in doubt the whole spectrogram is computed, as before.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .audio import MAX_AMPLITUDE, load
from .config import AudioConfig, FeatureConfig
from .errors import VERDICT_OFF, AudioError, NoStrikeError, ParameterError, TapcheckWarning
from .clipping import clipped_samples
# the spectrogram and the strike are their own modules; their names stay importable from here
from .spectrogram import (AMIN, frame_levels, frame_power, power_spectrogram,  # noqa: F401
                          power_spectrogram_frames, power_to_db)
from .strikes import (MAX_RISE_DB, OTHER_KNOCK_RISE_DB, OTHER_STRIKE_DB,  # noqa: F401
                      RISE_MARGIN_DB, clip_rise_db, crop_span_frames, find_strike, find_strikes,
                      other_knocks, strike_onset, strike_onsets, tap_onsets_s, taps_warning)

# Bump when the computation changes, so cached features of the old code are never reused and
# models trained on them are refused.
FEATURES_VERSION = 1
# Bump when the checks of what a usable clip is change (crops of accepted clips unchanged): the
# feature cache must not hand out crops of a clip the new checks refuse. Models stay valid.
# 3: clips past 16x full scale refused (tapcheck.audio.MAX_AMPLITUDE); 4: crops past the clip's
# end warned of from MAX_PADDED_MS (cached entries replay the warnings of their day); 5: knocks
# in the first one's ring-down warned of (OTHER_KNOCK_RISE_DB); 6: a strike within the crops'
# reach of the clip's start warned of, a DC offset within a loud sound's own wander not;
# 7: lossy codings warned of as the clip is read (tapcheck.audio.LOSSY_CODINGS)
CHECKS_VERSION = 7
# A DC offset above -60 dBFS is removed: bin 0 of the crop follows the offset (0.01 moves it by
# ~5 standard deviations, 0.05 hides the strike altogether), while real and synthetic clips sit
# below 2e-4, which this leaves bit for bit as the study computed them.
MAX_DC_OFFSET = 1e-3
# Frames outside the crops that may hold the clip's loudest bin and are transformed one by one
# to find it; more (a clip of many loud knocks), and the whole spectrogram is cheaper.
MAX_LOOK_FRAMES = 64
# Padding the crops may end in without a warning: 4 ms (a clip cut 350 ms after the strike)
# moved no healthy demo tap's verdict, 14 ms one in 48 and 24 ms three (scripts/cut_short.py).
MAX_PADDED_MS = 10.0


def crop_strike(S: np.ndarray, onset: int, *, n_bins: int = 100, fmin_bin: int = 0,
                n_frames: int = 120, pre_frames: int = 4, shift_frames: int = 6,
                n_crops: int = 2, top_db: float | None = 80.0,
                peak_power: float | None = None, standardized: bool = True) -> np.ndarray:
    """Cut standardised windows of ``power_to_db(S, top_db=top_db)`` around a strike.

    Crop ``i`` covers bins ``fmin_bin .. fmin_bin + n_bins`` and frames starting at
    ``onset - pre_frames + i * shift_frames``. Frames outside the clip (a strike near its start or
    end) are filled with the clip's lowest level, i.e. silence. Only the cropped band is turned
    into dB (a fifth of the spectrogram), with ``top_db`` still counted from the peak of the
    whole spectrogram as librosa does: the crops are those of the full ``power_to_db``.

    Parameters
    ----------
    S : np.ndarray, shape (n_freq, n_time)
        Power spectrogram (linear power).
    onset : int
    top_db : float or None
    peak_power : float, optional
        The clip's loudest bin when ``S`` holds only some of its frames (``top_db`` counts
        from it); default ``S.max()``.
    standardized : bool
        False: the crops in dB, before :func:`standardize` (explanations compare levels and
        decay rates in dB, which standardising scales by each crop's own spread).

    Returns
    -------
    crops : np.ndarray, shape (n_crops, n_bins, n_frames), float32
        Each crop with mean 0 and standard deviation 1 (in dB unless ``standardized``).
    """
    if fmin_bin + n_bins > S.shape[0]:
        raise ParameterError(
            f"the crop needs bins up to {fmin_bin + n_bins}, the spectrogram has {S.shape[0]}",
            fix="lower features.n_bins or features.fmin_bin, or raise features.n_fft")
    peak_db = 10.0 * np.log10(max(float(S.max() if peak_power is None else peak_power), AMIN))
    floor_db = 10.0 * np.log10(max(float(S.min()), AMIN))  # the full dB picture's minimum
    band = 10.0 * np.log10(np.maximum(S[fmin_bin:fmin_bin + n_bins], AMIN))
    if top_db is not None:
        band = np.maximum(band, peak_db - top_db)
        floor_db = max(floor_db, peak_db - top_db)
    first = onset - pre_frames
    last = first + (n_crops - 1) * shift_frames + n_frames
    pad_left, pad_right = max(0, -first), max(0, last - band.shape[1])
    if pad_left or pad_right:
        band = np.pad(band, ((0, 0), (pad_left, pad_right)), constant_values=floor_db)
    starts = [first + pad_left + i * shift_frames for i in range(n_crops)]
    crops = np.stack([band[:, s:s + n_frames] for s in starts]).astype(np.float32)
    return standardize(crops) if standardized else crops


def standardize(crops: np.ndarray) -> np.ndarray:
    """Z-score each crop (study: standardise, not min-max, as strike force varies).

    ``crops`` of shape (n_crops, n_bins, n_frames); a constant crop becomes all zeros.
    """
    mean = crops.mean(axis=(1, 2), keepdims=True)
    std = crops.std(axis=(1, 2), keepdims=True)
    # A crop varying less than float32 rounding of its level (e.g. all padding) is constant:
    # dividing by its std would blow the rounding noise up to unit variance. (Found by the
    # property test; every crop of a real clip varies by decibels and is computed as before.)
    flat = std <= 1e-4 * (np.abs(mean) + 1.0)
    z = (crops - mean) / np.maximum(std, 1e-6)
    # C order whatever the spectrogram's layout (torch.stft's is frames-major): crops read back
    # from the feature cache are C-ordered, and sums over them (the pseudo-anomaly transforms)
    # round differently in another order — one-class training differed in the last bit between
    # a run on fresh and a run on cached features
    return np.ascontiguousarray(np.where(flat, np.float32(0.0), z), dtype=np.float32)


def strike_crops(y: np.ndarray, *, sr: int = 44100, features: FeatureConfig = FeatureConfig(),
                 path: str | os.PathLike | None = None, return_onset: bool = False,
                 standardized: bool = True):
    """Crops of the strongest strike in a clip: the model input.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono clip at the configured sample rate, at least as long as the crops together
        (:func:`crop_span_frames` x hop_length samples; 0.37 s at the study's settings).
    sr : int
        Sample rate of ``y`` (``[audio] sr``); only the "too short" error uses it, to say in
        seconds how long a clip must be.
    features : FeatureConfig
    path : optional
        Named in error messages.
    return_onset : bool
        Also return the strike's onset frame.
    standardized : bool
        False: the crops in dB, not standardised (see :func:`crop_strike`).

    Returns
    -------
    crops : np.ndarray, shape (n_crops, n_bins, n_frames), float32
    onset : int, only with ``return_onset``

    Raises
    ------
    AudioError
        Too short, not finite, absurd levels, a constant offset only.
    NoStrikeError
        Silent, or no strike stands out of the noise floor.
    ParameterError
        ``features`` asks for more bins than the spectrogram has.

    Warns
    -----
    TapcheckWarning
        A DC offset was removed; another knock falls inside the crops.
    """
    f = features
    y = _usable_signal(np.asarray(y, dtype=np.float32), sr=sr, features=f, path=path)
    power = frame_power(y, n_fft=f.n_fft, hop_length=f.hop_length)
    level = frame_levels(power)
    onset = strike_onset(level, min_strike_db=f.min_strike_db, max_back=f.n_fft // f.hop_length,
                         path=path)
    S, peak = _crop_frames(y, power, onset, features=f)
    at = f.pre_frames  # the crops' first frame is S's first
    if S is None:  # the whole spectrogram, the crops at the onset
        S, at = power_spectrogram(y, n_fft=f.n_fft, hop_length=f.hop_length), onset
    crops = crop_strike(S, at, n_bins=f.n_bins, fmin_bin=f.fmin_bin, n_frames=f.n_frames,
                        pre_frames=f.pre_frames, shift_frames=f.shift_frames,
                        n_crops=f.n_crops, top_db=f.top_db, peak_power=peak,
                        standardized=standardized)
    _warn_other_strikes(level, onset, features=f, path=path)
    _warn_padded(len(y), onset, sr=sr, features=f, path=path)
    return (crops, onset) if return_onset else crops


def crop_lead_s(features: FeatureConfig, *, sr: int) -> float:
    """Audio the crops reach back before a strike's onset: ``pre_frames`` hops and half a
    window (23 ms at the study's settings)."""
    return (features.pre_frames * features.hop_length + features.n_fft // 2) / sr


def _crop_frames(y: np.ndarray, power: np.ndarray, onset: int, *, features: FeatureConfig
                 ) -> tuple[np.ndarray, float] | tuple[None, None]:
    """The power spectrogram of the crops' frames only, shape (n_freq, span), and the clip's
    loudest bin; ``None, None`` when that is not cheaply known (see the module's notes)."""
    f = features
    first, span = onset - f.pre_frames, crop_span_frames(f)
    if first < 0 or first + span > len(power):
        return None, None  # a crop runs off the clip: padding takes the whole picture's minimum
    S = power_spectrogram_frames(y, first, first + span, n_fft=f.n_fft, hop_length=f.hop_length)
    peak = float(S.max())
    if f.top_db is not None:
        # a frame's loudest bin is at most its total power: only frames outside the crops whose
        # total exceeds the crops' loudest bin can hold the clip's loudest bin; look into those
        louder = np.flatnonzero(power > peak)
        louder = louder[(louder < first) | (louder >= first + span)]
        if len(louder) > MAX_LOOK_FRAMES:
            return None, None
        for t in louder:
            peak = max(peak, float(power_spectrogram_frames(
                y, int(t), int(t) + 1, n_fft=f.n_fft, hop_length=f.hop_length).max()))
    return S, peak


def required_sample_rate(features: FeatureConfig, *, sr: int) -> float:
    """Lowest sample rate, Hz, whose audio fills the crop's frequency band.

    The crop reaches ``(fmin_bin + n_bins) * sr / n_fft`` Hz (4307 Hz at the study's settings);
    a file sampled at less than twice that holds nothing in the crop's top bins, and resampling
    cannot put it there: the model would see an empty band it never saw in training. Never
    more than ``sr``: a crop up to the top bin (Nyquist) has all it needs from a clip at the
    config's own rate (``n_bins = 513`` at n_fft 1024 asked for 44187 Hz of 44.1 kHz clips).
    """
    return min(2.0 * (features.fmin_bin + features.n_bins) * sr / features.n_fft, float(sr))


def _usable_signal(y: np.ndarray, *, sr: int, features: FeatureConfig,
                   path: str | os.PathLike | None) -> np.ndarray:
    """``y`` if crops of it can carry a verdict (a DC offset removed), else a clear error."""
    if y.ndim != 1:
        raise ParameterError(f"strike_crops needs a mono signal, got shape {y.shape}")
    span = crop_span_frames(features) * features.hop_length
    if len(y) < span:
        # a clip shorter than the crops would be mostly padding: a picture unlike any the model
        # learned from, so its verdict would mean nothing. The seconds come from the settings
        # (a model with hop_length 256 needs twice the study's 0.37 s), rounded up so that a
        # clip of that length is long enough
        need_s = math.ceil(span / sr * 100) / 100
        raise AudioError(
            f"is too short ({len(y)} samples); the crops after the strike need {span}",
            path=path, fix=f"record longer clips: at least {need_s:.2f} s, 3 s is standard")
    if not np.isfinite(y).all():
        raise AudioError("contains NaN or infinite samples", path=path,
                         fix="the file is corrupt; re-record or re-export it")
    peak = float(np.max(np.abs(y)))
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"reaches {peak:.3g} times full scale, which no recording does",
                         path=path, fix="the file is corrupt or mis-scaled; re-export it")
    if peak == 0.0:
        raise NoStrikeError("is silent (every sample is 0)", path=path,
                            fix="check that the microphone is plugged in and not muted")
    offset = float(np.mean(y, dtype=np.float64))
    if abs(offset) > MAX_DC_OFFSET:
        raw, y = y, (y - np.float32(offset)).astype(np.float32)
        if float(np.max(np.abs(y))) <= 1e-3 * abs(offset):
            raise NoStrikeError(
                f"holds only a constant offset ({offset:+.3f} of full scale), no sound",
                path=path, fix="check the microphone and its cable, then record again")
        # a loud sound's own mean wanders by its rms / sqrt(n): steady noise at -10 dBFS "had a
        # DC offset of +0.002 (a faulty microphone or cable?)" (QA); removed all the same
        # a clipped tap's flat tops lie on one side: its mean moves, and the clipping is
        # warned of on its own (listen blamed the cable for a tap clipped for 1.9 ms; QA).
        # Then the median, which a few hundred flat samples do not move, tells a real offset
        # (a cable's +0.3 under a briefly clipped tap went unsaid; review)
        if clipped_samples(raw):
            blamed = abs(float(np.median(raw))) > MAX_DC_OFFSET
        else:
            blamed = abs(offset) > 4.0 * float(np.std(y)) / np.sqrt(y.size)
        if blamed:
            warnings.warn(f"{path or 'clip'}: DC offset of {offset:+.3f} removed (a faulty "
                          "microphone or cable?)", TapcheckWarning, stacklevel=3)
    return y


def _warn_padded(n_samples: int, onset: int, *, sr: int,
                 features: FeatureConfig, path: str | os.PathLike | None) -> None:
    """Warn when the crops begin before the clip's start, or run more than
    :data:`MAX_PADDED_MS` past its end: the rest is
    padding, a picture no training clip had. A trial's healthy tap 34 ms before its clip's end
    scored 24x its own whole clip (ANOMALOUS) without a word; and padding well short of half a
    crop moves verdicts too — healthy demo taps cut 320 ms after the strike, their crops'
    last 34 ms padding, were flagged 8 times in 48 against 4 whole (``scripts/cut_short.py``;
    QA found them judged without a word). A warning, not an error as for a clip shorter than
    the crops: phone recordings cut a knock short (7 of the tests' 60 real knocks end 71-289 ms
    after the strike), and refusing them would stop a folder's training over a few clips."""
    f = features
    # before the strike: the first crop frame's window reaches back pre_frames hops and half
    # a window; a clip trimmed to start at the strike (sox silence) moved healthy taps' scores
    # up and cracked ones' down by 2-22 % without a word (QA). No real knock of the tests' 60
    # nor any demo take starts within 130 ms of its strike
    lead_ms = onset * f.hop_length / sr * 1000
    before_ms = crop_lead_s(f, sr=sr) * 1000
    if lead_ms < before_ms:
        warnings.warn(
            f"{path or 'clip'}: the strike is {lead_ms:.0f} ms after the clip's start and its "
            f"crops begin {before_ms:.0f} ms before it, so their first frames are padding, "
            f"which moves the score; {VERDICT_OFF} — keep at least "
            f"{2 * before_ms:.0f} ms before the tap (do not trim the quiet before it)",
            TapcheckWarning, stacklevel=3)
    left_ms = max(n_samples - onset * f.hop_length, 0) / sr * 1000
    need_ms = (crop_span_frames(f) - f.pre_frames) * f.hop_length / sr * 1000
    if need_ms - left_ms <= MAX_PADDED_MS:
        return
    warnings.warn(
        f"{path or 'clip'}: the strike is {left_ms:.0f} ms before the clip's end and its crops "
        f"reach {need_ms:.0f} ms after it, so their last {need_ms - left_ms:.0f} ms are padding, "
        f"which raises a healthy tap's score; {VERDICT_OFF} — record the tap earlier in "
        "the clip", TapcheckWarning, stacklevel=3)


def _warn_other_strikes(level: np.ndarray, onset: int, *, features: FeatureConfig,
                        path: str | os.PathLike | None) -> None:
    """Warn when another knock falls inside the strongest knock's crops.

    Knocks elsewhere in the clip do not touch the crops and pass silently, as in the study.
    """
    others = other_knocks(level, onset, features=features)
    if others:
        warnings.warn(
            f"{path or 'clip'}: {len(others)} more knock(s) inside the crops of the strongest "
            f"one; {VERDICT_OFF} — record one tap per clip", TapcheckWarning,
            stacklevel=3)


def clip_features(path: str | os.PathLike, *, audio: AudioConfig = AudioConfig(),
                  features: FeatureConfig = FeatureConfig(), standardized: bool = True
                  ) -> np.ndarray:
    """Load a file and compute its crops, shape (n_crops, n_bins, n_frames) (in dB, not
    standardised, unless ``standardized``: see :func:`crop_strike`)."""
    return strike_crops(load_clip(path, audio=audio, features=features), sr=audio.sr,
                        features=features, path=path, standardized=standardized)


def crop_digest(crops: np.ndarray) -> str:
    """A digest of a clip's crops (n_crops, n_bins, n_frames): the same tap, told apart from
    another by what the model sees of it. The same samples in another container or format (a
    WAV and its lossless FLAC) make the same crops, which a digest of the file's bytes misses;
    a resampled or lossy copy has other samples and another digest."""
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(crops).tobytes()).hexdigest()


def load_clip(path: str | os.PathLike, *, audio: AudioConfig = AudioConfig(),
              features: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """:func:`tapcheck.audio.load` at ``audio.sr``, refusing rates too low for ``features``."""
    return load(path, sr=audio.sr, min_sr=required_sample_rate(features, sr=audio.sr))

