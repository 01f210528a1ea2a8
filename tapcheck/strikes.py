"""Finding the strike: where the strongest knock of a clip begins, where any others do, how far
it stands above the room's noise (:func:`clip_rise_db`) and how far it rings down
(:func:`ring_down_db`).

Both work on frame levels in dB, the total power of each STFT frame
(:func:`tapcheck.spectrogram.frame_power`): ``find_strike``/``find_strikes`` take a power
spectrogram, ``strike_onset``/``strike_onsets`` the levels themselves.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import NoStrikeError
from .config import FeatureConfig
from .spectrogram import AMIN, frame_levels, frame_power, power_spectrogram_frames

# A frame at most this loud holds no sound: digital silence sits at AMIN's -100 dB floor
SILENT_FRAME_DB = 10.0 * np.log10(AMIN) + 1.0

# Another knock within this many dB of the strongest, inside its crops, makes the verdict doubtful.
OTHER_STRIKE_DB = 20.0

# How far another knock inside the crops must rise over the 4 frames (12 ms) before it to be
# warned of. A knock during the first one's ring-down rises less: at 10 dB (find_strikes') a
# copy of a healthy take added 50 ms later at half its level was warned of in 3 of 60 takes, at
# 6 dB in 43; 0 of 60 single-knock takes either way, and of the 60 real knocks 14 and 16 (the two
# more hold a second knock 8.5-9 dB up). 5 dB found 54 of 60 and no more real ones, with less
# margin for a ring's beating (scripts/close_knocks.py).
OTHER_KNOCK_RISE_DB = 6.0

# A tap rings down: from its first 8 frames to the last 16 of its crops (:func:`ring_down_db`)
# the real knocks of ../shared/data/knocks fell 12 dB or more (5 % under 20), the demo's takes
# 23 or more; loud steady noise that began like a tap (a machine switched on) 0.7-0.8 dB
# (scripts/ring_down.py). Under 6 dB the sound is no tap: `listen` logged one as an ANOMALOUS
# inspection of the board in hand (QA).
MIN_RING_DOWN_DB = 6.0


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
    return strike_onset(frame_levels(S.sum(axis=0, dtype=np.float64)),
                        min_strike_db=min_strike_db, max_back=max_back, path=path)


def strike_rise_db(level: np.ndarray) -> float:
    """How far a clip's loudest frame stands above its noise floor, dB.

    Parameters
    ----------
    level : np.ndarray, shape (n_frames,)
        Frame levels in dB (:func:`frame_levels`).

    Returns
    -------
    float
        The loudest frame's level less the 20th-percentile level of the frames that hold sound
        (the noise floor: a take is mostly the room before and after its tap, however long the
        board rings); NaN when no frame does. Frames of digital silence, as an editor pads a
        clip with, are no room: at the dB floor they made a padded clip's rise 60-130 dB.
    """
    level = np.asarray(level, dtype=np.float64)
    heard = level[level > SILENT_FRAME_DB]
    if not len(heard):
        return float("nan")
    return float(np.max(heard) - np.percentile(heard, 20))


def strike_onset(level: np.ndarray, *, min_strike_db: float = 15.0, max_back: int | None = None,
                 path: str | os.PathLike | None = None) -> int:
    """:func:`find_strike` on frame levels in dB (:func:`frame_levels`), shape (n_frames,)."""
    peak = int(np.argmax(level))
    # not strike_rise_db, which leaves digital silence out of the floor: padded clips would
    # start to be refused as strikeless, and cached crops' checks would change with them
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


def find_strikes(S: np.ndarray, *, min_strike_db: float = 15.0,
                 within_db: float = OTHER_STRIKE_DB, min_rise_db: float = 10.0,
                 rise_frames: int = 4, merge_frames: int = 8) -> np.ndarray:
    """Onset frames of every knock in a clip, the strongest and the others.

    A knock is a frame whose level rises ``min_rise_db`` over the quietest of the ``rise_frames``
    frames before it, stands ``min_strike_db`` above the noise floor (the 20th-percentile frame
    level) and at most ``within_db`` below the loudest frame; rises within ``merge_frames`` of
    each other are one knock. (Many of the real knocks in ``../shared/data/knocks`` hold two to
    six; the synthetic boards one.)

    Parameters
    ----------
    S : np.ndarray, shape (n_bins, n_frames)
        Power spectrogram (linear power, not dB).

    Returns
    -------
    onsets : np.ndarray of int, shape (n_knocks,)
    """
    return strike_onsets(frame_levels(S.sum(axis=0, dtype=np.float64)),
                         min_strike_db=min_strike_db, within_db=within_db,
                         min_rise_db=min_rise_db, rise_frames=rise_frames,
                         merge_frames=merge_frames)


def strike_onsets(level: np.ndarray, *, min_strike_db: float = 15.0,
                  within_db: float = OTHER_STRIKE_DB, min_rise_db: float = 10.0,
                  rise_frames: int = 4, merge_frames: int = 8) -> np.ndarray:
    """:func:`find_strikes` on frame levels in dB (:func:`frame_levels`), shape (n_frames,)."""
    floor = float(np.percentile(level, 20))
    padded = np.concatenate([np.full(rise_frames, level[0]), level])
    before = np.lib.stride_tricks.sliding_window_view(padded[:-1], rise_frames).min(axis=1)
    rising = ((level - before >= min_rise_db) & (level >= level.max() - within_db)
              & (level >= floor + min_strike_db))
    frames = np.flatnonzero(rising)
    if not len(frames):
        return frames
    return frames[np.concatenate([[True], np.diff(frames) > merge_frames])]


def ring_down_db(level: np.ndarray, onset: int, *, end: int) -> float:
    """How far a strike's level falls from its first 8 frames to the last 16 before ``end``.

    Parameters
    ----------
    level : np.ndarray, shape (n_frames,)
        Frame levels in dB (:func:`tapcheck.spectrogram.frame_levels`).
    onset : int
        The strike's onset frame.
    end : int
        The frame after the last one of its crops (or of the clip, if it ends first).

    Returns
    -------
    float
        The peak of ``level[onset:onset + 8]`` less the mean of ``level[end - 16:end]``, in dB
        (at least the frames after the peak when the crops are shorter than 24 frames).
    """
    end = min(int(end), len(level))
    peak_end = min(onset + 8, end)
    peak = float(np.max(level[onset:peak_end])) if peak_end > onset else float(level[onset])
    tail = level[max(end - 16, peak_end):end]
    return peak - float(np.mean(tail)) if tail.size else 0.0


#: a tap rings at its board's modes; hiss does not. The spectral flatness of a strike's first
#: :data:`FLATNESS_FRAMES` (:func:`strike_flatness`) was at most 0.26 for the real wood and
#: ceramic knocks of ../shared/data/knocks, 0.56 for the marble ones, 0.04 for the demo's takes,
#: 0.19 with white room noise 16 dB under their strike, 0.06 clipped at half their peak;
#: 0.83-0.95 for bursts of white noise (a blast of compressed air) of 30-300 ms, which pass the
#: ring-down check as they stop (scripts/tap_flatness.py). Over this, ``listen`` judges no
#: sound: it logged a 0.3 s noise burst as an ANOMALOUS tap of the board in hand (QA). Pink
#: noise (0.22-0.42) is not told.
MAX_TAP_FLATNESS = 0.7
#: frames of a strike whose spectrum :func:`strike_flatness` reads: 93 ms at the study's hop
FLATNESS_FRAMES = 32
#: the top of that spectrum: microphones and converters roll off above it
FLATNESS_FMAX_HZ = 16000.0


def strike_flatness(y: np.ndarray, onset: int, *, sr: int, features: FeatureConfig,
                    n_frames: int = FLATNESS_FRAMES, fmax_hz: float = FLATNESS_FMAX_HZ
                    ) -> float:
    """Spectral flatness (Wiener entropy) of a strike: the geometric over the arithmetic mean of
    its first frames' mean power spectrum, from the first bin above 0 Hz to ``fmax_hz``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        The clip.
    onset : int
        The strike's onset frame (:func:`tapcheck.features.strike_crops`).
    sr : int
        ``y``'s sample rate, Hz.
    features : FeatureConfig
        ``n_fft`` and ``hop_length`` of the frames.
    n_frames : int
        Frames read from the onset on (fewer where the clip ends first).
    fmax_hz : float
        The top of the spectrum read.

    Returns
    -------
    float
        Between 0 (one tone) and 1 (white noise).
    """
    last = 1 + len(y) // features.hop_length
    start = min(max(int(onset), 0), last - 1)
    S = power_spectrogram_frames(y, start, min(start + n_frames, last), n_fft=features.n_fft,
                                 hop_length=features.hop_length)
    top = max(2, min(S.shape[0], int(fmax_hz * features.n_fft / sr) + 1))
    spectrum = S[1:top].astype(np.float64).mean(axis=1) + AMIN
    return float(np.exp(np.mean(np.log(spectrum))) / np.mean(spectrum))


#: a tap whose strike stands more than this less above the room's noise than the model's normal
#: training takes' (their median, :func:`clip_rise_db`) is warned of: healthy demo taps with pink
#: noise added were flagged 2.9-6.4 % of the time up to 10 dB less, 9.4 % at 10-12 dB less, then
#: 12.4 % (12-14), 17 % (14-16), 36 % (16-19) and 71 % (19-25), where the model states 5 %; no
#: clean test take of the demo stood 12 dB less (the most, 11.8 dB); of the real knocks, 1 of 20
#: wood and 2 of 20 ceramic ones stood so far below their folder's median
#: (scripts/noise_robustness.py, docs/results/noise-demo.md)
RISE_MARGIN_DB = 12.0
#: no recorded take's strike rise comes near this (24-bit audio spans 144 dB; the real knocks of
#: ../shared/data/knocks rise 17-54 dB): a model file stating more was edited by hand
MAX_RISE_DB = 200.0


def clip_rise_db(y: np.ndarray, *, features: FeatureConfig = FeatureConfig()) -> float:
    """How far a clip's strike stands above the room's noise, in dB.

    The crops are standardised, so a louder room (or a softer, farther tap) reaches the network
    as a ringing that sinks into the background sooner, as a cracked board's does, and healthy
    boards score higher. This is measured over the whole clip, not the crops, so that a board
    that rings briefly does not read as a loud room.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        The clip, mono.
    features : FeatureConfig
        Its ``n_fft`` and ``hop_length`` set the frames.

    Returns
    -------
    float
        :func:`tapcheck.strikes.strike_rise_db` of the clip's frame levels, its mean taken out
        first; NaN for a clip of digital silence only.
    """
    return strike_rise_db(clip_levels(y, features=features))


def clip_levels(y: np.ndarray, *, features: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """A clip's frame levels in dB, its mean taken out first, shape (n_frames,): what
    :func:`clip_rise_db` and :func:`tap_onsets_s` read (computed once for both)."""
    y = np.asarray(y, dtype=np.float64)
    # as the crops are made: a DC offset (a faulty microphone) would stand as the room's noise,
    # and a 0.01 offset read as a room 29 dB louder (review). Digital silence (an editor's
    # padding) stays silence, which strike_rise_db leaves out
    sound = y != 0.0
    if sound.any():
        y = np.where(sound, y - y[sound].mean(), 0.0)
    return frame_levels(frame_power(y, n_fft=features.n_fft, hop_length=features.hop_length))


def crop_span_frames(features: FeatureConfig) -> int:
    """Frames the crops cover together, from the first one's start to the last one's end."""
    return features.n_frames + (features.n_crops - 1) * features.shift_frames


def other_knocks(level: np.ndarray, onset: int, *, features: FeatureConfig = FeatureConfig(),
                 min_rise_db: float = OTHER_KNOCK_RISE_DB) -> list[int]:
    """Onset frames of the knocks other than the one at ``onset`` inside its crops.

    Parameters
    ----------
    level : np.ndarray, shape (n_frames,)
        Frame levels in dB (:func:`tapcheck.strikes.frame_levels`).
    onset : int
        The judged (strongest) knock's onset frame.
    min_rise_db : float
        How far a knock rises over the 4 frames before it (:func:`find_strikes`).

    Returns
    -------
    list of int
        Onsets more than ``n_fft // hop_length`` frames (one window, 23 ms) from ``onset``:
        nearer, the spectrogram's window holds both as one knock.
    """
    f = features
    first = onset - f.pre_frames
    return [int(t) for t in strike_onsets(level, min_strike_db=f.min_strike_db,
                                          min_rise_db=min_rise_db)
            if first <= t < first + crop_span_frames(f)
            and abs(int(t) - onset) > f.n_fft // f.hop_length]


#: knocks this far apart are separate taps, not one strike's bounces: the real knocks of
#: ../shared/data/knocks hold up to 6 knocks within 0.81 s
TAP_GAP_S = 1.0
#: a knock this close to a clip's end is no tap: a click in the last frames (an editor's cut, a
#: GSM encoder's burst) was counted as a second tap (QA); a tap rings for longer
TAP_MIN_RING_S = 0.1


def tap_onsets_s(y: np.ndarray | None, *, sr: int, features: FeatureConfig = FeatureConfig(),
                 level: np.ndarray | None = None) -> np.ndarray:
    """Where the taps of a clip begin: each the first knock ``TAP_GAP_S`` or more after the
    last tap's first knock.

    A take is one tap, and only its loudest knock is used (:func:`tapcheck.features.strike_crops`,
    as in the study). A 120 s file of 40 taps was imported as one take, and a file of a board's
    three taps judged NORMAL by its loudest where a softer one alone scored ANOMALOUS, each
    without a word (QA): ``import``, ``judge`` and ``enroll`` warn of more than one. A hand's
    knock is several knocks within 0.8 s: measured from the knock before instead of the tap's
    first, three such taps in one file chained into one (review).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), or None
        The clip (None with ``level``).
    sr : int
        Its sample rate, Hz.
    features : FeatureConfig
    level : np.ndarray, shape (n_frames,), optional
        Its frame levels (:func:`clip_levels`), if computed already.

    Returns
    -------
    np.ndarray, shape (n_taps,)
        Onsets in seconds; knocks more than ``OTHER_STRIKE_DB`` under the loudest are not
        counted (so "at least").
    """
    f = features
    if level is None:
        level = clip_levels(y, features=f)
    onsets_s = strike_onsets(level, min_strike_db=f.min_strike_db) * f.hop_length / sr
    end_s = (len(level) - 1) * f.hop_length / sr
    taps: list[float] = []
    for t in onsets_s:
        if taps and end_s - t < TAP_MIN_RING_S:
            break
        if not taps or t - taps[-1] >= TAP_GAP_S:
            taps.append(float(t))
    return np.array(taps)


#: what :func:`taps_warning` says, for finding it among a clip's warnings
TAPS_WARNED = ": holds at least "


def taps_warning(path: str | os.PathLike, taps_s: np.ndarray, *, done: str) -> str:
    """The warning for a clip of several taps (:func:`tap_onsets_s`), of which only the loudest
    was ``done`` ("used", "judged", "enrolled")."""
    at = ", ".join(f"{t:.1f}" for t in taps_s[:4]) + (", …" if len(taps_s) > 4 else "")
    return (f"{path}{TAPS_WARNED}{len(taps_s)} taps (at {at} s); a take is one tap and only "
            f"the loudest is {done} — cut the file into one clip per tap (or record with "
            "`tapcheck record --trigger`, one take per tap)")


def warn_of_taps(y: np.ndarray, *, sr: int, features: FeatureConfig = FeatureConfig(),
                 path: str | os.PathLike, done: str) -> None:
    """Warn (:class:`~tapcheck.errors.TapcheckWarning`) when a clip holds several taps
    (:func:`tap_onsets_s`), of which only the loudest is ``done``: ``import`` and ``enroll``."""
    import warnings

    from .errors import TapcheckWarning

    taps = tap_onsets_s(y, sr=sr, features=features)
    if len(taps) > 1:
        warnings.warn(taps_warning(path, taps, done=done), TapcheckWarning, stacklevel=3)
