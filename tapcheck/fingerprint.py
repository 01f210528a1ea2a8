"""A network's fingerprint: what it gives for one crop of noise, both stored in its model file.

The zip's checksums (:func:`tapcheck.file_kinds.check_stored_crcs`) catch bytes damaged on
disk; they cannot catch weights rewritten whole — a model file loaded, edited and saved again
(its checksums then match the new bytes), or the weights of one training put under another's
settings of the same shapes. Such a file loaded and judged without a word: weights scaled up
by a large finite factor judged every clip ANOMALOUS (QA). ``train`` stores the network's
output for the crop below; loading computes it again and refuses a network that gives other
numbers. The crop is stored beside the output (48 kB for the study's 100 x 120 crops): torch
does not promise the same random numbers from one release to the next, and a crop drawn again
by a later torch would have refused every model file.
"""

from __future__ import annotations

from typing import Any

import torch

SEED = 0  # the noise crop drawn at training; stored, so it is never drawn again
# relative difference allowed: float32 convolutions of other CPUs or torch builds differ by
# ~1e-6 (oneDNN picks other algorithms; 2.4e-6 at most across instruction sets, review), and
# a float32 network computed in bfloat16 (oneDNN's ONEDNN_DEFAULT_FPMATH_MODE=BF16, used on
# some ARM servers) by 0.34-0.40 % (arcface-resnet18, arcface-lite); one layer of ResNet18
# scaled by 1.01 moves it 2.0 %, weights of another training or scaled by 1000 by far more
TOLERANCE = 0.02


def probe_crop(input_shape: tuple[int, int]) -> torch.Tensor:
    """A crop of noise for :func:`fingerprint`.

    Parameters
    ----------
    input_shape : (bins, frames)

    Returns
    -------
    torch.Tensor, shape (1, 1, bins, frames), float32
        Standard normal noise, as a standardised crop is distributed.
    """
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(1, 1, *input_shape, generator=generator)


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
        ``representation``, ``input`` (the crop, shape (1, 1, bins, frames)) and ``output``
        (shape (1, D)), float32 tensors.
    """
    crop = probe_crop(input_shape)
    return {"representation": representation, "input": crop,
            "output": _output(module, crop, representation)}


def _output(module: torch.nn.Module, crop: torch.Tensor, representation: str) -> torch.Tensor:
    """``module.represent(crop, representation)`` in eval mode, the module's mode kept."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            return module.represent(crop, representation).float().clone()
    finally:
        module.train(was_training)


def difference(module: torch.nn.Module, stored: dict[str, Any], *,
               input_shape: tuple[int, int]) -> float:
    """How far ``module`` is from the network a fingerprint was taken of.

    Parameters
    ----------
    module : TapModel or Ensemble
    stored : dict
        :func:`fingerprint`'s record, as the model file keeps it (files of the first day keep
        no ``input``: the crop is drawn again).
    input_shape : (bins, frames)

    Returns
    -------
    float
        ``|now - stored| / |stored|`` of the outputs; infinite when the network cannot give
        the stored representation (a fingerprint edited to ``prob`` for an ensemble raised a
        ValueError: a traceback, exit status 1; review), the shapes differ or a value is not
        finite.
    """
    crop = stored.get("input")
    crop = probe_crop(input_shape) if crop is None else crop
    crop = crop.to(next(module.parameters()).dtype)  # float32, as loaded
    try:
        now = _output(module, crop, stored["representation"])
    except (ValueError, RuntimeError):
        return float("inf")
    before = stored["output"].float()
    if now.shape != before.shape or not bool(torch.isfinite(now).all()):
        return float("inf")
    return float(torch.linalg.vector_norm(now - before)
                 / max(float(torch.linalg.vector_norm(before)), 1e-12))
