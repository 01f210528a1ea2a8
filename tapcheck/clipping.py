"""Clipping: samples a converter driven past full scale flattened at its top.

A clip clipped for long is refused (its spectrum is the clipper's, not the board's), a short
clipped peak warned of; :func:`tapcheck.audio.load` checks every file it reads.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import VERDICT_OFF, AudioError, TapcheckWarning

__all__ = ["CLIP_CEILING", "CLIP_MIN_RUN", "HEAVY_CLIPPING_MS", "check_clipping",
           "clipped_samples"]

# Clipping: a flat top of >= 3 equal samples above 90 % of full scale; a clean strike peaks for one
# or two (checked on the real knocks). 5 ms of flat tops is a tenth of a strike's first 50 ms,
# where most of its energy is: beyond that the spectrum is the clipper's, not the board's.
CLIP_CEILING = 0.9
CLIP_MIN_RUN = 3
HEAVY_CLIPPING_MS = 5.0


def clipped_samples(y: np.ndarray, *, ceiling: float = CLIP_CEILING,
                    min_run: int = CLIP_MIN_RUN) -> int:
    """Samples lost to clipping: those in flat runs of ``min_run`` or more equal values at the top.

    A converter driven past full scale holds the largest value it has for several samples; a
    clean waveform reaches its peak for one or two. Runs below ``ceiling`` (a steady quiet hum,
    digital silence) are not clipping.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
    ceiling : float
        Magnitude (full scale = 1) from which a flat run counts.
    min_run : int

    Returns
    -------
    int
        The most clipped samples in any channel.
    """
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    worst = 0
    for channel in y.T:
        high = np.abs(channel) >= ceiling
        if not high.any():
            continue
        # a run is a stretch of equal, high samples; find the stretches' edges
        same = np.concatenate([[False], (channel[1:] == channel[:-1]) & high[1:] & high[:-1],
                               [False]])
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        lengths = edges[1::2] - edges[::2] + 1  # pairs of equal neighbours -> samples
        worst = max(worst, int(lengths[lengths >= min_run].sum()))
    return worst


def check_clipping(y: np.ndarray, *, sr: int, path: Path) -> None:
    """Refuse ``y`` (the file at ``path``, sampled at ``sr``) when clipped for
    :data:`HEAVY_CLIPPING_MS` or more; warn of any shorter clipping."""
    clipped = clipped_samples(y)
    if not clipped:
        return
    ms = 1000.0 * clipped / sr
    if ms >= HEAVY_CLIPPING_MS:
        raise AudioError(
            f"is heavily clipped: {ms:.0f} ms of it sits at full scale, which bends the spectrum "
            "the verdict rests on", path=path,
            fix="lower the input gain (or strike softer) and record again")
    warnings.warn(f"{path}: clipped for {ms:.1f} ms ({clipped} samples at full scale); "
                  f"{VERDICT_OFF} — lower the input gain", TapcheckWarning, stacklevel=3)
