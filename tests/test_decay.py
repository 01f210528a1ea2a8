"""The decay read off the crops, and the knn-decay scorer that uses it, end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tapcheck.decay import crop_decay
from tapcheck.errors import ParameterError


def _crop(rates: dict[int, float], *, peak_frame: int = 5, height: float = 10.0,
          n_bins: int = 100, n_frames: int = 120) -> np.ndarray:
    """A flat crop in which bin ``b`` peaks at ``height`` and falls ``rates[b]`` per frame."""
    crop = np.zeros((n_bins, n_frames))
    frames = np.arange(n_frames - peak_frame)
    for b, rate in rates.items():
        crop[b, peak_frame:] = np.maximum(height - rate * frames, 0.0)
    return crop


def test_known_decays_give_their_loss_factors():
    # bin 10 falls 0.2 per frame, bin 20 0.1: loss factors (slope / bin) 0.02 and 0.005
    crop = _crop({10: 0.2, 20: 0.1})
    assert crop_decay(crop) == pytest.approx(np.median([0.2 / 10, 0.1 / 20]))
    # bins below fmin_bin (hum) and bins that do not stand ring_z above their median are not read
    assert crop_decay(_crop({10: 0.2, 20: 0.1, 2: 5.0})) == pytest.approx(crop_decay(crop))
    low = _crop({10: 0.2, 20: 0.1, 30: 0.5})
    low[30] = np.where(low[30] > 0, 3.0, 0.0)  # a bump 3 units high: not a ringing mode
    assert crop_decay(low) == pytest.approx(crop_decay(crop))
    assert crop_decay(np.zeros((100, 120))) == 0.0  # nothing rings: nothing decays fast
    # a faster decay of the same modes reads higher
    assert crop_decay(_crop({10: 0.3, 20: 0.15})) > crop_decay(crop)


def test_matches_a_per_bin_fit_and_keeps_leading_shapes():
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(3, 2, 100, 120))
    crops[..., 40:45, 2:12] += 8.0  # a few loud bins, peaking early
    got = crop_decay(crops, ring_z=3.0)
    assert got.shape == (3, 2)

    def brute(crop):
        etas = []
        for b in range(3, 100):
            p = int(np.argmax(crop[b, :20]))
            if crop[b, p] >= np.median(crop[b]) + 3.0:
                seg = crop[b, p:p + 30]
                etas.append(-np.polyfit(np.arange(30), seg, 1)[0] / b)
        return np.median(etas) if etas else 0.0

    want = np.array([[brute(c) for c in clip] for clip in crops])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_too_small_a_crop_is_refused():
    with pytest.raises(ParameterError, match="too small to read a decay"):
        crop_decay(np.zeros((100, 40)))


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def decay_model(tiny_dataset, tmp_path_factory):
    """arcface-lite trained for one epoch on the tiny dataset with the knn-decay scorer."""
    from tapcheck.config import Config
    from tapcheck.featurecache import FeatureCache
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.training import train_model

    config = Config().replace("train", model="arcface-lite", scorer="knn-decay", epochs=1,
                              batch_size=16)
    cache = FeatureCache(tmp_path_factory.mktemp("decay-cache"))
    checkpoint = train_model(tiny_dataset, config=config, cache=cache, progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("decay-models") / "lite-decay.pt", checkpoint)


def test_a_knn_decay_model_judges_enrols_and_undoes(decay_model, tiny_dataset, run_cli,
                                                    tmp_path):
    import shutil

    from tapcheck.judge import Judge
    from tapcheck.modelfile import load_model

    model = shutil.copyfile(decay_model, tmp_path / "m.pt")
    loaded = load_model(model)  # weights_only, like every model file
    assert loaded.scorer == "knn-decay" and loaded.detector.kind == "knn-decay"
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[13], split="test")]
    # the verdict's score is the detector's on the clip's embedding and decay
    judge = Judge(model)
    [verdict] = judge.judge_files(clips[:1])
    from tapcheck.features import clip_features
    from tapcheck.models.base import represent_clips

    rows = represent_clips(judge.net, clip_features(clips[0])[None], "knn-decay").numpy()
    assert rows.shape[1] == loaded.detector.reference_.shape[1] + 1
    assert rows[0, -1] == pytest.approx(crop_decay(clip_features(clips[0])).mean(), rel=1e-6)
    assert verdict.score == pytest.approx(float(loaded.detector.anomaly_score(rows)[0]))
    code, out, err = run_cli("judge", "--model", model, *clips[:2])
    assert code == 0 and str(clips[0]) in out, err
    digest = _md5(model)
    code, out, err = run_cli("enroll", "--model", model, "--board", 13, *clips[:3])
    assert code == 0, err
    after = load_model(model).detector
    assert len(after.reference_decay_) == len(after.reference_) == len(
        loaded.detector.reference_) + 3
    assert (after.network_scale_, after.decay_scale_) == (loaded.detector.network_scale_,
                                                          loaded.detector.decay_scale_)
    assert _md5(model) != digest
    code, out, err = run_cli("enroll", "--model", model, "--undo")
    assert code == 0, err
    undone, before = load_model(model).detector, loaded.detector
    np.testing.assert_allclose(undone.reference_rows(), before.reference_rows(), atol=1e-6)
    np.testing.assert_array_equal(undone.reference_decay_, before.reference_decay_)
    np.testing.assert_array_equal(undone.calibration_scores_, before.calibration_scores_)
    assert (undone.network_scale_, undone.decay_scale_) == (before.network_scale_,
                                                            before.decay_scale_)
    assert undone.threshold_ == before.threshold_


def test_a_damaged_decay_in_a_model_file_is_refused(decay_model, tmp_path):
    import torch

    from tapcheck.errors import ModelFileError
    from tapcheck.modelfile import load_model

    checkpoint = torch.load(decay_model, weights_only=True)
    checkpoint["detector"]["reference_decay"][0] = float("nan")
    torch.save(checkpoint, tmp_path / "nan.pt")
    with pytest.raises(ModelFileError, match="reference decays"):
        load_model(tmp_path / "nan.pt")
    checkpoint["detector"]["reference_decay"] = checkpoint["detector"]["reference_decay"][1:]
    torch.save(checkpoint, tmp_path / "short.pt")
    with pytest.raises(ModelFileError, match="reference decays for"):
        load_model(tmp_path / "short.pt")


def test_a_crop_too_small_for_the_decay_is_refused_before_training(tiny_dataset):
    from tapcheck.config import Config
    from tapcheck.training import train_model

    config = Config().replace("train", model="arcface-lite", scorer="knn-decay").replace(
        "features", n_frames=40)
    with pytest.raises(ParameterError, match="too small to read a decay"):
        train_model(tiny_dataset, config=config, progress=False)


def test_an_explanation_says_when_the_decay_gave_the_score(decay_model, tiny_dataset,
                                                          monkeypatch):
    from tapcheck.explain import Explainer
    from tapcheck.features import clip_features
    from tapcheck.judge import Judge
    from tapcheck.models.base import represent_clips

    judge = Judge(decay_model)
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tiny_dataset.root.parent))  # where it trained
    explainer = Explainer(judge)
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(split="test")]
    crops = np.stack([clip_features(c) for c in clips])
    rows = represent_clips(judge.net, crops, "knn-decay").numpy()
    decides = judge.model.detector.decay_reading(rows)["decides"]
    said = ["dies away" in e.sentence for e in explainer.explain_files(clips)]
    assert said == list(decides) and 0 < sum(said) < len(said)  # both kinds of sentence


def test_on_real_knocks_the_decay_reads_nothing_and_training_says_so(run_cli, tmp_path):
    """Hand knocks recorded with a phone (tests' real recordings): no bin stands ring_z above its
    median in their crops, so the decay is 0 throughout, the scorer is plain kNN, and `train`
    says so rather than leaving the user to think the decay is at work."""
    from tapcheck.features import clip_features
    from tapcheck.modelfile import load_model

    from .conftest import knock_files

    wood = knock_files("wood")
    assert not crop_decay(np.stack([clip_features(f) for f in wood])).any()
    for board, side, files in ((1, "left", wood[:10]), (2, "right", wood[10:])):
        code, _, err = run_cli("import", *files, "--dataset", "knocks", "--board", board,
                               "--side", side, "--label", "normal")
        assert code == 0, err
    code, out, err = run_cli("train", "--dataset", "knocks", "--model", "arcface-lite",
                             "--scorer", "knn-decay", "--epochs", "1", "--out", tmp_path / "k.pt")
    assert code == 0, err
    assert "found no mode that rings and dies inside the crops" in err
    # and the saved line agrees with the warning (it said "knn-decay scorer" alone)
    assert "knn-decay scorer, scoring as knn, " in out, out
    assert load_model(tmp_path / "k.pt").detector.decay_reads_nothing
