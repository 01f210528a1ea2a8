"""Losses pytorch-metric-learning does not have, written on its interface.

:class:`AdaCosLoss` (Zhang et al. 2019, used by the AdaCos source on MVTec AD) is a cosine softmax
without margin whose scale adapts per mini-batch; :class:`FocalLoss` is the study's alternative to
cross-entropy for the CNN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

# Floor of AdaCos's scale: sqrt(2) log(C - 1) is 0 for two classes, and the adaptive update
# s_t = log(B_avg) / cos θ then stays at 0 forever (B_avg = e^0 = 1). With this floor a sample at
# π/4 from its class, with the other class orthogonal, still gets P(class) = 0.9 with C = 2.
ADACOS_MIN_SCALE = math.sqrt(2.0) * math.log(9.0)


def adacos_initial_scale(num_classes: int) -> float:
    """AdaCos's fixed scale √2 · log(C − 1), never below :data:`ADACOS_MIN_SCALE`."""
    return max(math.sqrt(2.0) * math.log(max(num_classes - 1, 1)), ADACOS_MIN_SCALE)


class AdaCosLoss(BaseMetricLossFunction):
    """AdaCos: cosine softmax with an automatically adapted scale and no margin.

    ``s_0 = √2 · log(C − 1)``; per training batch,
    ``B_avg = mean_i Σ_{k≠y_i} exp(s_{t−1} cos θ_{i,k})``, ``θ_med`` = median angle to the true
    class, ``s_t = log(B_avg) / cos(min(π/4, θ_med))`` (AdaCos source, eq. for the dynamic scale).
    The scale never falls below :data:`ADACOS_MIN_SCALE`.

    Parameters
    ----------
    num_classes, embedding_size : int
        As for pytorch-metric-learning's ``ArcFaceLoss``.
    """

    def __init__(self, num_classes: int, embedding_size: int, **kwargs):
        super().__init__(**kwargs)
        c_f.assert_distance_type(self, CosineSimilarity)
        self.num_classes = num_classes
        self.W = torch.nn.Parameter(torch.empty(embedding_size, num_classes))
        torch.nn.init.xavier_uniform_(self.W)
        # a buffer, so the learned scale is saved and restored with the weights
        self.register_buffer("scale", torch.tensor(adacos_initial_scale(num_classes)))
        self.add_to_recordable_attributes(list_of_names=["num_classes"], is_stat=False)

    def get_default_distance(self):
        return CosineSimilarity()

    def get_cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding with each class centre, shape (N, C)."""
        return self.distance(embeddings, self.W.t())

    def get_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Scaled cosine logits (N, C) with the current scale."""
        return self.get_cosine(embeddings) * self.scale

    @torch.no_grad()
    def _update_scale(self, cosine: torch.Tensor, labels: torch.Tensor) -> None:
        target = F.one_hot(labels, self.num_classes).bool()
        others = torch.where(target, torch.zeros_like(cosine), torch.exp(self.scale * cosine))
        b_avg = others.sum(dim=1).mean()
        theta = torch.acos(cosine[target].clamp(-1 + 1e-7, 1 - 1e-7))
        theta_med = torch.median(theta)
        new = torch.log(b_avg) / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
        self.scale.fill_(max(float(new), ADACOS_MIN_SCALE))

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        c_f.ref_not_supported(embeddings, labels, ref_emb, ref_labels)
        cosine = self.get_cosine(embeddings.float())
        if self.training:
            self._update_scale(cosine, labels)
        weights = lmu.convert_to_weights(indices_tuple, labels, dtype=cosine.dtype)
        losses = F.cross_entropy(cosine * self.scale, labels, reduction="none") * weights
        return {"loss": {"losses": losses, "indices": c_f.torch_arange_from_size(embeddings),
                         "reduction_type": "element"}}


class FocalLoss(torch.nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy down-weighting easy samples by (1 - p)^γ."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
        return (-(1.0 - log_p.exp()) ** self.gamma * log_p).mean()
