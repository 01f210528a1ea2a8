"""A comparison's report folder, checked before any work (tapcheck/report_folder.py)."""

import warnings
from pathlib import Path

import pytest

from tapcheck.errors import TapcheckWarning
from tapcheck.report_folder import check_report_folder


def test_a_new_report_among_other_files_is_warned_of(tmp_path):
    """compare --out cfg wrote index.html, figures, models/ and cells/ among a user's configs
    without a word, where import says so of a new dataset (QA)."""
    mine = tmp_path / "cfg"
    mine.mkdir()
    (mine / "decay.toml").write_text("[train]\n")
    with pytest.warns(TapcheckWarning) as said:
        check_report_folder(mine, ["ae"])
    assert [str(w.message) for w in said] == [
        f"{mine}: holds 1 other file(s) or folder(s) (e.g. decay.toml); the report's files, "
        "models/ and cells/ go in beside them — to keep them apart, give a new folder instead, "
        "e.g. --out reports/<dataset>"]
    (mine / "decay.toml").unlink()
    (mine / ".hidden").write_text("")  # an empty folder, or only hidden files: no word
    with warnings.catch_warnings():
        warnings.simplefilter("error", TapcheckWarning)
        check_report_folder(mine, ["ae"])
        check_report_folder(tmp_path / "new", ["ae"])
        # a report's own lock file, as compare holds it: every compare into a new folder
        # warned of metrics.json.lock (QA)
        (mine / "metrics.json.lock").write_text("")
        check_report_folder(mine, ["ae"])


def test_the_models_folder_takes_no_report(tmp_path, monkeypatch):
    """compare --out models wrote index.html, figures and cells/ among the user's model files,
    with a warning (three times), as it refuses the recordings folder (QA)."""
    from tapcheck.errors import StorageError

    monkeypatch.setenv("TAPCHECK_MODELS", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    for given in ("models", "./models/", tmp_path / "models"):
        with pytest.raises(StorageError) as e:
            check_report_folder(given, ["ae"])
        assert str(e.value) == (f"{Path(given)}: is the models folder, which holds the model files "
                                "train writes; a report would mix its files with them — choose "
                                "another --out, e.g. reports/<dataset>")
