"""Where tapcheck keeps things, and the commands it prints about them."""

from __future__ import annotations

import os

from tapcheck.paths import model_command, model_path


def test_model_command_names_every_model_file_but_the_default():
    """Advice a user runs as written must open the model file it is about: the default one
    the command finds alone, any other only with --model (quoted for a shell)."""
    default = model_path()
    assert model_command(default, "enroll", "--undo") == "tapcheck enroll --undo"
    assert model_command(None, "evaluate") == "tapcheck evaluate"
    # the same file spelt otherwise is still the default
    spelt = os.path.relpath(default.parent, os.getcwd()) + "/./" + default.name
    assert model_command(spelt, "judge", "a.wav") == "tapcheck judge a.wav"
    assert model_command("models/enr.pt", "enroll", "--undo") == \
        "tapcheck enroll --model models/enr.pt --undo"
    assert model_command(model_path("arcface-lite"), "evaluate") == \
        f"tapcheck evaluate --model {model_path('arcface-lite')}"
    assert model_command("my models/m.pt", "enroll", "--list") == \
        "tapcheck enroll --model 'my models/m.pt' --list"


def test_a_tilde_in_a_folder_variable_is_the_home_folder(tmp_path, monkeypatch, run_cli):
    """Quoted, or from a systemd unit's Environment=, "~/insp" reached tapcheck as written:
    listen made a folder named "~" in the working directory and logged there."""
    from tapcheck.paths import cache_home, inspections_home, models_home, recordings_home

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable, home in [("TAPCHECK_RECORDINGS", recordings_home),
                           ("TAPCHECK_MODELS", models_home),
                           ("TAPCHECK_INSPECTIONS", inspections_home),
                           ("TAPCHECK_CACHE", cache_home)]:
        monkeypatch.setenv(variable, "~/tap")
        assert home() == tmp_path / "home" / "tap", variable
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", "~/insp")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("log")
    assert code == 0 and out.startswith(f"no inspections in {tmp_path / 'home' / 'insp'}"), err
    assert not (tmp_path / "~").exists()
    monkeypatch.setenv("TAPCHECK_RECORDINGS", "~nosuchuser-tapcheck/rec")  # was a traceback
    code, out, err = run_cli("datasets")
    assert (code, out) == (2, "") and err == (
        "tapcheck: error: $TAPCHECK_RECORDINGS is ~nosuchuser-tapcheck/rec, whose ~ names no "
        "home folder here — set TAPCHECK_RECORDINGS to a folder's path\n"), err


def test_no_home_folder_known_leaves_the_cache_unwritten_and_every_command_working(
        tmp_path, monkeypatch, run_cli):
    """A container run under a uid with no user entry and no $HOME: ``Path.home`` raises, and
    synth, train and doctor ended in "RuntimeError: Could not determine home directory" (the
    default feature cache is in the home folder). The lookup that fails is the real one's:
    the user database has no entry for this uid."""
    import pwd
    from pathlib import Path

    import pytest

    from tapcheck.errors import TapcheckWarning
    from tapcheck.featurecache import FeatureCache

    from .conftest import write_tone

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("TAPCHECK_CACHE", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError):
        Path.home()  # the condition is real: Python finds no home folder
    code, out, err = run_cli("synth", "--dataset", "./d", "--takes", "2")
    assert code == 0 and out.startswith("wrote 36 takes"), err
    code, out, err = run_cli("doctor", "--dataset", "./d")
    assert code == 0, err
    assert ("feature cache folder ~/.cache/tapcheck: is the default in the home folder, and no "
            "home folder is known here (no $HOME, no user entry for this user); the commands "
            "compute the crops each time — set TAPCHECK_CACHE to a folder you may write to") \
        in out
    with pytest.warns(TapcheckWarning, match="feature cache not used: ~/.cache/tapcheck: is "
                                             "the default in the home folder"):
        assert FeatureCache().get(write_tone(tmp_path / "a.wav")).shape[0] == 2
    assert not (tmp_path / "~").exists()  # nothing written to a folder named "~"
