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
- :class:`DecayKNNDetector`: the kNN score or the crops' decay (:mod:`tapcheck.decay`),
  whichever stands further out from the normal clips: a crack's friction damps the board, which
  the network hears less than where the modes sit.
"""

from __future__ import annotations

import math
import warnings
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
            D = self._left_out_distances(None, strict=False)
            k = min(self.k, max(len(X) - 1, 1))
            rho = torch.topk(D, k, dim=1, largest=False).values[:, -1]
        rho = torch.where(torch.isfinite(rho), rho, torch.ones_like(rho))
        # a reference with k copies of itself has no neighbourhood (rho 0): a tap next to it
        # scored its distance over 1e-9, a million times anomalous (stats audit). As LOF's
        # duplicates, held to a tenth of the references' typical density instead
        positive = rho[rho > 0]
        floor = 0.1 * float(positive.median()) if len(positive) else 1.0
        self.density_ = rho.clamp_min(max(floor, 1e-9))

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


def _robust_location_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and MAD (scaled to a normal's standard deviation) of the finite values of ``x``;
    the standard deviation where the MAD is 0 (most values equal), 1 where that is 0 too."""
    from scipy.stats import median_abs_deviation

    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return 0.0, 1.0
    scale = float(median_abs_deviation(x, scale="normal"))
    if not scale > 1e-12:
        scale = float(x.std()) if x.std() > 1e-12 else 1.0
    return float(np.median(x)), scale


class DecayKNNDetector(KNNDetector):
    """The larger of two robust z-scores: the kNN distance's, and the crops' decay's against
    the decay of the references that sound most like the clip.

    Each row of ``X`` is a clip's embedding with its decay (:func:`tapcheck.decay.crop_decay`,
    mean over the clip's crops) appended as the last column; :func:`represent_clips` hands
    this scorer such rows. With ``N_k(x)`` the clip's k nearest references and ``m``, ``s`` a
    median and MAD (scaled to a standard deviation)::

        z_net(x)   = (log d_k(x) - m_net) / s_net
        z_decay(x) = (decay(x) - median_{r in N_k(x)} decay(r) - m_res) / s_res
        score(x)   = exp(m_net + s_net * max(z_net(x), z_decay(x)))

    ``m_net, s_net`` are those of the reference clips' own log k-th-neighbour distances, each
    scored against the other references (leave-one-clip-out); ``m_res, s_res`` those of their
    decays less their neighbours' median decay, likewise. The decay is read against the
    neighbours because woods and sizes differ in damping: a clip must ring down faster than the
    boards that sound like it, and enrolling a new batch's taps (``tapcheck enroll``) gives its
    own damping as the expectation. Only a faster decay raises the score (a crack adds
    damping). The score is told in the kNN distance's units (``exp`` of the scaled z), so it is
    positive and skewed as a distance and the threshold is fitted as for ``knn``; where the
    decay says nothing unusual it *is* the kNN distance. The scales are set by :meth:`fit`; adding
    references to a hold-out or cross-fit calibration (``tapcheck enroll``) keeps them, so the
    stored calibration scores stay on the scale they were fitted on — though the new references
    move the decay a clip near them is expected to have (leave-one-board-out refits all of it).
    Parameters as :class:`KNNDetector`.
    """

    kind = "knn-decay"
    reads_decay = True

    def _split(self, X: np.ndarray, *, fitting: bool = False) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        width = None if fitting or not hasattr(self, "reference_") else self.reference_.shape[1]
        if X.ndim != 2 or X.shape[1] < 2 or (width is not None and X.shape[1] != width + 1):
            raise ParameterError(
                f"the knn-decay scorer needs rows of an embedding and a decay "
                f"({'D + 1' if width is None else width + 1} columns), not shape {X.shape}",
                fix="compute them with represent_clips(net, clips, 'knn-decay')")
        return X[:, :-1], X[:, -1].astype(np.float64)

    def _terms(self, D: torch.Tensor, decay: np.ndarray, *, k: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """k-th-neighbour distance and decay less the neighbours' median decay, per row of the
        query-by-reference distances ``D`` (excluded references at inf)."""
        k = min(k or self.k, D.shape[1])
        values, idx = torch.topk(D, k, dim=1, largest=False)
        distance = self._kth_of(values)
        near = np.where(np.isfinite(values.numpy()), self.reference_decay_[idx.numpy()], np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a lone reference: no neighbour
            expected = np.nanmedian(near, axis=1)
        return distance, decay - np.nan_to_num(expected, nan=0.0)

    def fit(self, X: np.ndarray, y: Any = None, **calibration: Any) -> "DecayKNNDetector":
        self._fit_reference(X)
        n = len(self.reference_)
        with torch.inference_mode():
            D = self._left_out_distances(None, strict=False)  # leave-one-clip-out
            # with k or fewer references each one's k-th other neighbour does not exist: the
            # scales come from the farthest other one, as knn-ldn's densities do
            own, residual = self._terms(D, self.reference_decay_, k=max(1, min(self.k, n - 1)))
        finite = np.isfinite(own)
        self.network_scale_ = _robust_location_scale(np.log(np.maximum(own, 1e-12)))
        if finite.any() and np.ptp(residual[finite]) > 1e-12:
            self.decay_scale_ = _robust_location_scale(residual[finite])
        else:
            # a lone reference, or references whose decays do not vary (no mode rings and dies
            # inside their crops, as in the real knocks of tests/): the decay says nothing, and
            # an infinite scale keeps it from ever giving the score
            self.decay_scale_ = (0.0, math.inf)
        return super().fit(X, y, **calibration)

    @property
    def decay_reads_nothing(self) -> bool:
        """Whether the references' decays did not vary, so the score is the kNN distance."""
        return _unused_scale(self.decay_scale_)

    def _fit_reference(self, X: np.ndarray) -> None:
        emb, self.reference_decay_ = self._split(X, fitting=True)
        super()._fit_reference(emb)

    def reference_rows(self) -> np.ndarray:
        return np.hstack([self.reference_.numpy(), self.reference_decay_[:, None]]).astype(
            np.float32)

    def _fuse(self, distance: np.ndarray, residual: np.ndarray) -> np.ndarray:
        (m_net, s_net), (m_res, s_res) = self.network_scale_, self.decay_scale_
        if not math.isfinite(s_res):
            return np.asarray(distance, dtype=np.float64)
        z_decay = np.minimum((residual - m_res) / s_res, 50.0)  # exp stays finite
        return np.maximum(distance, np.exp(m_net + s_net * z_decay))

    def _embedding_part(self, X: np.ndarray) -> np.ndarray:
        return self._split(X)[0]

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        emb, decay = self._split(X)
        with torch.inference_mode():
            return self._fuse(*self._terms(self._distances(self._prepare(emb)), decay))

    def embedding_score(self, X: np.ndarray) -> np.ndarray:
        return super().anomaly_score(X)

    def decay_reading(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Per row, shape (n,) each: ``decay``; ``expected``, the nearest references' median
        decay; ``z``, the decay's robust z-score; ``decides``, whether the decay term, not the
        kNN distance, gave the score."""
        emb, decay = self._split(X)
        with torch.inference_mode():
            distance, residual = self._terms(self._distances(self._prepare(emb)), decay)
        m_res, s_res = self.decay_scale_
        return {"decay": decay, "expected": decay - residual, "z": (residual - m_res) / s_res,
                "decides": self._fuse(distance, residual) > distance}

    def _self_scores(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        _, decay = self._split(X)  # X is the reference: its embeddings are reference_
        with torch.inference_mode():
            return self._fuse(*self._terms(self._left_out_distances(groups), decay))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "reference_decay": torch.from_numpy(
                    self.reference_decay_.copy()),
                "network_scale": list(self.network_scale_),
                "decay_scale": list(self.decay_scale_)}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.reference_decay_ = state["reference_decay"].numpy().astype(np.float64)
        self.network_scale_ = tuple(state["network_scale"])
        self.decay_scale_ = tuple(state["decay_scale"])


def scorer_label(state: dict[str, Any]) -> str:
    """A detector's scorer as it scores, for a line of output.

    ``knn-decay`` whose decays did not vary scores as ``knn``
    (:attr:`DecayKNNDetector.decay_reads_nothing`): ``train`` warned so, then said
    "knn-decay scorer" on the next line.

    Parameters
    ----------
    state : dict
        A detector's saved state (``get_state()``, a model file's ``detector``).

    Returns
    -------
    str
        ``"knn scorer"``, ``"knn-decay scorer, scoring as knn"``, ...
    """
    if state.get("kind") == "knn-decay" and _unused_scale(state["decay_scale"]):
        return "knn-decay scorer, scoring as knn"
    return f"{state.get('kind')} scorer"


def _unused_scale(scale) -> bool:
    """A (location, scale) pair whose infinite scale keeps its term from ever giving the score
    (set by :meth:`DecayKNNDetector.fit` when the references' decays do not vary)."""
    return not math.isfinite(float(scale[1]))
