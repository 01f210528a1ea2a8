"""Sounds ``listen`` hears and does not judge: a tap clipped at the microphone, a sound that
does not die away, and a hiss (noise, not a tap). Each is said, for the operator to tap again,
and none is logged as an inspection of the board in hand."""

from __future__ import annotations

import warnings

import numpy as np

from .clipping import check_clipping
from .config import FeatureConfig
from .errors import AudioError
from .features import crop_span_frames
from .spectrogram import frame_levels, frame_power
from .strikes import MAX_TAP_FLATNESS, MIN_RING_DOWN_DB, ring_down_db, strike_flatness


def not_a_tap(device_clip: np.ndarray, y: np.ndarray, onset: int, *, label: str, sr: int,
              device_sr: int, features: FeatureConfig
              ) -> tuple[str | None, list[warnings.WarningMessage]]:
    """Why a strike heard live is not judged, or None; and the warnings of brief clipping.

    Parameters
    ----------
    device_clip : np.ndarray, shape (n_device_samples,)
        The strike's clip as the device gave it (clipping is judged on those samples).
    y : np.ndarray, shape (n_samples,)
        The clip at the model's rate.
    onset : int
        The strike's onset frame in ``y`` (:func:`tapcheck.features.strike_crops`).
    label : str
        The tap's time, as the lines say it.
    sr : int
        The model's rate, ``y``'s.
    device_sr : int
    features : FeatureConfig
        The model's.

    Returns
    -------
    refused : str or None
        The line to say: heavily clipped (as ``judge`` refuses a clipped file; a tap it refused
        was logged with a verdict, under warnings that blamed the cable: QA), or not dying away
        (a machine switched on was logged as an ANOMALOUS tap: QA), or a hiss: a spectrum as
        flat as white noise's, which a tap's modes never are (a 0.3 s burst was logged so: QA).
    clipped : list of warnings.WarningMessage
        Brief clipping's warnings, for the verdict.
    """
    try:
        with warnings.catch_warnings(record=True) as clipped:
            warnings.simplefilter("always")  # brief clipping: the verdict's too
            check_clipping(device_clip, sr=device_sr, path=f"tap at {label}")
    except AudioError as e:
        return (f"{label}: {e.problem} — not judged: lower the input gain (or strike softer) "
                "and tap again"), []
    level = frame_levels(frame_power(y, n_fft=features.n_fft, hop_length=features.hop_length))
    fell = ring_down_db(level, onset, end=onset - features.pre_frames + crop_span_frames(features))
    if fell < MIN_RING_DOWN_DB:
        return (f"{label}: a sound that did not die away ({fell:.0f} dB down at the end of its "
                f"crops; a tap rings down by {MIN_RING_DOWN_DB:.0f} dB or more) — not judged: "
                "noise, not a tap; tap again when it is quiet"), []
    flatness = strike_flatness(y, onset, sr=sr, features=features)
    if flatness > MAX_TAP_FLATNESS:
        return (f"{label}: a hiss, not a tap (its spectrum is as flat as noise's: flatness "
                f"{flatness:.2f}, where a tap's ringing is under {MAX_TAP_FLATNESS:g}) — not "
                "judged: tap again when it is quiet"), []
    return None, list(clipped)
