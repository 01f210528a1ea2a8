"""Explanation pictures (`judge --explain-dir`): a later run refreshes the picture of the same
clip, and keeps every other file, another clip's picture of the same name too."""

import dataclasses

from .conftest import separating_taps, training_recordings


def test_a_later_run_keeps_another_clips_picture_of_the_same_name(separating_model, tmp_path,
                                                                   run_cli, monkeypatch):
    """board13/right/take003.wav, then board08/right/take003.wav: the second picture takes the
    next name and the first stays; the first clip judged again (spelt otherwise) refreshes its
    own picture in place."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    first, second = (separating_taps(tmp_path / folder, [(number, side, 50)])[0].rename(
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
    clip = separating_taps(tmp_path, [(5, "left", 50)])[0]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--explain-dir",
                             dataset.root)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {dataset.root}: is a dataset folder (it holds manifest.csv);"
                   " explanation pictures would mix with its takes — choose another "
                   "--explain-dir, e.g. explanations\n")
    assert sorted(p.name for p in dataset.root.iterdir()) == before == ["manifest.csv"]


def test_a_folder_inside_a_dataset_or_the_recordings_folder_is_refused(tmp_path, monkeypatch):
    """Only a dataset's own folder was refused: `--explain-dir recordings/demo/board13/left`
    wrote take001.png among the takes, `--explain-dir recordings` into the recordings folder.
    A folder inside a dataset (made there, or a link to one) is refused alike; compare --out
    too, which refuses the same folders."""
    import pytest

    from tapcheck.report_folder import check_report_folder
    from tapcheck.datasets import Dataset
    from tapcheck.errors import StorageError
    from tapcheck.paths import recordings_home
    from tapcheck.pictures import check_picture_folder

    monkeypatch.chdir(tmp_path)
    dataset = Dataset.create(recordings_home() / "demo")
    dataset.write_manifest()
    board = dataset.root / "board13" / "left"
    board.mkdir(parents=True)
    (tmp_path / "link").symlink_to(board)
    fix = " — choose another --explain-dir, e.g. explanations"
    with pytest.raises(StorageError) as refused:
        check_picture_folder(board)
    assert str(refused.value) == (f"{board}: is inside dataset {dataset.root} (its folder holds "
                                  f"manifest.csv); explanation pictures would mix with its takes"
                                  f"{fix}")
    for folder in (dataset.root / "board13" / "new" / "pics", tmp_path / "link"):
        with pytest.raises(StorageError, match="is inside dataset"):
            check_picture_folder(folder)
    with pytest.raises(StorageError) as refused:
        check_picture_folder(recordings_home())
    assert str(refused.value) == (f"{recordings_home()}: is the recordings folder, which holds "
                                  f"the datasets; pictures there would mix with the datasets' "
                                  f"folders{fix}")
    with pytest.raises(StorageError, match="is inside dataset .* a report would mix"):
        check_report_folder(board, ["ae"])
    check_picture_folder(tmp_path / "explanations")  # beside the recordings: no error
    # a dataset kept outside the recordings folder holds takes too; but a manifest.csv of
    # something else far above a folder does not make it a dataset's
    elsewhere = Dataset.create(tmp_path / "srv" / "bench")
    elsewhere.write_manifest()
    with pytest.raises(StorageError, match="is inside dataset"):
        check_picture_folder(elsewhere.root / "board01" / "left" / "pics")
    check_picture_folder(elsewhere.root / "a" / "b" / "c" / "pics")
    # outside the recordings folder a manifest.csv counts only with a tapcheck manifest's
    # header: a parts list in the working folder made ./inspections "inside dataset ."
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "manifest.csv").write_text("part,qty\nbolt,3\n")
    check_picture_folder(tmp_path / "parts" / "pics")
    (tmp_path / "parts" / "manifest.csv").write_text(
        (elsewhere.root / "manifest.csv").read_text())
    with pytest.raises(StorageError, match="is inside dataset"):
        check_picture_folder(tmp_path / "parts" / "pics")
    assert sorted(p.name for p in board.parent.iterdir()) == ["left"]
    assert not (dataset.root / "board13" / "new").exists()


def test_an_empty_explain_dir_is_refused(tmp_path, monkeypatch, run_cli):
    """`--explain-dir ""` named the current folder and wrote pictures there without a word:
    one line, exit 2, before the model is read or any clip judged."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("judge", "--model", tmp_path / "none.pt", tmp_path / "a.wav",
                             "--explain-dir", "")
    assert code == 2 and out == ""
    assert err == ("tapcheck: error: --explain-dir is empty, and an empty path names the current "
                   "folder — name the folder for the pictures, e.g. --explain-dir explanations\n")
    assert list(tmp_path.iterdir()) == []


def test_an_explain_dir_that_is_a_file_is_named_as_one(tmp_path, run_cli):
    """`--explain-dir some.wav` said "cannot be written (File exists)", and only once a clip
    was anomalous, after judging: it says the path is a file, before the model is read."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    for given, kind in ((clip, "an audio file"), (tmp_path / "notes.txt", "a file")):
        given.write_bytes(given.read_bytes() if given.exists() else b"notes\n")
        before = given.read_bytes()
        code, out, err = run_cli("judge", "--model", tmp_path / "none.pt", clip, "--explain-dir",
                                 given)
        assert code == 2 and out == ""
        assert err == (f"tapcheck: error: {given}: is {kind}, not a folder; --explain-dir names "
                       "the folder the pictures go in — choose another --explain-dir, e.g. "
                       "explanations\n")
        assert given.read_bytes() == before


def test_a_full_disk_under_the_pictures_leaves_every_verdict(separating_model, tmp_path):
    """--explain-dir on a full disk printed no verdict at all, only the picture's error (the
    anomalous clips went unreported): every verdict stands, exit 1, one warning naming the
    picture. A read-only one is refused before judging, as a dataset's folder is."""
    from .hostile_helpers import _private_mounts, _tapcheck

    env = {"TAPCHECK_RECORDINGS": str(training_recordings(separating_model))}
    clips = separating_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
    disk = tmp_path / "disk"
    disk.mkdir()
    full = _private_mounts(f"mount -t tmpfs -o size=8k tmpfs {disk}")
    result = _tapcheck("judge", "--model", separating_model, *clips, "--explain-dir",
                       disk / "why", prefix=full, env=env)
    assert result.returncode == 1, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()
            if line.split()[:1] in (["NORMAL"], ["ANOMALOUS"])] == [
        "NORMAL", "ANOMALOUS", "ANOMALOUS"], result.stdout
    warned = [line for line in result.stderr.splitlines() if "No space left on device" in line]
    assert len(warned) == 1 and warned[0].startswith(f"tapcheck: warning: {disk / 'why'}/") and \
        warned[0].endswith("the verdicts and explanations stand, without those pictures"), \
        result.stderr
    read_only = _private_mounts(f"mount -t tmpfs -o ro tmpfs {disk}")
    result = _tapcheck("judge", "--model", separating_model, *clips, "--explain-dir",
                       disk / "why", prefix=read_only, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"tapcheck: error: {disk}: cannot be written (Read-only file "
                             "system) — the disk is read-only; choose a folder on another disk\n")


def test_a_long_sentence_fits_the_picture():
    """knn-decay's sentences run to 250 characters: on one line the title ran off both sides of
    the PNG. Wrapped, it lies inside the figure."""
    import numpy as np

    from tapcheck.explanation import Explanation
    from tapcheck.pictures import picture_figure

    sentence = ("its ringing dies away 2.4x faster than on the healthy boards that sound like it "
                "(3.1 times the spread of healthy taps); the network hears the most difference "
                "where 0.5-1.1 kHz decays 1.7x faster than on the healthy boards nearest it, "
                "0-75 ms after the strike")
    e = Explanation(path="take.wav", sentence=sentence, band_hz=(538.0, 1077.0),
                    time_ms=(0.0, 75.0), kind="faster-decay", ratio=1.7, score=0.08, relief=0.5,
                    deviation=np.ones((8, 4)), crop=np.zeros((100, 120)) - 20.0,
                    reference=np.zeros((100, 120)) - 20.0, band_edges_hz=np.linspace(0, 4307, 9),
                    window_edges_ms=np.linspace(-11.6, 336.7, 5))
    fig = picture_figure(e)
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    assert len(sentence) > 200
    assert 0 <= title.x0 and title.x1 <= fig.bbox.width, (title, fig.bbox)
    # the clip named on its panel: pictures of take001 of three folders were told apart only by
    # their PNG metadata; a long path by its end, within its panel
    assert fig.axes[0].get_title() == "this clip\ntake.wav"
    far = "/".join(["recordings", "plant-batch-2026-11", "board21", "left", "take001.wav"] * 2)
    fig = picture_figure(dataclasses.replace(e, path=far))
    fig.canvas.draw()
    panel = fig.axes[0]
    assert panel.get_title() == "this clip\n…" + far[-39:]
    assert panel.title.get_window_extent().x1 <= fig.axes[1].get_window_extent().x0


def test_a_clip_given_twice_gets_one_picture(separating_model, tmp_path, run_cli, monkeypatch):
    """The same clip twice on the command line (spelt two ways) is explained once: the same
    sentence and one picture for both verdicts, where it wrote take003.png and take003-2.png."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    clip = separating_taps(tmp_path / "board13", [(5, "left", 50)])[0]
    why = tmp_path / "why"
    code, out, err = run_cli("judge", "--model", separating_model, clip,
                             tmp_path / "board13" / ".." / "board13" / clip.name,
                             "--explain-dir", why)
    assert code == 1, err
    assert [p.name for p in why.iterdir()] == [f"{clip.stem}.png"]
    sentences = [ln for ln in out.splitlines() if ln.strip().startswith("why:")]
    pictures = [ln for ln in out.splitlines() if ln.strip().startswith("picture:")]
    assert len(sentences) == 2 and sentences[0] == sentences[1]
    assert pictures == [f"           picture: {why / clip.stem}.png"] * 2
