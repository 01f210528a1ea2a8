"""Cross-fitted calibration: each normal board scored by a network trained without it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tapcheck.calibration import robust_threshold
from tapcheck.configfile import load_config
from tapcheck.crossfit import AUTO_MIN_BOARDS, _without, crossfit_folds, resolve_calibration
from tapcheck.datasets import Dataset
from tapcheck.enroll import enroll
from tapcheck.errors import ParameterError
from tapcheck.modelfile import load_model, save_checkpoint
from tapcheck.training import train_model
from tapcheck.training_data import prepare_data

from .conftest import FAST_CONFIG


@pytest.fixture
def fast(tmp_path, one_thread):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_CONFIG + 'calibration = "cross-fit"\nepochs = 1\n')
    return path


def test_folds_deal_every_board_once_and_follow_the_seed():
    boards = np.repeat([3, 1, 4, 2, 5], 7)
    folds = crossfit_folds(boards, 3, seed=0)
    assert len(folds) == 3
    assert sorted(np.concatenate(folds).tolist()) == [1, 2, 3, 4, 5]
    assert [f.tolist() for f in crossfit_folds(boards, 3, seed=0)] == [f.tolist() for f in folds]
    assert len(crossfit_folds(boards, 9, seed=0)) == 5  # never an empty fold
    with pytest.raises(ParameterError, match="at least 2 normal training takes"):
        crossfit_folds(np.array([1, 1, 1]), 4, seed=0)


def test_a_fold_loses_only_the_normal_takes_of_its_boards(tiny_dataset, fast):
    data = prepare_data(tiny_dataset, config=load_config(fast))
    fit_out = np.array([t.board == 2 for t in data.fit_takes]) & data.fit_normal
    fold = _without(data, fit_out, np.array([t.board == 2 for t in data.calib_takes]))
    assert {t.board for t in fold.fit_takes + fold.calib_takes} == (
        {t.board for t in data.fit_takes} - {2})
    assert "board02/left" not in fold.classes and "board05/left" in fold.classes  # defect stays
    # labels index the fold's own classes, and still name each take's class
    assert [fold.classes[i] for i in fold.fit_labels] == [t.class_name for t in fold.fit_takes]
    assert len(fold.fit_clips) == len(fold.fit_takes) == len(fold.fit_normal)
    X_val, y_val = fold.validation_samples()  # every held-out take's class is in the fold
    assert len(X_val) == 2 * len(fold.calib_takes) and int(y_val.max()) < len(fold.classes)


def test_the_threshold_comes_from_every_normal_take_of_every_board(small_train_set, fast,
                                                                  tmp_path, tiny_dataset):
    ds = Dataset.open(small_train_set)
    checkpoint = train_model(ds, config=load_config(fast), progress=False)
    det = checkpoint["detector"]
    info = det["calibration"]
    assert info["method"] == "cross-fit"
    assert "unseen boards" in info["holds_for"] and info["boards"] == 2
    # every normal training take (fit and held out) has one out-of-fold score
    assert info["clips"] == len(ds.select(split="train")) == len(det["calibration_scores"])
    assert sorted(set(det["calibration_groups"].tolist())) == [1, 2]
    scores = det["calibration_scores"].numpy()
    assert info["threshold"] == pytest.approx(robust_threshold(scores, far=0.05))
    assert -det["offset"] == info["threshold"]
    # the same settings and seed give the same threshold
    again = train_model(ds, config=load_config(fast), progress=False)
    assert again["detector"]["offset"] == det["offset"]

    # enrolling a board keeps the cross-fit threshold (its scores are of boards no network heard)
    path = save_checkpoint(tmp_path / "m.pt", checkpoint)
    board13 = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[13])[:3]]
    result = enroll(path, board13, board=21, force=True, config=load_config(fast))
    after = load_model(path).detector
    assert after.threshold_ == pytest.approx(info["threshold"])
    assert len(after.reference_) == len(torch.as_tensor(det["reference"])) + 3
    assert result["threshold"] == pytest.approx(result["threshold_before"])


def test_one_board_is_cross_fitted_over_its_takes(small_train_set, fast, tmp_path):
    """One-class data: each take is scored by a network trained without it, so every normal
    take (not 15 %) sets the threshold and the statement is about new taps of that board."""
    one = Dataset.create(tmp_path / "one")
    src = Dataset.open(small_train_set)
    for take in src.select(board=[1]):
        (one.root / take.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src.path_of(take), one.root / take.path)
        one.takes.append(take)
    one.write_manifest()
    lines = []
    checkpoint = train_model(Dataset.open(one.root), config=load_config(fast), progress=False,
                             log=lines.append)
    info = checkpoint["detector"]["calibration"]
    assert info["method"] == "cross-fit" and info["clips"] == len(one.takes)
    assert info["holds_for"].startswith("new taps of the training board")
    assert sum(line.startswith("cross-fit ") for line in lines) == 4
    assert "a network without 2 of its takes" in lines[[i for i, line in enumerate(lines)
                                                        if line.startswith("cross-fit")][0]]


def test_auto_cross_fits_from_enough_boards_and_the_model_file_says_what_was_done(
        small_train_set, fast):
    assert resolve_calibration("auto", AUTO_MIN_BOARDS) == "cross-fit"
    assert resolve_calibration("auto", AUTO_MIN_BOARDS - 1) == "hold-out"
    assert resolve_calibration("leave-one-board-out", 100) == "leave-one-board-out"
    # with a wide frequency stretch cross-fitting flagged 35 % (plant set): auto holds out
    assert resolve_calibration("auto", AUTO_MIN_BOARDS, freq_stretch=0.2) == "hold-out"
    assert resolve_calibration("auto", AUTO_MIN_BOARDS, freq_stretch=0.06) == "cross-fit"
    lines = []
    config = load_config(fast).replace("train", calibration="auto")
    checkpoint = train_model(Dataset.open(small_train_set), config=config, progress=False,
                             log=lines.append)
    assert checkpoint["config"]["train"]["calibration"] == "hold-out"  # 2 boards
    assert checkpoint["detector"]["calibration"]["method"] == "hold-out"
    assert lines[0] == f"calibration: hold-out (2 normal training boards; auto cross-fits from " \
                       f"{AUTO_MIN_BOARDS})"


def test_more_folds_than_boards_are_said_to_be_one_per_board(tiny_dataset, fast, tmp_path):
    """``crossfit_folds`` 10 over 2 boards trains 2 folds; it showed only in "cross-fit 1/2"."""
    from tapcheck.calibration_choice import with_calibration

    config = load_config(fast).replace("train", scorer="knn")  # as train_model resolves it
    data = prepare_data(tiny_dataset, config=config)
    boards = len({t.board for t in data.fit_takes + data.calib_takes if t.label == "normal"})
    assert boards >= 2
    lines = []
    with_calibration(config.replace("train", crossfit_folds=10), data, root=tmp_path,
                      log=lines.append)
    assert lines == [f"cross-fit: {boards} folds, one per normal training board "
                     "(train.crossfit_folds is 10; a fold cannot split a board)"]
    lines.clear()
    with_calibration(config.replace("train", crossfit_folds=boards), data, root=tmp_path,
                      log=lines.append)
    assert lines == []


def test_cross_fitting_at_a_wide_stretch_is_warned_of(tiny_dataset, fast, tmp_path):
    """With ±20 % cross-fitting flagged 35 % of the plant set's unseen healthy taps; `train
    --calibration auto` over configs/new-boards.toml cross-fitted so, silently (trial 34). An
    explicit cross-fit is warned of before the trainings; auto holds out (above)."""
    import warnings

    from tapcheck.errors import TapcheckWarning
    from tapcheck.calibration_choice import with_calibration

    config = load_config(fast).replace("train", scorer="knn")  # as train_model resolves it
    data = prepare_data(tiny_dataset, config=config)
    wide = config.replace("train", freq_stretch=0.2)
    with pytest.warns(TapcheckWarning, match=r"cross-fitting with a ±20 % frequency stretch: "
                                             r"with ±20 % it set the threshold far too low"):
        assert with_calibration(wide, data, root=tmp_path, log=None).train.calibration == \
            "cross-fit"
    with warnings.catch_warnings():
        warnings.simplefilter("error", TapcheckWarning)
        with_calibration(config, data, root=tmp_path, log=None)  # ±6 %: no warning


def test_a_stop_during_cross_fitting_keeps_the_finished_folds(small_train_set, fast, tmp_path):
    """Ctrl-C after the cross-fit networks were trained threw them all away, "the finished
    epochs are saved" notwithstanding, and --resume trained each again (QA). Each fold is saved
    with the run's progress; the resumed run trains only those left, to the same threshold."""
    ds = Dataset.open(small_train_set)
    config = load_config(fast)
    whole = train_model(ds, config=config, progress=False)
    partial = tmp_path / "m.pt.partial"

    def stop_at_the_second_fold(line: str) -> None:
        if line.startswith("cross-fit 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(ds, config=config, progress=False, partial=partial,
                    log=stop_at_the_second_fold)
    lines = []
    resumed = train_model(ds, config=config, progress=False, partial=partial, resume=True,
                          log=lines.append)
    folds = [line for line in lines if line.startswith("cross-fit ")]
    assert folds[0].endswith(", kept from the interrupted run") and len(folds) == 2, lines
    assert not folds[1].endswith("kept from the interrupted run")
    assert not any(line.startswith("epoch ") for line in lines[:lines.index(folds[0])])
    assert resumed["detector"]["offset"] == whole["detector"]["offset"]
    assert torch.equal(resumed["detector"]["calibration_scores"],
                       whole["detector"]["calibration_scores"])
