"""A network's fingerprint: what it gives for one crop of fixed noise, stored in its model file.

The zip's checksums (:func:`tapcheck.file_kinds.check_stored_crcs`) catch bytes damaged on
disk; they cannot catch weights rewritten whole — a model file loaded, edited and saved again
(its checksums then match the new bytes), or the weights of one training put under another's
settings of the same shapes. Such a file loaded and judged without a word: weights scaled up
by a large finite factor judged every clip ANOMALOUS (QA). ``train`` stores the network's
output for the crop below; loading computes it again and refuses a network that gives other
numbers.
"""

from __future__ import annotations

from typing import Any

import torch

SEED = 0  # the noise crop: the same on every machine (torch's CPU generator is portable)
# relative difference allowed: float32 convolutions of other CPUs or torch builds differ by
# ~1e-6 (oneDNN picks other algorithms); an edited network moves by far more
TOLERANCE = 1e-3


def probe_crop(input_shape: tuple[int, int]) -> torch.Tensor:
    """The fixed crop, shape (1, 1, bins, frames): standard normal noise, as a standardised
    crop is distributed."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(1, 1, *input_shape, generator=generator)


@torch.inference_mode()
def fingerprint(module: torch.nn.Module, *, input_shape: tuple[int, int],
                representation: str) -> dict[str, Any]:
    """What ``module`` (float32) gives for :func:`probe_crop`, as a model file keeps it.

    Parameters
    ----------
    module : TapModel or Ensemble
        Put in eval mode for the probe and back in the mode it was in.
    input_shape : (bins, frames)
    representation : str
        What the scorer reads (:func:`tapcheck.detectors.representation_of`): ``knn``,
        ``prob`` or ``recon``.

    Returns
    -------
    dict
        ``representation`` and ``output`` (tensor, shape (1, D), float32).
    """
    was_training = module.training
    module.eval()
    try:
        output = module.represent(probe_crop(input_shape), representation).float().clone()
    finally:
        module.train(was_training)
    return {"representation": representation, "output": output}


def difference(module: torch.nn.Module, stored: dict[str, Any], *,
               input_shape: tuple[int, int]) -> float:
    """Relative difference between ``module``'s output for the probe crop and ``stored``'s
    (:func:`fingerprint`): ``|now - stored| / |stored|``, infinite when the shapes differ or a
    value is not finite."""
    now = fingerprint(module, input_shape=input_shape,
                      representation=stored["representation"])["output"]
    before = stored["output"].float()
    if now.shape != before.shape or not bool(torch.isfinite(now).all()):
        return float("inf")
    return float(torch.linalg.vector_norm(now - before)
                 / max(float(torch.linalg.vector_norm(before)), 1e-12))
