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
