"""The command line as a user meets it: import, datasets, info, models, train, errors."""

import csv

import pytest

from .conftest import knock_files, write_tone


def test_import_converts_and_reports_bad_files(tmp_path, run_cli):
    stereo = write_tone(tmp_path / "in" / "stereo.wav", sr=48000, channels=2)
    knock = knock_files("wood")[0]
    silent = write_tone(tmp_path / "in" / "silent.wav", tap_at_s=None)
    code, out, err = run_cli("import", stereo, knock, silent, "--dataset", "bench", "--board", "3",
                             "--side", "left", "--label", "normal", "--group", "oak")
    assert code == 2  # one file refused
    assert "imported 2 of 3" in out
    assert f"{silent}: no strike found" in err and "averaged to mono" in err
    from tapcheck.datasets import Dataset

    ds = Dataset.open("bench")
    assert [t.path for t in ds.takes] == ["board03/left/take001.wav", "board03/left/take002.wav"]
    assert all(t.source == "import" and t.sample_rate == 44100 and t.group == "oak"
               for t in ds.takes)
    # a second import appends; the first takes are untouched
    before = (ds.root / "board03/left/take001.wav").read_bytes()
    code, _, _ = run_cli("import", knock_files("wood")[1], "--dataset", "bench", "--board", "3",
                         "--side", "left", "--label", "normal")
    assert code == 0
    assert (ds.root / "board03/left/take001.wav").read_bytes() == before
    rows = list(csv.DictReader(open(ds.root / "manifest.csv")))
    assert [r["take"] for r in rows] == ["1", "2", "3"]


def test_datasets_and_info(tiny_dataset, run_cli, monkeypatch):
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tiny_dataset.root.parent))
    code, out, _ = run_cli("datasets")
    assert code == 0 and "tiny" in out and "90" in out
    code, out, _ = run_cli("info", "tiny")
    assert code == 0
    assert "board08" not in out  # boards are numbers in the table
    lines = out.splitlines()
    assert lines[0].endswith("90 takes")
    assert any(ln.split()[:4] == ["8", "right", "defect", "defect-held-out"] for ln in lines)



def test_datasets_lists_the_readable_ones_and_names_a_broken_one(tiny_dataset, run_cli,
                                                                 tmp_path, monkeypatch):
    """One dataset's broken manifest ended the command with its error alone: the other datasets
    went unlisted."""
    import shutil

    home = tmp_path / "recordings"
    shutil.copytree(tiny_dataset.root, home / "good")
    (home / "mf").mkdir()
    (home / "mf" / "manifest.csv").write_text("garbage\n")
    (home / "rows").mkdir()
    (home / "rows" / "manifest.csv").write_text(
        (tiny_dataset.root / "manifest.csv").read_text().replace(",train,", ",trian,", 1))
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(home))
    code, out, err = run_cli("datasets")
    assert code == 2
    assert [line.split()[:2] for line in out.splitlines()] == [["dataset", "takes"],
                                                              ["good", "90"]]
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"tapcheck: error: {home / 'mf' / 'manifest.csv'}: dataset mf "
                               "cannot be read: is not a tapcheck manifest (no column path, ")
    assert lines[0].endswith(" — the header must be: path,board,side,label,group,split,take,"
                             "recorded_at,sample_rate,duration_s,source,peak_dbfs")
    assert lines[1] == (f"tapcheck: error: {home / 'rows' / 'manifest.csv'}:2: dataset rows "
                        "cannot be read: unknown split 'trian' — use one of: train, test")
    (home / "mf" / "manifest.csv").unlink()
    shutil.rmtree(home / "rows")
    assert run_cli("datasets")[0] == 0
    # a manifest that is a folder, or a link in a loop, was passed over without a word (QA)
    (home / "mf" / "manifest.csv").mkdir()
    (home / "loop").mkdir()
    (home / "loop" / "manifest.csv").symlink_to("manifest.csv")
    (home / "dangling").mkdir()
    (home / "dangling" / "manifest.csv").symlink_to(tmp_path / "gone.csv")
    code, out, err = run_cli("datasets")
    assert code == 2 and len(out.splitlines()) == 2
    assert [line.split(": dataset ")[1].split(" cannot")[0] for line in err.splitlines()] == [
        "dangling", "loop", "mf"]
    # it was sent back to itself: "is a folder inside dataset dangling … give the dataset"
    assert err.splitlines()[0] == (
        f"tapcheck: error: {home / 'dangling' / 'manifest.csv'}: dataset dangling cannot be "
        f"read: is a link to {tmp_path / 'gone.csv'}, which does not exist — restore the "
        "manifest it points to, or replace the link with the manifest")

def test_info_datasets_and_log_do_not_load_torch(tiny_dataset, tmp_path):
    """`tapcheck info` took 1.6 s, 1.4 of them importing torch it never used (speed QA): the
    dataset checks imported the training module for two names."""
    import os
    import subprocess
    import sys

    code = ("import sys\nfrom tapcheck.cli import main\n"
            f"assert main(['info', {str(tiny_dataset.root)!r}]) == 0\n"
            "assert main(['datasets']) == 0\nassert main(['log']) in (0, 2)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120,
                            env={**os.environ, "TAPCHECK_RECORDINGS": str(tmp_path),
                                 "TAPCHECK_INSPECTIONS": str(tmp_path / "inspections")})
    assert result.returncode == 0, result.stderr


def test_models_lists_the_registry(run_cli):
    from tapcheck.models import MODELS

    code, out, _ = run_cli("models")
    assert code == 0
    for name in MODELS:
        assert name in out


def test_unknown_model_lists_valid_ones(run_cli):
    code, _, err = run_cli("train", "--model", "arcface-resnet50")
    assert code == 2
    assert err.startswith("tapcheck: error: --model (train.model) must be one of: 'ae', ")
    assert "not 'arcface-resnet50'" in err and len(err.strip().splitlines()) == 1
    assert "(`tapcheck models` describes them; did you mean 'arcface-resnet18'?)" in err
    code, _, err = run_cli("train", "--model", "arcface-litee")  # the nearest, a typo away (QA)
    assert code == 2 and "did you mean 'arcface-lite'?" in err, err


@pytest.mark.parametrize("args, problem", [
    (["judge"], "tapcheck judge: Missing argument 'CLIPS...'"),
    (["enroll", "--undo", "take001.wav"], "tapcheck enroll: --undo takes no clips"),
    (["enroll", "--undo", "--list"], "--undo and --list together"),
    (["enroll", "--list", "--board", "3"], "--list takes no clips, --board"),
    (["enroll", "--board", "-1", "take001.wav"], "Invalid value for '--board'"),
    (["judge", "--nope", "take001.wav"], "No such option '--nope'"),
    # an option before the command: click offered '--help'; after a clip, the command's help
    (["--model", "m.pt", "judge", "take001.wav"], "tapcheck: No such option '--model' before "
     "the command — options go after the command's name: `tapcheck judge --model …`; "
     "`tapcheck judge --help` lists what it takes"),
    (["--model=m.pt", "judge", "take001.wav"], "tapcheck: No such option '--model' before "
     "the command — options go after the command's name: `tapcheck judge --model …`"),
    # an option the command has not either: no advice to give it there
    (["--nope", "judge", "take001.wav"], "tapcheck: No such option '--nope' — `tapcheck "
     "--help` lists what it takes"),
    (["judge", "take001.wav", "--model"], "tapcheck judge: Option '--model' requires an "
     "argument — `tapcheck judge --help` lists what it takes"),
    (["frobnicate"], "No such command 'frobnicate'"),
    # click lists a choice's values one per line: joined into this one
    (["import", "x.wav", "--dataset", "d", "--board", "1", "--side", "left"],
     "Missing option '--label'. Choose from: normal, defect"),
    (["judge", "--board", " ", "take001.wav"], "'--board': is empty; name the board"),
    # a board number is held to the range every numeric --board has, for judge too
    (["judge", "--board", "-1", "take001.wav"],
     "Invalid value for '--board': -1 is not in the range 0<=x<=999999"),
    (["judge", "--board", "99999999999999999999", "take001.wav"],
     "Invalid value for '--board': 99999999999999999999 is not in the range 0<=x<=999999")])
def test_a_wrong_option_is_one_line_too(run_cli, args, problem):
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert err.startswith("tapcheck: error: ") and problem in err
    assert "--help` lists what it takes" in err and len(err.strip().splitlines()) == 1


def test_a_clip_given_as_the_board_is_refused(run_cli, tmp_path, monkeypatch):
    """`judge --board take001.wav take002.wav`, the number forgotten: the first clip became the
    board's name and was never judged, so a cracked board could read NORMAL, exit 0."""
    clips = [tmp_path / f"take00{i}.wav" for i in (1, 2)]
    for clip in clips:
        clip.write_bytes(b"")
    code, out, err = run_cli("judge", "--board", clips[0], clips[1])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert (f"'--board': is a file, not a board; --board takes the board's number or serial, "
            f"and the clips follow it, e.g. --board 21 {clips[0]}") in err
    monkeypatch.chdir(tmp_path)
    (tmp_path / "21").write_bytes(b"")  # a number is a board, whatever file bears its name
    (tmp_path / "A-21").mkdir()  # and a serial may name the board's folder
    for board in ("21", "A-21"):
        code, _, err = run_cli("judge", "--board", board, clips[0])
        assert "--board" not in err, err
    # a clip's name that is no file here (another folder's take) is no board either: it was
    # taken as "board take009.WAV" and the next clip judged under it, exit 0
    code, out, err = run_cli("judge", "--board", "take009.WAV", clips[0])
    assert code == 2 and out == "" and ("'--board': is a clip's file name, not a board; "
                                        "--board takes") in err


def test_a_board_folders_name_is_its_number():
    """`judge --board board12` judged a board named "board12" (warning that its folders named
    board 12), and `enroll --board board12` was refused (QA): a folder's name is its number."""
    import click

    from tapcheck.cli.params import BOARD, BoardName

    assert BoardName().convert("board12", None, None) == "12"
    assert BoardName().convert("Board007", None, None) == "7"
    assert BoardName().convert("A-21", None, None) == "A-21"  # a serial stays one
    for typed in ("board 12", "board-12", "board_12", " BOARD12 "):
        assert BoardName().convert(typed, None, None) == "12", typed
    assert BoardName().convert("boards12", None, None) == "boards12"
    with pytest.raises(click.BadParameter):
        BoardName().convert("board12\n", None, None)  # a control character, as in any name
    assert BOARD.convert("board12", None, None) == 12
    with pytest.raises(click.BadParameter):
        BOARD.convert("boardx", None, None)


def test_unknown_dataset(run_cli):
    code, _, err = run_cli("train", "--dataset", "nope")
    assert code == 2 and "no such dataset" in err


def _traceback_then_line(err: str, error: str) -> None:
    """--debug: the traceback ending in the error, then the one line a run without it prints."""
    lines = err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == f"tapcheck.errors.{error}: " + lines[-1].removeprefix("tapcheck: error: ")
    assert lines[-1].startswith("tapcheck: error: ") and "no such dataset" in lines[-1]


def test_debug_shows_the_traceback_and_keeps_the_exit_status(run_cli):
    """With a re-raise Python exited 1, which `judge` means as "anomalous": a script run with
    --debug read a missing model file as a cracked board."""
    code, out, err = run_cli("--debug", "info", "nope")
    assert (code, out) == (2, "")
    _traceback_then_line(err, "DatasetError")
    code, _, err = run_cli("--debug", "judge", "--model", "nope.pt", "x.wav")
    assert code == 2 and err.splitlines()[-1] == (
        "tapcheck: error: nope.pt: model file not found — train one with `tapcheck train` or "
        "pass --model PATH")
    code, _, err = run_cli("--debug", "train", "--epochs", "0")  # click's usage errors too
    assert code == 2 and err.splitlines()[0] == "Traceback (most recent call last):"
    assert err.splitlines()[-1].startswith("tapcheck: error: tapcheck train: Invalid value for")


@pytest.mark.parametrize("args", [("info", "nope", "--debug"), ("info", "--debug", "nope")])
def test_debug_after_the_command_shows_the_traceback_too(run_cli, args):
    """Users put flags last: `--debug` after the command was an unknown option, and debug mode
    turned click's usage error into a traceback about the option."""
    code, _, err = run_cli(*args)
    assert code == 2
    _traceback_then_line(err, "DatasetError")


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "1_0"], ["train", "--seed", "\uff13"], ["synth", "--takes", "\uff15"],
    ["synth", "--seed", "3\u0663"], ["station", "--port", "\uff18\uff13\uff12\uff11"],
    ["compare", "--folds", "\uff12"], ["listen", "--taps-per-board", "\u0662"]])
def test_whole_numbers_are_ascii_digits(run_cli, tmp_path, monkeypatch, args):
    """Python's int() read `--epochs 1_0` as 10 and full-width or Arabic-Indic digits as
    numbers (it ran 10 epochs, seed 3), where --seeds, --board and --since refuse them (QA)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*args)
    assert (code, out) == (2, "") and "is not a whole number" in err, err
    assert list(tmp_path.iterdir()) == []


def test_debug_after_a_double_dash_is_an_argument(run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("info", "--", "--debug")  # a dataset named "--debug"
    # made of the characters the fix names, it was told to use them (QA): the rule is named
    assert code == 2 and err.rstrip().endswith(
        "'--debug' is not a usable dataset name — use ASCII letters, digits, '-' and '_', "
        "beginning with a letter or digit, e.g. bench-1"), err
    # an empty one says so, and its example names no option (judge has no --dataset; QA)
    code, _, err = run_cli("info", "")
    assert code == 2 and err == ("tapcheck: error: '' is not a usable dataset name (it is "
                                 "empty) — use ASCII letters, digits, '-' and '_', "
                                 "beginning with a letter or digit, e.g. bench-1\n")
    code, _, err = run_cli("info", " ")  # spaces only were "empty" too (QA)
    assert code == 2 and "' ' is not a usable dataset name (it is blank)" in err, err
    # a last line break passed "$": import made recordings/newds<LF>, which no name reached (QA)
    code, _, err = run_cli("import", "x.wav", "--dataset", "newds\n", "--board", "1",
                           "--side", "left", "--label", "normal")
    assert code == 2 and "'newds\\n' is not a usable dataset name" in err, err
    assert not any(tmp_path.rglob("newds*"))


def test_train_from_the_cli_writes_one_model_file(tiny_dataset, run_cli, tmp_path):
    out = tmp_path / "m" / "model.pt"
    code, stdout, err = run_cli("train", "--dataset", str(tiny_dataset.root), "--epochs", "1",
                                "--out", out, "--seed", "1")
    assert code == 0, err
    assert out.is_file() and f"saved {out}" in stdout
    assert ", seed 1, " in stdout  # kept in the file, and shown nowhere (QA)
    assert "epoch 1/1" in err  # one line per epoch when not on a terminal
    assert not list(out.parent.glob("*.tmp"))


def test_synth_refuses_to_overwrite(run_cli, tmp_path):
    code, out, _ = run_cli("synth", "--dataset", "s", "--takes", "1")
    assert code == 0 and "wrote 18 takes" in out
    code, _, err = run_cli("synth", "--dataset", "s", "--takes", "1")
    assert code == 2 and "already holds 18 takes" in err


def test_no_dataset_is_made_at_or_around_tapchecks_own_folders(run_cli, monkeypatch, tmp_path):
    """`synth --dataset $TAPCHECK_RECORDINGS` made the recordings folder a dataset (`datasets`
    then listed none), one at the inspections folder stopped listen, and `synth --dataset /`
    wrote board folders into / (QA). Each is refused before anything is written."""
    import os
    from pathlib import Path

    from tapcheck.new_datasets import creatable_path
    from tapcheck.errors import DatasetError

    recordings = Path(os.environ["TAPCHECK_RECORDINGS"])
    (recordings / "bench").mkdir(parents=True)
    inspections = Path(os.environ["TAPCHECK_INSPECTIONS"])
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    (tmp_path / "me").mkdir()
    for given, said in ((recordings, "is the recordings folder"),
                        (inspections, "is the inspection log's folder"),
                        (recordings.parent, f"holds the recordings folder ({recordings})"),
                        (tmp_path / "me", "is your home folder")):
        before = sorted(p.name for p in given.parent.rglob("*"))
        for command in (["synth", "--takes", "1"], ["import", "x.wav", "--board", "1", "--side",
                                                     "left", "--label", "normal"]):
            code, out, err = run_cli(*command, "--dataset", given)
            assert (code, out) == (2, "") and err.startswith(
                f"tapcheck: error: {given}: {said}; a dataset there would mix its takes with "), err
        assert sorted(p.name for p in given.parent.rglob("*")) == before
    with pytest.raises(DatasetError, match="holds the recordings folder|the file system's root"):
        creatable_path("/")  # checked only: never written
    code, out, _ = run_cli("synth", "--dataset", recordings / "new", "--takes", "1")
    assert code == 0 and "wrote 18 takes" in out  # a dataset of its own still is


def test_settings_come_from_the_option_then_the_config_then_the_default(small_train_set, run_cli,
                                                                        tmp_path, one_thread):
    """train --model has no default of its own: a config's [train] model is not overridden."""
    import torch

    config = tmp_path / "ae.toml"
    config.write_text('[train]\nmodel = "ae"\nepochs = 1\n')
    code, out, err = run_cli("train", "--dataset", small_train_set, "--config", config)
    assert code == 0, err
    from tapcheck.paths import model_path

    saved = torch.load(model_path("ae"), weights_only=True)
    assert saved["name"] == "ae" and f"saved {model_path('ae')}" in out
    code, out, err = run_cli("train", "--dataset", small_train_set, "--config", config,
                             "--model", "arcface-shallow")  # the option wins over the file
    assert code == 0 and "arcface-shallow.pt" in out, err


def test_every_numeric_board_option_has_the_logs_range():
    # a board number the inspection log cannot store must be refused by every command alike
    import click

    import tapcheck.cli  # noqa: F401  (registers every command)
    from tapcheck.cli.app import cli
    from tapcheck.manifest import MAX_BOARD

    numeric = {}
    for name, command in cli.commands.items():
        for p in command.params:
            # judge --board also takes a serial; its numbers are held to a range all the same
            number = getattr(p.type, "number", p.type)
            if p.name == "board" and isinstance(number, click.IntRange):
                numeric[name] = (number.min, number.max)
    assert {"import", "record", "listen", "station", "enroll", "log", "judge"} <= set(numeric)
    assert set(numeric.values()) == {(0, MAX_BOARD)}, numeric


def test_a_board_that_is_no_number_is_named_so(run_cli):
    code, _, err = run_cli("log", "--board", "abc")
    assert code == 2 and "'abc' is not a board number (a whole number from 0 to 999999)" in err
    assert "integer range" not in err  # click's words for it


@pytest.mark.parametrize("command, option", [
    ("synth", "--dataset"), ("import", "--dataset"), ("record", "--dataset"),
    ("train", "--dataset"), ("compare", "--dataset"), ("evaluate", "--dataset"),
    ("demo", "--dataset"), ("doctor", "--dataset"), ("judge", "--references")])
def test_every_dataset_option_says_a_path_with_a_slash_is_a_folder(run_cli, command, option):
    """"Dataset name or folder" did not say that ../escape or a/b is a folder from the current
    one, not a name under ./recordings."""
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    text = " ".join(out.split())  # click wraps the help to the terminal's width
    option_help = text[text.index(f"{option} NAME|PATH"):][:400]
    assert ("a name under ./recordings (or $TAPCHECK_RECORDINGS), or a path with a slash to a "
            "dataset folder (./bench, ../data/bench, /srv/bench)") in option_help


def test_a_dataset_with_a_slash_is_a_folder_from_the_current_one(tiny_dataset, run_cli,
                                                                 tmp_path, monkeypatch):
    """What the help says: a/b is ./a/b, not recordings/a/b."""
    import shutil

    shutil.copytree(tiny_dataset.root, tmp_path / "a" / "b")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("info", "a/b")
    assert code == 0 and out.splitlines()[0] == "a/b: 90 takes"


def test_thread_counts_are_read_as_libgomp_reads_them():
    """`01`, `+1` and `1000000` are counts libgomp takes (OMP_NUM_THREADS=01 ran on one
    thread): they were dropped as "not a number", and every core used."""
    from tapcheck.cli.app import _thread_counts_readable

    for good in ("1", "01", "+1", " 2 ", "1000000", "4,2", " 1 , 2"):
        assert _thread_counts_readable(good), good
    for bad in ("", "0", "abc", "-1", "1.5", "1,0", "18446744073709551615", "0x10", "1,"):
        assert not _thread_counts_readable(bad), bad


@pytest.mark.parametrize("value", ["abc", "0", ""])
def test_a_thread_count_libgomp_cannot_read_is_one_warning(value, tmp_path):
    """OMP_NUM_THREADS=abc printed libgomp's own "Invalid value for environment variable" line
    when torch loaded; tapcheck's warning says it instead, and the command runs on."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": value}
    # `models` lists the registry, whose model modules import torch
    result = subprocess.run([sys.executable, "-m", "tapcheck", "models"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "arcface-resnet18" in result.stdout
    assert result.stderr == (f"tapcheck: warning: OMP_NUM_THREADS={value!r} is not a number of "
                             "threads: ignored, every core used — unset it, or set a positive "
                             "number such as OMP_NUM_THREADS=1\n")


def test_a_folder_with_a_line_break_prints_on_one_line(run_cli, tmp_path, monkeypatch):
    """`datasets` and `doctor` printed such a folder in two lines, which one_line forbids."""
    folder = tmp_path / "nl\ndir"
    folder.mkdir()
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(folder))
    code, out, _ = run_cli("datasets")
    assert code == 0 and out == f"no datasets in {tmp_path}/nl\\ndir/ — try `tapcheck synth " \
                                 "--dataset demo`\n"
    monkeypatch.setenv("TAPCHECK_CACHE", str(folder))
    code, out, _ = run_cli("doctor")
    assert "nl\\ndir" in out and not any(line.startswith("dir") for line in out.splitlines())


def test_a_missing_default_dataset_is_said_to_be_the_default(run_cli, tmp_path, monkeypatch):
    """`train` without --dataset, where only `bench` was recorded, said "recordings/demo: no
    such dataset … make one with `tapcheck synth`", of a dataset the user never named
    (new-user trial); so did evaluate and compare."""
    from tapcheck.datasets import Dataset

    recordings = tmp_path / "recordings"
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(recordings))
    for command in (["train"], ["evaluate", "--model", tmp_path / "m.pt"],
                    ["compare", "--models", "ae"]):
        code, out, err = run_cli(*command)
        assert (code, out) == (2, "")
        assert err == (f"tapcheck: error: {recordings / 'demo'}: no --dataset given, and the "
                       "default dataset, demo, is not there — make it with `tapcheck synth "
                       "--dataset demo`, or record or import takes of your own and pass "
                       "--dataset NAME\n"), command
    Dataset.create(recordings / "bench").write_manifest()
    code, _, err = run_cli("train")
    assert code == 2 and err.endswith("is not there — pass --dataset NAME (datasets here: "
                                      "bench), or make the demo dataset with `tapcheck synth "
                                      "--dataset demo`\n"), err
    # named, it is no default: said as any missing dataset
    code, _, err = run_cli("train", "--dataset", "demo")
    assert code == 2 and ": no such dataset (no manifest.csv) — datasets here: bench" in err


def test_datasets_says_when_tapcheck_recordings_names_no_folder(run_cli, tmp_path, monkeypatch):
    """QA: a mistyped $TAPCHECK_RECORDINGS read "no datasets in /nonexistent/" as if empty,
    and advised only a synth into the misspelled folder."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path / "recordnigs"))
    code, out, err = run_cli("datasets")
    assert (code, err) == (0, "")
    assert out == (f"no datasets: $TAPCHECK_RECORDINGS names {tmp_path}/recordnigs, which does "
                   "not exist — check its spelling, or make the first dataset there (tapcheck "
                   "synth --dataset demo)\n")
    assert not (tmp_path / "recordnigs").exists()


def test_tapcheck_alone_prints_its_help(run_cli):
    """It printed the whole help as one 1,777-character error line (QA)."""
    code, out, err = run_cli()
    assert code == 2 and err == ""
    assert out.startswith("Usage: tapcheck [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  judge " in out and len(out.splitlines()) > 20


def test_datasets_says_when_the_recordings_folder_is_a_dataset(tiny_dataset, run_cli,
                                                               monkeypatch):
    """QA: it said "no datasets in recordings/demo/ — try `tapcheck synth --dataset demo`",
    advice that then failed."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tiny_dataset.root))
    code, out, err = run_cli("datasets")
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {tiny_dataset.root}: is a dataset (it holds "
                   "manifest.csv), not the folder of datasets — set $TAPCHECK_RECORDINGS to the "
                   f"folder that holds it, {tiny_dataset.root.parent}\n")


def test_a_reader_gone_away_is_status_141_not_1(tmp_path):
    """`tapcheck doctor | head -1` exited 1, doctor's "problems found" (judge's "anomalous"),
    silently: click answers a broken pipe with exit 1 (QA)."""
    import subprocess
    import sys

    command = subprocess.Popen([sys.executable, "-m", "tapcheck", "models"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()  # before the command writes: torch takes a second to import
    err = command.stderr.read()
    assert command.wait(timeout=60) == 141 and err == b""


def test_standard_output_on_a_full_disk_is_one_line_and_status_2(tiny_model, tiny_dataset,
                                                                 tmp_path):
    """`judge … > /dev/full` (a file on a full disk) ended in a traceback and status 1, judge's
    "anomalous": a script read a full disk as a verdict (QA). A short report and a long one
    (click.echo flushes each line, so both fail in it)."""
    import subprocess
    import sys

    clips = [str(tiny_dataset.path_of(t)) for t in tiny_dataset.takes[:40]]
    line = ("tapcheck: error: standard output: cannot be written (No space left on device) — "
            "the disk is full; free some space and try again (or send the output elsewhere)\n")
    for args in (["models"], ["judge", "--json", "--model", str(tiny_model), *clips]):
        with open("/dev/full", "w") as full:
            result = subprocess.run([sys.executable, "-m", "tapcheck", *args], cwd=tmp_path,
                                    stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(line) and "Traceback" not in result.stderr, result.stderr


def test_a_command_started_with_standard_output_closed_runs(tmp_path):
    """`tapcheck models >&-` (a daemon, some cron set-ups): Python's sys.stdout is None, and
    flushing it to tell a broken pipe apart ended in a traceback, exit 1 (review)."""
    import shlex
    import subprocess
    import sys

    result = subprocess.run(["sh", "-c", f"{shlex.quote(sys.executable)} -m tapcheck models >&-"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, "")


def test_train_states_no_rate_for_a_threshold_from_too_few_clips(tmp_path, run_cli):
    """From 1-2 calibration clips the threshold is their highest; the saved line said "at 5%
    false alarms" of it while judge said the truth (QA)."""
    code, _, err = run_cli("import", *knock_files("wood")[:6], "--dataset", "few", "--board", "1",
                           "--side", "left", "--label", "normal")
    assert code == 0, err
    code, out, err = run_cli("train", "--dataset", "few", "--model", "arcface-shallow",
                             "--epochs", "1", "--out", tmp_path / "few.pt")
    assert code == 0, err
    [saved] = [ln for ln in out.splitlines() if ln.startswith("saved ")]
    assert "calibration clip(s), too few for a rate)" in saved and "false alarms" not in saved
    assert "the stated rate is a guess" in err


def test_a_dataset_named_with_a_line_break_cannot_forge_a_row_of_datasets(tmp_path, run_cli,
                                                                          monkeypatch):
    home = tmp_path / "recordings"
    (home / "evil\ndemo  999").mkdir(parents=True)
    (home / "evil\ndemo  999" / "manifest.csv").write_text(
        "path,board,side,label,group,split,take,recorded_at,sample_rate,duration_s,source,"
        "peak_dbfs\n")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(home))
    code, out, err = run_cli("datasets")
    assert code == 0, err
    assert "evil\\ndemo  999" in out and not any(ln.startswith("demo") for ln in out.splitlines())


def test_a_command_stopped_by_ctrl_c_says_so_in_one_line(tiny_model, tiny_dataset, run_cli,
                                                         monkeypatch):
    """Ctrl-C (or `kill`) inside a command without a sentence of its own: click answered the
    KeyboardInterrupt with an empty line before the command's last word (QA), which read
    "\\ntapcheck: interrupted"."""
    from tapcheck import judgment

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # where a Ctrl-C meets judge: amid its clips

    monkeypatch.setattr(judgment, "judge_clips", stopped)
    clip = tiny_dataset.path_of(tiny_dataset.takes[0])
    code, out, err = run_cli("judge", "--model", tiny_model, clip)
    assert (code, out, err) == (130, "", "tapcheck: interrupted\n")


def test_a_ctrl_c_a_background_job_ignores_stays_ignored(tmp_path):
    """A script's `tapcheck synth … &` inherits an ignored Ctrl-C: the Ctrl-C meant for the
    script's foreground job stopped it, and took back what it had written (QA). It runs on."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "background"
    proc = subprocess.Popen([sys.executable, "-m", "tapcheck", "synth", "--dataset", root,
                             "--takes", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    while len(list(root.glob("board*/*/take*.wav"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # amid its takes
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "wrote 36 takes" in out, err
