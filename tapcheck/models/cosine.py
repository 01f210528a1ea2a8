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
from .base import TapModel

CONFIDENCE = 0.999  # target probability at θ = π/4 that fixes the automatic scale


def auto_scale(n_classes: int) -> float:
    """Scale of a cosine softmax over ``n_classes`` classes (see the module docstring)."""
    headroom = math.log(CONFIDENCE / (1.0 - CONFIDENCE))
    return math.sqrt(2.0) * (math.log(max(n_classes - 1, 1)) + headroom)


HEADS = ("arcface", "cosface", "l2softmax", "adacos")


def make_criterion(head: str, n_classes: int, dim: int, scale: float, margin: float):
    """The training loss of a head (pytorch-metric-learning's, or :class:`AdaCosLoss`).

    Imported here, when training starts: judging a saved model never needs the library (its
    import costs half a second of ``tapcheck judge``'s start-up).
    """
    if head == "adacos":
        from ..losses import AdaCosLoss

        return AdaCosLoss(n_classes, dim)
    from pytorch_metric_learning import losses as pml

    if head == "arcface":  # margin in radians everywhere in tapcheck; the library takes degrees
        return pml.ArcFaceLoss(n_classes, dim, margin=math.degrees(margin), scale=scale)
    if head == "cosface":
        return pml.CosFaceLoss(n_classes, dim, margin=margin, scale=scale)
    return pml.NormalizedSoftmaxLoss(n_classes, dim, temperature=1.0 / scale)


class CosineModel(TapModel):
    """A backbone trained with a cosine-softmax head over (board, side) classes.

    The class centres ``W`` (embedding_dim x n_classes) and the scale are the model's own
    parameter and buffer; the loss object shares them and is built only for training. All four
    heads give the same logits at inference, ``scale · cos(embedding, centre)``.

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
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, not {head!r}")
        n_classes, dim = self.model_args["n_classes"], self.model_args["embedding_dim"]
        scale = auto_scale(n_classes) if scale is None else float(scale)
        self.model_args.update(head=head, scale=scale, margin=float(margin))
        self.W = torch.nn.Parameter(torch.empty(dim, n_classes))
        torch.nn.init.normal_(self.W)  # pytorch-metric-learning's default for its heads
        if head == "adacos":
            from ..losses import adacos_initial_scale

            scale = adacos_initial_scale(n_classes)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self._training = {}  # the loss object, built on first use; not part of the state

    def _criterion(self):
        if "loss" not in self._training:
            a = self.model_args
            criterion = make_criterion(a["head"], a["n_classes"], a["embedding_dim"],
                                       a["scale"], a["margin"])
            criterion.W = self.W  # one set of class centres: the model's
            if a["head"] == "adacos":
                criterion.scale = self.scale  # AdaCos updates the model's scale in place
            self._training["loss"] = criterion
        return self._training["loss"]

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``scale · cos(embedding, class centre)``, shape (N, C)."""
        cosine = torch.nn.functional.normalize(embeddings, dim=1) @ torch.nn.functional.normalize(
            self.W, dim=0)
        return cosine * self.scale

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        embeddings = self(x)
        # The head runs in float32 outside autocast: pytorch-metric-learning casts its class
        # centres to the embeddings' dtype, which would leave them in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            embeddings = embeddings.float()
            loss = self._criterion()(embeddings, y)
            with torch.no_grad():
                correct = int((self.logits(embeddings).argmax(1) == y).sum())
        return loss, correct

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        if scorer == "prob":
            return torch.softmax(self.logits(self(x)).float(), dim=1)
        return super().represent(x, scorer)

    def train_logs(self) -> dict[str, float]:
        return {"scale": float(self.scale)}
