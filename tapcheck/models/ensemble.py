"""Several networks of one model, trained alike from different seeds, judged as one.

``train.members = N`` trains the configured model N times on the same takes (same split, same
settings), member ``i`` from :func:`member_seed`, and keeps all N in one model file. A crop's
embedding is the concatenation of the members' L2-normalised embeddings divided by sqrt(N), so
the cosine similarity of two crops is the mean of the members' cosine similarities: the kNN
scorer, enrolment, calibration and explanations work on it unchanged.

Why: one seed's AUC moves by +-0.03 on the demo and a bad seed falls further (arcface-resnet18,
five seeds: 0.951-0.960 and one 0.854). Averaging seeds was measured to steady it
(docs/new-boards.md): two members cost twice the training and the judging.
"""

from __future__ import annotations

import math
from copy import deepcopy
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import TapModel


def member_seed(seed: int, member: int) -> int:
    """The training seed of ensemble member ``member`` of a run seeded ``seed``.

    Member 0 trains with ``seed`` itself, so a one-member model is the plain model and member 0
    of an ensemble is the model ``--seed`` alone would give; the others draw 32-bit seeds from
    ``(seed, member)`` (not ``seed + member``, which is the next run's member 0).
    """
    if member == 0:
        return seed
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


class Ensemble(nn.Module):
    """Members of one model judged together (see the module docstring).

    Parameters
    ----------
    members : sequence of TapModel
        Two or more networks with the same arguments.
    """

    scorers = ("knn",)

    def __init__(self, members: Sequence[TapModel]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs two or more members")
        self.members = nn.ModuleList(members)

    @property
    def model_args(self) -> dict[str, Any]:
        """The members' arguments (one set: they are built alike)."""
        return self.members[0].model_args

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings, shape (N, members x embedding_dim), each of unit length."""
        return self.represent(x, "knn")

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        """What ``scorer`` works on: only ``knn`` (probabilities and reconstruction errors of
        several networks have no common scale to average)."""
        if scorer != "knn":
            raise ValueError(f"an ensemble cannot feed the '{scorer}' scorer")
        parts = [nn.functional.normalize(m.represent(x, "knn").float(), dim=1)
                 for m in self.members]
        return torch.cat(parts, dim=1) / math.sqrt(len(parts))

    def for_inference(self, *, bf16: bool, copy: bool = True) -> "Ensemble":
        """Each member made fast as :meth:`TapModel.for_inference` does; ``self`` is kept
        unless ``copy=False``."""
        net = deepcopy(self) if copy else self
        for i, member in enumerate(net.members):
            net.members[i] = member.for_inference(bf16=bf16, copy=False)
        return net.eval()
