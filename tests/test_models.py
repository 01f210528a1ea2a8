"""The model registry's contract: every model trains, scores, round-trips and judges."""

import numpy as np
import pytest
import torch

from tapcheck.config import Config
from tapcheck.errors import TapcheckWarning
from tapcheck.featurecache import FeatureCache
from tapcheck.judge import Judge
from tapcheck.modelfile import load_model, save_checkpoint
from tapcheck.models import MODELS, STUDY_MODELS, get_spec
from tapcheck.models.backbones import LiteResNet, ResNet18, ShallowNet
from tapcheck.training import train_model


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_scores_round_trips_and_judges(name, tiny_dataset, tmp_path):
    config = Config().replace("train", model=name, epochs=1, batch_size=16)
    checkpoint = train_model(tiny_dataset, config=config, cache=FeatureCache(), progress=False)
    path = save_checkpoint(tmp_path / f"{name}.pt", checkpoint)
    assert checkpoint["name"] == name and len(checkpoint["history"]) == 1
    assert np.isfinite(checkpoint["history"][0]["loss"])

    test = tiny_dataset.select(split="test")
    clips = FeatureCache().get_many([tiny_dataset.path_of(t) for t in test])
    judge = Judge(path)
    scores = judge.scores(clips)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    # the file holds everything: a second load scores bit for bit the same
    np.testing.assert_array_equal(Judge(load_model(path)).scores(clips), scores)
    # the detector's sklearn contract on the model's own representation
    loaded = load_model(path)
    from tapcheck.models.base import represent_clips

    rep = represent_clips(judge.net, clips, loaded.scorer).numpy()  # as judge represents clips
    pred = loaded.detector.predict(rep)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, scores > judge.threshold)
    verdict = judge.judge_files([tiny_dataset.path_of(test[0])])[0]
    assert verdict.error is None and verdict.model == name


def test_study_models_are_registered():
    assert set(STUDY_MODELS) <= set(MODELS)
    for name in MODELS:
        spec = get_spec(name)
        assert spec.summary and spec.defaults["scorer"] in spec.family.scorers


def test_resnet18_is_the_studys_variant():
    net = ResNet18(embedding_dim=512)
    assert net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].downsample is not None
        assert len(layer) == 2
    assert net.fc5.in_features == 512 * 7 * 8 == 28672  # study: flatten 512x7x8
    assert net(torch.zeros(2, 1, 100, 120)).shape == (2, 512)


def test_shallow_net_is_the_studys():
    net = ShallowNet(embedding_dim=2)
    convs = [m for m in net.convnet if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 64]
    assert [m.out_features for m in net.fc if isinstance(m, torch.nn.Linear)] == [64, 32, 2]
    assert net.fc[0].in_features == 64  # study: Linear(in_features=64)


@pytest.mark.parametrize("per_batch", [True, False])
def test_one_class_gets_pseudo_anomalies(per_batch, tiny_dataset, tmp_path, monkeypatch):
    """Only one normal board side: metric learning still trains, on self-made defect classes
    drawn per batch (``train.pseudo_per_batch = true``) or materialised in full (the default)."""
    import tapcheck.fitting

    seen = {}
    fit = tapcheck.fitting.fit_model

    def spy(model, X, y, **kwargs):  # what the training loop was handed
        seen.update(n=len(X), labels=set(y.tolist()), transform=kwargs.get("transform"))
        return fit(model, X, y, **kwargs)

    monkeypatch.setattr(tapcheck.fitting, "fit_model", spy)
    from tapcheck.datasets import Dataset

    one = Dataset.create(tmp_path / "one")
    for t in tiny_dataset.select(board=1, side="left"):
        one.takes.append(t)
        (one.root / t.path).parent.mkdir(parents=True, exist_ok=True)
        (one.root / t.path).write_bytes(tiny_dataset.path_of(t).read_bytes())
    one.write_manifest()
    config = Config().replace("train", model="arcface-shallow", epochs=1, batch_size=8,
                              pseudo_per_batch=per_batch)
    with pytest.warns(TapcheckWarning, match="one class .* 4 pseudo-anomaly classes"):
        checkpoint = train_model(Dataset.open(one.root), config=config, cache=FeatureCache(),
                                 progress=False)
    assert checkpoint["classes"][0] == "board01/left"
    assert [c for c in checkpoint["classes"] if c.startswith("pseudo")] == [
        "pseudo-shift-up", "pseudo-shift-down", "pseudo-notch", "pseudo-damped"]
    assert checkpoint["class_labels"][1:] == ["pseudo"] * 4
    # references are the normal clips only
    ref = checkpoint["detector"]["reference"]
    assert ref.shape[0] == checkpoint["dataset"]["fit_clips"]
    n_fit = 2 * checkpoint["dataset"]["fit_clips"]  # two crops a clip
    if per_batch:  # an epoch is the normal crops alone; the hook draws the pseudo classes
        assert seen["n"] == n_fit and seen["labels"] == {0} and seen["transform"] is not None
    else:  # every pseudo class in full: five times the data
        assert seen["n"] == 5 * n_fit and seen["labels"] == {0, 1, 2, 3, 4}
        assert seen["transform"] is None


def test_lite_net_is_a_strided_narrow_resnet_with_global_pooling():
    net = LiteResNet(embedding_dim=128)
    assert net.stem[0].stride == (2, 2)
    assert [b.conv2.out_channels for b in net.stages] == [32, 64, 128, 256]
    assert net.fc.in_features == 256  # pooled, not a flatten of the 7 x 8 map
    assert net(torch.zeros(2, 1, 100, 120)).shape == (2, 128)
    assert net(torch.zeros(2, 1, 64, 90)).shape == (2, 128)  # any crop size
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name, backbone in (("lite", net), ("resnet18", ResNet18(embedding_dim=512))):
        with FlopCounterMode(display=False) as counter:
            backbone(torch.zeros(1, 1, 100, 120))
        flops[name] = counter.get_total_flops()
    assert flops["lite"] / 1e9 == pytest.approx(0.39, abs=0.01)  # module docstring
    assert flops["resnet18"] > 8 * flops["lite"]
