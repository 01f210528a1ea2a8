"""Training data: calibration takes held out per normal class, pseudo-anomaly classes."""

from __future__ import annotations

import numpy as np

from tapcheck.augment import PSEUDO_ANOMALIES
from tapcheck.training_data import TrainingData, add_pseudo_anomalies, split_calibration

from .test_evaluation import take


def test_calibration_takes_are_held_out_per_normal_class_and_never_of_defects():
    takes = ([take(1, k) for k in range(20)] + [take(2, k) for k in range(3)]
             + [take(5, k, "defect") for k in range(20)])
    fit, calib = split_calibration(takes, fraction=0.15, seed=0)
    held = [t.board for t in calib]
    assert held.count(1) == 3  # 15 % of 20
    assert 2 not in held  # fewer than 4 takes: all of them train, none calibrate
    assert 5 not in held  # defect labels never reach the threshold
    assert sorted(map(id, fit + calib)) == sorted(map(id, takes))
    assert split_calibration(takes, fraction=0.15, seed=0)[1] == calib  # a seed is a split
    assert split_calibration(takes, fraction=0.15, seed=1)[1] != calib
    # even 0.99 leaves each class a reference take
    fit, _ = split_calibration(takes, fraction=0.99, seed=0)
    assert {t.board for t in fit} == {1, 2, 5}


def test_one_normal_class_gets_pseudo_defect_classes_that_never_count_as_normal():
    clips = np.random.default_rng(0).normal(size=(6, 2, 100, 120)).astype(np.float32)
    data = TrainingData(fit_clips=clips, fit_labels=np.zeros(6, int),
                        fit_normal=np.ones(6, bool), calib_clips=clips[:1],
                        classes=["board01/left"], class_labels=["normal"],
                        fit_takes=[take(1, k) for k in range(6)], calib_takes=[take(1, 6)])
    full, hook = add_pseudo_anomalies(data)
    k = len(PSEUDO_ANOMALIES)
    assert hook is None and full.classes[1:] == list(PSEUDO_ANOMALIES)
    assert full.class_labels == ["normal"] + ["pseudo"] * k
    assert len(full.fit_clips) == 6 * (k + 1) and full.fit_normal.sum() == 6
    assert sorted(set(full.fit_labels[6:])) == list(range(1, k + 1))
    assert not np.allclose(full.fit_clips[6:12], clips)  # transformed, not copied
    lazy, hook = add_pseudo_anomalies(data, per_batch=True)
    assert hook is not None and len(lazy.fit_clips) == 6  # drawn per batch instead


def test_a_training_side_with_both_labels_is_refused_before_any_crop(tiny_dataset, tmp_path,
                                                                   run_cli):
    """Its first take decided whether the side was held out for calibration (a cracked take
    could set the threshold), its last take the class's label in the model file (trial 33)."""
    from .conftest import copy_with_manifest

    def one_defect_take(rows):
        next(r for r in rows if (r["board"], r["side"], r["split"]) == ("1", "left", "train")
             )["label"] = "defect"

    root = copy_with_manifest(tiny_dataset.root, tmp_path / "mixed", one_defect_take)
    code, out, err = run_cli("train", "--dataset", root, "--model", "arcface-lite", "--epochs",
                             "1", "--out", tmp_path / "m.pt")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / 'manifest.csv'}: training side board01/left holds "
                   "both normal and defect takes; a board side is one class, healthy or cracked "
                   "— give each training board side one label (a cracked end its own side name, "
                   "e.g. right-crack), or mark the odd takes split=test\n")
    assert not (tmp_path / "m.pt").exists()


def test_a_recording_listed_twice_is_refused_by_train_and_evaluate_and_named_by_doctor(
        tiny_dataset, tiny_model, tmp_path, run_cli):
    """Trial 34: a take copied under a second row counted twice in evaluate's rates (18 clips
    of a board of 12) and could sit in the reference while its twin calibrated, while judge,
    import and enroll refuse a clip given twice; doctor said every take was fine."""
    import shutil

    from .conftest import copy_with_manifest

    def copies(split):
        def edit(rows):
            first = next(r for r in rows if (r["board"], r["split"]) == (
                "1" if split == "train" else "12", split))
            twin = dict(first, path=first["path"].replace("take", "copy"), take="99")
            shutil.copyfile(root_of[split] / first["path"], root_of[split] / twin["path"])
            rows.append(twin)
        return edit

    root_of = {split: tmp_path / split for split in ("train", "test")}
    for split, command in (("train", ["train", "--model", "arcface-lite", "--epochs", "1",
                                      "--out", tmp_path / "m.pt"]),
                           ("test", ["evaluate", "--model", tiny_model])):
        root = copy_with_manifest(tiny_dataset.root, root_of[split], copies(split))
        twin = next(p for p in root.rglob("copy*.wav")).relative_to(root).as_posix()
        first = twin.replace("copy", "take")
        code, out, err = run_cli(*command, "--dataset", root)
        assert (code, out) == (2, ""), err
        assert err == (
            f"tapcheck: error: {root / 'manifest.csv'}: lists one recording twice among the "
            f"{'training' if split == 'train' else 'test'} takes: {twin} holds the same bytes "
            f"as {first}; it would count twice — delete the copy's row (tapcheck doctor lists "
            "every copy)\n")
        code, out, _ = run_cli("doctor", "--dataset", root)
        assert code == 1 and (f"PROBLEM  {root / 'manifest.csv'}: 1 take(s) hold the same bytes "
                              f"as an earlier take, e.g. {twin} (a copy of {first}) — delete "
                              f"the copies' rows: {twin}") in out
    assert not (tmp_path / "m.pt").exists()


def test_a_row_its_folder_contradicts_is_refused_by_train_compare_and_evaluate(
        tiny_dataset, tiny_model, tmp_path, run_cli):
    """A row edited to side ``Left`` (its folder ``left``) trained a class of its own and
    calibrated on it, a row of board 2 in board01/ counted in board 2's rates: train, info and
    evaluate said nothing, only doctor called it a problem (QA)."""
    from .conftest import copy_with_manifest

    def misfile(split, column, value, board):
        def edit(rows):
            next(r for r in rows if (r["board"], r["side"], r["split"]) == (
                board, "left", split))[column] = value
        return edit

    cases = [("train", "side", "Left", "1", ["train", "--model", "arcface-lite", "--epochs",
                                             "1", "--out", tmp_path / "m.pt"]),
             ("train", "board", "2", "1", ["compare", "--models", "arcface-lite", "--epochs",
                                           "1", "--out", tmp_path / "report"]),
             ("test", "side", "right", "12", ["evaluate", "--model", tiny_model]),
             # a known board's one test take per side: its other sides are the training
             # split's (the test split alone knew none, and evaluate took it; review)
             ("test", "side", "Left", "1", ["evaluate", "--model", tiny_model])]
    for i, (split, column, value, board, command) in enumerate(cases):
        root = copy_with_manifest(tiny_dataset.root, tmp_path / f"d{i}",
                                  misfile(split, column, value, board))
        code, out, err = run_cli(*command, "--dataset", root)
        what = {"side": "side", "board": "board"}[column]
        assert (code, out) == (2, ""), err
        assert err.startswith(
            f"tapcheck: error: {root / 'manifest.csv'}: among the "
            f"{'training' if split == 'train' else 'test'} takes, 1 take(s) lie in another "
            f"{what}'s folder than their row says, e.g. board"), err
        assert f"correct the {what} in those rows" in err and err.count("\n") == 1, err
        code, out, err = run_cli("info", str(root))
        assert code == 0 and f"1 take(s) lie in another {what}'s folder" in err, err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "report").exists()


def test_a_row_naming_a_folder_is_told_to_fix_the_row(tiny_dataset, tmp_path, run_cli):
    """A row whose path names a folder (board02/left) was told "pass the audio files inside
    it, e.g. …/*.wav", the advice for a folder given on judge's command line; a row naming the
    dataset's own folder ('.') read as a take with no file."""
    from tapcheck.datasets import Dataset
    from tapcheck.errors import DatasetError

    from .conftest import copy_with_manifest

    def row_path(path):
        def edit(rows):
            next(r for r in rows if r["split"] == "train" and r["board"] == "1")["path"] = path
        return edit

    # its own board's folder (another board's is refused first, as a take misfiled there)
    root = copy_with_manifest(tiny_dataset.root, tmp_path / "folder", row_path("board01/left"))
    code, out, err = run_cli("train", "--dataset", root, "--model", "arcface-lite", "--epochs",
                             "1", "--out", tmp_path / "m.pt")
    assert (code, out) == (2, "") and not (tmp_path / "m.pt").exists()
    assert err.splitlines()[0] == (f"tapcheck: error: {root / 'board01/left'}: is a folder, "
                                   "not a take's audio "
                                   "file — fix its row's path or delete the row")
    assert "pass the audio files" not in err
    dot = copy_with_manifest(tiny_dataset.root, tmp_path / "dot", row_path("."))
    try:
        Dataset.open(dot)
    except DatasetError as e:
        assert e.problem == "has a path '.' that names the dataset's folder, not a take's file"
    else:
        raise AssertionError("a row naming the dataset's folder was read")



def test_a_dataset_another_process_is_writing_is_said_so(tmp_path):
    """`demo` on a dataset synth was still writing said "has no takes in the training split —
    mark some takes split=train" (QA): its writer is named, and training on the takes saved so
    far is said to be that."""
    import subprocess
    import sys
    import warnings

    import pytest

    from tapcheck.config import Config
    from tapcheck.datasets import Dataset
    from tapcheck.errors import DatasetError, TapcheckWarning
    from tapcheck.synth_dataset import make_study_dataset
    from tapcheck.training_data import prepare_data

    empty = Dataset.create(tmp_path / "being-written")
    empty.write_manifest()
    full = make_study_dataset(tmp_path / "growing", takes=1)
    hold = ("import fcntl, sys, time\n"
            "files = [open(p, 'a') for p in sys.argv[1:]]\n"
            "[fcntl.flock(f, fcntl.LOCK_EX) for f in files]\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", hold, empty.root / ".lock",
                               full.root / ".lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "held\n"
        with pytest.raises(DatasetError, match=f"has no takes in the training split yet: PID "
                                               f"{writer.pid} is writing it"):
            prepare_data(Dataset.open(empty.root), config=Config())
        with pytest.raises(TapcheckWarning, match=f"PID {writer.pid} is writing it .* the 10 "
                                                  "training takes saved so far"):
            with warnings.catch_warnings():
                warnings.simplefilter("error", TapcheckWarning)
                prepare_data(Dataset.open(full.root), config=Config())
    finally:
        writer.kill()
        writer.wait()
