"""tapcheck compare: metrics, figures, an offline report whose images all load in Chromium."""

import contextlib
import hashlib
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from tapcheck.compare import resolve_models, tsne_map
from tapcheck.errors import ParameterError, TapcheckWarning
from tapcheck.metrics import auc, best_f1_threshold, bootstrap_ci, f1_at, pauc, tpr_at_fpr
from tapcheck.models import MODELS, STUDY_MODELS


@pytest.fixture(scope="module")
def report(tiny_dataset, tmp_path_factory):
    """A real comparison of three families, one epoch each, on the tiny dataset."""
    from tapcheck.cli import main

    out = tmp_path_factory.mktemp("report")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["compare", "--dataset", str(tiny_dataset.root), "--models",
                     "ae,triplet-shallow,arcface-shallow", "--epochs", "1", "--out", str(out)])
    assert code == 0
    _SAID[out] = err.getvalue()
    return out


_SAID: dict = {}  # what the report's compare said on stderr


def test_one_seed_is_said_not_to_rank_models(report):
    """The table ranks three models trained at one seed each; that a reseed can reorder them
    was said nowhere, on the terminal or the page (QA)."""
    from tapcheck.report import ONE_SEED

    assert f"tapcheck: warning: {ONE_SEED}\n" in _SAID[report]
    assert "<b>One seed per model: another seed can reorder them" in \
        (report / "index.html").read_text()


def test_report_files_and_metrics(report):
    rows = json.loads((report / "metrics.json").read_text())["models"]
    # best AUC first, as the docs' tables: the report kept --models order (QA)
    assert sorted(r["model"] for r in rows) == ["ae", "arcface-shallow", "triplet-shallow"]
    assert [r["auc"] for r in rows] == sorted((r["auc"] for r in rows), reverse=True)
    for r in rows:
        assert 0 <= r["auc"] <= 1 and 0 <= r["pauc"] <= 1
        assert r["auc_ci_low"] <= r["auc"] <= r["auc_ci_high"]
        assert r["train_seconds"] > 0 and r["judge_ms"] > 0
        assert set(r["board_means"]) == {"1", "2", "3", "4", "7", "8", "11", "12", "13"}
        assert (report / r["model_file"]).is_file()
    csv_lines = (report / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,auc,") and len(csv_lines) == 4
    for name in ("roc.png", "training.png", "tsne-ae.png", "scores-arcface-shallow.png"):
        assert (report / name).stat().st_size > 5000


def test_same_seed_same_numbers(report, tiny_dataset, tmp_path):
    from tapcheck.cli import main

    assert main(["compare", "--dataset", str(tiny_dataset.root), "--models", "triplet-shallow",
                 "--epochs", "1", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())["models"][0]
    first, = [r for r in json.loads((report / "metrics.json").read_text())["models"]
              if r["model"] == "triplet-shallow"]
    for key in ("auc", "pauc", "tpr_at_5fpr", "f1", "threshold", "board_means"):
        assert again[key] == first[key], key


def test_report_opens_offline_in_chromium(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (bash .ci/run installs it)"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", (report / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    n_images = (report / "index.html").read_text().count("<img ")
    assert n_images == 2 + 2 * 3  # ROC, training, and t-SNE + scores per model
    assert f'data-images-loaded="{n_images}/{n_images}"' in result.stdout


def test_a_missing_image_is_caught(report, tmp_path):
    """The Chromium check above can fail: a report with a broken image reports fewer loaded."""
    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    (broken / "roc.png").unlink()
    chromium = shutil.which("chromium")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'p'}",
         "--virtual-time-budget=5000", "--dump-dom", (broken / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert 'data-images-loaded="7/8"' in result.stdout


def _md5s(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_holding_files_compare_did_not_write_is_refused(run_cli, small_compare_set, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my notes\n")
    (mine / "metrics.csv").write_text("a,b\n")
    before = _md5s(mine)
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", mine)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {mine / 'index.html'}: exists and is not a file of a "
                   "comparison report tapcheck wrote; tapcheck overwrites only its own files — "
                   "choose another --out\n")
    assert _md5s(mine) == before and sorted(p.name for p in mine.iterdir()) == [
        "index.html", "metrics.csv"]  # no models/, cells/ or figures beside them either
    # a metrics.json that is not a comparison's does not make the folder a report
    (mine / "index.html").unlink()
    (mine / "metrics.json").write_text('{"models": []}')
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--out", mine)
    assert code == 2 and f"{mine / 'metrics.csv'}: exists and is not a file of a " in err



def test_scorer_option_is_every_models_and_refused_before_work_where_unusable(
        run_cli, small_compare_set, tmp_path):
    """--scorer was listed and always refused, while train.scorer of a config was taken (QA)."""
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--scorer", "prob", "--epochs", "1", "--out", tmp_path / "no")
    assert (code, out) == (2, "") and err.startswith(
        "tapcheck: error: model ae cannot use the 'prob' scorer (--scorer, or train.scorer")
    assert not (tmp_path / "no").exists()
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models",
                           "arcface-shallow", "--scorer", "mahalanobis", "--epochs", "1",
                           "--out", tmp_path / "maha")
    assert code == 0, err
    [row] = json.loads((tmp_path / "maha" / "metrics.json").read_text())["models"]
    assert row["scorer"] == "mahalanobis"


def test_out_over_the_working_folder_keeps_a_model_train_wrote(run_cli, small_compare_set,
                                                              tiny_model, tmp_path, monkeypatch):
    """`compare --out .` (or an empty --out) writes <out>/models/<name>.pt, which is where
    `tapcheck train` had put the user's model: it was replaced without a word (trial 33)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_model, tmp_path / "models" / "ae.pt")
    before = _md5s(tmp_path)
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", ".")
    assert (code, out) == (2, "")
    refusal = ("tapcheck: error: models/ae.pt: exists, and no comparison here wrote it: the "
               "report's ae model would replace a model tapcheck train wrote — choose another "
               "--out, e.g. reports/<dataset>\n")
    assert err == refusal
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", "")
    assert (code, out) == (2, "")
    assert err == ("tapcheck: error: --out is empty — name the report folder, e.g. --out "
                   "reports/<dataset>, or leave it out\n")
    assert _md5s(tmp_path) == before

    # a comparison ran here, and train wrote its model since: it was replaced (QA)
    (tmp_path / "models" / "ae.pt").unlink()
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", ".")
    assert code == 0, err
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--seed", "1", "--out", ".")
    assert code == 0, err  # the report's own model file: replaced by its rerun
    shutil.copy(tiny_model, tmp_path / "models" / "ae.pt")
    before = _md5s(tmp_path)
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", ".")
    assert (code, out, err) == (2, "", refusal)
    assert _md5s(tmp_path) == before


def test_report_folder_check_reads_no_fifo_and_lets_a_stopped_run_finish(tmp_path):
    """metrics.json a fifo: refused, not opened (that would block); figures without a
    metrics.json but beside cells/ are a stopped run's, which a rerun finishes."""
    import os

    from tapcheck.report_folder import check_report_folder
    from tapcheck.errors import StorageError

    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "metrics.json")
    with pytest.raises(StorageError, match="metrics.json"):
        check_report_folder(fifo, ["ae"])
    stopped = tmp_path / "stopped"
    (stopped / "cells" / "ae").mkdir(parents=True)
    (stopped / "tsne-ae.png").write_bytes(b"\x89PNG")
    # an empty cells/ (made by hand) is no run's: the report replaced index.html and
    # metrics.csv beside it (QA)
    with pytest.raises(StorageError, match="tsne-ae.png: exists and is not a file"):
        check_report_folder(stopped, ["ae"])
    cell = {"row": {"scorer": "recon", "train_seconds": 1.0, "auc": 0.5, "pauc": 0.5}}
    (stopped / "cells" / "ae" / "s0-k.json").write_text(json.dumps(cell))
    check_report_folder(stopped, ["ae"])  # no error: the rerun replaces its own figure


def test_out_in_a_dataset_folder_is_refused(run_cli, small_compare_set, tmp_path):
    dataset = shutil.copytree(small_compare_set, tmp_path / "d")
    before = _md5s(dataset)
    code, out, err = run_cli("compare", "--dataset", dataset, "--models", "ae", "--epochs", "1",
                             "--out", dataset)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {dataset}: is a dataset folder (it holds manifest.csv); a "
                   "report would mix its files with the takes — choose another --out, e.g. "
                   "reports/<dataset>\n")
    assert _md5s(dataset) == before


def test_out_a_link_to_nothing_is_refused_before_training(run_cli, small_compare_set, tmp_path):
    """It trained every cell, then said "cannot be written (File exists)"."""
    link = tmp_path / "reports"
    link.symlink_to(tmp_path / "gone")
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                             "--epochs", "1", "--out", link)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {link}: is a symbolic link to {tmp_path / 'gone'}, which "
                   "does not exist — create the folder it points to, or choose another path\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_a_report_and_its_model_files_are_held_while_compare_runs(small_compare_set, tmp_path):
    """Compare wrote its models without their locks: an enrolment made into a report's model
    while compare ran was lost when compare saved over it, and a second compare into the same
    folder finished over the first one's files (QA). Held here, each is refused at once."""
    import os
    import sys

    from tapcheck.locks import exclusive, lock_path

    from .conftest import ROOT

    out = tmp_path / "report"
    (out / "models").mkdir(parents=True)
    args = [sys.executable, "-m", "tapcheck", "compare", "--dataset", str(small_compare_set),
            "--models", "ae", "--epochs", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for held in (out / "models" / "ae.pt", out / "metrics.json"):  # enroll's, another compare's
        with exclusive(lock_path(held), what=held, error=OSError, remove=True):
            run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 2, run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith(
            f"tapcheck: error: {out if held.name == 'metrics.json' else held}: in use by PID "
            f"{os.getpid()}"), run.stderr
        assert "training" not in run.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["models"]


def test_resolve_models():
    assert resolve_models("all") == list(MODELS)
    assert resolve_models("study") == list(STUDY_MODELS) and len(STUDY_MODELS) == 8
    with pytest.warns(TapcheckWarning, match="--models 'vae, ae,vae' names vae more than "
                                             "once; each model is trained once per seed"):
        assert resolve_models("vae, ae,vae") == ["vae", "ae"]  # "ae,ae" was said nothing of
    with pytest.raises(ParameterError, match="unknown model 'resnet'"):
        resolve_models("ae,resnet")
    # a typo away: the nearest name; "study" in a list: said so, not "unknown model" (QA)
    with pytest.raises(ParameterError, match=r"unknown model 'arcface-litee' \(did you mean "
                                             r"'arcface-lite'\?\)") as e:
        resolve_models("arcface-litee")
    assert "`tapcheck models` describes them" in str(e.value)
    with pytest.raises(ParameterError, match="--models 'study,ae': study stands alone"):
        resolve_models("study,ae")


def test_a_map_of_a_few_clips_leaves_no_warning_of_opentsnes(caplog):
    """A one-board comparison's map of 10 training crops: openTSNE's transform logged
    "Perplexity value 5 is too high. Using perplexity 3.00 instead" into compare's output."""
    rng = np.random.default_rng(0)
    for n in (10, 5, 3, 2):  # 5: "Perplexity value 2 is too high. Using perplexity 1.33" (QA)
        with caplog.at_level("WARNING"):
            xy_train, xy_test = tsne_map(rng.normal(size=(n, 8)), rng.normal(size=(4, 8)),
                                         seed=0)
        assert xy_train.shape == (n, 2) and xy_test.shape == (4, 2)
        assert not [r.getMessage() for r in caplog.records if r.name.startswith("openTSNE")]


def test_tsne_places_test_points_into_the_training_map():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.05, (40, 8)) + 1, rng.normal(0, 0.05, (40, 8)) - 1
    train = np.vstack([a, b])
    test = np.vstack([rng.normal(0, 0.05, (5, 8)) + 1, rng.normal(0, 0.05, (5, 8)) - 1])
    xy_train, xy_test = tsne_map(train, test, seed=0)
    assert xy_train.shape == (80, 2) and xy_test.shape == (10, 2)
    centre_a, centre_b = xy_train[:40].mean(0), xy_train[40:].mean(0)
    # each test point lands on the cluster it came from
    assert all(np.linalg.norm(p - centre_a) < np.linalg.norm(p - centre_b) for p in xy_test[:5])
    assert all(np.linalg.norm(p - centre_b) < np.linalg.norm(p - centre_a) for p in xy_test[5:])


@pytest.mark.parametrize("n_normal", [19, 20, 40, 60, 100, 101])
def test_tpr_at_fpr_is_the_roc_curves(n_normal):
    """The ROC curve's highest true-positive rate at a false-positive rate of 5 % or less;
    the quantile it was read from took one normal clip fewer whenever n * 5 % was whole
    (an audit: 0.70 for 0.767 at 20 normal clips)."""
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(n_normal)
    for _ in range(20):
        scores = np.concatenate([rng.normal(0, 1, n_normal), rng.normal(1.5, 1, 30)])
        scores = np.round(scores, 1)  # ties too
        labels = np.r_[np.zeros(n_normal), np.ones(30)]
        fp, tp, _ = roc_curve(labels, scores, drop_intermediate=False)  # every corner
        assert tpr_at_fpr(labels, scores, fpr=0.05) == pytest.approx(tp[fp <= 0.05 + 1e-12].max())


def test_metrics_on_known_cases():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.9])
    assert auc(labels, scores) == pytest.approx(7 / 8)
    assert pauc(labels, scores, max_fpr=1.0) == pytest.approx(7 / 8)
    # one normal clip of four may pass: flagged above 0.3, 0.35 and 0.9 are caught
    assert tpr_at_fpr(labels, scores, fpr=0.25) == 1.0
    assert tpr_at_fpr(labels, scores, fpr=0.2) == 0.5  # none may: flagged above 0.4
    assert f1_at(labels, scores, threshold=0.32) == pytest.approx(2 * 2 / (3 + 2))
    threshold, best = best_f1_threshold(labels, scores)  # flag 0.35, 0.4, 0.9: F1 = 4/5
    assert threshold == pytest.approx(0.325) and best == pytest.approx(0.8)
    # mostly defects, ranked badly: flagging every clip (F1 = 2*4/(6+4) = 0.8) beats any cut
    # between two scores (the best of those: 0.75)
    bad = np.array([1, 0, 1, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    threshold, best = best_f1_threshold(*bad)
    assert threshold < 0.1 and best == pytest.approx(0.8)
    assert f1_at(*bad, threshold=threshold) == pytest.approx(0.8)
    lo, hi = bootstrap_ci(labels, scores, n_boot=200)
    assert 0 <= lo <= 7 / 8 <= hi <= 1
    assert np.isnan(auc(np.zeros(3), np.arange(3)))


def test_an_interval_over_boards_resamples_whole_boards_within_each_label():
    """A board's clips score alike: resampling clips gave the demo's AUC an interval narrower
    than the spread a new set of boards shows."""
    normal, defect = np.arange(1, 7), np.array([7, 8, 9])
    boards = np.repeat(np.r_[normal, defect], 10)
    labels = np.isin(boards, defect)
    # each board one score of its own, the normal boards overlapping the defective ones
    level = dict(zip(np.r_[normal, defect], [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 1.0, 1.8, 2.6],
                     strict=True))
    scores = np.array([level[b] for b in boards])
    drawn = []

    def seen(lab, sc):
        drawn.append((lab.copy(), sc.copy()))
        return auc(lab, sc)

    bootstrap_ci(labels, scores, metric=seen, groups=boards, n_boot=50)
    for lab, sc in drawn:  # whole boards (10 clips each), and as many boards of each label
        assert lab.sum() == 30 and (~lab).sum() == 60
        _, counts = np.unique(sc, return_counts=True)
        assert (counts % 10 == 0).all()
        assert set(np.unique(sc[lab])) <= {level[b] for b in defect}
    clips = bootstrap_ci(labels, scores, n_boot=300)
    over_boards = bootstrap_ci(labels, scores, groups=boards, n_boot=300)
    assert over_boards[0] <= auc(labels, scores) <= over_boards[1]
    assert over_boards[1] - over_boards[0] > 2 * (clips[1] - clips[0])
    one_defect = np.where(labels, 7, boards)  # every defective clip one board's
    assert np.isnan(bootstrap_ci(labels, scores, groups=one_defect, n_boot=20)).all()


def test_a_one_board_comparison_writes_strict_json_and_only_its_own_lines(tiny_dataset,
                                                                          tmp_path, run_cli):
    """One board, no defect among its test takes: metrics.json held bare NaN, which strict
    parsers refuse."""
    from .conftest import copy_with_manifest

    one = copy_with_manifest(tiny_dataset.root, tmp_path / "one",
                             lambda rows: [r for r in rows if r["board"] == "1"])
    code, out, err = run_cli("compare", "--dataset", one, "--models", "ae", "--epochs", "1",
                             "--out", tmp_path / "report")
    assert code == 0, err
    # the report's dashes explained, before any training (the line said "only one label")
    assert err.startswith(f"tapcheck: warning: {one}: the test split holds normal takes only, "
                          "no defect ones, so no AUC or pAUC can be computed (the report shows "
                          "– for them) — add takes of a cracked board with --split test\n"), err
    strict = json.loads((tmp_path / "report" / "metrics.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert strict["models"][0]["auc"] is None  # no defective take: no AUC, said as null


def test_a_report_of_another_dataset_keeps_its_model_files(run_cli, small_compare_set,
                                                           tiny_dataset, tmp_path):
    """`compare --out` into an earlier report of another dataset replaced its model files
    without a word, and mixed the two comparisons' cells in one folder, where `train` refuses
    to replace a model of another dataset (QA)."""
    from .conftest import copy_with_manifest

    report = tmp_path / "report"
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--models", "ae",
                           "--epochs", "1", "--out", report)
    assert code == 0, err
    other = copy_with_manifest(tiny_dataset.root, tmp_path / "other",
                               lambda rows: [r for r in rows if r["board"] in ("3", "4", "8")])
    before = _md5s(report)
    code, out, err = run_cli("compare", "--dataset", other, "--models", "ae", "--epochs", "1",
                             "--out", report)
    assert (code, out) == (2, "")
    # the report itself is refused first (its model file was, before the report said which
    # dataset it compared)
    assert err == (f"tapcheck: error: {report}: holds the report of comparing another dataset "
                   f"({small_compare_set}), which this comparison would replace — choose "
                   "another --out, e.g. reports/<dataset> (a dataset moved since: delete "
                   f"{report / 'metrics.json'} to compare it here again)\n")
    assert _md5s(report) == before
    # a report that does not say (an earlier tapcheck's): its model files refuse it
    metrics = report / "metrics.json"
    doc = json.loads(metrics.read_text())
    del doc["meta"]["dataset folder"]
    metrics.write_text(json.dumps(doc))
    before = _md5s(report)
    code, out, err = run_cli("compare", "--dataset", other, "--models", "ae", "--epochs", "1",
                             "--out", report)
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {report}/models/ae.pt: holds a model trained on another "
                   f"dataset ({small_compare_set}), which training on {other} would replace — "
                   "choose another --out, e.g. reports/<dataset>, or delete "
                   f"{report}/models/ae.pt first if that model is no longer needed\n")
    assert _md5s(report) == before


def test_a_configs_model_that_compare_does_not_train_is_said(run_cli, small_compare_set,
                                                             tmp_path):
    """`compare --config` of a config naming `[train] model = "ae"` trained the study's eight
    without a word, where train and demo take it (QA)."""
    config = tmp_path / "ae.toml"
    config.write_text('[train]\nmodel = "ae"\n')
    (tmp_path / "a-file").write_text("")  # an --out refused before any training
    code, out, err = run_cli("compare", "--dataset", small_compare_set, "--config", config,
                             "--models", "vae", "--out", tmp_path / "a-file")
    assert code == 2 and err.startswith(
        f"tapcheck: warning: {config}: its [train] model = 'ae' is not used: compare trains the "
        "models --models names (vae) — give --models ae to compare it\n"), err
    code, _, err = run_cli("compare", "--dataset", small_compare_set, "--config", config,
                           "--models", "ae,vae", "--out", tmp_path / "a-file")
    assert code == 2 and "warning" not in err
