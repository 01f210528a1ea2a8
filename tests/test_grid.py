"""compare over seeds and folds: folds by board, statistics, reports, resuming a killed grid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tapcheck.errors import ParameterError, TapcheckWarning
from tapcheck.grid import (CELL_FOLDER_PREFIX, fold_boards, parse_seeds,
                           sweep_dead_cell_folders, takes_for_fold)
from tapcheck.gridreport import paired_tests, summarize
from tapcheck.metrics import auc

from .conftest import ROOT

# 2 models x 2 seeds x 2 folds = 8 cells of one-epoch shallow models
GRID = ["--models", "ae,arcface-shallow", "--seeds", "0-1", "--folds", "2", "--epochs", "1"]
SAME = ("auc", "pauc", "f1", "false_alarms", "threshold", "tpr_at_5fpr", "board_means")


def single_thread_env() -> dict:
    # a cell on one torch thread, as a Ray task runs it: the serial and Ray runs compare equal
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run_grid_cli(dataset, out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                           str(dataset.root), *GRID, "--out", str(out), *extra],
                          env=single_thread_env(), capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="session")
def serial_grid(tiny_dataset, tmp_path_factory):
    """The grid run serially, uninterrupted: the reference the other runs must match."""
    out = tmp_path_factory.mktemp("grid-serial")
    result = run_grid_cli(tiny_dataset, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def cell_metrics(out) -> dict:
    cells = json.loads((out / "metrics.json").read_text())["cells"]
    return {(c["model"], c["seed"], c["fold"]): {k: c[k] for k in SAME} for c in cells}


def test_grid_report(serial_grid):
    out, result = serial_grid
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["meta"]["folds"] == 2 and doc["meta"]["cells"] == 8
    assert "Wilcoxon signed-rank" in doc["meta"]["test"] and "t-interval" in doc["meta"]["interval"]
    assert sorted((c["model"], c["seed"], c["fold"]) for c in doc["cells"]) == sorted(
        (m, s, f) for m in ("ae", "arcface-shallow") for s in (0, 1) for f in (0, 1))
    for row in doc["models"]:
        aucs = [c["auc"] for c in doc["cells"] if c["model"] == row["model"]]
        s = row["auc"]
        assert row["cells"] == 4 and s["n"] == 4
        assert s["mean"] == pytest.approx(np.mean(aucs)) and s["sd"] == pytest.approx(
            np.std(aucs, ddof=1))
        assert s["ci_low"] <= s["mean"] <= s["ci_high"]
        for key in ("pauc", "false_alarms"):
            assert row[key]["n"] == 4 and row[key]["mean"] is not None
        unseen = [c["false_alarms_unseen"] for c in doc["cells"]
                  if c["model"] == row["model"] and c["false_alarms_unseen"] is not None]
        assert unseen and row["false_alarms_unseen"]["n"] == len(unseen)  # boards 11-13
        assert row["false_alarms_unseen"]["mean"] == pytest.approx(np.mean(unseen))
    means = [row["auc"]["mean"] for row in doc["models"]]
    assert means == sorted(means, reverse=True)  # best first, not --models order (QA)
    (pair,) = doc["pairs"]
    assert (pair["a"], pair["b"], pair["cells"]) == ("ae", "arcface-shallow", 4)
    assert 0 < pair["auc"]["p"] <= 1 and pair["auc"]["a_better"] + pair["auc"]["b_better"] <= 4
    # the terminal shows both tables and says what 4 cells cannot show
    assert "per model over cells" in result.stdout and "paired comparison" in result.stdout
    assert "no difference can reach Wilcoxon's p < 0.05" in result.stdout
    assert "Rankings the paired t-test supports (AUC, Holm-adjusted p < 0.05 over 1 pair): " \
        in result.stdout and "both tests' p are optimistic" in result.stdout
    page = (out / "index.html").read_text()
    assert "Rankings the paired t-test supports" in page
    assert "Wilcoxon signed-rank" in page and "Plots of one cell: seed 0, fold 0" in page
    for name in ("roc.png", "training.png", "tsne-ae.png", "scores-arcface-shallow.png"):
        assert (out / name).stat().st_size > 5000
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 8
    # the plotted cell keeps its model file; the others do not (no --keep-models)
    assert len(list((out / "cells").glob("*/*.pt"))) == 2


def test_folds_hold_their_boards_out_of_training(serial_grid, tiny_dataset):
    import torch

    out, _ = serial_grid
    doc = json.loads((out / "metrics.json").read_text())
    folds = doc["meta"]["fold boards"]
    assert sorted(b for fold in folds for b in fold) == [1, 2, 3, 4]  # the normal training boards
    for c in doc["cells"]:
        clips = {r["board"]: r["clips"] for r in c["boards"]}
        for board in (1, 2, 3, 4):
            # a held-out board is judged on all its 10 takes, the others on their 2 test takes
            assert clips[board] == (10 if board in folds[c["fold"]] else 2)
    model = next(c for c in doc["cells"] if c["fold"] == 0 and c["model"] == "arcface-shallow")
    trained_on = torch.load(out / model["model_file"], weights_only=True)["dataset"]["takes"]
    assert trained_on and not any(f"board{b:02d}/" in p for p in trained_on for b in folds[0])


def test_killed_grid_resumes_without_recomputing_its_cells(serial_grid, tiny_dataset, tmp_path):
    """Kill a serial grid once its first cell is written; the rerun reuses that cell untouched
    and ends with the numbers of an uninterrupted run."""
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), *GRID, "--out", str(out)],
                            env=single_thread_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while not list(out.glob("cells/*/*.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "no cell was written"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    # one cell as a rule; more if this process stalled while the next was computed
    written = sorted(out.glob("cells/*/*.json"))
    before = {c: (c.stat().st_mtime_ns, c.read_bytes()) for c in written}
    assert 1 <= len(written) < 8 and not (out / "metrics.json").exists()  # killed before the end

    result = run_grid_cli(tiny_dataset, out)
    assert result.returncode == 0, result.stderr[-3000:]
    for cell in written:
        assert f"reused {cell.relative_to(out)}" in result.stderr
        assert (cell.stat().st_mtime_ns, cell.read_bytes()) == before[cell]
    assert f"{len(written)} of 8 cells reused" in result.stderr
    assert len(list(out.glob("cells/*/*.json"))) == 8
    assert cell_metrics(out) == cell_metrics(serial_grid[0])
    # a folder the killed run held a cell's model file in (if it was killed in that moment) is
    # gone: the rerun's cells swept it
    assert not list(Path(tempfile.gettempdir()).glob(f"{CELL_FOLDER_PREFIX}{proc.pid}-*"))


def test_a_rerun_reuses_every_cell_and_an_extended_grid_only_adds(serial_grid, tiny_dataset,
                                                                   tmp_path):
    out = tmp_path / "report"
    shutil.copytree(serial_grid[0], out)
    result = run_grid_cli(tiny_dataset, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "8 of 8 cells reused" in result.stderr and "training ..." not in result.stderr
    assert cell_metrics(out) == cell_metrics(serial_grid[0])
    before = json.loads((serial_grid[0] / "metrics.json").read_text())
    after = json.loads((out / "metrics.json").read_text())
    assert after["models"] == before["models"] and after["pairs"] == before["pairs"]
    # the wall time is the rerun's own few seconds: the report says whose training it shows (QA)
    assert "cells reused" not in before["meta"]
    assert after["meta"]["cells reused"].startswith("8 of 8, trained by an earlier run")
    assert after["meta"]["training, all cells (s)"] == pytest.approx(
        sum(c["train_seconds"] for c in before["cells"]), abs=0.2)


def test_a_damaged_cell_or_one_of_other_threads_is_run_again(serial_grid, tiny_dataset,
                                                             tmp_path):
    """A cell file that is JSON but no cell's record ("[]", a row without its fields) gave a
    traceback or was averaged (an AUC of NaN, a pAUC of 5.0), and a cell trained on other torch
    threads (a Ray worker's) was reused as this run's, though its numbers differ (QA). Such
    cells are run again, and the report is the uninterrupted one."""
    out = tmp_path / "report"
    shutil.copytree(serial_grid[0], out)
    cells = sorted((out / "cells").rglob("*.json"))
    cells[0].write_text("[]")
    second = json.loads(cells[1].read_text())
    second["row"]["pauc"] = 5.0
    cells[1].write_text(json.dumps(second))
    third = json.loads(cells[2].read_text())
    assert third["threads"] == 1  # run_grid_cli's one thread
    third["threads"] = 99
    cells[2].write_text(json.dumps(third))
    # a cell stored under another key (another tapcheck's, or other options'): trained again
    # with no word of the record it left unused (upgrade QA)
    stem, _, _ = cells[3].stem.rpartition("-")
    cells[3].rename(cells[3].with_name(f"{stem}-0123456789ab.json"))
    result = run_grid_cli(tiny_dataset, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 of 8 cells reused" in result.stderr, result.stderr[-3000:]
    assert (f"tapcheck: warning: 1 cell(s) to run have records in {out / 'cells'} made with "
            "other settings (options changed since, or another tapcheck version): those are "
            "not reused") in result.stderr
    # and the one of other threads is said: switching --ray on or off retrained every cell of
    # a grid without a word (QA); the damaged ones are no cells, and not counted
    assert (f"tapcheck: warning: 1 cell(s) stored in {out / 'cells'} were trained on 99 torch "
            "thread(s) and this run trains on 1, which moves their numbers in the last bits: "
            "they are trained again and replaced — to reuse them, run as they ran") \
        in result.stderr
    assert cell_metrics(out) == cell_metrics(serial_grid[0])


def test_one_seed_without_folds_writes_no_grid_report(run_cli, small_compare_set, tmp_path):
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", tmp_path)
    assert code == 0, err
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert set(doc) == {"meta", "models"} and doc["models"][0]["model_file"] == "models/ae.pt"
    assert "AUC 95% CI" in out and "paired" not in out
    # its one cell is kept too: the same command again trains nothing
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--out", tmp_path)
    assert code == 0 and "1 of 1 cells reused" in err and "training ..." not in err
    assert doc["meta"]["seed"] == 0
    # one seed given by --seeds is the seed reported: `--seeds 7` trained 7 and said 0 (QA)
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--seeds", "7", "--out", tmp_path / "s7")
    assert code == 0, err
    assert json.loads((tmp_path / "s7" / "metrics.json").read_text())["meta"]["seed"] == 7
    # a model dropped from --models leaves no figures that read as the new report's (QA); its
    # model file stays for a later comparison
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models",
                           "ae,arcface-shallow", "--epochs", "1", "--out", tmp_path / "two")
    assert code == 0 and (tmp_path / "two" / "tsne-arcface-shallow.png").is_file(), err
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--out", tmp_path / "two")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "two").glob("*.png")) == [
        "roc.png", "scores-ae.png", "training.png", "tsne-ae.png"]
    assert (tmp_path / "two" / "models" / "arcface-shallow.pt").is_file()


def test_a_grid_after_a_plain_comparison_takes_over_its_model_and_back(run_cli,
                                                                        small_compare_set,
                                                                        tmp_path):
    """A grid into a plain comparison's folder trained its first cell again and left
    models/<name>.pt unrecorded; every later run there was refused as over a model `train`
    wrote (QA). The cell's model file now moves to where the run of each kind keeps it."""
    args = ("compare", "--dataset", small_compare_set, "--models", "ae", "--epochs", "1",
            "--out", tmp_path)
    assert run_cli(*args)[0] == 0
    plain = (tmp_path / "models" / "ae.pt").read_bytes()
    for more, reused, where in ((("--seeds", "0-1"), "1 of 2", "cells"),
                                (("--seeds", "0-1"), "2 of 2", "cells"),
                                ((), "1 of 1", "models"), ((), "1 of 1", "models"),
                                (("--seeds", "0-1"), "2 of 2", "cells")):
        code, _, err = run_cli(*args, *more)
        assert code == 0 and f"{reused} cells reused" in err, (more, err)
        [model] = [p for p in tmp_path.rglob("*.pt")]
        assert model.read_bytes() == plain and model.relative_to(tmp_path).parts[0] == where
        assert (tmp_path / "models").is_dir() == (where == "models")
        doc = json.loads((tmp_path / "metrics.json").read_text())
        rows = doc["models"] if where == "models" else [c for c in doc["cells"]
                                                        if c.get("model_file")]
        assert [r["model_file"] for r in rows] == [model.relative_to(tmp_path).as_posix()]


def test_a_plain_comparison_training_a_grids_cell_again_leaves_no_stale_model_beside_it(
        run_cli, small_compare_set, tmp_path):
    """A cell of a grid trained on other threads is trained again by a plain comparison into
    its folder, which keeps its model at models/<name>.pt: the grid's model file stayed beside
    the cell's record, named after the cell and disagreeing with it (QA)."""
    args = ("compare", "--dataset", small_compare_set, "--models", "ae", "--epochs", "1",
            "--out", tmp_path)
    assert run_cli(*args, "--seeds", "0-1")[0] == 0
    [record] = [p for p in (tmp_path / "cells" / "ae").glob("s0-*.json")]
    stored = json.loads(record.read_text())
    stored["threads"] = stored.get("threads", 1) + 7  # as if trained on other threads
    record.write_text(json.dumps(stored))
    code, _, err = run_cli(*args)
    assert code == 0 and "[1/1] ae seed 0: training" in err, err
    assert not record.with_suffix(".pt").exists()
    stored = json.loads(record.read_text())
    assert stored["row"]["model_file"] == "models/ae.pt"
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.pt")] == [
        "models/ae.pt"]


def test_a_grid_into_another_datasets_report_is_refused(run_cli, small_compare_set, tmp_path):
    """A comparison over seeds keeps no model file to refuse it by: `compare --seeds` of a
    second dataset replaced the first one's report without a word, where a plain comparison
    is refused (QA). The same dataset named another way is the same report's."""
    out = tmp_path / "report"
    args = ("--models", "ae", "--epochs", "1", "--seeds", "0-1", "--out", out)
    code, _, err = run_cli("compare", "--dataset", small_compare_set, *args)
    assert code == 0, err
    before = (out / "metrics.json").read_bytes()
    assert json.loads(before)["meta"]["dataset folder"] == os.path.abspath(small_compare_set)
    other = shutil.copytree(small_compare_set, tmp_path / "other")
    code, stdout, err = run_cli("compare", "--dataset", other, *args)
    assert (code, stdout) == (2, ""), err
    assert err == (f"tapcheck: error: {out}: holds the report of comparing another dataset "
                   f"({os.path.abspath(small_compare_set)}), which this comparison would "
                   "replace — choose another --out, e.g. reports/<dataset> (a dataset moved "
                   f"since: delete {out / 'metrics.json'} to compare it here again)\n")
    assert (out / "metrics.json").read_bytes() == before
    # a folder no dataset can have, edited in by hand: refused in one line (a traceback)
    doc = json.loads(before)
    doc["meta"]["dataset folder"] = "x\u0000\ny"
    (out / "metrics.json").write_text(json.dumps(doc))
    code, _, err = run_cli("compare", "--dataset", small_compare_set, *args)
    assert code == 2 and len(err.splitlines()) == 1 and "another dataset (x\\x00\\ny)" in err, err
    (out / "metrics.json").write_bytes(before)
    # the same dataset through a link to it: the same report, its cells reused
    (tmp_path / "link").symlink_to(Path(small_compare_set).resolve(), target_is_directory=True)
    code, _, err = run_cli("compare", "--dataset", tmp_path / "link", *args)
    assert code == 0 and "2 of 2 cells reused" in err, err


def test_bad_grid_options_are_one_line_errors(run_cli, small_compare_set, tmp_path):
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--seeds", "4-1", "--out", tmp_path)
    assert code == 2 and err.strip() == (  # said only "is not a list of seeds" (QA)
        "tapcheck: error: --seeds '4-1': the range 4-1 runs backwards — write it low to high, "
        "e.g. --seeds 1-4")
    # an empty list (a script's unset variable) was taken as the config's seed, 0
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--seeds", "", "--out", tmp_path)
    assert code == 2 and err.strip().startswith("tapcheck: error: --seeds '' is not a list")
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--folds", "3", "--out", tmp_path)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "tapcheck: error: --folds 3 cannot split the 2 normal training boards — use --folds "
        "between 2 and 2, or leave it out")
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--seed", "1",
                           "--seeds", "0-2")
    assert code == 2 and "--seed and --seeds together" in err
    # it was ignored without a word (QA)
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--cpus-per-cell", "2", "--out", tmp_path)
    assert code == 2 and "--cpus-per-cell applies to --ray cells" in err, err


def test_a_fold_too_thin_to_train_is_refused_before_any_cell_trains(tmp_path):
    """With one training take per board side and two folds, arcface's kNN threshold has too
    few takes to score against; the refusal came after the ae cells before it had trained (QA)."""
    from tapcheck.synth_dataset import make_study_dataset

    thin = make_study_dataset(tmp_path / "thin", takes=2, test_takes=1, seed=3)
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(thin.root), "--models", "ae,arcface-shallow", "--folds", "2",
                             "--epochs", "1", "--out", str(out)],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "training ..." not in result.stderr and not out.exists()
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"tapcheck: error: {thin.root / 'manifest.csv'}: has ")
    assert "(train.knn_k)" in result.stderr


def test_a_fold_count_cut_to_the_boards_is_said_once(tiny_dataset, tmp_path):
    """``train`` says that ``crossfit_folds = 1000`` over 4 boards cross-fits 4 folds; compare's
    cells train without a log, so it ran 4 folds without a word (QA). Said once for the grid,
    not per cell."""
    config = tmp_path / "cf.toml"
    config.write_text('[train]\ncalibration = "cross-fit"\ncrossfit_folds = 1000\n')
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset",
                             str(tiny_dataset.root), "--models", "ae", "--seeds", "0-1",
                             "--epochs", "1", "--config", str(config), "--out", str(out)],
                            env=single_thread_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert said.count("cross-fit: 4 folds, one per normal training board (train.crossfit_folds "
                      "is 1000; a fold cannot split a board)") == 1, said


def test_parse_seeds():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,2,5") == (0, 2, 5)
    with pytest.warns(TapcheckWarning, match=r"--seeds '3, 0-1, 3' names seed 3 more than "
                                             r"once; each seed is trained once, so the "
                                             r"comparison has 3 seeds"):
        assert parse_seeds("3, 0-1, 3") == (3, 0, 1)
    # "0,0" made a one-seed comparison without a word (QA)
    with pytest.warns(TapcheckWarning, match="comparison has 1 seed$"):
        assert parse_seeds("0,0") == (0,)
    for bad in ("", "a", "2-", "-1", "1.5", "\u0660-\u0661"):  # Arabic-Indic 0-1 too (QA)
        with pytest.raises(ParameterError, match="not a list of seeds"):
            parse_seeds(bad)
    with pytest.raises(ParameterError, match="the range 5-2 runs backwards"):
        parse_seeds("0,5-2")
    assert len(parse_seeds("0-99")) == 100
    # refused before a range is expanded: 0-99999999999 once ended in a MemoryError
    for huge, problem in (("0-99999999999", "a seed over 4294967295"),
                          ("0-1000000", "more than 100 seeds"), ("0-98,200,300", "more than 100")):
        with pytest.raises(ParameterError, match=problem):
            parse_seeds(huge)


def test_fold_boards_deal_whole_normal_boards(tiny_dataset):
    folds = fold_boards(tiny_dataset.takes, 3, seed=0)
    assert sorted(b for f in folds for b in f) == [1, 2, 3, 4] and len(folds) == 3
    assert all(folds) and folds == fold_boards(tiny_dataset.takes, 3, seed=0)
    moved = takes_for_fold(tiny_dataset.takes, folds[0])
    for old, new in zip(tiny_dataset.takes, moved, strict=True):
        expect = "test" if old.board in folds[0] else old.split
        assert new.split == expect and new.path == old.path
    with pytest.raises(ParameterError, match="--folds 5 cannot split the 4"):
        fold_boards(tiny_dataset.takes, 5)
    one = [t for t in tiny_dataset.takes if t.board == 1 or t.label == "defect"]
    with pytest.raises(ParameterError, match="--folds 2 cannot split the one normal training "
                                             "board — record more normal boards"):
        fold_boards(one, 2)  # "the 1 normal training boards" (QA)


def test_summary_and_paired_test_on_known_numbers():
    from scipy import stats

    from tapcheck.grid import Cell

    s = summarize([0.8, 0.9, 0.85, float("nan")])  # NaN (one-label test split) is left out
    half = stats.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.85) and s["sd"] == pytest.approx(0.05)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.85 - half, min(1.0, 0.85 + half)))
    assert summarize([0.7])["sd"] is None and summarize([])["mean"] is None

    a = [0.9, 0.8, 0.95, 0.7, 0.85, 0.9, 0.75]
    b = [0.8, 0.82, 0.9, 0.6, 0.8, 0.7, 0.7]
    cells = {Cell("a", s, None): {"row": {"auc": x, "pauc": x / 2}} for s, x in enumerate(a)}
    cells |= {Cell("b", s, None): {"row": {"auc": x, "pauc": x / 2}} for s, x in enumerate(b)}
    (pair,) = paired_tests(["a", "b"], cells)
    d = np.array(a) - np.array(b)
    assert pair["auc"]["p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert (pair["auc"]["a_better"], pair["auc"]["b_better"]) == (6, 1)
    assert pair["auc"]["min_p"] == pytest.approx(2 / 2 ** 7)
    assert pair["auc"]["mean_diff"] == pytest.approx(d.mean())
    assert pair["auc"]["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert pair["auc"]["p_t_holm"] == pytest.approx(pair["auc"]["p_t"])  # a family of one
    # the report says which ordering holds; it listed every p and left the reader to find it
    from tapcheck.gridreport import supported_rankings

    assert pair["auc"]["p_t_holm"] < 0.05 and pair["folds"] == 0
    assert supported_rankings([pair]) == (
        "Rankings the paired t-test supports (AUC, Holm-adjusted p < 0.05 over 1 pair): a > b. "
        "The Wilcoxon test supports 1; no other ordering is established by these cells.")
    # a t-test's p is 0.0 when every cell shows the same difference: the clearest ranking, read
    # as "none" by `p or 1` (review)
    same = {Cell(c.model, c.seed, None): {"row": {"auc": 0.9 if c.model == "a" else 0.8,
                                                  "pauc": 0.4}} for c in cells}
    (pair,) = paired_tests(["a", "b"], same)
    assert pair["auc"]["p_t_holm"] == 0.0
    assert "(AUC, Holm-adjusted p < 0.05 over 1 pair): a > b." in supported_rankings([pair])
    folded = {Cell(c.model, c.seed % 2, c.seed // 2): r for c, r in cells.items() if c.seed < 6}
    (pair,) = paired_tests(["a", "b"], folded)
    assert pair["folds"] == 3 and supported_rankings([pair]).endswith(
        "these cells are not independent and both tests' p are optimistic.")


def test_model_rows_are_best_mean_auc_first():
    """The report's per-model table followed --models order, so its first row read as the
    winner whatever it scored (QA); a row with no AUC goes last, ties keep their order."""
    from tapcheck.gridreport import best_first

    grid = [{"model": m, "auc": {"mean": a}} for m, a in
            (("ae", 0.71), ("none", None), ("arc", 0.93), ("nan", float("nan")), ("tri", 0.93),
             ("cnn", 0.88))]
    assert [r["model"] for r in best_first(grid)] == ["arc", "tri", "cnn", "ae", "none", "nan"]
    single = [{"model": "ae", "auc": 0.6}, {"model": "arc", "auc": 0.9}]
    assert [r["model"] for r in best_first(single)] == ["arc", "ae"]


def test_holm_adjusts_a_family_step_down():
    from tapcheck.gridreport import holm

    # sorted 0.01, 0.03, 0.04 of m = 3: x3, x2 (0.06), x1 (0.04, raised to 0.06 to stay monotone)
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_auc_is_sklearns_roc_auc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    for _ in range(300):
        labels = rng.integers(0, 2, rng.integers(2, 40))
        scores = np.round(rng.normal(size=len(labels)), 1)  # many ties
        if labels.min() == labels.max():
            assert np.isnan(auc(labels, scores))
            continue
        assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_a_cell_reads_no_dataset_file(tiny_dataset, tmp_path, one_thread):
    """What a Ray worker on another machine does: the dataset folder is not there, the crops
    come with the task, and the numbers are those of a cell run beside the files."""
    import dataclasses

    from tapcheck.compare import _all_crops
    from tapcheck.config import Config
    from tapcheck.grid import GridConfig
    from tapcheck.grid import plan_cells, run_cell

    config = Config().replace("train", epochs=1)
    crops = _all_crops(tiny_dataset, config=config, progress=False, log=print)
    (task,), _, _ = plan_cells(tiny_dataset, ["ae"], config, GridConfig(seeds=(0,)))
    here = run_cell(task, crops)
    elsewhere = run_cell(dataclasses.replace(task, dataset_root=str(tmp_path / "not-here")),
                         crops)
    assert not (tmp_path / "not-here").exists()
    for key in SAME:
        assert elsewhere["row"][key] == here["row"][key], key
    assert here["model_bytes"] and elsewhere["scores"] == here["scores"]


def test_cell_folders_of_killed_processes_are_swept(tmp_path):
    """A cell's model file passes through a temporary folder named with its process id; a
    killed compare leaves it, and the next cell removes it — only a dead process's, only ours."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid no process has now (reuse within this test is all but impossible)
    dead = tmp_path / f"{CELL_FOLDER_PREFIX}{gone.pid}-abc_12"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "model.pt").write_bytes(b"x" * 100)
    alive = tmp_path / f"{CELL_FOLDER_PREFIX}{os.getpid()}-def34"
    alive.mkdir()
    other = tmp_path / f"{CELL_FOLDER_PREFIX}notapid"  # a name of no cell
    other.mkdir()
    linked = tmp_path / f"{CELL_FOLDER_PREFIX}{gone.pid}-link"
    linked.symlink_to(tmp_path / "kept", target_is_directory=True)
    (tmp_path / "kept").mkdir()
    assert sweep_dead_cell_folders(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir() and other.is_dir() and linked.is_symlink()
    assert (tmp_path / "kept").is_dir()


def test_a_cell_keeps_its_key_when_a_setting_is_added_at_its_old_behaviour():
    """train.ema_decay came after cells were stored: 0 (off) keys a cell as a config without
    the field did, so report folders' cells are still reused; another value is another cell."""
    from tapcheck.config import Config
    from tapcheck.grid import Cell, CellTask, cell_key

    def key(config: dict) -> str:
        task = CellTask(cell=Cell("arcface-lite", 0, None), config=config, takes=(),
                        dataset_root="", keep_model=False)
        return cell_key(task, fingerprint="f", folds=0, fold_seed=0)

    before = Config().to_dict()
    del before["train"]["ema_decay"]
    assert key(Config().to_dict()) == key(before)
    assert key(Config().replace("train", ema_decay=0.99).to_dict()) != key(before)
