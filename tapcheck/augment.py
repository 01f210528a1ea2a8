"""Training-time changes to crops: frequency stretch, and pseudo-anomalies for one-class data.

All functions work on batches of standardised crops shaped (N, 1, bins, frames) (tensors) or
(N, n_crops, bins, frames) (arrays); a standardised crop is an affine map of the dB
spectrogram, so edits in dB terms (a notch, a decay ramp) carry over up to that scale.
"""

from __future__ import annotations

import numpy as np
import torch


def stretch_frequencies(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Stretch each crop's frequency axis: ``out[f] = x[f / factor]``, linearly interpolated.

    Modal frequencies of boards scale with size, density and stiffness, which vary from board
    to board and say nothing about cracks; training on stretched crops teaches the model to look
    past that scatter, at decay and clatter instead. Bins beyond the crop repeat its top bin.

    Parameters
    ----------
    x : torch.Tensor, shape (N, 1, bins, frames)
    factors : torch.Tensor, shape (N,)
        1.05 moves a mode at bin 40 to bin 42.
    """
    n_bins = x.shape[2]
    source = torch.arange(n_bins, dtype=x.dtype)[None, :] / factors[:, None]  # (N, bins)
    source = source.clamp(0, n_bins - 1)
    low = source.floor().long().clamp(max=n_bins - 2)
    frac = (source - low)[:, None, :, None]

    def gather(idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 2, idx[:, None, :, None].expand(-1, 1, -1, x.shape[3]))

    return gather(low) * (1 - frac) + gather(low + 1) * frac


def _restandardize(c: np.ndarray) -> np.ndarray:
    mean = c.mean(axis=(-2, -1), keepdims=True)
    return ((c - mean) / np.maximum(c.std(axis=(-2, -1), keepdims=True), 1e-6)).astype(np.float32)


def shift_bins(clips: np.ndarray, bins: int) -> np.ndarray:
    """Move every mode ``bins`` bins up (negative: down), filling with the crop's floor."""
    out = np.roll(clips, bins, axis=-2)
    floor = clips.min(axis=(-2, -1), keepdims=True)
    if bins > 0:
        out[..., :bins, :] = floor
    elif bins < 0:
        out[..., bins:, :] = floor
    return _restandardize(out)


def notch(clips: np.ndarray, *, start: int, width: int) -> np.ndarray:
    """Silence a band of bins, as if a mode had vanished (a crack can kill a mode's antinode)."""
    out = clips.copy()
    out[..., start:start + width, :] = clips.min(axis=(-2, -1), keepdims=True)
    return _restandardize(out)


def extra_damping(clips: np.ndarray, *, slope: float) -> np.ndarray:
    """Make the tap die away faster: subtract a ramp growing ``slope`` (in crop std units) per
    frame, the dB picture of an extra decay rate; never below the crop's floor."""
    frames = np.arange(clips.shape[-1], dtype=np.float32)
    floor = clips.min(axis=(-2, -1), keepdims=True)
    return _restandardize(np.maximum(clips - slope * frames, floor))


# Self-made defects for a training split with a single class (survey source: a random line drawn
# on a normal image, a patch rotated in place). Each is one pseudo-anomaly class.
PSEUDO_ANOMALIES = {
    "pseudo-shift-up": lambda c: shift_bins(c, 4),
    "pseudo-shift-down": lambda c: shift_bins(c, -4),
    "pseudo-notch": lambda c: notch(c, start=8, width=12),
    "pseudo-damped": lambda c: extra_damping(c, slope=0.04),
}


class PseudoAnomalyBatches:
    """Pseudo-anomalies drawn per batch: a hook for :func:`tapcheck.fitting.fit_model`.

    Materialising every pseudo-anomaly class in full
    (:func:`tapcheck.training_data.add_pseudo_anomalies` with ``per_batch=False``) makes an epoch
    five times the normal data. Here each normal crop of
    a batch instead stays normal or becomes one of the :data:`PSEUDO_ANOMALIES`, each with
    probability 1 / (number of pseudo classes + 1): the class balance of the materialised set, at
    the cost of the normal data alone. Draws come from the training run's generator, so a run is
    reproducible and the draws resume with the generator's saved state.

    Parameters
    ----------
    first_class : int
        Class index of the first pseudo-anomaly class; the others follow in
        :data:`PSEUDO_ANOMALIES`' order.
    normal_classes : sequence of int
        Classes whose crops may become pseudo-anomalies.
    """

    def __init__(self, first_class: int, normal_classes):
        self.first_class = int(first_class)
        self.normal_classes = torch.as_tensor(list(normal_classes), dtype=torch.long)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch ``x`` (N, 1, bins, frames), ``y`` (N,) with some crops made pseudo-defects."""
        transforms = list(PSEUDO_ANOMALIES.values())
        draw = torch.randint(len(transforms) + 1, (len(x),), generator=generator)  # 0: normal
        draw[~torch.isin(y, self.normal_classes)] = 0
        if not bool(draw.any()):
            return x, y
        x, y = x.clone(), y.clone()
        for j, transform in enumerate(transforms, start=1):
            pick = draw == j
            if bool(pick.any()):
                x[pick] = torch.from_numpy(transform(x[pick].numpy()))
                y[pick] = self.first_class + j - 1
        return x, y
