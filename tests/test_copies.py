"""A tap given twice is told by its bytes, its crops, or, resampled, by its embedding."""

import numpy as np
import pytest

from tapcheck.copies import (COPY_COSINE, COPY_SPACING, copy_limit, embedding_copies,
                             reference_spacing)
from tapcheck.detectors import SCORERS


def _rows(seed: int = 5, n: int = 24, d: int = 5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32) + 2.0, \
        rng.normal(size=(6, d)).astype(np.float32) + 2.0


def _unit(A):
    A = np.asarray(A, dtype=np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def _with_decay(X):
    return np.hstack([X, np.linspace(0.001, 0.003, len(X), dtype=np.float32)[:, None]])


@pytest.mark.parametrize("kind", ["knn", "knn-ldn", "knn-decay"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_spacing_and_unit_embeddings_match_brute_force(kind, metric):
    """Copies are told in cosine on the embedding columns whatever the scorer's metric: the
    unit rows (knn-decay's without its decay) and the reference's median spacing, of every row
    and of an evenly spaced subsample."""
    X, Q = _rows()
    decay = kind == "knn-decay"
    det = SCORERS[kind](k=3, metric=metric).fit(_with_decay(X) if decay else X)
    np.testing.assert_allclose(det.unit_embeddings(), _unit(X), atol=1e-6)
    np.testing.assert_allclose(det.unit_embeddings(_with_decay(Q) if decay else Q), _unit(Q),
                               atol=1e-6)
    own = 1.0 - _unit(X) @ _unit(X).T
    np.fill_diagonal(own, np.inf)
    assert reference_spacing(det) == pytest.approx(np.median(own.min(axis=1)), abs=1e-6)
    picked = np.unique(np.linspace(0, len(X) - 1, 8).round().astype(int))
    assert reference_spacing(det, max_rows=8) == pytest.approx(
        np.median(own[picked].min(axis=1)), abs=1e-6)
    assert copy_limit(det) == pytest.approx(min(COPY_COSINE,
                                                COPY_SPACING * reference_spacing(det)))


def _near(v, distance, rng):
    """A unit row at cosine distance ``distance`` from ``v``."""
    u = v / np.linalg.norm(v)
    w = rng.normal(size=v.shape)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    angle = np.arccos(1.0 - distance)
    return np.cos(angle) * u + np.sin(angle) * w


def test_embedding_copies_tell_a_copy_from_a_sibling():
    """A tap given twice in one call, or a reference's tap again, lies under the limit; a tap a
    few limits away does not; and the clips are compared a block at a time, as a whole."""
    X, Q = _rows(7)
    det = SCORERS["knn"](k=3).fit(X)
    limit = copy_limit(det)
    rng = np.random.default_rng(0)
    clips = np.vstack([Q[0], _near(X[4], 0.2 * limit, rng), Q[1], _near(Q[0], 0.2 * limit, rng),
                       _near(X[9], 4 * limit, rng), _near(Q[1], 4 * limit, rng)])
    clips = clips.astype(np.float32)
    found = embedding_copies(det, clips)
    assert [(i, where, other) for i, where, other, _, _ in found] == [
        (1, "reference", 4), (3, "clip", 0)]
    assert all(d < limit and s == pytest.approx(reference_spacing(det))
               for *_, d, s in found)
    assert embedding_copies(det, clips, block=2) == found


def test_few_spread_references_or_alike_ones_call_nothing_a_copy():
    """A reference of one take per board (4 rows, far apart) put the limit at 0.037, and 60 of
    80 distinct takes read as copies (review): the limit is COPY_COSINE at most. Rows all alike
    (spacing 0) tell nothing."""
    rng = np.random.default_rng(1)
    spread = SCORERS["knn"](k=1).fit(rng.normal(size=(4, 8)).astype(np.float32))
    assert reference_spacing(spread) > 0.1 and copy_limit(spread) == COPY_COSINE
    taps = np.vstack([_near(spread.reference_[0].numpy(), 0.005, rng) for _ in range(5)])
    assert embedding_copies(spread, taps.astype(np.float32)) == []
    X, _ = _rows()
    alike = SCORERS["knn"](k=3).fit(np.tile(X[:1], (6, 1)))
    assert copy_limit(alike) == 0.0 and embedding_copies(alike, np.vstack([X[0], X[0]])) == []
