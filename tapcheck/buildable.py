"""Whether the configured network can be built on the configured crops, checked before any
work (``train``, ``compare``, ``demo``): a model file's own contents are checked in
:mod:`tapcheck.modelcheck`."""

from __future__ import annotations

import os
from typing import Any

import torch

#: the most weights a network may hold (ResNet18 on the study's crops: 26 million)
MAX_WEIGHTS = 200_000_000


def check_buildable(config: Any, *, path: str | os.PathLike | None = None) -> None:
    """Before any work: the configured network can take crops of the configured size.

    ``path``: the config file the crop settings came from, named in the refusal (``compare
    --config`` named none: QA).

    The shallow CNN halves each side five times, ResNet18 four; a crop of ``n_bins = 8`` or
    ``n_frames = 1`` used to fail only after the features were computed, with a traceback.

    Raises
    ------
    ConfigError
        Naming the crop settings and what the model needs.
    """
    from .errors import ConfigError
    from .models import _skip_init, get_spec

    spec = get_spec(config.train.model)
    train = spec.resolve(config.train)
    f = config.features
    try:
        with _skip_init(), torch.device("meta"):  # shapes only: no memory, no time
            net = spec.build(n_classes=2, train=train, input_shape=(f.n_bins, f.n_frames))
    except (ValueError, RuntimeError) as e:
        raise ConfigError(
            f"'features.n_bins' x 'features.n_frames' = {f.n_bins} x {f.n_frames} crops do not "
            f"fit model {spec.name} ({str(e).splitlines()[0][:120]})",
            path=path, fix="use larger crops (the study's are 100 x 120) or another model"
        ) from None
    weights = sum(p.numel() for p in net.parameters())
    if weights > MAX_WEIGHTS:  # a dense autoencoder of 32769-bin crops: 8 GB, then Adam's
        raise ConfigError(
            f"model {spec.name} on {f.n_bins} x {f.n_frames} crops would hold "
            f"{weights / 1e6:,.0f} million weights ({weights * 16 / 1e9:,.1f} GB to train, with "
            f"the optimiser's state), more than {MAX_WEIGHTS / 1e6:,.0f} million", path=path,
            fix="use smaller crops ([features] n_bins, n_frames; the study's are 100 x 120) or "
                "another model")
