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
