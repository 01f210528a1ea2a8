"""Ensembles (``train.members``): one model file, several networks, judged as one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tapcheck.configfile import load_config
from tapcheck.datasets import Dataset
from tapcheck.errors import ParameterError
from tapcheck.judge import Judge
from tapcheck.modelfile import load_model, save_checkpoint
from tapcheck.resume import read_partial
from tapcheck.models import get_spec
from tapcheck.models.base import represent_clips
from tapcheck.models.ensemble import Ensemble, member_seed
from tapcheck.training import train_model

from .conftest import FAST_CONFIG

EPOCHS = 2


@pytest.fixture
def fast(tmp_path, one_thread):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_CONFIG)
    return load_config(path).replace("train", model="arcface-lite", epochs=EPOCHS)


def _members(n: int, *, seed: int = 0) -> list:
    spec = get_spec("arcface-lite")
    train = spec.resolve(load_config().train.__class__(model="arcface-lite", embedding_dim=16))
    nets = []
    for i in range(n):
        torch.manual_seed(member_seed(seed, i))
        nets.append(spec.build(n_classes=3, train=train, input_shape=(100, 40)).eval())
    return nets


def test_the_cosine_of_an_ensemble_is_the_mean_of_its_members_cosines():
    nets = _members(3)
    x = torch.randn(4, 1, 100, 40)
    with torch.no_grad():
        joint = Ensemble(nets)(x)
        each = [torch.nn.functional.normalize(n(x), dim=1) for n in nets]
    assert joint.shape == (4, 3 * 16)
    assert torch.allclose(joint.norm(dim=1), torch.ones(4), atol=1e-5)
    cos = joint @ joint.T
    mean = sum(e @ e.T for e in each) / 3
    assert torch.allclose(cos, mean, atol=1e-5)
    # and through the path judge takes (crops averaged per clip, bf16 copy)
    clips = represent_clips(Ensemble(nets).for_inference(bf16=False), x[:, 0][:, None], "knn")
    assert clips.shape == (4, 48)


def test_an_ensemble_feeds_only_embedding_scorers():
    with pytest.raises(ValueError, match="cannot feed the 'prob'"):
        Ensemble(_members(2)).represent(torch.randn(2, 1, 100, 40), "prob")
    with pytest.raises(ValueError, match="two or more"):
        Ensemble(_members(1))
    spec = get_spec("ae")  # reconstruction errors of several networks have no common scale
    with pytest.raises(ParameterError, match="needs a scorer on embeddings"):
        spec.resolve(load_config().train.__class__(model="ae", members=2))


def test_member_seeds_start_at_the_run_seed_and_differ():
    assert member_seed(7, 0) == 7
    seeds = [member_seed(s, i) for s in range(5) for i in range(1, 4)]
    assert len(set(seeds)) == len(seeds) and not set(seeds) & set(range(5))
    assert member_seed(3, 2) == member_seed(3, 2)
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.filterwarnings("ignore:the threshold rests on:tapcheck.errors.TapcheckWarning")
def test_an_ensemble_model_file_holds_its_members_and_member_0_is_the_plain_model(
        small_train_set, fast, tmp_path):
    ds = Dataset.open(small_train_set)
    plain = train_model(ds, config=fast, progress=False)
    lines = []
    both = train_model(ds, config=fast.replace("train", members=2), progress=False,
                       log=lines.append)
    assert [line for line in lines if line.startswith("member")] == [
        "member 1/2 (seed 0)", f"member 2/2 (seed {member_seed(0, 1)})"]
    for key, value in plain["state_dict"].items():  # same seed, same takes: the same network
        assert torch.equal(both["state_dict"][f"members.0.{key}"], value), key
    first = next(iter(plain["state_dict"]))  # member 1 started from other weights
    assert not torch.equal(both["state_dict"][f"members.1.{first}"],
                           both["state_dict"][f"members.0.{first}"])
    assert [h["member"] for h in both["history"]] == [0] * EPOCHS + [1] * EPOCHS
    path = save_checkpoint(tmp_path / "ens.pt", both)
    loaded = load_model(path)
    assert isinstance(loaded.module, Ensemble) and len(loaded.module.members) == 2
    assert loaded.detector.reference_.shape[1] == 2 * 32  # FAST_CONFIG: embedding_dim 32
    judge = Judge(path)
    verdicts = judge.judge_files([ds.path_of(t) for t in ds.takes[:3]])
    assert all(v.error is None and np.isfinite(v.score) for v in verdicts)


class _Stop(Exception):
    pass


def _interrupt(ds: Dataset, config, partial, monkeypatch, *, when) -> None:
    """Train until the first saved state for which ``when(state)`` holds, then stop (the
    .partial keeps that state)."""
    import tapcheck.resume as resume

    save = resume.save_partial

    def save_then_stop(path, state):
        save(path, state)
        if when(state):
            raise _Stop

    monkeypatch.setattr(resume, "save_partial", save_then_stop)
    with pytest.raises(_Stop):
        train_model(ds, config=config, progress=False, partial=partial)
    monkeypatch.setattr(resume, "save_partial", save)


@pytest.mark.filterwarnings("ignore:the threshold rests on:tapcheck.errors.TapcheckWarning")
def test_an_ensemble_resumed_after_its_first_member_is_the_uninterrupted_one(
        small_train_set, fast, tmp_path, monkeypatch):

    config = fast.replace("train", members=2)
    ds = Dataset.open(small_train_set)
    uninterrupted = train_model(ds, config=config, progress=False)
    partial = tmp_path / "m.pt.partial"
    # stop in member 2's first epoch
    _interrupt(ds, config, partial, monkeypatch, when=lambda state: state.get("members_done"))
    saved = read_partial(partial)
    assert len(saved["members_done"]) == 1 and saved["epoch"] == 1
    resumed = train_model(ds, config=config, progress=False, partial=partial, resume=True)
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert resumed["detector"]["offset"] == uninterrupted["detector"]["offset"]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in uninterrupted["history"]]


def test_train_members_on_the_command_line(small_train_set, tmp_path, run_cli, one_thread):
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG)
    out = tmp_path / "m.pt"
    code, _, err = run_cli("train", "--dataset", small_train_set, "--config", config,
                           "--model", "ae", "--members", "2", "--out", out)
    assert code == 2 and "needs a scorer on embeddings" in err
    assert "Traceback" not in err and not out.exists()
    code, _, err = run_cli("train", "--members", "0")
    assert code == 2 and "--members" in err
    code, out_text, err = run_cli("train", "--dataset", small_train_set, "--config", config,
                                  "--model", "arcface-lite", "--epochs", "1", "--members", "2",
                                  "--out", out)
    assert code == 0, err
    assert load_model(out).config.train.members == 2


def test_compare_refuses_members_for_models_without_embeddings(small_compare_set, run_cli):
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "study",
                           "--members", "2", "--out", small_compare_set.parent / "report")
    assert code == 2 and "ae, vae score without embeddings" in err
    assert not (small_compare_set.parent / "report").exists()


@pytest.mark.filterwarnings("ignore:the threshold rests on:tapcheck.errors.TapcheckWarning")
def test_a_run_saved_before_train_members_existed_still_resumes(small_train_set, fast,
                                                                tmp_path, monkeypatch):
    """A .partial written before the field was added has no train.members: it reads as 1."""
    from tapcheck.resume import save_partial

    ds = Dataset.open(small_train_set)
    partial = tmp_path / "m.pt.partial"
    _interrupt(ds, fast, partial, monkeypatch, when=lambda state: True)  # after epoch 1
    state = read_partial(partial)
    del state["config"]["train"]["members"]
    save_partial(partial, {k: v for k, v in state.items()
                           if k not in ("format", "format_version", "tapcheck_version",
                                        "features_version")})
    resumed = train_model(ds, config=fast, progress=False, partial=partial, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, EPOCHS + 1))


def test_a_grid_cell_of_several_networks_is_another_cell():
    from tapcheck.config import Config
    from tapcheck.grid import Cell, CellTask, cell_key

    def key(members: int) -> str:
        config = Config().replace("train", members=members).to_dict()
        task = CellTask(cell=Cell("arcface-lite", 0, None), config=config, takes=(),
                        dataset_root="", keep_model=False)
        return cell_key(task, fingerprint="f", folds=0, fold_seed=0)

    assert key(1) != key(2) and key(2) != key(3)
