"""How a region of a tap's crop differs from the same region of healthy taps, in words.

The region is the one :mod:`tapcheck.explain` finds by occlusion; this module says *how* it
differs, in dB about each tap's mean power (:func:`tap_relative`): a faster or slower decay (the
time to fall 20 dB, as room acoustics' decay times), a resonance at another frequency, more or
less of the tap's energy, or one frequency ringing louder or quieter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["describe_difference", "tap_relative"]

#: a decay-rate ratio counts as "faster"/"slower" from this factor on
DECAY_FACTOR = 1.5
#: a region's mean level difference, dB, below which no "more" or "less energy" is claimed:
#: half or twice the power. (Claims once rested on 0.1 of a standardised crop's spread, about
#: 1 dB; the old floor, 0.25 of a spread, was about 3 dB at the demo's 10-12 dB spreads.)
ENERGY_MIN_DB = 3.0
#: one frequency's level difference, dB, from which a region whose mean level differs less is
#: said to ring louder or quieter there (4x the power; and at least TONE_MIN_SD times the
#: spread of that level among the healthy references): on the demo, 46 of 95 anomalous taps'
#: regions differed by under 3 dB on average but by 7-25 dB at one mode of the board
TONE_MIN_DB = 6.0
TONE_MIN_SD = 2.0
#: a decay is fitted over the frames after the strike whose level stands this far above the
#: band's floor, its lowest level in the crop after the strike (the frames before the strike are
#: no floor: the STFT's 23 ms window already holds the strike in the last of them): a band that
#: has died into the floor fits a flat line, and a tap that died fastest read as ringing longest.
#: 10 dB as room acoustics' decay fits (ISO 3382-1: the evaluated range ends at least 10 dB
#: above the background noise); at 6 dB one take read "rings 2.2x longer" off its floor's edge
FLOOR_MARGIN_DB = 10.0
#: decays are compared only between bands that start within this of each other: a band 19 dB
#: below the healthy ones at the strike, near its floor throughout, read "rings 1.7x longer"
DECAY_START_DB = 10.0
#: the fall a decay time is read over (T20, as room acoustics' decay times) and the least fall
#: left above both floors for a decay to be read at all
DECAY_FALL_DB = 20.0
DECAY_MIN_FALL_DB = 10.0
#: no tone is named below this: the strike's thump and the DC bin ("rings 10 dB louder at 0 Hz")
TONE_MIN_HZ = 100.0
#: a resonance is a maximum standing this far above its region's median level, in the clip and
#: in the references alike (a 1 dB bump was named "its resonance at 1249 Hz")
RESONANCE_MIN_DB = 3.0


def tap_relative(db: np.ndarray) -> np.ndarray:
    """A crop in dB, shape (bins, frames), about the tap's mean power over the crop.

    A harder strike raises every level alike and cancels here, as in the study's standardising.
    The mean *power* is the strike and its first ringing; the crop's mean *level* in dB (what
    standardising subtracts) also counts the frames a tap has died into the floor, so a tap that
    dies fast read as louder everywhere, "carries 8 dB more" of a mode no louder than healthy.
    """
    db = np.asarray(db, dtype=np.float64)
    return db - _power_db(db)


def _power_db(db: np.ndarray, axis=None) -> np.ndarray:
    """The mean power of dB levels, in dB (over ``axis``)."""
    top = np.max(db, axis=axis, keepdims=True)
    mean = np.mean(10.0 ** ((db - top) / 10.0), axis=axis, keepdims=True)
    out = top + 10.0 * np.log10(mean)
    return out if axis is not None else float(out.ravel()[0])


def describe_difference(clip: np.ndarray, references: np.ndarray, *, bins_hz: np.ndarray,
                        frames_ms: np.ndarray, floor_db: tuple[float, float] | None = None
                        ) -> tuple[str, float | None, str]:
    """How a region of a crop differs from the same region of its nearest normal crops.

    Parameters
    ----------
    clip : np.ndarray, shape (n_bins, n_frames)
        The region of the clip's crop in dB about the tap's mean power (:func:`tap_relative`).
    references : np.ndarray, shape (k, n_bins, n_frames) or (n_bins, n_frames)
        The same region of the nearest normal crops, each alike.
    bins_hz : np.ndarray, shape (n_bins,)
    frames_ms : np.ndarray, shape (n_frames,)
        Time of each frame after the strike, ms (negative before it). Only the frames after
        the strike are compared (all of them if none is): the ones before hold background
        noise, up to 27 dB apart between the demo's taps.
    floor_db : (float, float), optional
        The region's band floor, the clip's and the references' mean (dB, as ``clip``; its
        lowest level in the crop after the strike): a decay time is read over a fall that
        ends :data:`FLOOR_MARGIN_DB` above both floors.

    Returns
    -------
    kind : str
        ``faster-decay``, ``slower-decay``, ``shifted-resonance``, ``weaker``, ``stronger``,
        ``quieter-at``, ``louder-at`` (one frequency) or ``different``.
    ratio : float or None
        The references' time to fall :data:`DECAY_FALL_DB` (or less, above their floors) over
        the clip's: its decay rate over theirs (decay kinds only).
    words : str
        The verb phrase of the sentence ("decays 3.0x faster", "carries 5 dB less of the
        tap's energy", "rings 12 dB quieter at 646 Hz").
    """
    refs = np.asarray(references, dtype=np.float64)
    refs = refs[None] if refs.ndim == 2 else refs
    after = frames_ms >= 0
    if after.any():
        clip, refs, t = clip[:, after], refs[:, :, after], frames_ms[after]
    else:
        t = frames_ms
    # decay: how long the band's mean level takes to fall the same number of dB from where the
    # region starts, the clip against the references (room acoustics' decay times, read off the
    # curve itself: a line fitted over a fast fall and a slow tail, or over different spans,
    # misread both ways: "2.5x faster" where the same frames gave 1.2x, a damped tap 1.3x)
    level_c, level_r = clip.mean(axis=0), refs.mean(axis=1).mean(axis=0)
    room = min(level_c[0] - (-np.inf if floor_db is None else floor_db[0] + FLOOR_MARGIN_DB),
               level_r[0] - (-np.inf if floor_db is None else floor_db[1] + FLOOR_MARGIN_DB))
    fall = min(DECAY_FALL_DB, room)
    if fall >= DECAY_MIN_FALL_DB and abs(level_c[0] - level_r[0]) <= DECAY_START_DB:
        time_c, time_r = _fall_time(t, level_c, fall), _fall_time(t, level_r, fall)
        span = float(t[-1] - t[0])  # one that never falls that far takes longer than this
        if time_c is not None and time_c > 0:
            ratio = float((span if time_r is None else time_r) / time_c)
            least = "at least " if time_r is None else ""
            if ratio >= DECAY_FACTOR:
                return "faster-decay", ratio, f"decays {least}{ratio:.1f}x faster"
        if time_r is not None and time_r > 0:
            ratio = float(time_r / (span if time_c is None else time_c))
            least = "at least " if time_c is None else ""
            if ratio <= 1.0 / DECAY_FACTOR:
                return "slower-decay", ratio, f"rings {least}{1.0 / ratio:.1f}x longer"
    # each frequency's energy after the strike, against the tap's (dB)
    spec_c = _power_db(clip, axis=1)[:, 0]
    specs_r = _power_db(refs, axis=2)[:, :, 0]  # (k, n_bins)
    spec_r = specs_r.mean(axis=0)
    peak_c, peak_r = int(np.argmax(spec_c)), int(np.argmax(spec_r))
    last = len(bins_hz) - 1
    # a maximum at the region's edge is no resonance: the strike's thump at 0 Hz, or the
    # crop's top bin, were named as one ("its resonance at 0 Hz instead of 689 Hz")
    if abs(peak_c - peak_r) >= 2 and len(bins_hz) > 2 and 0 < peak_c < last \
            and 0 < peak_r < last \
            and spec_c[peak_c] - np.median(spec_c) >= RESONANCE_MIN_DB \
            and spec_r[peak_r] - np.median(spec_r) >= RESONANCE_MIN_DB:
        return ("shifted-resonance", None,
                f"has its resonance at {bins_hz[peak_c]:.0f} Hz instead of "
                f"{bins_hz[peak_r]:.0f} Hz")
    # the region's share of the tap's energy, the clip's against the references' mean
    diff = _power_db(clip) - float(np.mean([_power_db(r) for r in refs]))
    if abs(diff) >= ENERGY_MIN_DB:
        return ("weaker" if diff < 0 else "stronger", None,
                f"carries {abs(diff):.0f} dB {'less' if diff < 0 else 'more'} of the tap's "
                "energy")
    tone = spec_c - spec_r  # (n_bins,)
    telling = ((np.abs(tone) >= TONE_MIN_DB) & (np.abs(tone) >= TONE_MIN_SD * specs_r.std(axis=0))
               & (bins_hz >= TONE_MIN_HZ))
    if telling.any():
        i = int(np.argmax(np.where(telling, np.abs(tone), 0.0)))
        louder = tone[i] > 0
        return ("louder-at" if louder else "quieter-at", None,
                f"rings {abs(tone[i]):.0f} dB {'louder' if louder else 'quieter'} at "
                f"{bins_hz[i]:.0f} Hz")
    return "different", None, "sounds different"


def _fall_time(t: np.ndarray, level: np.ndarray, fall_db: float) -> float | None:
    """Time (as ``t``) from ``t[0]`` until ``level`` first lies ``fall_db`` below ``level[0]``,
    interpolated between frames; None if it never does."""
    below = np.flatnonzero(level <= level[0] - fall_db)
    if not len(below):
        return None
    i = int(below[0])  # >= 1: level[0] itself is not below
    frac = (level[i - 1] - (level[0] - fall_db)) / (level[i - 1] - level[i])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]) - t[0])
