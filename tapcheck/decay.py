"""How fast a tap's ringing dies away, read off the crops the network sees.

A crack's faces rub when the board rings; the friction damps its modes (the synthetic rig's
cracks add +251 % loss factor, median over the modes below 4.3 kHz, on the demo's defective
boards: docs/results/decay-demo.md). A network trained to tell the training boards apart hears
*where* the modes sit more than how fast they die, so a crack struck far from its end, which
moves no mode by more than 1.5 %, slips past it. This module reads the damping directly, with no
learning, from the standardised crops (:mod:`tapcheck.features`), so that every command that has
a clip's crops has it too (judging, enrolment, training; cached crops included).

Per crop: each frequency bin whose peak, within the first ``peak_frames`` frames (the strike),
stands ``ring_z`` standard units above the bin's own median over the crop is a mode that rings
and dies inside the crop; the least-squares slope of its level over ``fit_frames`` frames from
its peak, divided by the bin's index (a mode of loss factor ``eta`` at ``f`` Hz decays at
``pi f eta`` per second, Cremer & Heckl, *Structure-Borne Sound*), is its loss factor up to a
constant; the crop's value is the median over those bins, 0 when no bin qualifies (the modes ring
through the whole crop: nothing decays fast). A clip's value is the mean over its crops.

The units are the crop's standard units per frame per bin, not a physical loss factor: the crop
is standardised, so its standard deviation (set mostly by the strike's dynamic range) scales every
slope alike. The scorer that uses it (:class:`tapcheck.scorers.DecayKNNDetector`) compares it only
with the same number of normal takes. ``ring_z`` was chosen on a plant set of another seed than
any set it is reported on (``scripts/decay_select.py``, docs/results/decay-select.md): 4.5 ranked
that set's defects best of 4.0-5.0 (AUC 0.944 by the decay alone; 0.884 at 4.0, 0.926 at 5.0).
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

RING_Z = 4.5  # chosen on plant-val, see the module doc
PEAK_FRAMES = 20  # the strike's frames: the crop starts 4 before the onset (features.pre_frames)
FIT_FRAMES = 30  # 87 ms at hop 128 / 44.1 kHz: a fast mode's decay before it meets the floor
FMIN_BIN = 3  # the crop's first 3 bins, below 130 Hz at the study's settings: hum, handling


def crop_decay(crops: np.ndarray, *, ring_z: float = RING_Z, peak_frames: int = PEAK_FRAMES,
               fit_frames: int = FIT_FRAMES, fmin_bin: int = FMIN_BIN) -> np.ndarray:
    """Median loss factor (crop units) of the modes that ring and die inside each crop.

    Parameters
    ----------
    crops : np.ndarray, shape (..., n_bins, n_frames)
        Standardised crops, bin 0 the lowest frequency (the study's crop starts at 0 Hz, so a
        bin's index is proportional to its frequency; with ``features.fmin_bin`` > 0 the
        bins are weighted a little differently, every clip alike).
    ring_z : float
        A bin rings if its peak stands this many standard units above its median.
    peak_frames : int
        Frames from the crop's start in which a bin's peak is looked for.
    fit_frames : int
        Frames from a bin's peak its decay slope is fitted over.
    fmin_bin : int
        Bins below this are not read.

    Returns
    -------
    np.ndarray, shape (...)
        One value per crop, >= 0 for decaying modes; 0 where no bin rings.
    """
    crops = np.asarray(crops, dtype=np.float64)
    if crops.ndim < 2:
        raise ParameterError(f"crops must be (..., bins, frames), not shape {crops.shape}")
    n_bins, n_frames = crops.shape[-2:]
    if n_frames < peak_frames + fit_frames or n_bins <= fmin_bin:
        raise ParameterError(
            f"a crop of {n_bins} bins x {n_frames} frames is too small to read a decay from "
            f"(needs more than {fmin_bin} bins and {peak_frames + fit_frames} frames)",
            fix="use the study's crop (100 bins x 120 frames) for the knn-decay scorer")
    lead = crops.shape[:-2]
    x = crops.reshape(-1, n_bins, n_frames)[:, fmin_bin:]
    first = np.argmax(x[..., :peak_frames], axis=-1)  # (n, bins)
    peak = np.take_along_axis(x, first[..., None], axis=-1)[..., 0]
    rings = peak >= np.median(x, axis=-1) + ring_z
    # each bin's fit_frames frames from its peak, and their least-squares slope
    window = np.take_along_axis(x, first[..., None] + np.arange(fit_frames), axis=-1)
    t = np.arange(fit_frames) - (fit_frames - 1) / 2
    slope = (window * t).sum(axis=-1) / (t * t).sum()
    eta = -slope / np.arange(fmin_bin, n_bins)
    eta = np.where(rings, eta, np.nan)
    has = rings.any(axis=-1)
    out = np.zeros(len(x))
    if has.any():
        out[has] = np.nanmedian(eta[has], axis=-1)
    return out.reshape(lead)
