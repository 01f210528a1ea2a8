"""Settings: dataclass defaults, TOML files with exactly their keys, overrides."""

import pytest

from tapcheck.config import Config, default_toml
from tapcheck.configfile import load_config
from tapcheck.errors import ConfigError

from .conftest import ROOT


def test_default_toml_is_exactly_the_defaults():
    assert load_config(ROOT / "configs" / "default.toml") == Config()


def test_fp32_toml_changes_only_bf16():
    """configs/fp32.toml, which the README points to, turns bfloat16 off and nothing else."""
    assert load_config(ROOT / "configs" / "fp32.toml") == Config().replace("train", bf16=False)


def test_wide_stretch_toml_changes_only_the_stretch_and_calibration():
    """configs/wide-stretch.toml (docs/new-boards.md, "Board size") is the measured recipe for
    unseen boards: ±20 % stretch, hold-out threshold, everything else the defaults."""
    assert load_config(ROOT / "configs" / "wide-stretch.toml") == Config().replace(
        "train", freq_stretch=0.2, calibration="hold-out")


def test_new_boards_toml_is_wide_stretch_with_the_decay_scorer_on_arcface_lite():
    """configs/new-boards.toml (docs/new-boards.md, "Decay", "Threshold fit") is the recipe the
    README names."""
    wide = load_config(ROOT / "configs" / "wide-stretch.toml")
    assert load_config(ROOT / "configs" / "new-boards.toml") == wide.replace(
        "train", model="arcface-lite", scorer="knn-decay", threshold_fit="lognormal")


@pytest.mark.parametrize("key, value, problem", [
    ("board_rule", '"mean"', "must be one of: 'vote', 'median'"),
    ("threshold_fit", '"weibull"', "must be one of: 'gamma', 'lognormal'"),
    # in another case: no word on what was meant (QA)
    ("optimizer", '"Adam"', r"must be one of: 'sgd', 'adam' \(did you mean 'adam'\?\)"),
    ("model", '"ARCFACE-LITE"', r"did you mean 'arcface-lite'\?")])
def test_board_rule_and_threshold_fit_take_registered_names_only(tmp_path, key, value, problem):
    path = tmp_path / "c.toml"
    path.write_text(f"[train]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_toml_overrides_and_types(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[features]\nshift_frames = 3\n[train]\nepochs = 2\nlr = 1\n")
    config = load_config(path)
    assert config.features.shift_frames == 3
    assert config.train.epochs == 2
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.features.n_fft == 1024  # untouched keys keep their defaults


@pytest.mark.parametrize("text, match", [
    ("[features]\nshift_frame = 3\n", "unknown key 'features.shift_frame' — did you mean "
     "'features.shift_frames'\\? valid keys here: features.n_fft, "),
    ("[feature]\nshift_frames = 3\n",
     "unknown key 'feature' — did you mean 'features'\\? valid keys here: "),
    # a key written above every header belongs to a table: which one is said
    ("epochs = 3\n[train]\nlr = 0.1\n", "unknown key 'epochs' — 'epochs' is a key of "
     "\\[train\\]: write it under that header; valid keys here: audio, features, train, "),
    ("[train]\nknn-k = 3\n", "unknown key 'train.knn-k' — did you mean 'train.knn_k'\\?"),
    ("[train]\nn_fft = 512\n", "unknown key 'train.n_fft' — 'n_fft' is a key of \\[features\\]: "
     "write it under that header; valid keys here: train.model, "),
    ("[train]\nepochs = 'ten'\n", "'train.epochs' must be int"),
    # a number in quotes: the fix says how to write it
    ("[train]\nepochs = '10'\n", "must be int, not '10' — write it without quotes: epochs = 10"),
    ("[train]\nmodel = 'no-such-model'\n", "'train.model' must be one of: 'ae', "),
    # settings that make every clip unusable are one error about the settings
    ("[audio]\nsr = 1000\n", "the crops need 16128 samples after the strike"),
    ("[features]\nn_fft = 65536\nhop_length = 8192\n", "more than a clip of duration_s 3 s"),
    # each within its range, together 97 GB per clip: ran out of memory (a traceback, exit 1)
    ("[features]\nn_fft = 65536\nhop_length = 1\n", "n_fft 65536 with hop_length 1 at "
     "\\[audio\\] sr 44100 Hz make 1,445.1 million spectrogram values per second of audio, "
     "more than the 4 million a clip may take \\(a 3 s clip: 34.7 GB\\)"),
    ("[train]\ncalibration = 'hold-out'\ncalib_fraction = 0\n",
     "'train.calib_fraction': 0 holds out no takes"),
    ("[train]\nema_decay = 0.99\npatience = 3\n",
     "'train.ema_decay': 0.99 averages the weights over the whole run, and patience 3"),
    ("[train\n", "not valid TOML"),
    ("[features]\npre_frames = 500\n", "more than half of a crop's n_frames"),
    ("train = 3\n", "'train' must be a table, not int 3 — write its settings under a \\[train\\]"),
    # past what any clip is read at, or what a model can embed in (QA)
    ("[audio]\nsr = 705600\n", "'audio.sr' must be between 1000 and 384000"),
    ("[train]\nembedding_dim = 1\n", "'train.embedding_dim' must be between 2 and 65536"),
])
def test_bad_config_files(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes("\ufeff[train]\nepochs = 2\n".encode())
    assert load_config(path).train.epochs == 2


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_an_empty_config_option_names_itself(run_cli):
    """`--config ""` (an unset shell variable) said `.: is a folder` (QA)."""
    for command in ("train", "doctor", "listen"):
        code, out, err = run_cli(command, "--config", "")
        assert (code, out) == (2, "") and err == (
            "tapcheck: error: --config is empty: it names no config file — give a TOML file, "
            "or one of tapcheck's own by name (e.g. --config new-boards), or leave the option "
            "out for the defaults\n")


def test_a_very_long_name_or_key_is_cut_in_its_error(tmp_path):
    """A 100 000-character model name or key was echoed whole: a 100 kB error "line" (QA)."""
    for text in (f'[train]\nmodel = "{"x" * 100_000}"\n', f'[train]\n{"k" * 100_000} = 1\n'):
        path = tmp_path / "long.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(path)
        said = str(e.value)
        assert len(said) < 1500, said[:300]
        assert "… (100000 characters)" in said or "… (100006 characters)" in said, said[:300]


def test_replace_ignores_none_and_round_trips():
    config = Config().replace("train", epochs=3, lr=None)
    assert config.train.epochs == 3 and config.train.lr is None
    assert Config.from_dict(config.to_dict()) == config


def test_the_default_model_is_registered():
    """The model rule passes the default unchecked (no torch import for `tapcheck log`)."""
    from tapcheck.config import TrainConfig
    from tapcheck.models import MODELS

    assert TrainConfig().model in MODELS


@pytest.mark.parametrize("rate,ok", [(8000, False), (8613, False), (8614, True), (0, True),
                                     (48000, True)])
def test_a_device_rate_below_what_judge_takes_in_a_file_is_refused(tmp_path, rate, ok):
    # judge refuses a clip sampled below 8614 Hz (it holds nothing of the crop's top bins);
    # listen and record took such a rate from the microphone and judged empty bands
    path = tmp_path / "slow.toml"
    path.write_text(f"[stream]\ndevice_sr = {rate}\n")
    if ok:
        assert load_config(path).stream.device_sr == rate
        return
    with pytest.raises(ConfigError, match=(
            rf"slow\.toml: 'stream\.device_sr' {rate} Hz records sound up to {rate / 2:g} Hz "
            r"only; tapcheck listens up to 4307 Hz — set device_sr to 0 \(44100 Hz when the "
            r"microphone has it\), or to a rate the microphone has of at least 8614 Hz")):
        load_config(path)


def test_a_missing_config_named_as_in_the_docs_points_at_the_checkouts_copy(tmp_path,
                                                                            monkeypatch):
    """`--config configs/new-boards.toml` outside the checkout was told to "start from
    configs/default.toml", a file as missing there as the first; the fix names the one
    tapcheck ships, by its name and its full path."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("configs/new-boards.toml")
    assert e.value.fix == ("check the path; tapcheck's own is --config new-boards "
                           f"({ROOT / 'tapcheck/configs/new-boards.toml'})")
    for other in ("mine.toml", "pyproject.toml", "sub/new-boards"):  # no config of tapcheck's
        with pytest.raises(ConfigError) as e:
            load_config(other)
        assert e.value.fix == ("check the path, or give one of tapcheck's own by name "
                               "(default, fp32, new-boards, wide-stretch: e.g. --config "
                               "new-boards)")


def test_tapcheck_s_own_configs_are_given_by_name_from_any_folder(tmp_path, monkeypatch,
                                                                  run_cli):
    """An installed tapcheck (a wheel) has no checkout whose configs/new-boards.toml a user
    could give, and the wheel held no configs at all (QA): they are installed with it, and a
    name gives one from any folder. A file of that name here is the user's, and wins."""
    from tapcheck.configfile import config_file

    monkeypatch.chdir(tmp_path)
    recipe = load_config(ROOT / "configs" / "new-boards.toml")
    assert recipe != Config()
    assert load_config("new-boards") == load_config("new-boards.toml") == recipe
    assert config_file("new-boards") == ROOT / "tapcheck" / "configs" / "new-boards.toml"
    (tmp_path / "new-boards").write_text("[train]\nepochs = 7\n")  # the user's own
    assert load_config("new-boards").train.epochs == 7
    code, out, err = run_cli("doctor", "--config", "fp32")
    assert code == 0, err


def test_a_wheel_holds_tapcheck_s_own_configs_and_pages(tmp_path):
    """Built as a plant's IT would install it: the wheel held no configs, so the README's
    --config new-boards could not be followed (QA). Built from a copy: a build writes build/
    and *.egg-info beside its sources."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "tapcheck", src / "tapcheck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("tapcheck-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"tapcheck/configs/{p.name}" for p in (ROOT / "configs").glob("*.toml")} <= names
    assert {f"tapcheck/web/{p.name}" for p in (ROOT / "tapcheck" / "web").iterdir()} <= names


def test_a_bad_value_points_at_the_default_config_from_any_folder(tmp_path, monkeypatch):
    """A bad key's fix named `configs/default.toml`, which is there only in the checkout: from
    any other folder it is named by its full path."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nepochs = "x"\n')
    for folder, shown in ((ROOT, "configs/default.toml"),
                          (tmp_path, str(ROOT / "tapcheck/configs/default.toml"))):
        monkeypatch.chdir(folder)
        with pytest.raises(ConfigError) as e:
            load_config(bad)
        assert e.value.fix == f"{shown} shows every key with a value of its type"


def test_a_config_saved_in_latin1_is_told_to_be_saved_as_utf8(tmp_path):
    """It said "not valid TOML ('utf-8' codec can't decode byte 0xe9 …) — fix the syntax"."""
    path = tmp_path / "latin.toml"
    path.write_bytes("[train]\n# caf\u00e9\nepochs = 3\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert (e.value.problem, e.value.fix) == (
        "is not UTF-8 text (byte 0xe9 at byte 13; saved as Latin-1 or Windows-1252?)",
        "save it as UTF-8, as TOML files are")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # the offset counts the BOM too
    with pytest.raises(ConfigError, match="byte 0xe9 at byte 16;"):
        load_config(path)
    # a WAV given as the config (NUL bytes, no text): not "saved as Latin-1?"; nor a binary
    # whose first bytes happen to be UTF-8 "not valid TOML"
    for binary in (b"RIFF$\xac\x00\x00WAVEfmt ", b"PK\x03\x04\x00\x00epochs = 3"):
        path.write_bytes(binary)
        with pytest.raises(ConfigError) as e:
            load_config(path)
        assert (e.value.problem, e.value.fix) == (
            "is a binary file, not a config file",
            f"pass a .toml settings file such as {default_toml()}")
    path.write_bytes("[train]\n".encode("utf-16"))  # Notepad's "Unicode": no Latin-1 guess
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.problem == "is UTF-16 text, not UTF-8"


@pytest.mark.parametrize("text, problem", [
    ("[train]\nlr = 1" + "0" * 400 + "\n", "'train.lr' is too large a number (401 digits)"),
    ("[train]\nlr = 1" + "0" * 5000 + "\n", "holds a number of more than 4300 digits"),
    ("[train]\nfar = " + "[" * 5000 + "]" * 5000 + "\n", "nests lists or tables too deeply"),
])
def test_values_the_toml_reader_or_float_cannot_take_are_one_line(tmp_path, text, problem):
    """They ended in OverflowError, ValueError (Python's 4300-digit limit) and RecursionError
    tracebacks, exit 1."""
    path = tmp_path / "odd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.problem == problem


def test_a_config_file_too_large_to_be_one_is_not_read(tmp_path):
    """Read whole, a 20 GB (sparse) file ran out of memory."""
    path = tmp_path / "sparse.toml"
    with open(path, "wb") as f:
        f.truncate(20 * 10**9)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.problem == "is 20000 MB; a config file is a few kB"


@pytest.mark.parametrize("command", [["train"], ["listen"], ["compare"]])
def test_a_second_config_file_is_refused_not_read_over_the_first(run_cli, tmp_path, command):
    """A second --config replaced the first without a word: stacked with a site's file, the
    first file's settings (a NaN learning rate here) were lost, and training ran (QA)."""
    (tmp_path / "a.toml").write_text("[train]\nlr = nan\n")
    (tmp_path / "b.toml").write_text("[train]\nepochs = 1\n")
    code, out, err = run_cli(*command, "--config", tmp_path / "a.toml", "--config",
                             tmp_path / "b.toml")
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: --config given 2 times ({tmp_path / 'a.toml'}, "
                   f"{tmp_path / 'b.toml'}); tapcheck reads one config file — put the settings "
                   "in one file (copy the sections of one into the other) and give that one\n")
