"""Training keeps its progress: a killed run loses nothing, and --resume finishes it exactly."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tapcheck.configfile import load_config
from tapcheck.datasets import Dataset
from tapcheck.errors import ModelFileError, TapcheckWarning
from tapcheck.modelfile import load_model, partial_path
from tapcheck.resume import read_partial
from tapcheck.training import _warn_if_collapsed, _warn_if_unlearned, train_model

from .conftest import FAST_CONFIG

EPOCHS = 6


@pytest.fixture
def fast(tmp_path, one_thread):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_CONFIG)
    return path


def _same_model(a: dict, b: dict) -> None:
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["detector"]["offset"] == b["detector"]["offset"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert [h["epoch"] for h in b["history"]] == list(range(1, EPOCHS + 1))


@pytest.fixture
def uninterrupted(small_train_set, fast) -> dict:
    config = load_config(fast).replace("train", epochs=EPOCHS)
    return train_model(Dataset.open(small_train_set), config=config, progress=False)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["last-weights", "moving-average"])
def test_resume_gives_the_model_an_uninterrupted_run_gives(small_train_set, fast, tmp_path,
                                                           ema_decay, monkeypatch):
    """With train.ema_decay the moving average is part of the progress: a resumed run that
    restarted it from the weights of epoch 2 would keep other weights."""
    import tapcheck.resume as resume

    config = load_config(fast).replace("train", epochs=EPOCHS, ema_decay=ema_decay)
    uninterrupted = train_model(Dataset.open(small_train_set), config=config, progress=False)
    partial = tmp_path / "m.pt.partial"
    save = resume.save_partial

    def save_then_stop(path, state):  # the run ends right after epoch 2 is saved
        save(path, state)
        if state["epoch"] == 2:
            raise _Stop

    monkeypatch.setattr(resume, "save_partial", save_then_stop)
    with pytest.raises(_Stop):
        train_model(Dataset.open(small_train_set), config=config, progress=False,
                    partial=partial)
    monkeypatch.setattr(resume, "save_partial", save)
    assert read_partial(partial)["epoch"] == 2
    with pytest.raises(ModelFileError, match="interrupted training run left its progress"):
        train_model(Dataset.open(small_train_set), config=config, partial=partial)
    other = config.replace("train", epochs=EPOCHS + 1)
    with pytest.raises(ModelFileError, match=r"other settings \(train.epochs 6 -> 7\)"):
        train_model(Dataset.open(small_train_set), config=other, partial=partial, resume=True)
    # the same take names holding other recordings (another synth seed): not the run's takes
    renamed = shutil.copytree(small_train_set, tmp_path / "renamed")
    files = sorted(renamed.rglob("take*.wav"))
    held = [f.read_bytes() for f in files]
    for f, data in zip(files, held[1:] + held[:1], strict=True):
        f.write_bytes(data)
    with pytest.raises(ModelFileError, match="saved by a run on other takes than") as e:
        train_model(Dataset.open(renamed), config=config, partial=partial, resume=True)
    assert e.value.fix.startswith("resume with the takes the run started with (not re-recorded")
    resumed = train_model(Dataset.open(small_train_set), config=config, progress=False,
                          partial=partial, resume=True)
    _same_model(uninterrupted, resumed)


@pytest.fixture(scope="module")
def one_class_set(tiny_dataset, tmp_path_factory) -> Path:
    """Board 1 left alone (the one-class case: pseudo-anomaly classes are added)."""
    from .conftest import _copy_takes

    root = tmp_path_factory.mktemp("one") / "one"
    _copy_takes(tiny_dataset, tiny_dataset.select(board=[1], side=["left"], split="train"),
                Dataset.create(root))
    return root


@pytest.mark.filterwarnings("ignore:.*pseudo-anomaly:tapcheck.errors.TapcheckWarning")
@pytest.mark.parametrize("per_batch", [False, True], ids=["materialised", "per-batch"])
def test_one_class_training_is_the_same_from_fresh_or_cached_features_and_resumed(
        one_class_set, fast, tmp_path, monkeypatch, per_batch):
    """Crops computed afresh came out frames-major (torch.stft's layout), crops read back from
    the cache C-ordered, and the pseudo-anomaly transforms summed them in another order: a
    resumed one-class run (features cached by then) ended with other weights (stop 10)."""
    import tapcheck.resume as resume
    from tapcheck.featurecache import FeatureCache

    config = load_config(fast).replace("train", epochs=EPOCHS, pseudo_per_batch=per_batch)
    cache = FeatureCache(tmp_path / "cache", audio=config.audio, features=config.features)
    ds = Dataset.open(one_class_set)
    fresh = train_model(ds, config=config, cache=cache, progress=False)  # computes the crops
    cached = train_model(ds, config=config, cache=cache, progress=False)
    _same_model(fresh, cached)
    partial, save = tmp_path / "m.pt.partial", resume.save_partial

    def save_then_stop(path, state):
        save(path, state)
        if state["epoch"] == 2:
            raise _Stop

    monkeypatch.setattr(resume, "save_partial", save_then_stop)
    with pytest.raises(_Stop):
        train_model(ds, config=config, cache=cache, progress=False, partial=partial)
    monkeypatch.setattr(resume, "save_partial", save)
    _same_model(fresh, train_model(ds, config=config, cache=cache, progress=False,
                                   partial=partial, resume=True))


def test_resume_without_a_partial_is_an_error(small_train_set, fast, tmp_path, run_cli):
    code, _, err = run_cli("train", "--dataset", small_train_set, "--config", fast, "--out",
                           tmp_path / "m.pt", "--resume")
    assert code == 2
    assert err.strip() == (f"tapcheck: error: {tmp_path / 'm.pt.partial'}: no interrupted "
                           "training run to resume (no such file) — train without --resume")
    # `train --resume` without the interrupted run's --out looked for the default model's
    # run, and was told to train without --resume: the runs that are there are named
    (tmp_path / "other run.pt.partial").write_bytes(b"progress")
    code, _, err = run_cli("train", "--dataset", small_train_set, "--config", fast, "--out",
                           tmp_path / "m.pt", "--resume")
    assert code == 2 and err.strip().endswith(
        f"(no such file) — give the interrupted run's --out (and its other options): "
        f"--out '{tmp_path / 'other run.pt'}'; or train without --resume"), err


def test_resume_from_a_partial_that_is_no_runs_progress_says_to_delete_it(
        small_train_set, fast, tmp_path, run_cli):
    partial = tmp_path / "m.pt.partial"
    partial.write_text("{}\n")
    code, _, err = run_cli("train", "--dataset", small_train_set, "--config", fast, "--out",
                           tmp_path / "m.pt", "--resume")
    assert code == 2
    assert err.splitlines()[-1] == (
        f"tapcheck: error: {partial}: is not a tapcheck training checkpoint (not a PyTorch "
        "file) — delete it and train without --resume (the run starts over)")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.pt.lock").exists()


def _digests(*roots: Path) -> dict[Path, str]:
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))
             if p.is_file()]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_sigterm_mid_training_says_the_progress_is_kept_and_removes_the_lock(
        small_train_set, fast, tmp_path):
    """`kill` stops train as Ctrl-C does: one line naming the .partial and --resume, exit 130,
    no lock file left beside the model (it used to die silently, status 143, lock left)."""
    out = tmp_path / "models" / "m.pt"
    args = [sys.executable, "-m", "tapcheck", "train", "--dataset", str(small_train_set),
            "--config", str(fast), "--epochs", str(EPOCHS), "--out", str(out)]
    partial = partial_path(out)
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not partial.exists():  # the first epoch is saved: training is under way
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no epoch finished in 5 minutes"
        time.sleep(0.005)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    # the command to continue, with this run's own options ("the same options" sent a user
    # to the default model's run), run as printed
    said = f"tapcheck: interrupted; the finished epochs are saved in {partial} — continue with `"
    assert err.splitlines()[-1].startswith(said) and err.endswith("`\n"), err
    command = shlex.split(err.splitlines()[-1][len(said):-1])
    assert command == ["tapcheck", *args[3:], "--resume"]
    assert "Traceback" not in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.pt.partial"]  # no m.pt.lock
    done = read_partial(partial)["epoch"]
    assert 1 <= done < EPOCHS
    # the same command without --resume is told the command that continues the run
    fresh = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 2 and fresh.stderr == (
        f"tapcheck: error: {partial}: an interrupted training run left its progress here — "
        f"continue it with `{shlex.join(command)}` if it ran with these options, or delete the "
        "file to start over\n")
    resumed = subprocess.run([*args[:3], *command[1:]], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [ln.split()[1] for ln in resumed.stderr.splitlines() if ln.startswith("epoch")] == [
        f"{e}/{EPOCHS}" for e in range(done + 1, EPOCHS + 1)]


def test_sigkill_mid_training_loses_nothing_and_resume_finishes(
        small_train_set, fast, tmp_path, tiny_model, uninterrupted):
    root = shutil.copytree(small_train_set, tmp_path / "dataset")
    out = tmp_path / "models" / "arcface-resnet18.pt"
    out.parent.mkdir()
    # yesterday's model of this dataset, which a killed run must not touch
    checkpoint = torch.load(tiny_model, weights_only=True)
    torch.save({**checkpoint, "dataset": {**checkpoint["dataset"], "name": "dataset",
                                          "path": str(root)}}, out)
    before = _digests(root, out)
    args = [sys.executable, "-m", "tapcheck", "train", "--dataset", str(root), "--config",
            str(fast), "--epochs", str(EPOCHS), "--out", str(out)]
    partial = partial_path(out)

    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not partial.exists():  # the first epoch is saved: training is under way
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no epoch finished in 5 minutes"
        time.sleep(0.005)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    assert run.returncode == -signal.SIGKILL

    # every earlier file is intact, the manifest parses, the old model still loads
    assert _digests(root, out) == before
    assert len(Dataset.open(root)) == 16
    assert load_model(out).checkpoint["history"] == torch.load(tiny_model)["history"]
    done = read_partial(partial)["epoch"]
    assert 1 <= done < EPOCHS  # killed mid-training, with its progress saved

    result = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"saved {out}" in result.stdout
    # the epochs still to do, and only those, were trained
    assert [ln.split()[1] for ln in result.stderr.splitlines() if ln.startswith("epoch")] == [
        f"{e}/{EPOCHS}" for e in range(done + 1, EPOCHS + 1)]
    assert not partial.exists()
    assert not list(out.parent.glob(".*.tmp"))
    _same_model(uninterrupted, torch.load(out, weights_only=True))
    assert _digests(root) == {p: d for p, d in before.items() if p != out}


def test_the_moving_average_is_the_bias_corrected_one_and_averages_batchnorm_too():
    """Brute force: after n updates, weights w_1..w_n count (1 - d) d^(n - i) / (1 - d^n)."""
    from tapcheck.fitting import moving_average

    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = moving_average(net, decay=0.8)
    seen = []
    for n in range(1, 7):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
            net[1].running_mean.copy_(torch.randn(2))
        seen.append(torch.cat([net[0].weight.flatten(), net[1].running_mean]))
        average.update_parameters(net)
        shares = [(1 - 0.8) * 0.8 ** (n - i) / (1 - 0.8 ** n) for i in range(1, n + 1)]
        expected = sum(share * w for share, w in zip(shares, seen, strict=True))
        got = torch.cat([average.module[0].weight.flatten(), average.module[1].running_mean])
        torch.testing.assert_close(got, expected)


def test_training_with_a_moving_average_keeps_the_average_not_the_last_weights(
        small_train_set, fast):
    """The same steps (the losses match), another network kept: the average is not the last."""
    config = load_config(fast).replace("train", epochs=2)
    last = train_model(Dataset.open(small_train_set), config=config, progress=False)
    averaged = train_model(Dataset.open(small_train_set), progress=False,
                           config=config.replace("train", ema_decay=0.9))
    assert [h["loss"] for h in averaged["history"]] == [h["loss"] for h in last["history"]]
    assert averaged["config"]["train"]["ema_decay"] == 0.9
    differ = [k for k, v in last["state_dict"].items()
              if v.is_floating_point() and not torch.equal(v, averaged["state_dict"][k])]
    assert differ, "the moving average kept the last weights"


def test_a_collapsed_model_is_reported_not_passed_silently():
    """All normal clips at one embedding (triplet-shallow's trivial point) must warn; spread not."""
    collapsed = np.tile(np.random.default_rng(0).normal(size=(1, 32)), (40, 1))
    with pytest.warns(TapcheckWarning, match="triplet-shallow: training collapsed"):
        _warn_if_collapsed(collapsed, name="triplet-shallow")
    healthy = collapsed + 1e-3 * np.random.default_rng(1).normal(size=collapsed.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_collapsed(healthy, name="triplet-shallow")


def test_a_network_that_learned_little_is_warned_of():
    """One epoch of arcface-lite on the plant set ended at 3.6 % accuracy, chance for its
    classes, and was saved with a threshold "at 5% false alarms" without a word (QA)."""
    barely = [{"epoch": 1, "accuracy": 0.036}]
    with pytest.warns(TapcheckWarning, match=r"^arcface-lite: its training accuracy reached "
                      r"3\.6% at best in 1 epoch\(s\), under 8\.3%, twice chance \(chance is "
                      r"4\.2% for 24 classes\): the network has learned little of the boards"):
        _warn_if_unlearned(barely, n_classes=24, name="arcface-lite")  # the plant set's
    learned = barely + [{"epoch": 2, "accuracy": 0.12}]  # the best epoch counts
    ensemble = [{"epoch": 1, "accuracy": 0.9, "member": 0}, {"epoch": 1, "accuracy": 0.5,
                                                             "member": 1}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_unlearned(learned, n_classes=24, name="arcface-lite")
        _warn_if_unlearned(ensemble, n_classes=24, name="arcface-lite")
        _warn_if_unlearned([{"epoch": 1, "loss": 3.0}], n_classes=24, name="ae-shallow")
        # two classes (one board's two sides): 95 % is no chance, though under twice it (review)
        _warn_if_unlearned([{"epoch": 1, "accuracy": 0.95}], n_classes=2, name="arcface-lite")
    # each member of an ensemble on its own: one good member hid the other at chance (review)
    with pytest.warns(TapcheckWarning, match=r"^arcface-lite \(member 2 of 2\): its training "
                      r"accuracy reached 3\.0% at best in 1 epoch"):
        _warn_if_unlearned([{**ensemble[0]}, {**ensemble[1], "accuracy": 0.03}], n_classes=24,
                           name="arcface-lite")
    with pytest.warns(TapcheckWarning, match=r"reached 60\.0% at best in 1 epoch\(s\), under "
                      r"75\.0%, halfway from chance to 100% \(chance is 50\.0% for 2 "
                      r"classes\): "):
        _warn_if_unlearned([{"epoch": 1, "accuracy": 0.6}], n_classes=2, name="arcface-lite")


def test_settings_that_fail_every_take_are_one_error_about_the_settings(small_train_set,
                                                                        run_cli, tmp_path):
    """A strike threshold no tap can meet fails all 16 takes alike: three are shown, and the
    fix points at the config, not at 16 recordings."""
    config = tmp_path / "deaf.toml"
    config.write_text("[features]\nmin_strike_db = 300\n")
    code, out, err = run_cli("train", "--dataset", small_train_set, "--config", config,
                             "--model", "ae", "--epochs", "1", "--out", tmp_path / "m.pt")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 4 and "no strike found" in lines[0]
    assert "none of the 16 training takes can be used (the first 3 listed above)" in lines[3]
    assert "suspect the settings first" in lines[3] and not (tmp_path / "m.pt").exists()


def test_auto_calibration_without_held_out_takes_is_refused(small_train_set, run_cli, tmp_path):
    """Two normal boards make 'auto' a hold-out; calib_fraction 0 holds nothing out, which
    used to fall back to another calibration than the model then stated."""
    config = tmp_path / "all.toml"
    config.write_text("[train]\ncalib_fraction = 0\n")
    code, _, err = run_cli("train", "--dataset", small_train_set, "--config", config,
                           "--model", "ae", "--epochs", "1", "--out", tmp_path / "m.pt")
    assert code == 2 and f"{config}: 'train.calib_fraction' is 0, so calibration 'hold-out' " \
        "('auto' with fewer than 8 normal boards) has no held-out takes" in err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("boards, takes, calibration, refused, most", [
    ([2], 3, "hold-out", "5 nearest other takes", 2),  # the README's import step alone
    ([1, 2], 4, "leave-one-board-out", "5 nearest takes of other boards", 4),
    ([1, 2], 6, "leave-one-board-out", None, None),  # 6 takes of the other board each: enough
])
def test_too_few_normal_takes_for_the_knn_threshold_are_refused_before_training(
        tmp_path, boards, takes, calibration, refused, most):
    """Without them the k-th nearest neighbour does not exist, and the threshold came out NaN
    after training, blamed on the learning rate. The fix names the largest train.knn_k the takes
    allow (a knn_k set too high in a config only said to record more), and that value trains."""
    from tapcheck.errors import DatasetError
    from tapcheck.importing import import_clips

    from .conftest import write_tone

    ds = Dataset.create(tmp_path / "few")
    for board in boards:
        clips = [write_tone(tmp_path / f"b{board}-{i}.wav", duration_s=3.0, seed=board * 10 + i)
                 for i in range(takes)]
        import_clips(clips, ds, board=board, side="left", label="normal")
    config = load_config(None).replace("train", model="arcface-lite", epochs=1,
                                       calibration=calibration)
    epochs: list[str] = []
    if refused is None:
        assert np.isfinite(train_model(ds, config=config, log=epochs.append)["detector"]["offset"])
        return
    with pytest.raises(DatasetError, match=refused) as e:
        train_model(ds, config=config, log=epochs.append)
    assert str(e.value).startswith(f"{ds.root / 'manifest.csv'}: has {len(boards) * takes} normal")
    assert not [line for line in epochs if line.startswith("epoch")]  # refused before training
    assert e.value.fix == ("record or import more normal takes (about 30 per board side), or "
                           f"lower train.knn_k to {most} (the most these takes allow)")
    with pytest.raises(DatasetError, match=f"lower train.knn_k to {most} "):
        train_model(ds, config=config.replace("train", knn_k=most + 1))
    lowered = config.replace("train", knn_k=most)
    assert np.isfinite(train_model(ds, config=lowered)["detector"]["offset"])


@pytest.fixture(scope="module")
def three_take_set(tiny_dataset, tmp_path_factory) -> Path:
    """Boards 1 and 2, three training takes per board side: too few for split_calibration to
    hold any out (the new user's `synth --takes 2` held none out either), enough for knn_k 5."""
    from .conftest import _copy_takes

    takes = tiny_dataset.select(board=[1, 2], split="train")
    kept = [t for t in takes if sum(u.class_name == t.class_name
                                    for u in takes[:takes.index(t)]) < 3]
    root = tmp_path_factory.mktemp("three") / "three"
    _copy_takes(tiny_dataset, kept, Dataset.create(root))
    return root


@pytest.mark.parametrize("options, boards, done, warned", [
    (["--calibration", "hold-out"], "three", "leave-one-board-out",
     "calibration 'hold-out' cannot be done: no normal board side has the 4 training takes"),
    ([], "three", "leave-one-board-out", None),  # auto: the announce line says it, no warning
    (["--scorer", "prob"], "three", "in-sample", "(in-sample): the stated false-alarm rate does "
                                               "not hold"),
    (["--calibration", "leave-one-board-out"], "one", "leave-one-clip-out",
     "calibration 'leave-one-board-out' cannot be done: the training split holds one normal "
     "board"),
])
def test_the_calibration_announced_is_the_one_saved(three_take_set, small_train_set, run_cli,
                                                    tmp_path, options, boards, done, warned):
    """A hold-out without takes to hold out, or a leave-one-board-out of one board, fell back
    silently: `--calibration hold-out` saved leave-one-board-out, and `auto` announced a
    hold-out it did not do. An explicit choice replaced and any in-sample threshold warn."""
    if boards == "one":  # board 1 alone, 8 takes: enough neighbours for knn_k 5
        dataset = tmp_path / "one"
        shutil.copytree(small_train_set, dataset)
        ds = Dataset.open(dataset)
        ds.takes[:] = [t for t in ds.takes if t.board == 1]
        ds.write_manifest()
    else:
        dataset = three_take_set
    out = tmp_path / "m.pt"
    code, stdout, err = run_cli("train", "--dataset", dataset, "--model", "arcface-lite",
                                "--epochs", "1", "--out", out, *options)
    assert code == 0, err
    method = load_model(out).detector.calibration_["method"]
    assert method == done and f"{done} threshold" in stdout
    if not options:
        assert f"calibration: {done} (2 normal training boards; auto cross-fits from 8; no " \
               "normal board side has the 4 training takes" in err
    # the calibration's own warnings (one epoch on 4 classes is also warned of as unlearned)
    warnings_ = [line for line in err.splitlines() if line.startswith("tapcheck: warning: ")
                 and "the threshold rests on" not in line and "has learned little" not in line]
    if warned is None:
        assert not warnings_
    else:
        assert len(warnings_) == 1 and warned in warnings_[0]


def test_leave_one_board_out_without_a_reference_is_refused(three_take_set, run_cli, tmp_path):
    """The prob scorer has no reference to leave a board out of: its fit used to give a
    hold-out, or with too few takes an in-sample threshold, and the model said so only in
    `judge`."""
    out = tmp_path / "m.pt"
    code, stdout, err = run_cli("train", "--dataset", three_take_set, "--model", "arcface-lite",
                                "--epochs", "1", "--out", out, "--calibration",
                                "leave-one-board-out", "--scorer", "prob")
    assert code == 2 and err.splitlines() == [
        "tapcheck: error: calibration 'leave-one-board-out' scores each board against a "
        "reference without it, and the prob scorer keeps no reference; nothing was trained — "
        "use calibration 'hold-out' or 'cross-fit' with it, or a scorer that keeps embeddings "
        "(knn, mahalanobis, knn-ldn, knn-decay)"]
    assert "epoch" not in stdout and not out.exists()


@pytest.mark.parametrize("out", [".", "..", "new/..", "new/"])
def test_an_out_that_names_a_folder_is_refused_before_training(tiny_dataset, run_cli, tmp_path,
                                                               monkeypatch, out):
    """`--out .` gave a traceback ("PosixPath('.') has an empty name"), `--out new/..` trained
    for the whole run, failed to save and left new/...partial, and `--out new/` wrote the file
    new (QA)."""
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli("train", "--dataset", tiny_dataset.root, "--model", "ae",
                                "--epochs", "1", "--out", out)
    assert code == 2 and "epoch" not in stdout and err.startswith("tapcheck: error: "), err
    assert err == (f"tapcheck: error: --out '{out}' names a folder, not a model file — e.g. "
                   f"--out {out.rstrip('/')}/model.pt\n")
    # and the library's own check, for callers other than the command line
    from tapcheck.errors import ModelFileError
    from tapcheck.model_target import check_model_target

    with pytest.raises(ModelFileError, match="names a folder; --out names the model file"):
        check_model_target(out)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_not_resumed_is_said_before_replacing_is(tiny_model, tiny_dataset,
                                                                     tmp_path, run_cli):
    """"replacing m.pt … when this run ends" came before the refusal over m.pt's .partial, as
    if the run had started (QA)."""
    from tapcheck.resume import save_partial

    out = shutil.copyfile(tiny_model, tmp_path / "m.pt")
    save_partial(partial_path(out), {"epoch": 1})  # any progress: the refusal comes first
    code, stdout, err = run_cli("train", "--dataset", tiny_dataset.root, "--model", "ae",
                                "--epochs", "1", "--out", out)
    assert (code, stdout) == (2, "") and "left its progress here" in err, (stdout, err)


@pytest.mark.parametrize("side", [".lock", ".partial"])
def test_out_named_as_a_model_files_side_file_is_refused_before_training(tiny_dataset, tmp_path,
                                                                         run_cli, side):
    """A model saved as p.pt.lock then blocked p.pt's runs ("p.pt.lock beside it is not a lock
    file"); one saved as p.pt.partial was taken for p.pt's interrupted run (QA)."""
    out = tmp_path / f"p.pt{side}"
    code, stdout, err = run_cli("train", "--dataset", tiny_dataset.root, "--model", "ae",
                                "--epochs", "1", "--out", out)
    assert (code, stdout) == (2, "") and err == (
        f"tapcheck: error: {out}: is the name of the {side} file tapcheck keeps beside model "
        f"file p.pt; a model saved there would block that one's runs — name the model file "
        f"itself, e.g. --out {tmp_path / 'p.pt'}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_model_file_that_may_not_be_read_is_not_called_foreign(tiny_model, tmp_path):
    """`train --out` onto a model file of mode 000 said "exists and is not a tapcheck model
    file" (review); as a subprocess in which the kernel enforces the mode, also for root."""
    from .conftest import error_under_file_modes

    target = Path(shutil.copyfile(tiny_model, tmp_path / "m.pt"))
    target.chmod(0)
    said = error_under_file_modes(f"""
from tapcheck.model_target import check_model_target
check_model_target({str(target)!r})""", error="ModelFileError")
    assert said == (f"{target}: may not be read (permission denied), so what it holds is not "
                    "known — check its permissions (ls -l), or choose another --out, e.g. "
                    "models/<name>.pt")


def test_the_replaced_models_training_time_is_local():
    """As the inspection log's times: UTC unlabelled read an hour off in Berlin (review); a
    hand-edited time out of range is left out, not a traceback."""
    code = ("from tapcheck.model_target import _held\n"
            "print(_held({'name': 'ae', 'created_at': '2026-12-06T05:05:56+00:00'}))\n"
            "print(_held({'name': 'ae', 'created_at': '0001-01-01T00:00:00+00:00'}))\n")
    for zone in ("Asia/Kolkata", "America/New_York"):  # +05:30; year 1 shifts out of range
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, "TZ": zone})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == ("ae, trained 2026-12-06 10:35 IST" if zone == "Asia/Kolkata" else
                            "ae, trained 2026-12-06 00:05 EST") and lines[1].startswith("ae")


def test_train_does_not_replace_another_datasets_model(tiny_model, tiny_dataset, run_cli,
                                                       tmp_path, one_thread, monkeypatch):
    """The README's `train --dataset bench` wrote over the model of another dataset at the
    default --out without a word. It is refused, the file unchanged; a model `demo` made is
    replaced, and said. A dataset is told by its recordings, not by its name or folder."""
    def other_recordings(folder: Path, last: int) -> Path:  # the same layout, other bytes
        shutil.copytree(tiny_dataset.root, folder)
        for wav in sorted(folder.rglob("*.wav")):
            wav.write_bytes(wav.read_bytes()[:-2] + bytes([last, 0]))
        return folder

    other = other_recordings(tmp_path / "bench", 1)
    target = Path(shutil.copyfile(tiny_model, tmp_path / "m.pt"))
    digest = hashlib.md5(target.read_bytes()).hexdigest()
    code, out, err = run_cli("train", "--dataset", other, "--model", "ae", "--epochs", "1",
                             "--out", target)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert (f"{target}: holds a model trained on another dataset ({tiny_dataset.root}), which "
            f"training on {other} would replace — choose another --out, e.g. --out "
            f"{tmp_path / 'bench.pt'}, or delete {target} first") in err
    assert hashlib.md5(target.read_bytes()).hexdigest() == digest
    checkpoint = torch.load(target, weights_only=True)
    torch.save({**checkpoint, "made_by": "tapcheck demo"}, target)
    code, out, err = run_cli("train", "--dataset", other, "--model", "ae", "--epochs", "1",
                             "--out", target)
    assert code == 0, err
    assert f"replacing {target}, a model `tapcheck demo` made (trained on " \
           f"{tiny_dataset.root})" in out
    assert torch.load(target, weights_only=True)["dataset"]["path"] == str(other)
    # the same dataset by its bytes, however named: `.` from inside, or moved; retrained
    moved = other.rename(tmp_path / "bench-moved")
    monkeypatch.chdir(moved)
    code, out, err = run_cli("train", "--dataset", ".", "--model", "ae", "--epochs", "1",
                             "--out", target)
    assert code == 0, err
    # said, with what it held: a wrong --config replaced a tuned model without a word (QA)
    first = out.splitlines()[0]
    assert first.startswith(f"replacing {target} (ae, ") and " threshold " in first, out
    assert first.endswith(" when this run ends; stopped before, the run leaves it as it is")
    # another site's dataset of the same name is another dataset; the --out offered is free
    site = other_recordings(tmp_path / "site-b" / "bench-moved", 2)
    code, out, err = run_cli("train", "--dataset", site, "--model", "ae", "--epochs", "1",
                             "--out", tmp_path / "bench-moved.pt")
    assert code == 0, err
    code, out, err = run_cli("train", "--dataset", moved, "--model", "ae", "--epochs", "1",
                             "--out", tmp_path / "bench-moved.pt")
    assert code == 2 and f"--out {tmp_path / 'bench-moved-2.pt'}," in err, err
    # takes moved into a subfolder, none at a path the model knows: the same dataset by their
    # bytes (it read as another one); another site's, moved alike, stays another dataset
    def moved_in(folder: Path) -> Path:
        (folder / "old").mkdir()
        text = (folder / "manifest.csv").read_text().splitlines()
        for board in sorted(folder.glob("board*")):
            board.rename(folder / "old" / board.name)
        (folder / "manifest.csv").write_text(
            "\n".join(text[:1] + ["old/" + row for row in text[1:]]) + "\n")
        return folder

    code, out, err = run_cli("train", "--dataset", moved_in(site), "--model", "ae", "--epochs",
                             "1", "--out", tmp_path / "bench-moved.pt")
    assert code == 0 and out.startswith(f"replacing {tmp_path / 'bench-moved.pt'} (ae, "), err
    elsewhere = moved_in(other_recordings(tmp_path / "site-c" / "bench-moved", 3))
    code, out, err = run_cli("train", "--dataset", elsewhere, "--model", "ae", "--epochs", "1",
                             "--out", tmp_path / "bench-moved.pt")
    assert code == 2 and "holds a model trained on another dataset" in err, err


def test_a_dataset_is_told_by_its_folder_and_its_recordings(tiny_model, tiny_dataset, run_cli,
                                                             tmp_path, one_thread, monkeypatch):
    """Another folder sharing the model's recordings while the model's own dataset is still
    in the recordings folder (a copy, a dataset synthesised with the same seed): another
    dataset, refused — it replaced the model without a word. Found there by its name, however
    its folder was typed when it trained (`.`). The model's trained takes taken out of its own
    folder's manifest and a new lot listed instead: the same dataset, replaced — it was
    refused. The model file's paths are read only inside the dataset: paths out of it (``../``)
    tell nothing."""
    from .conftest import copy_with_manifest

    def new_lot(rows):  # the trained takes out, the test takes the new training lot
        return [{**r, "split": "train"} for r in rows if r["split"] == "test"]

    def train(dataset, out):
        return run_cli("train", "--dataset", dataset, "--model", "ae", "--epochs", "1",
                       "--out", out)

    def trained_in(folder, **paths):  # the tiny model as if trained on ``folder``
        checkpoint = torch.load(tiny_model, weights_only=True)
        source = {**checkpoint["dataset"], "path": str(folder), **paths}
        torch.save({**checkpoint, "dataset": source}, target)
        return hashlib.md5(target.read_bytes()).hexdigest()

    target = Path(shutil.copyfile(tiny_model, tmp_path / "m.pt"))
    copy = Path(shutil.copytree(tiny_dataset.root, tmp_path / "copy"))
    home = os.environ["TAPCHECK_RECORDINGS"]  # each test's own (conftest)
    # its folder typed in full names it anywhere; typed `.` (from inside it), the recordings
    # folder holds it by its name
    for typed, recordings in ((str(tiny_dataset.root), home),
                              (".", str(tiny_dataset.root.parent))):
        monkeypatch.setenv("TAPCHECK_RECORDINGS", recordings)
        digest = trained_in(typed)
        code, out, err = train(copy, target)
        shown = "tiny" if typed == "." else typed  # "(.)" named nothing from here
        assert code == 2 and not out and (f"holds a model trained on another dataset "
                                          f"({shown})") in err, err
        assert hashlib.md5(target.read_bytes()).hexdigest() == digest
    # its own folder, named as it was, beside a dataset of its name in the recordings folder:
    # retrained (it was refused as "another dataset (X), which training on X would replace")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path / "recordings"))
    shutil.copytree(tiny_dataset.root, tmp_path / "recordings" / tiny_dataset.root.name)
    trained_in(str(tiny_dataset.root))
    code, out, err = train(tiny_dataset.root, target)
    assert code == 0 and out.startswith(f"replacing {target} (arcface-resnet18, "), err
    monkeypatch.setenv("TAPCHECK_RECORDINGS", home)
    lot = copy_with_manifest(tiny_dataset.root, tmp_path / "lot", new_lot)
    trained_in(lot)
    code, out, err = train(lot, target)
    assert code == 0 and out.startswith(f"replacing {target} (arcface-resnet18, "), err
    assert torch.load(target, weights_only=True)["dataset"]["path"] == str(lot)
    # a model naming its takes outside its dataset, where copies of them lie: not read
    shutil.copytree(tiny_dataset.root, tmp_path / "orig")
    lot2 = copy_with_manifest(tiny_dataset.root, tmp_path / "lot2", new_lot)
    source = torch.load(tiny_model, weights_only=True)["dataset"]
    digest = trained_in(tmp_path / "gone", **{k: ["../orig/" + p for p in source[k]]
                                              for k in ("takes", "calibration_takes")})
    code, out, err = train(lot2, target)
    assert code == 2 and "holds a model trained on another dataset" in err, err
    assert hashlib.md5(target.read_bytes()).hexdigest() == digest
