"""Where a new dataset may be made (tapcheck/new_datasets.py)."""

import shutil

import pytest

from tapcheck.errors import DatasetError
from tapcheck.new_datasets import creatable_path


def test_a_new_dataset_around_another_or_among_tapchecks_own_files_is_refused(
        tiny_dataset, tmp_path, monkeypatch):
    """A dataset made around another (doctor then called the inner one's takes strays to
    delete), or inside the log's clips or the feature cache, which tapcheck fills and prunes
    itself (QA)."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_dataset.root, tmp_path / "ext" / "inner")
    with pytest.raises(DatasetError, match=r"^ext: holds dataset ext/inner \(its manifest.csv\); "
                                           r"a new dataset around it would take its takes for "
                                           r"strays — add the takes to ext/inner itself"):
        creatable_path("./ext")
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path / "insp"))
    monkeypatch.setenv("TAPCHECK_CACHE", str(tmp_path / "cache"))
    for where, what in (("insp/clips/d", "the inspection log's clips"),
                        ("insp/explanations", "the station's explanation pictures"),
                        ("cache/sub", "the feature cache")):
        with pytest.raises(DatasetError, match=f"lies inside {what} "):
            creatable_path(f"./{where}")
    # the log's folder itself may be the working one: a dataset beside the log is kept
    monkeypatch.setenv("TAPCHECK_INSPECTIONS", str(tmp_path))
    assert creatable_path("./bench").resolve() == tmp_path / "bench"
