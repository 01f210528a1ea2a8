"""Scores that travel to new boards: Mahalanobis and density-normalised kNN, on embeddings.

Both follow :class:`tapcheck.detectors.ThresholdDetector`'s contract (and so scikit-learn's
outlier contract) and are registered in :data:`tapcheck.detectors.SCORERS`. Leave-one-board-out
self-scores refit the reference without each board, so the threshold holds for new boards as
the kNN one does.

- :class:`MahalanobisDetector`: distance to the normal embeddings' mean under their covariance,
  shrunk towards a multiple of the identity (512 dimensions, a few hundred clips: the raw
  covariance is singular).
- :class:`DensityKNNDetector`: the k-th-neighbour cosine distance divided by the typical k-th
  neighbour distance of those neighbours among the other references, so a query in a sparse
  part of the reference (a wood with much take-to-take spread) is not flagged for that alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .detectors import KNNDetector, ThresholdDetector
from .errors import ParameterError


class _RefitSelfScores:
    """Leave-one-group-out self-scores by refitting the reference without each group."""

    def _self_scores(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        if len(np.unique(groups)) < 2:
            raise ParameterError("leave-one-group-out scoring needs at least two groups")
        full = self._reference_state()
        scores = np.empty(len(X))
        for g in np.unique(groups):
            mine = groups == g
            self._fit_reference(X[~mine])
            scores[mine] = self.anomaly_score(X[mine])
        self._restore_reference(full)
        return scores

    def _self_method(self, groups: np.ndarray | None) -> str:
        return "leave-one-clip-out" if groups is None else "leave-one-board-out"


class MahalanobisDetector(_RefitSelfScores, ThresholdDetector):
    """Mahalanobis distance to the normal embeddings (shrunk covariance).

    Parameters
    ----------
    shrinkage : float
        Weight of ``trace(S) / D * I`` in the covariance, in (0, 1].
    far, board_taps, board_far : see :class:`~tapcheck.detectors.ThresholdDetector`.
    """

    kind = "mahalanobis"

    def __init__(self, *, shrinkage: float = 0.1, far: float = 0.05, **board: Any):
        super().__init__(far=far, **board)
        if not 0.0 < shrinkage <= 1.0:
            raise ParameterError(f"shrinkage must be in (0, 1], not {shrinkage}")
        self.shrinkage = shrinkage

    def get_params(self) -> dict[str, Any]:
        return {"shrinkage": self.shrinkage, **super().get_params()}

    def _fit_reference(self, X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        cov = np.cov(X, rowvar=False) if len(X) > 1 else np.zeros((X.shape[1], X.shape[1]))
        cov = np.atleast_2d(cov)
        scale = max(np.trace(cov) / cov.shape[0], 1e-12)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * scale * np.eye(cov.shape[0])
        self.precision_ = np.linalg.inv(cov)

    def _reference_state(self):
        return self.mean_, self.precision_

    def _restore_reference(self, state) -> None:
        self.mean_, self.precision_ = state

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        d = np.asarray(X, dtype=np.float64) - self.mean_
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision_, d), 0.0))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "mean": torch.from_numpy(self.mean_.copy()),
                "precision": torch.from_numpy(self.precision_.copy())}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.mean_ = state["mean"].numpy()
        self.precision_ = state["precision"].numpy()


class DensityKNNDetector(_RefitSelfScores, KNNDetector):
    """k-th-neighbour distance over the local k-th-neighbour distance of those neighbours.

    ``score(x) = d_k(x) / mean_{r in N_k(x)} rho(r)``, where ``rho(r)`` is reference ``r``'s own
    k-th-neighbour distance among the other references. Parameters as :class:`KNNDetector`.
    """

    kind = "knn-ldn"

    def _fit_reference(self, X: np.ndarray) -> None:
        super()._fit_reference(X)
        with torch.inference_mode():
            D = self._distances(self.reference_).clone()
            D.fill_diagonal_(float("inf"))
            k = min(self.k, max(len(X) - 1, 1))
            rho = torch.topk(D, k, dim=1, largest=False).values[:, -1]
        self.density_ = torch.where(torch.isfinite(rho), rho, torch.ones_like(rho)).clamp_min(1e-9)

    def _reference_state(self):
        return self.reference_, self.density_

    def _restore_reference(self, state) -> None:
        self.reference_, self.density_ = state

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            D = self._distances(self._prepare(X))
            k = min(self.k, D.shape[1])
            values, idx = torch.topk(D, k, dim=1, largest=False)
            return (values[:, -1] / self.density_[idx].mean(dim=1)).numpy().astype(np.float64)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "density": self.density_.clone()}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.density_ = state["density"].float()
