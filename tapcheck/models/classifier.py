"""Plain classification CNNs (the study's methods 3 and 4).

The backbone's embedding goes through a PReLU and one linear layer to the (board, side) classes,
trained with cross-entropy or, optionally, focal loss (the study tried both on ResNet18 and saw
no difference). The study found it "separates every board but only memorises boards": nothing in
cross-entropy asks unseen boards to land near similar ones.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import TapModel


class ClassifierModel(TapModel):
    """Backbone + PReLU + fc to the classes (study: ``nonlinear``, ``fc1`` of ClassificationNet).

    Parameters
    ----------
    focal_gamma : float
        0 for cross-entropy; > 0 for focal loss with that γ.
    **kwargs
        Backbone arguments, see :class:`~tapcheck.models.base.TapModel`.
    """

    scorers = ("knn", "prob")

    @classmethod
    def config_args(cls, train):
        return {"focal_gamma": train.focal_gamma}

    def __init__(self, *, focal_gamma: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.model_args["focal_gamma"] = float(focal_gamma)
        self.nonlinear = nn.PReLU()
        self.fc = nn.Linear(self.model_args["embedding_dim"], self.model_args["n_classes"])
        if focal_gamma > 0:
            from ..losses import FocalLoss  # imports pytorch-metric-learning: only when asked

            self.criterion = FocalLoss(focal_gamma)
        else:
            self.criterion = nn.CrossEntropyLoss()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.nonlinear(self(x)))

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        logits = self.logits(x).float()
        return self.criterion(logits, y), int((logits.argmax(1) == y).sum())

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        if scorer == "prob":
            return torch.softmax(self.logits(x).float(), dim=1)
        return super().represent(x, scorer)
