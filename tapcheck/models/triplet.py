"""Triplet-loss metric learning (the study's methods 5 and 6; the fast-triplet source).

Triplets are mined online inside each batch, which a class-balanced sampler fills with P classes x
K crops (:class:`tapcheck.samplers.BalancedBatchSampler`):

- ``batch-all`` (fast-triplet source): every valid (anchor, positive, negative) of the batch,
  margin 0.2, mean over all triplets;
- ``batch-hard`` (Hermans et al. 2017): per anchor its farthest positive and nearest negative.

The distance is the Euclidean distance between unit embeddings, **not squared** as in the
fast-triplet source. The shallow net starts with nearly identical embeddings for every crop (loss
= margin), and the gradient of a squared distance vanishes there: on the demo dataset
triplet-shallow never left that point (AUC 0.500, constant scores). The plain distance's
gradient has unit size however close the points are (Hermans et al. made the same choice for the
same reason); it trained to AUC 0.898.
Batch-hard still collapsed there with the shallow net (its loss rests at the margin once the
network's output stops depending on the input), hence batch-all is the default; training warns
when a model has collapsed.

Both come from pytorch-metric-learning (``TripletMarginLoss``, ``BatchHardMiner``).
"""

from __future__ import annotations

import torch

from .base import TapModel

MARGIN = 0.2  # fast-triplet source (there on the squared distance)
MINING = ("batch-all", "batch-hard")


class TripletModel(TapModel):
    """A backbone trained with an online-mined triplet loss.

    Parameters
    ----------
    mining : {"batch-all", "batch-hard"}
    margin : float
    **kwargs
        Backbone arguments, see :class:`~tapcheck.models.base.TapModel`.
    """

    balanced_batches = True  # the training loop draws P classes x K crops per batch

    @classmethod
    def config_args(cls, train):
        return {"mining": train.triplet_mining, "margin": train.triplet_margin}

    def __init__(self, *, mining: str = "batch-all", margin: float = MARGIN, **kwargs):
        super().__init__(**kwargs)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, not {mining!r}")
        self.model_args.update(mining=mining, margin=float(margin))
        self._training = {}  # loss and miner, built on first use

    def objective(self):
        """(loss, miner or None), built when training starts: judging never needs the library."""
        if not self._training:
            from pytorch_metric_learning import distances, losses, miners, reducers

            # Euclidean (power 1, not the source's squared) distance between unit embeddings:
            # a squared distance has no gradient when the embeddings start collapsed
            distance = distances.LpDistance(normalize_embeddings=True, p=2, power=1)
            self._training["loss"] = losses.TripletMarginLoss(
                margin=self.model_args["margin"], distance=distance,
                reducer=reducers.MeanReducer())
            self._training["miner"] = (miners.BatchHardMiner(distance=distance)
                                       if self.model_args["mining"] == "batch-hard" else None)
        return self._training["loss"], self._training["miner"]

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        embeddings = self(x)
        criterion, miner = self.objective()
        with torch.autocast(x.device.type, enabled=False):
            embeddings = embeddings.float()
            triplets = miner(embeddings, y) if miner is not None else None
            return criterion(embeddings, y, triplets), None
