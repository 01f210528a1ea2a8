"""Explanation pictures (`judge --explain-dir`): a later run refreshes the picture of the same
clip, and keeps every other file, another clip's picture of the same name too."""

from .conftest import training_recordings
from .test_explain import _write_taps


def test_a_later_run_keeps_another_clips_picture_of_the_same_name(separating_model, tmp_path,
                                                                   run_cli, monkeypatch):
    """board13/right/take003.wav, then board08/right/take003.wav: the second picture takes the
    next name and the first stays; the first clip judged again (spelt otherwise) refreshes its
    own picture in place."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    first, second = (_write_taps(tmp_path / folder, [(number, side, 50)])[0].rename(
        tmp_path / folder / "take003.wav") for folder, number, side in (
            ("board13", 5, "left"), ("board08", 6, "right")))
    why = tmp_path / "why"
    code, _, err = run_cli("judge", "--model", separating_model, first, "--explain-dir", why)
    assert code == 1, err
    kept = (why / "take003.png").read_bytes()

    code, out, err = run_cli("judge", "--model", separating_model, second, "--explain-dir", why)
    assert code == 1, err
    assert (why / "take003.png").read_bytes() == kept
    assert (why / "take003-2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = tmp_path / "board08" / ".." / "board13" / "take003.wav"
    code, out, err = run_cli("judge", "--model", separating_model, again, "--explain-dir", why,
                             "--json")
    assert code == 1 and f'"picture": "{why / "take003.png"}"' in out, err
    assert sorted(p.name for p in why.iterdir()) == ["take003-2.png", "take003.png"]


def test_explain_dir_in_a_dataset_folder_is_refused_before_judging(separating_model, tmp_path,
                                                                   run_cli):
    """A picture beside a dataset's takes mixes its files with them (compare --out refuses the
    same folders): one line, exit 2, nothing written, before any clip is judged."""
    from tapcheck.datasets import Dataset

    dataset = Dataset.create(tmp_path / "demo")
    dataset.write_manifest()
    before = sorted(p.name for p in dataset.root.iterdir())
    clip = _write_taps(tmp_path, [(5, "left", 50)])[0]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--explain-dir",
                             dataset.root)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {dataset.root}: is a dataset folder (it holds manifest.csv);"
                   " explanation pictures would mix with its takes — choose another "
                   "--explain-dir, e.g. explanations\n")
    assert sorted(p.name for p in dataset.root.iterdir()) == before == ["manifest.csv"]
