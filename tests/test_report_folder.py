"""A comparison's report folder, checked before any work (tapcheck/report_folder.py)."""

import warnings

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
