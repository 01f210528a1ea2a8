"""What every tapcheck model is: a backbone, an objective, and what it hands to a scorer."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import torch
from torch import nn

from .backbones import BACKBONES


class TapModel(nn.Module):
    """A backbone network plus a training objective.

    Subclasses implement :meth:`loss` and may add scorers to :attr:`scorers`. Everything needed
    to rebuild the module is in :attr:`model_args` (stored in the model file).

    Parameters
    ----------
    backbone : {"resnet18", "shallow"}
    embedding_dim : int
    n_classes : int
        Number of training identities, (board, side) pairs.
    input_shape : (int, int)
        Crop size (bins, frames).
    """

    #: scorers this model can feed, first is the default (see tapcheck.detectors.SCORERS)
    scorers: tuple[str, ...] = ("knn",)
    #: whether training batches must hold P classes x K samples (triplet mining needs positives)
    balanced_batches: bool = False
    #: whether the objective needs two or more classes (reconstruction models do not)
    needs_classes: bool = True

    @classmethod
    def config_args(cls, train) -> dict[str, Any]:
        """Family arguments taken from a resolved :class:`~tapcheck.config.TrainConfig`."""
        return {}

    def __init__(self, *, backbone: str = "resnet18", embedding_dim: int = 512,
                 n_classes: int = 2, input_shape: tuple[int, int] = (100, 120)):
        super().__init__()
        self.model_args: dict[str, Any] = dict(
            backbone=backbone, embedding_dim=embedding_dim, n_classes=n_classes,
            input_shape=tuple(input_shape))
        self.backbone = BACKBONES[backbone](embedding_dim=embedding_dim,
                                            input_shape=tuple(input_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings, shape (N, embedding_dim), of crops shaped (N, 1, bins, frames)."""
        return self.backbone(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        """Training loss of a batch of crops (N, 1, bins, frames) with class indices (N,).

        Returns the loss and, for models that classify, how many crops of the batch were put in
        their own class (``None`` otherwise) — for the training curves.
        """
        raise NotImplementedError

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        """What ``scorer`` works on, per crop.

        ``knn``: embeddings (N, D); ``prob``: class probabilities (N, C); ``recon``:
        reconstruction error (N, 1).
        """
        if scorer == "knn":
            return self(x).float()
        raise ValueError(f"{type(self).__name__} cannot feed the '{scorer}' scorer")

    def train_logs(self) -> dict[str, float]:
        """Extra numbers to log per epoch (e.g. AdaCos's adaptive scale)."""
        return {}

    def for_inference(self, *, bf16: bool, copy: bool = True) -> "TapModel":
        """A copy for computing scores fast, in eval mode; ``self`` is left as it is.

        ``copy=False`` converts ``self`` instead (for a caller that owns the module).

        With ``bf16`` (pass :func:`tapcheck.runtime.cpu_has_bf16` and the config's ``bf16``):
        batch norms folded into the convolutions before them, weights in bfloat16, channels-last
        layout — measured on the 2-core machine, 41 → 24 ms for the two crops of a clip through
        ResNet18. Training computes its reference embeddings through the same copy, so a clip's
        score and the threshold it meets are computed alike.
        """
        net = (deepcopy(self) if copy else self).eval()
        if not bf16:
            return net
        if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
            from torch.fx.experimental.optimization import fuse

            net.backbone = fuse(net.backbone)  # conv + BN -> one conv (eval statistics)
        return net.to(torch.bfloat16).to(memory_format=torch.channels_last)


@torch.inference_mode()
def represent_clips(model: TapModel, clips: "torch.Tensor | np.ndarray", scorer: str, *,
                    batch_size: int = 64) -> torch.Tensor:
    """Per-clip representation for a scorer: the mean over each clip's crops.

    Parameters
    ----------
    model : TapModel, in eval mode
    clips : array or tensor, shape (n_clips, n_crops, bins, frames)
    scorer : str
    batch_size : int
        Crops per forward pass.

    Returns
    -------
    torch.Tensor, shape (n_clips, D), float32
        For ``knn`` each crop's embedding is L2-normalised before averaging, so both crops weigh
        the same on the cosine sphere. For a scorer that reads the decay (``knn-decay``), a last
        column holds the clip's :func:`tapcheck.decay.crop_decay` (mean over its crops).
    """
    from ..detectors import SCORERS, representation_of  # detectors import torch-heavy scorers

    if SCORERS[scorer].reads_decay:
        from ..decay import crop_decay

        decay = crop_decay(np.asarray(clips, dtype=np.float32)).mean(axis=1)
        rep = represent_clips(model, clips, representation_of(scorer), batch_size=batch_size)
        return torch.cat([rep, torch.from_numpy(decay).float()[:, None]], dim=1)
    scorer = representation_of(scorer)  # knn-ldn and mahalanobis work on knn's embeddings
    clips = torch.as_tensor(clips, dtype=torch.float32)
    n_clips, n_crops = clips.shape[:2]
    dtype = next(model.parameters()).dtype  # bfloat16 for a for_inference(bf16=True) copy
    crops = clips.reshape(n_clips * n_crops, 1, *clips.shape[2:]).to(dtype)
    if dtype != torch.float32:
        crops = crops.contiguous(memory_format=torch.channels_last)
    parts = [model.represent(crops[i:i + batch_size], scorer).float()
             for i in range(0, len(crops), batch_size)]
    rep = torch.cat(parts) if parts else torch.zeros(0, 1)
    if scorer == "knn":
        rep = torch.nn.functional.normalize(rep, dim=1)
    return rep.reshape(n_clips, n_crops, -1).mean(dim=1)
