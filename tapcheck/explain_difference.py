"""How a region of a tap's crop differs from the same region of healthy taps, in words.

The region is the one :mod:`tapcheck.explain` finds by occlusion; this module says *how* it
differs, in dB about each tap's mean power (:func:`tap_relative`): a faster or slower decay (the
time its band's energy decay curve takes to fall 20 dB, as room acoustics' decay times), a
resonance at another frequency, more or less of the tap's energy, or one frequency ringing louder
or quieter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "Limits", "describe_difference", "measure_difference",
           "energy_decay", "normal_limits", "tap_relative"]

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
#: a decay is read only as far down as its band stays this far above its noise, the mean power of
#: the crop's last NOISE_FRAMES frames (ISO 3382-1: the evaluated range ends at least 10 dB
#: above the background noise). The band's lowest frame, the floor before, sat a few dB under
#: the noise (the least of ~116 noisy frames), and a tap that died fastest read "rings 2.2x
#: longer" off its edge
FLOOR_MARGIN_DB = 10.0
#: the crop's last frames, 58 ms, whose mean power is a band's noise (Lundeby et al. 1995 take
#: the response's last 10 %; more of a 337 ms crop, as its tail is short)
NOISE_FRAMES = 20
#: decays are compared only between bands that start within this of each other: a band 19 dB
#: below the healthy ones at the strike, near its floor throughout, read "rings 1.7x longer"
DECAY_START_DB = 10.0
#: the least fall over the crop's frames after a decay's start that counts a band as ringing
#: through the crop, not as noise (and 3 times its scatter about its line, :func:`_falls_through`)
RING_MIN_FALL_DB = 3.0
#: the fall a decay time is read over (T20, as room acoustics' decay times) and the least fall
#: left above every tap's noise for a decay to be read at all (each tap falls the same dB)
DECAY_FALL_DB = 20.0
DECAY_MIN_FALL_DB = 10.0
#: a tone is named only where the clip or the references ring within this of the region's
#: loudest frequency: further down it is a dip between modes ("22 dB quieter at 1249 Hz" where
#: both lay 24-46 dB below their peaks; 14 of 35 such sentences on the demo, by a review)
TONE_NEAR_PEAK_DB = 15.0
#: no tone is named below this: the strike's thump and the DC bin ("rings 10 dB louder at 0 Hz")
TONE_MIN_HZ = 100.0
#: a resonance is a maximum standing this far above its region's median level, in the clip and
#: in the references alike (a 1 dB bump was named "its resonance at 1249 Hz")
RESONANCE_MIN_DB = 3.0
#: a decay is read from each tap's own peak within the region's first frames (9 ms): the
#: first frame after the onset may still be rising, by up to 8 dB on the demo
PEAK_FRAMES = 3
#: a claim needs a difference beyond this quantile of healthy taps' own, in its region
NORMAL_QUANTILE = 0.95


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


@dataclass(frozen=True)
class Difference:
    """The numbers behind a sentence: how a region of a clip differs from its references.

    ``decay`` is the references' time to fall as far over the clip's (>1: the clip's decay is
    faster; ``decay_least``: a bound, one side never fell that far in the region), None where
    no decay can be read; ``resonance`` the (clip's, references') peak in Hz where they part;
    ``energy_db`` the clip's share of the tap's energy over theirs; ``tone_db`` and ``tone_hz``
    the frequency that lies furthest off, beyond twice the references' own spread (0 and None
    where none does).
    """

    decay: float | None
    decay_least: bool
    resonance: tuple[float, float] | None
    energy_db: float
    tone_db: float
    tone_hz: float | None


@dataclass(frozen=True)
class Limits:
    """How far a difference must reach for a sentence to claim it. The defaults are the
    constants above; :func:`normal_limits` raises them to what healthy taps show against their
    nearest healthy taps of other boards in the same region (two reviews found the constants
    inside the scatter between takes of one healthy board: 30 of 41 normal takes got a specific
    claim)."""

    decay: float = DECAY_FACTOR
    energy_db: float = ENERGY_MIN_DB
    tone_db: float = TONE_MIN_DB
    resonance: bool = True  # whether a shifted resonance may be claimed here


def measure_difference(clip: np.ndarray, references: np.ndarray, *, bins_hz: np.ndarray,
                       frames_ms: np.ndarray, window: slice = slice(None)) -> Difference:
    """The numbers :func:`describe_difference` words (same parameters)."""
    refs = np.asarray(references, dtype=np.float64)
    refs = refs[None] if refs.ndim == 2 else refs
    clip = np.asarray(clip, dtype=np.float64)
    t = np.asarray(frames_ms, dtype=np.float64)
    after = t >= 0
    region = np.zeros(len(t), dtype=bool)
    region[window] = True
    region &= after
    if not region.any():  # a region wholly before the strike (custom settings): no ringing
        return Difference(None, False, None, 0.0, 0.0, None)
    # the decay from the region's start on, to the crop's end: a region's window held too few
    # frames to fall 20 dB, and "at least" bounds where the crop had room
    decay, least = _decay_ratio(clip[:, after], refs[:, :, after], t[after],
                                start=int(np.flatnonzero(region[after])[0]))
    clip, refs = clip[:, region], refs[:, :, region]
    # each frequency's energy after the strike, against the tap's (dB)
    spec_c = _power_db(clip, axis=1)[:, 0]
    specs_r = _power_db(refs, axis=2)[:, :, 0]  # (k, n_bins)
    spec_r = specs_r.mean(axis=0)
    peak_c, peak_r = int(np.argmax(spec_c)), int(np.argmax(spec_r))
    last = len(bins_hz) - 1
    resonance = None
    # a maximum at the region's edge is no resonance: the strike's thump at 0 Hz, or the
    # crop's top bin, were named as one ("its resonance at 0 Hz instead of 689 Hz")
    # and the peaks must have changed places: the clip's old one down and the references' new
    # one low ("2196 Hz instead of 775 Hz" while the clip's 775 Hz peak stood 0.2 dB lower)
    if abs(peak_c - peak_r) >= 2 and len(bins_hz) > 2 and 0 < peak_c < last \
            and 0 < peak_r < last \
            and spec_c[peak_c] - np.median(spec_c) >= RESONANCE_MIN_DB \
            and spec_r[peak_r] - np.median(spec_r) >= RESONANCE_MIN_DB \
            and spec_c[peak_c] - spec_c[peak_r] >= RESONANCE_MIN_DB \
            and spec_r[peak_r] - spec_r[peak_c] >= RESONANCE_MIN_DB:
        resonance = (float(bins_hz[peak_c]), float(bins_hz[peak_r]))
    # the region's share of the tap's energy, the clip's against the references' mean
    energy = _power_db(clip) - float(np.mean([_power_db(r) for r in refs]))
    tone = spec_c - spec_r  # (n_bins,)
    ringing = np.maximum(spec_c - spec_c.max(), spec_r - spec_r.max()) >= -TONE_NEAR_PEAK_DB
    telling = ((np.abs(tone) >= TONE_MIN_SD * specs_r.std(axis=0)) & (bins_hz >= TONE_MIN_HZ)
               & ringing)
    tone_db, tone_hz = 0.0, None
    if telling.any():
        i = int(np.argmax(np.where(telling, np.abs(tone), 0.0)))
        tone_db, tone_hz = float(tone[i]), float(bins_hz[i])
    return Difference(None if decay is None else float(decay), least, resonance,
                      float(energy), tone_db, tone_hz)


def describe_difference(clip: np.ndarray, references: np.ndarray, *, bins_hz: np.ndarray,
                        frames_ms: np.ndarray, window: slice = slice(None),
                        limits: Limits = Limits()) -> tuple[str, float | None, str]:
    """How a region of a crop differs from the same region of its nearest normal crops.

    Parameters
    ----------
    clip : np.ndarray, shape (n_bins, n_frames)
        The region's band of the clip's crop, every frame, in dB about the tap's mean power
        (:func:`tap_relative`).
    references : np.ndarray, shape (k, n_bins, n_frames) or (n_bins, n_frames)
        The same band of the nearest normal crops, each alike.
    bins_hz : np.ndarray, shape (n_bins,)
    frames_ms : np.ndarray, shape (n_frames,)
        Time of each frame after the strike, ms (negative before it). Only the frames after
        the strike are compared: the ones before hold the strike's onset and background noise,
        up to 27 dB apart between the demo's taps.
    window : slice
        The region's frames. Energy, resonances and single frequencies are read in them; the
        decay from their first frame to the crop's end (:func:`energy_decay`), every tap
        falling the same dB, up to :data:`DECAY_FALL_DB` and no nearer than
        :data:`FLOOR_MARGIN_DB` to any tap's noise.
    limits : Limits
        How far each kind of difference must reach to be claimed (:func:`normal_limits`).

    Returns
    -------
    kind : str
        ``faster-decay``, ``slower-decay``, ``shifted-resonance``, ``weaker``, ``stronger``,
        ``quieter-at``, ``louder-at`` (one frequency) or ``different``.
    ratio : float or None
        The references' decay time over the clip's (their geometric mean): its decay rate over
        theirs (decay kinds only).
    words : str
        The verb phrase of the sentence ("decays 3.0x faster", "carries 5 dB less of the
        tap's energy", "rings 12 dB quieter at 646 Hz").
    """
    d = measure_difference(clip, references, bins_hz=bins_hz, frames_ms=frames_ms,
                           window=window)
    least = "at least " if d.decay_least else ""
    if d.decay is not None and d.decay >= limits.decay:
        return "faster-decay", d.decay, f"decays {least}{d.decay:.1f}x faster"
    if d.decay is not None and d.decay <= 1.0 / limits.decay:
        return "slower-decay", d.decay, f"rings {least}{1.0 / d.decay:.1f}x longer"
    if d.resonance is not None and limits.resonance:
        return ("shifted-resonance", None, f"has its resonance at {d.resonance[0]:.0f} Hz "
                                           f"instead of {d.resonance[1]:.0f} Hz")
    if abs(d.energy_db) >= limits.energy_db:
        less = d.energy_db < 0
        return ("weaker" if less else "stronger", None,
                f"carries {abs(d.energy_db):.0f} dB {'less' if less else 'more'} of the tap's "
                "energy")
    if d.tone_hz is not None and abs(d.tone_db) >= limits.tone_db:
        louder = d.tone_db > 0
        return ("louder-at" if louder else "quieter-at", None,
                f"rings {abs(d.tone_db):.0f} dB {'louder' if louder else 'quieter'} at "
                f"{d.tone_hz:.0f} Hz")
    return "different", None, "sounds different"


def normal_limits(normals: list[Difference], *, quantile: float = NORMAL_QUANTILE) -> Limits:
    """:class:`Limits` no lower than the constants, nor than the ``quantile`` of each
    difference among ``normals``: healthy taps against their own nearest healthy taps, in the
    same region (so that a healthy tap draws a claim of a kind about 1 - quantile of the time).
    """
    if not normals:
        return Limits()
    decays = [max(d.decay, 1.0 / d.decay) for d in normals if d.decay]
    shifted = np.mean([d.resonance is not None for d in normals])
    return Limits(
        # healthy taps' peaks here part from their neighbours' more often than that: the
        # demo's healthy taps read "resonance at ... instead of ..." in 39 of 190
        resonance=bool(shifted <= 1.0 - quantile),
        decay=max(DECAY_FACTOR, float(np.quantile(decays, quantile)) if decays else 0.0),
        energy_db=max(ENERGY_MIN_DB, float(np.quantile([abs(d.energy_db) for d in normals],
                                                        quantile))),
        tone_db=max(TONE_MIN_DB, float(np.quantile([abs(d.tone_db) for d in normals],
                                                    quantile))))


def _fall_time(t: np.ndarray, level: np.ndarray, fall_db: float) -> float | None:
    """Time (as ``t``) from ``t[0]`` until ``level`` first lies ``fall_db`` below ``level[0]``,
    interpolated between frames; None if it never does."""
    below = np.flatnonzero(level <= level[0] - fall_db)
    if not len(below):
        return None
    i = int(below[0])  # >= 1: level[0] itself is not below
    frac = (level[i - 1] - (level[0] - fall_db)) / (level[i - 1] - level[i])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]) - t[0])


def energy_decay(power: np.ndarray, *, start: int) -> tuple[np.ndarray, float]:
    """A band's energy decay curve from ``start`` (Schroeder's backward integral), noise
    compensated as Lundeby et al. (1995) do, in one pass.

    A band's level read frame by frame ended its fall at the first frame that dipped (two modes
    beating in one band), and its mean *dB* over bins fell at a fraction of its mode's rate where
    most bins lay at the floor: against the rig's noise-free ringing the ratios read that way
    were off by a median factor of 1.22 on the demo's anomalous taps, these by 1.00
    (scripts/explain_decay_truth.py, docs/station.md).

    Parameters
    ----------
    power : np.ndarray, shape (n_frames,)
        The band's mean power in each frame after the strike (any scale).
    start : int
        The frame the decay is read from.

    Returns
    -------
    curve : np.ndarray, shape (m,)
        The energy still to come at each frame from ``start``, in dB about its value there
        (0 at ``start``, falling), up to where the band's decay meets its noise (``m`` frames;
        to the crop's end when it rings through).
    range_db : float
        How far the band's level at ``start`` stands above its noise, the crop's last
        :data:`NOISE_FRAMES` frames' mean power; ``inf`` where those frames still lie on the
        decay (the band rings through the crop, its noise not reached: its decay line meets
        their level only among them, and its level falls clearly over the crop,
        :func:`_falls_through`).
    """
    p = np.maximum(np.asarray(power, dtype=np.float64), 1e-30)
    n = len(p)
    noise = float(p[-NOISE_FRAMES:].mean())
    level, noise_db = 10.0 * np.log10(p), 10.0 * np.log10(noise)
    # the decay line: fitted from the start to where the level first comes within the margin
    # of the noise (at least 3 frames)
    near = np.flatnonzero(level[start:] <= noise_db + FLOOR_MARGIN_DB)
    end = min(n, max(start + (int(near[0]) if len(near) else n - start), start + 3))
    if end - start >= 2:
        slope, offset = _line(np.arange(start, end, dtype=np.float64), level[start:end])
    else:
        slope, offset = -1.0, float(level[start])
    slope = min(slope, -1e-3)  # dB per frame
    cross = (noise_db - offset) / slope  # where the line meets the noise (Lundeby's crosspoint)
    range_db = float(level[start] - noise_db)
    if cross >= n - NOISE_FRAMES and _falls_through(level[start:]):
        # the line reaches the last frames' level only among them: they lie on the decay, the
        # band rings through the crop, and subtracting them as noise made it decay faster.
        # Only a band whose level falls clearly over the crop rings through: a band of noise
        # alone fits a flat line over its first frames that meets "the noise" nowhere, and
        # read "rings at least 3.2x longer" (review)
        last, noise, tail = n - 1, 0.0, 10.0 ** ((slope * (n - 1) + offset) / 10.0)
        range_db = np.inf
    else:
        last, tail = max(int(cross), start + 1), noise
    # the energy the line would carry on with past the last frame integrated: a geometric sum
    tail /= 1.0 - 10.0 ** (slope / 10.0)
    kept = np.maximum(p[:last + 1] - noise, 0.0)
    edc = (np.cumsum(kept[::-1])[::-1] + tail)[start:]
    return 10.0 * np.log10(edc / edc[0]), range_db


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, offset) of the least-squares line through the points, as np.polyfit's (at a
    third of its cost: one per band and tap explained)."""
    x_mean, y_mean = x.mean(), y.mean()
    slope = float(((x - x_mean) * (y - y_mean)).sum() / ((x - x_mean) ** 2).sum())
    return slope, float(y_mean - slope * x_mean)


def _falls_through(level: np.ndarray) -> bool:
    """Whether a band's level (dB, frames from the decay's start to the crop's end) falls along
    a line clearly beyond its scatter about it: at least :data:`RING_MIN_FALL_DB`, and 3 times
    the residuals' spread. A decay too slow to fall 10 dB in the crop (T20 over ~670 ms) rings
    through it all the same; a band of noise alone falls by chance only (review)."""
    if len(level) < 4:
        return False
    x = np.arange(len(level), dtype=np.float64)
    slope, offset = _line(x, level)
    fall = -slope * (len(level) - 1)
    spread = float(np.std(level - (slope * x + offset)))
    return bool(fall >= max(RING_MIN_FALL_DB, 3.0 * spread))


def _decay_ratio(clip: np.ndarray, refs: np.ndarray, t: np.ndarray, *, start: int
                 ) -> tuple[float | None, bool]:
    """The references' decay time over the clip's, from ``start`` (and whether it is a bound),
    or None where none can be read. ``clip`` (bins, frames) and ``refs`` (k, bins, frames) in dB,
    frames after the strike only; ``t`` their times."""
    taps = [np.mean(10.0 ** (clip / 10.0), axis=0)] + [np.mean(10.0 ** (r / 10.0), axis=0)
                                                        for r in refs]
    if len(t) - start < 4:
        return None, False
    curves, ranges, starts = [], [], []
    for p in taps:
        # the region's first frames may still rise (the strike's onset): each from its own peak
        s = start + int(np.argmax(p[start:start + PEAK_FRAMES]))
        curve, range_db = energy_decay(p, start=s)
        curves.append((t[s:s + len(curve)], curve))
        ranges.append(range_db)
        starts.append(10.0 * np.log10(max(float(p[s]), 1e-30)))
    fall = min(DECAY_FALL_DB, min(ranges) - FLOOR_MARGIN_DB)  # every tap falls the same dB
    # a band far below the healthy ones at the strike, near its noise throughout, read
    # "rings 1.7x longer"
    if fall < DECAY_MIN_FALL_DB or abs(starts[0] - np.mean(starts[1:])) > DECAY_START_DB:
        return None, False
    times = [_fall_time(tt, c, fall) for tt, c in curves]
    # one that never falls that far takes longer than its span: a bound
    spans = [float(tt[-1] - tt[0]) for tt, _ in curves]
    clip_time, ref_times = times[0], times[1:]
    if clip_time is not None and clip_time <= 0:
        return None, False
    if clip_time is None:  # the clip rings through: it rings at least span / theirs longer
        if any(x is None or x <= 0 for x in ref_times) or spans[0] <= 0:
            return None, False
        return float(np.exp(np.mean(np.log(ref_times)))) / spans[0], True
    least = any(x is None for x in ref_times)
    ref_times = [span if x is None else x for x, span in zip(ref_times, spans[1:], strict=True)]
    if min(ref_times) <= 0:
        return None, False
    ratio = float(np.exp(np.mean(np.log(ref_times)))) / clip_time
    # a reference's span for its time makes the ratio a lower bound: "decays at least N x
    # faster" holds, "rings at least 1/ratio longer" would overstate (2.1x for a true 1.6x)
    if least and ratio < 1.0:
        return None, False
    return ratio, least

