"""Cosine-softmax heads: ArcFace, CosFace, L2-softmax, AdaCos.

Each puts embeddings and class centres on a hypersphere and trains a softmax over their cosines;
they differ in the margin (additive angular, additive cosine, none) and the scale (fixed or
adaptive). ArcFace, CosFace and L2-softmax (pytorch-metric-learning's ``NormalizedSoftmaxLoss``)
come from pytorch-metric-learning; AdaCos from :mod:`tapcheck.losses`.

Scale and margin for few classes
--------------------------------
ArcFace's usual s = 64, m = 0.5 were tuned for ~10⁵ face identities, where the denominator of the
softmax sums ~10⁵ terms. With the study's ~10 (board, side) classes, s = 64 makes the softmax
saturate as soon as the target cosine leads by a hair, so the gradient vanishes before classes are
compact, and m = 0.5 rad pushes θ + m past π/2 for every sample at initialisation (θ ≈ π/2 in
512-d), where ArcFace's logit is no longer monotone. So tapcheck picks the scale from the class
count: the smallest s for which a sample at π/4 from its centre, with the other C − 1 centres
orthogonal, gets probability p = 0.999,

    s = √2 · (log(C − 1) + log(p / (1 − p))),

i.e. AdaCos's fixed scale √2·log(C − 1) (which gives p = 0.5 there) plus the head-room for a
confident softmax: s ≈ 12.9 for 10 classes, 9.8 for 2. The margin defaults to 0.2 rad (11.5°).
"""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning import losses as pml

from ..losses import AdaCosLoss
from .base import TapModel

CONFIDENCE = 0.999  # target probability at θ = π/4 that fixes the automatic scale


def auto_scale(n_classes: int) -> float:
    """Scale of a cosine softmax over ``n_classes`` classes (see the module docstring)."""
    headroom = math.log(CONFIDENCE / (1.0 - CONFIDENCE))
    return math.sqrt(2.0) * (math.log(max(n_classes - 1, 1)) + headroom)


HEADS = {
    # margin in radians everywhere in tapcheck; pytorch-metric-learning's ArcFace takes degrees
    "arcface": lambda c, d, s, m: pml.ArcFaceLoss(c, d, margin=math.degrees(m), scale=s),
    "cosface": lambda c, d, s, m: pml.CosFaceLoss(c, d, margin=m, scale=s),
    "l2softmax": lambda c, d, s, m: pml.NormalizedSoftmaxLoss(c, d, temperature=1.0 / s),
    "adacos": lambda c, d, s, m: AdaCosLoss(c, d),
}


class CosineModel(TapModel):
    """A backbone trained with a cosine-softmax head over (board, side) classes.

    Parameters
    ----------
    head : {"arcface", "cosface", "l2softmax", "adacos"}
    scale : float, optional
        Softmax scale; ``None`` picks :func:`auto_scale` (AdaCos adapts its own).
    margin : float
        Angular (ArcFace) or cosine (CosFace) margin; unused by L2-softmax and AdaCos.
    **kwargs
        Backbone arguments, see :class:`~tapcheck.models.base.TapModel`.
    """

    scorers = ("knn", "prob")

    @classmethod
    def config_args(cls, train):
        return {"scale": train.arcface_scale, "margin": train.arcface_margin}

    def __init__(self, *, head: str = "arcface", scale: float | None = None, margin: float = 0.2,
                 **kwargs):
        super().__init__(**kwargs)
        n_classes, dim = self.model_args["n_classes"], self.model_args["embedding_dim"]
        scale = auto_scale(n_classes) if scale is None else float(scale)
        self.model_args.update(head=head, scale=scale, margin=float(margin))
        self.head = HEADS[head](n_classes, dim, scale, float(margin))

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        embeddings = self(x)
        # The head runs in float32 outside autocast: pytorch-metric-learning casts its class
        # centres to the embeddings' dtype, which would leave them in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            embeddings = embeddings.float()
            loss = self.head(embeddings, y)
            with torch.no_grad():
                correct = int((self.head.get_logits(embeddings).argmax(1) == y).sum())
        return loss, correct

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        if scorer == "prob":
            return torch.softmax(self.head.get_logits(self(x).float()), dim=1)
        return super().represent(x, scorer)

    def train_logs(self) -> dict[str, float]:
        scale = getattr(self.head, "scale", None)
        return {"scale": float(scale)} if scale is not None else {}
