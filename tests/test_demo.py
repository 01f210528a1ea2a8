"""The demo as a library call: its default trainer, its figures, its printed lines."""

import shutil
from pathlib import Path

import numpy as np
import torch


def test_run_demo_trains_with_the_default_trainer(tmp_path, tiny_dataset, one_thread):
    # the CLI always passes its own progress trainer; scripts/results.py calls the default
    from tapcheck.demo import demo_lines, run_demo

    folder = tmp_path / "demo"
    shutil.copytree(tiny_dataset.root, folder)
    said = []
    evaluation, verdicts, seconds = run_demo(str(folder), epochs=1, seed=0, say=said.append)
    assert said[0].startswith("1/3 using the existing dataset") and "2/3 training" in said[1]
    assert len(verdicts) == len(tiny_dataset.select(split="test")) and seconds > 0
    assert 0 <= evaluation["auc"] <= 1 and np.isfinite(evaluation["threshold"])
    assert any("AUC" in line for line in demo_lines(evaluation, seconds=seconds))



def test_demo_trains_the_model_asked_for_and_refuses_an_unknown_one_before_synthesis(
        tmp_path, tiny_dataset, one_thread, run_cli):
    import os

    from tapcheck.models import FAST_MODEL

    folder = tmp_path / "demo"
    shutil.copytree(tiny_dataset.root, folder)
    code, out, err = run_cli("demo", "--dataset", folder, "--model", FAST_MODEL, "--epochs", "1")
    assert code == 0, err
    assert f"2/3 training {FAST_MODEL} ..." in out and "trained in" in out
    written = Path(os.environ["TAPCHECK_MODELS"]) / f"{FAST_MODEL}.pt"
    assert written.is_file()
    # the evaluate it points at opens this model and dataset (it said `tapcheck evaluate`, the
    # default model file on the demo dataset)
    assert f"see `tapcheck evaluate --model {written} --dataset {folder}`)" in out

    missing = tmp_path / "never"
    code, out, err = run_cli("demo", "--dataset", missing, "--model", "arcface-tiny")
    assert code == 2 and err.startswith("tapcheck: error: --model (train.model) must be one of")
    assert "not 'arcface-tiny'" in err
    assert not missing.exists() and not out  # refused before any synthesis
    # a scorer the model cannot use: it failed after the synthesis, and named no option (QA)
    config = tmp_path / "recon.toml"
    config.write_text('[train]\nscorer = "recon"\n')
    code, out, err = run_cli("demo", "--dataset", missing, "--model", FAST_MODEL,
                             "--config", config)
    assert (code, out) == (2, "") and err == (
        f"tapcheck: error: model {FAST_MODEL} cannot use the 'recon' scorer (--scorer, or "
        "train.scorer of the config) — use one of: knn, prob, mahalanobis, knn-ldn, knn-decay\n")
    assert not missing.exists()

    # models/<model>.pt that tapcheck did not write is neither overwritten nor synthesised for
    foreign = Path(os.environ["TAPCHECK_MODELS"]) / "ae.pt"
    foreign.write_bytes(b"my notes")
    code, out, err = run_cli("demo", "--dataset", missing, "--model", "ae")
    assert code == 2 and err.startswith("tapcheck: error: ") and str(foreign) in err
    assert foreign.read_bytes() == b"my notes" and not missing.exists()


def test_demo_trains_with_a_config_file(tmp_path, tiny_dataset, one_thread, run_cli):
    # `tapcheck demo --config configs/new-boards.toml`: the recipe's model and settings
    import os

    import torch

    from .conftest import ROOT

    folder = tmp_path / "demo"
    shutil.copytree(tiny_dataset.root, folder)
    recipe = ROOT / "configs" / "new-boards.toml"
    code, out, err = run_cli("demo", "--dataset", folder, "--config", recipe, "--epochs", "1")
    assert code == 0, err
    assert "2/3 training arcface-lite ..." in out and "the study's best" not in out
    saved = torch.load(Path(os.environ["TAPCHECK_MODELS"]) / "arcface-lite.pt", weights_only=True)
    train = saved["config"]["train"]
    assert (train["freq_stretch"], train["threshold_fit"], train["calibration"]) == (
        0.2, "lognormal", "hold-out")

    code, out, err = run_cli("demo", "--dataset", folder, "--config", tmp_path / "none.toml")
    assert code == 2 and "none.toml" in err and len(err.strip().splitlines()) == 1


def test_demo_refusing_its_model_file_says_what_demo_can_do(tmp_path, tiny_model, tiny_dataset,
                                                           run_cli):
    """An enrolled models/arcface-lite.pt: demo said "choose another --out", an option demo
    does not have. Nothing is synthesised, trained or written."""
    import hashlib
    import os

    from tapcheck.enroll import enroll

    models = Path(os.environ["TAPCHECK_MODELS"])
    models.mkdir(parents=True, exist_ok=True)
    target = Path(shutil.copyfile(tiny_model, models / "arcface-lite.pt"))
    enroll(target, [tiny_dataset.path_of(tiny_dataset.select(board=[13], split="test")[0])],
           board=13)
    digest = hashlib.md5(target.read_bytes()).hexdigest()
    missing = tmp_path / "never"
    code, out, err = run_cli("demo", "--dataset", missing, "--model", "arcface-lite",
                             "--epochs", "1")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert f"{target}: holds 1 enrolment(s)" in err and "choose another --out" not in err
    assert f"demo writes {target} and has no --out: " in err
    assert "run it in another folder (or with TAPCHECK_MODELS set to another folder), or move " \
           "this file away" in err
    assert hashlib.md5(target.read_bytes()).hexdigest() == digest and not missing.exists()
    # a folder in the model file's place: the same advice
    folder = models / "ae.pt"
    folder.mkdir()
    code, _, err = run_cli("demo", "--dataset", missing, "--model", "ae")
    assert code == 2 and "is a folder" in err and "choose another --out" not in err
    assert "run it in another folder" in err



def test_demo_replaces_only_a_model_it_trained(tmp_path, tiny_model, tiny_dataset, one_thread,
                                               run_cli):
    """A trial's 15-epoch models/arcface-lite.pt from `train` was silently replaced by a 1-epoch
    demo model: demo writes its model file unasked, so it replaces only one demo wrote."""
    import hashlib
    import os

    models = Path(os.environ["TAPCHECK_MODELS"])
    models.mkdir(parents=True, exist_ok=True)
    target = Path(shutil.copyfile(tiny_model, models / "arcface-lite.pt"))
    digest = hashlib.md5(target.read_bytes()).hexdigest()
    folder = tmp_path / "demo"
    shutil.copytree(tiny_dataset.root, folder)
    code, out, err = run_cli("demo", "--dataset", folder, "--model", "arcface-lite",
                             "--epochs", "1")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
    assert f"{target}: is a model `tapcheck demo` did not train" in err
    assert "move this file away" in err
    assert hashlib.md5(target.read_bytes()).hexdigest() == digest
    target.unlink()  # demo's own model file it replaces, run after run
    for _ in range(2):
        code, out, err = run_cli("demo", "--dataset", folder, "--model", "arcface-lite",
                                 "--epochs", "1")
        assert code == 0, err
    assert torch.load(target, weights_only=True)["made_by"] == "tapcheck demo"


def test_demo_holds_its_model_file_for_the_whole_run(tmp_path, tiny_dataset):
    """An enrolment made into models/<model>.pt while the demo trained was lost when the demo
    saved over it (QA): the demo takes the model file's lock, as train does, before it trains."""
    import os
    import subprocess
    import sys

    from tapcheck.locks import exclusive, lock_path

    from .conftest import ROOT

    model = tmp_path / "models" / "ae.pt"
    model.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TAPCHECK_MODELS": str(model.parent)}
    with exclusive(lock_path(model), what=model, error=OSError, remove=True):
        run = subprocess.run([sys.executable, "-m", "tapcheck", "demo", "--dataset",
                              str(tiny_dataset.root), "--model", "ae", "--epochs", "1"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(
        f"tapcheck: error: {model}: in use by PID {os.getpid()}"), run.stderr
    assert "training" not in run.stdout and not model.exists()


def test_kill_mid_training_stops_demo_as_ctrl_c_does(tmp_path, tiny_dataset, one_thread):
    """`kill` ended demo silently with status 143; now one line and exit 130, as Ctrl-C, and no
    model file (it is written whole at the end or not at all)."""
    import os
    import signal
    import subprocess
    import sys

    folder = tmp_path / "demo"
    shutil.copytree(tiny_dataset.root, folder)
    env = {**os.environ, "TAPCHECK_MODELS": str(tmp_path / "models")}
    run = subprocess.Popen([sys.executable, "-m", "tapcheck", "demo", "--dataset", str(folder),
                            "--model", "arcface-lite", "--epochs", "500"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:  # training under way
        if line.startswith("2/3 training"):
            break
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert err.splitlines()[-1] == "tapcheck: interrupted" and "Traceback" not in err
    assert not (tmp_path / "models" / "arcface-lite.pt").exists()
