"""Detectors follow scikit-learn's outlier contract; thresholds come from normal clips only."""

import numpy as np
import pytest

from tapcheck.detectors import (SCORERS, KNNDetector, ProbDetector, ScoreDetector,
                                detector_from_state, gamma_threshold, representation_of)


def _clusters(seed=0):
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(16)
    normal = centre + 0.1 * rng.standard_normal((60, 16))
    calib = centre + 0.1 * rng.standard_normal((20, 16))
    odd = -centre + 0.1 * rng.standard_normal((10, 16))
    return normal, calib, odd


def test_knn_contract():
    normal, calib, odd = _clusters()
    det = KNNDetector(k=5, far=0.05)
    assert det.fit(normal, X_calib=calib) is det
    scores = det.score_samples(np.vstack([calib, odd]))
    np.testing.assert_allclose(det.decision_function(np.vstack([calib, odd])), scores - det.offset_)
    assert det.threshold_ == -det.offset_
    pred = det.predict(np.vstack([calib, odd]))
    assert (pred[-10:] == -1).all() and (pred[:20] == 1).mean() >= 0.85
    assert np.all(det.anomaly_score(odd) > det.threshold_)


def test_knn_is_the_kth_cosine_distance():
    ref = np.eye(4, dtype=np.float32)
    det = KNNDetector(k=2, far=0.5).fit(ref, X_calib=ref)
    q = np.array([[1.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    assert det.anomaly_score(q)[0] == pytest.approx(1 - 1 / np.sqrt(2), abs=1e-6)
    exp = KNNDetector(k=2, exp=True, far=0.5).fit(ref, X_calib=ref)
    assert exp.anomaly_score(q)[0] == pytest.approx(np.exp(1 - 1 / np.sqrt(2)), abs=1e-6)
    euc = KNNDetector(k=1, metric="euclidean", far=0.5).fit(ref, X_calib=ref)
    assert euc.anomaly_score(q)[0] == pytest.approx(1.0, abs=1e-6)


def test_a_k_past_the_reference_is_warned_of_and_scores_the_farthest():
    """Scoring caps k at the reference's size, so train.knn_k = 100000 meant "the farthest
    reference" without a word; now fitting says so (as scikit-learn's LocalOutlierFactor does)."""
    import warnings

    from tapcheck.errors import TapcheckWarning

    normal, calib, odd = _clusters()
    with pytest.warns(TapcheckWarning, match="knn_k = 100000 is more than the 60 reference"):
        far = KNNDetector(k=100000).fit(normal, X_calib=calib)
    farthest = KNNDetector(k=60).fit(normal, X_calib=calib)
    np.testing.assert_allclose(far.anomaly_score(odd), farthest.anomaly_score(odd))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # k within the reference: nothing to say
        KNNDetector(k=60).fit(normal, X_calib=calib)


def test_threshold_uses_normal_clips_only_and_far():
    normal, calib, _ = _clusters()
    loose = KNNDetector(far=0.2).fit(normal, X_calib=calib).threshold_
    strict = KNNDetector(far=0.01).fit(normal, X_calib=calib).threshold_
    assert strict > loose
    # without a calibration set, leave-one-group-out scores of the reference set the threshold
    groups = np.repeat(np.arange(6), 10)
    det = KNNDetector(far=0.05).fit(normal, groups=groups)
    assert np.isfinite(det.threshold_) and len(det.calibration_scores_) == 60


def test_gamma_threshold():
    scores = np.random.default_rng(0).gamma(3.0, 0.1, size=4000)
    assert gamma_threshold(scores, far=0.05) == pytest.approx(np.quantile(scores, 0.95), rel=0.05)
    assert gamma_threshold(np.full(5, 0.3), far=0.05) == 0.3


def test_prob_and_score_detectors():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    det = ProbDetector(normal_classes=[0, 1], far=0.1).fit(probs[:1], X_calib=probs[:1])
    np.testing.assert_allclose(det.anomaly_score(probs), [0.1, 0.8])
    rec = ScoreDetector(far=0.1).fit(np.array([[1.0], [1.2], [0.9]]))
    assert rec.predict(np.array([[5.0]]))[0] == -1


@pytest.mark.parametrize("det", [KNNDetector(k=3, metric="euclidean", exp=False, far=0.02),
                                 ProbDetector(normal_classes=[0], far=0.1), ScoreDetector(far=0.1)])
def test_state_round_trip(det):
    X = np.random.default_rng(1).random((12, 3)).astype(np.float32)
    det.fit(X, X_calib=X[:6])
    again = detector_from_state(det.get_state())
    np.testing.assert_array_equal(again.anomaly_score(X), det.anomaly_score(X))
    assert again.threshold_ == det.threshold_ and again.get_params() == det.get_params()


# -- scorers that travel: each against a brute-force reference on small arrays -------------------

def _small(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(24, 5)).astype(np.float32) + 2.0
    return X, rng.normal(size=(6, 5)).astype(np.float32) + 2.0, np.repeat(np.arange(4), 6)


def test_mahalanobis_matches_brute_force():
    from scipy.spatial.distance import mahalanobis

    from tapcheck.detectors import SCORERS

    X, Q, _ = _small()
    det = SCORERS["mahalanobis"](shrinkage=0.2).fit(X)
    X64 = X.astype(np.float64)
    cov = np.cov(X64, rowvar=False)
    cov = 0.8 * cov + 0.2 * np.trace(cov) / 5 * np.eye(5)
    want = [mahalanobis(q, X64.mean(axis=0), np.linalg.inv(cov)) for q in Q.astype(np.float64)]
    np.testing.assert_allclose(det.anomaly_score(Q), want, rtol=1e-6)
    assert (det.predict(Q) == np.where(det.anomaly_score(Q) > det.threshold_, -1, 1)).all()


def test_density_knn_matches_brute_force():
    from tapcheck.detectors import SCORERS

    X, Q, _ = _small(1)
    k = 3
    det = SCORERS["knn-ldn"](k=k).fit(X)
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    R, U = unit(X.astype(np.float64)), unit(Q.astype(np.float64))
    rho = [sorted(1 - R[i] @ R[j] for j in range(len(R)) if j != i)[k - 1] for i in range(len(R))]
    want = []
    for u in U:
        d = 1 - R @ u
        nearest = np.argsort(d)[:k]
        want.append(d[nearest[-1]] / np.mean([rho[j] for j in nearest]))
    np.testing.assert_allclose(det.anomaly_score(Q), want, rtol=1e-4)


@pytest.mark.parametrize("kind", ["knn", "knn-decay"])
def test_a_board_left_out_with_fewer_references_than_k_scores_against_the_farthest(kind):
    """Leaving board 0 (21 clips) out leaves board 1's three as the reference, fewer than
    k = 5: board 0's 5th neighbour was inf and the threshold NaN through a direct fit (train
    refuses it before fitting; a cross-fit run, which discards these scores, must not be
    stopped by them). Such a row is scored against its farthest reference, as scoring caps k
    at the reference's size."""
    from tapcheck.detectors import SCORERS

    X, _, _ = _small(1)
    groups = np.array([0] * (len(X) - 3) + [1] * 3)
    if kind == "knn-decay":
        X = np.column_stack([X, np.random.default_rng(0).uniform(1, 2, len(X))])
    det = SCORERS[kind](k=5).fit(X, groups=groups)
    assert np.isfinite(det.threshold_) and np.isfinite(det.calibration_scores_).all()
    if kind == "knn":  # brute force: 1 - cosine to the farthest of board 1's three
        unit = X / np.linalg.norm(X, axis=1, keepdims=True)
        want = [max(1 - u @ unit[j] for j in range(len(X) - 3, len(X)))
                for u in unit[:len(X) - 3]]
        np.testing.assert_allclose(det.calibration_scores_[:len(X) - 3], want, rtol=1e-5)
    # a NaN embedding still scores NaN (judge refuses it), not -inf or its decay alone (review)
    nan = np.full((1, X.shape[1]), np.nan, np.float32)
    if kind == "knn-decay":
        nan[0, -1] = 1.5
    assert np.isnan(det.anomaly_score(nan)).all()
    assert np.isnan(SCORERS[kind](k=5, exp=True).fit(X).anomaly_score(nan)).all()


def test_density_knn_copies_of_a_reference_do_not_make_its_neighbours_anomalous():
    """A reference with k copies has no neighbourhood of its own (density 0): a query beside
    it scored its distance over 1e-9. Its density is held to a tenth of the typical one."""
    from tapcheck.detectors import SCORERS

    X, Q, _ = _small(1)
    k = 3
    copies = np.concatenate([X, np.repeat(X[:1], k, axis=0)])
    beside = X[:1] + 1e-3 * np.random.default_rng(0).standard_normal(X[:1].shape)
    det = SCORERS["knn-ldn"](k=k).fit(copies)
    assert np.isfinite(det.anomaly_score(beside)).all()
    assert det.anomaly_score(beside)[0] < np.median(det.anomaly_score(Q))


@pytest.mark.parametrize("kind", ["mahalanobis", "knn-ldn"])
def test_embedding_scorers_leave_boards_out_and_survive_the_model_file(kind):
    import io

    import torch

    from tapcheck.detectors import SCORERS, detector_from_state
    from tapcheck.errors import ModelFileError
    from tapcheck.detectorcheck import check_detector

    X, Q, groups = _small(2)
    det = SCORERS[kind]().fit(X, groups=groups)
    assert det.calibration_["method"] == "leave-one-board-out"
    # the self-score of board 0 is its score against a reference fitted without board 0
    alone = SCORERS[kind]().fit(X[groups != 0])
    np.testing.assert_allclose(det.calibration_scores_[groups == 0],
                               alone.anomaly_score(X[groups == 0]), rtol=1e-5)
    np.testing.assert_allclose(det.anomaly_score(Q), SCORERS[kind]().fit(X).anomaly_score(Q),
                               rtol=1e-6)  # the full reference is restored after the refits
    buffer = io.BytesIO()
    torch.save(det.get_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    check_detector(state, n_classes=2, path=None)  # what a model file's load checks
    back = detector_from_state(state)
    np.testing.assert_allclose(back.anomaly_score(Q), det.anomaly_score(Q), rtol=1e-6)
    if kind == "knn-ldn":  # its reference is checked as knn's (review): of unit length
        with pytest.raises(ModelFileError, match="not of unit length"):
            check_detector(dict(state, reference=state["reference"] * 2), n_classes=2,
                           path=None)


def test_the_cli_offers_every_registered_scorer():
    from tapcheck.cli.models import SCORER_NAMES

    assert sorted(SCORER_NAMES) == sorted(SCORERS)


@pytest.mark.parametrize("scorer", sorted(SCORERS))
def test_every_scorer_is_fed_by_some_model_and_trains_from_its_name(scorer):
    """Each registered scorer names what a model hands it, some registered model hands that,
    and ``train.scorer = NAME`` builds it (knn-ldn and mahalanobis on embeddings)."""
    from tapcheck.config import Config
    from tapcheck.models import MODELS
    from tapcheck.training import make_detector

    assert representation_of(scorer) in ("knn", "prob", "recon")
    takers = [s for s in MODELS.values() if representation_of(scorer) in s.family.scorers]
    assert takers
    config = Config().replace("train", model=takers[0].name, scorer=scorer)
    config = Config(train=takers[0].resolve(config.train))  # what train_model does
    data = type("Data", (), {"class_labels": ["normal", "defect"]})()
    assert make_detector(config, data).kind == scorer


def _with_decay(X: np.ndarray, decay: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.asarray(decay, dtype=np.float32)[:, None]]).astype(np.float32)


def test_decay_knn_matches_brute_force():
    """knn-decay: the kNN distance or the decay against the neighbours' decay, whichever stands
    further out, each by median/MAD of the references' leave-one-clip-out values."""
    from scipy.stats import median_abs_deviation

    from tapcheck.detectors import SCORERS

    X, Q, _ = _small(3)
    rng = np.random.default_rng(3)
    decay, q_decay = rng.gamma(4.0, 0.001, len(X)), rng.gamma(4.0, 0.002, len(Q))
    k = 3
    det = SCORERS["knn-decay"](k=k).fit(_with_decay(X, decay))
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    R, U = unit(X.astype(np.float64)), unit(Q.astype(np.float64))

    def terms(d, dec, skip=None):
        order = [j for j in np.argsort(d, kind="stable") if j != skip][:k]
        return d[order[-1]], dec - np.median(decay[order])

    own = [terms(1 - R @ R[i], decay[i], skip=i) for i in range(len(R))]
    log_d, res = np.log([o[0] for o in own]), np.array([o[1] for o in own])
    m_net, s_net = np.median(log_d), median_abs_deviation(log_d, scale="normal")
    m_res, s_res = np.median(res), median_abs_deviation(res, scale="normal")
    want = []
    for u, dec in zip(U, q_decay, strict=True):
        dist, r = terms(1 - R @ u, dec)
        want.append(max(dist, np.exp(m_net + s_net * (r - m_res) / s_res)))
    got = det.anomaly_score(_with_decay(Q, q_decay))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # where the decay is ordinary the score is the plain kNN distance
    plain = SCORERS["knn"](k=k).fit(X).anomaly_score(Q)
    ordinary = np.exp(m_net + s_net * (np.array([terms(1 - R @ u, d)[1] for u, d in
                                                 zip(U, q_decay, strict=True)]) - m_res) / s_res)
    np.testing.assert_allclose(got[ordinary < plain], plain[ordinary < plain], rtol=1e-5)


def test_decay_knn_reads_the_decay_against_the_boards_that_sound_alike():
    """A batch that rings down faster than the references is flagged by its decay alone;
    enrolling a few of its taps makes their decay the expectation for its other taps, and with
    a hold-out calibration the stored scales (so the old calibration scores) stay as fitted."""
    import io

    import torch

    from tapcheck.detectors import SCORERS, detector_from_state
    from tapcheck.recalibration import add_references

    rng = np.random.default_rng(4)
    centre = rng.normal(size=(3, 8))  # three lots that sound alike within each
    X = np.concatenate([c + 0.05 * rng.normal(size=(10, 8)) for c in centre[:2]]).astype(
        np.float32)
    decay = rng.normal(0.003, 0.0003, len(X))
    new = (centre[2] + 0.05 * rng.normal(size=(8, 8))).astype(np.float32)
    new_decay = rng.normal(0.006, 0.0003, len(new))  # twice the damping: another wood
    held = np.tile(np.arange(10) < 2, 2)  # two takes of each lot held out (hold-out)
    boards = np.repeat([1, 2], 10)
    det = SCORERS["knn-decay"](k=3).fit(_with_decay(X[~held], decay[~held]),
                                        X_calib=_with_decay(X[held], decay[held]),
                                        groups=boards[~held], calib_groups=boards[held])
    rows = _with_decay(new, new_decay)
    assert (det.decay_reading(rows)["z"] > 5).all()
    scales = det.network_scale_, det.decay_scale_
    add_references(det, rows[:4], group=3)
    assert (det.network_scale_, det.decay_scale_) == scales
    assert (np.abs(det.decay_reading(rows[4:])["z"]) < 3).all()
    buffer = io.BytesIO()
    torch.save(det.get_state(), buffer)
    buffer.seek(0)
    back = detector_from_state(torch.load(buffer, weights_only=True))
    np.testing.assert_allclose(back.anomaly_score(rows), det.anomaly_score(rows), rtol=1e-6)
    np.testing.assert_allclose(back.reference_rows(), det.reference_rows())


def test_decay_knn_with_few_references_and_rows_of_the_wrong_width():
    """k or more references than exist: the scales come from the farthest other reference; a
    lone reference, or decays that do not vary, leave the score to the kNN distance; plain
    embeddings are refused."""
    from tapcheck.detectors import SCORERS
    from tapcheck.errors import ParameterError

    X, Q, _ = _small(5)
    decay = np.linspace(0.001, 0.004, 3)
    few = SCORERS["knn-decay"](k=5).fit(_with_decay(X[:3], decay))
    assert np.isfinite(few.network_scale_).all() and np.isfinite(few.decay_scale_).all()
    calib = _with_decay(X[3:6], decay)
    lone = SCORERS["knn-decay"](k=5).fit(_with_decay(X[:1], decay[:1]), X_calib=calib)
    rows = _with_decay(Q, np.full(len(Q), 0.05))  # a decay far above the lone reference's
    plain = SCORERS["knn"](k=5).fit(X[:1], X_calib=X[3:6])
    np.testing.assert_allclose(lone.anomaly_score(rows), plain.anomaly_score(Q), rtol=1e-6)
    assert lone.threshold_ == pytest.approx(plain.threshold_)
    with pytest.raises(ParameterError, match="embedding and a decay"):
        few.anomaly_score(Q)  # plain embeddings: one column short
    # references whose decays do not vary (no ringing bin in real knocks): the kNN distance
    flat = SCORERS["knn-decay"](k=3).fit(_with_decay(X, np.zeros(len(X))))
    assert flat.decay_reads_nothing and not few.decay_reads_nothing
    plain = SCORERS["knn"](k=3).fit(X)
    np.testing.assert_allclose(flat.anomaly_score(rows), plain.anomaly_score(Q), rtol=1e-6)


def test_every_scorer_has_its_model_file_checks():
    """detectorcheck.KIND_CHECKS is the registry of each kind's own checks of a model file's
    detector: a scorer added without an entry would load unchecked, or fail with a KeyError."""
    from tapcheck.detectorcheck import KIND_CHECKS
    from tapcheck.detectors import SCORERS

    assert set(KIND_CHECKS) == set(SCORERS)
