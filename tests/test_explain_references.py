"""Where explanations find the normal crops they compare with: the model's own training
dataset, only in the recordings folder and only when its recordings are the model's; or a
dataset the user names, leaving out takes that cannot be used."""

import json
import os
import shutil
from pathlib import Path

import torch

from .conftest import separating_taps, training_recordings


def test_explain_with_references_and_without_them(separating_model, tmp_path, run_cli,
                                                   monkeypatch):
    """--references DATASET gives the same explanation when it names the training dataset."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    clip = separating_taps(tmp_path, [(5, "left", 51)])[0]
    dataset = torch.load(separating_model, weights_only=True)["dataset"]["path"]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--explain")
    code2, out2, _ = run_cli("judge", "--model", separating_model, clip, "--references",
                             dataset)
    assert code == code2 == 1 and out == out2, err


def test_explain_without_the_training_dataset_still_gives_every_verdict(separating_model,
                                                                        tmp_path, run_cli):
    """A model whose training dataset is gone (or is named relative to another folder) cannot
    explain, but its verdicts stand: every verdict line, the exit status by them, and one
    warning naming the dataset and the fix, however many clips are anomalous; no picture."""
    from tapcheck.modelfile import save_checkpoint

    clips = separating_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
    checkpoint = torch.load(separating_model, weights_only=True)
    gone = Path(os.environ["TAPCHECK_RECORDINGS"]) / "gone"  # trained here, deleted since
    checkpoint["dataset"].update(path=str(gone), name="gone")
    moved = save_checkpoint(tmp_path / "moved.pt", checkpoint)
    code, out, err = run_cli("judge", "--model", moved, *clips, "--explain-dir", tmp_path / "why")
    assert code == 1, err
    assert [ln.split()[0] for ln in out.splitlines()] == ["NORMAL", "ANOMALOUS", "ANOMALOUS"]
    assert [ln for ln in err.splitlines() if not ln.startswith("tapcheck: threshold")] == [
        f"tapcheck: warning: {moved}: its training dataset is not at {gone}; "
        "explanations compare with its normal takes, so 2 anomalous clip(s) are judged but not "
        "explained — pass --references DATASET (a dataset with normal takes of the same boards)"]
    assert not any((tmp_path / "why").glob("*.png"))
    # --json: each anomalous row says why it has no explanation (its reader sees no stderr)
    code, out, err = run_cli("judge", "--model", moved, *clips, "--explain", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r.get("not_explained") for r in rows] == [None] + 2 * [
        f"{moved}: its training dataset is not at {gone}; explanations compare with its normal "
        "takes — pass --references DATASET (a dataset with normal takes of the same boards)"]
    assert "explanation" not in rows[0] and rows[1]["explanation"] is None
    # with every clip normal nothing needs explaining, and nothing is said about it
    code, out, err = run_cli("judge", "--model", moved, clips[0], "--explain")
    assert code == 0 and out.startswith("NORMAL") and "warning" not in err


def test_explanations_read_the_training_dataset_only_from_the_recordings_folder(
        separating_model, tmp_path, run_cli, monkeypatch):
    """A model file names its training dataset by a path that may lie anywhere (a folder of
    pytest's here, as /srv/bench or another machine's would be): it is not read unless named.
    The verdicts stand without explanations, and one line says what was left out and what
    gives it; --references PATH, or a recordings folder that holds the dataset, explain."""
    clips = separating_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
    trained = torch.load(separating_model, weights_only=True)["dataset"]["path"]
    code, out, err = run_cli("judge", "--model", separating_model, *clips, "--explain")
    assert code == 1, err
    assert [ln.split()[0] for ln in out.splitlines()] == ["NORMAL", "ANOMALOUS", "ANOMALOUS"]
    assert [ln for ln in err.splitlines() if not ln.startswith("tapcheck: threshold")] == [
        f"tapcheck: warning: {separating_model}: its training dataset {trained} is outside the "
        f"recordings folder ({os.environ['TAPCHECK_RECORDINGS']}) and read only when named, so 2 "
        "anomalous clip(s) are judged but not explained — pass --references "
        f"{trained} to explain them"]
    code, named, err = run_cli("judge", "--model", separating_model, *clips, "--references",
                               trained)
    assert code == 1 and named.count("           why: ") == 2 and "warning" not in err, err
    # trained in this folder: its recordings folder holds the dataset, found by its name
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(Path(trained).parent))
    code, found, err = run_cli("judge", "--model", separating_model, *clips, "--explain")
    assert code == 1 and found == named and "warning" not in err, err


def test_explanations_are_not_made_against_another_dataset_of_the_same_name(
        separating_model, tmp_path, run_cli, monkeypatch):
    """Another site's dataset of the model's dataset's name, its takes at the same paths with
    other bytes, was taken for the references without a word: the taps were explained against
    other boards ("resonance at 689 Hz instead of 43 Hz"). Now the verdicts stand, unexplained,
    with one line saying so."""
    clips = separating_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
    trained = Path(torch.load(separating_model, weights_only=True)["dataset"]["path"])
    other = Path(shutil.copytree(trained, tmp_path / "site" / trained.name))
    for wav in other.rglob("*.wav"):  # the same layout, other recordings
        wav.write_bytes(wav.read_bytes()[:-2] + b"\x01\x00")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(other.parent))
    code, out, err = run_cli("judge", "--model", separating_model, *clips, "--explain")
    assert code == 1, err
    assert [ln.split()[0] for ln in out.splitlines()] == ["NORMAL", "ANOMALOUS", "ANOMALOUS"]
    assert "why:" not in out
    assert [ln for ln in err.splitlines() if not ln.startswith("tapcheck: threshold")] == [
        f"tapcheck: warning: {other}: holds other recordings than the ones {separating_model} "
        "was trained on, under the same names (another dataset of that name?), so 2 anomalous "
        "clip(s) are judged but not explained — pass --references DATASET (a dataset with "
        "normal takes of the same boards)"]


def test_a_manifest_that_lost_training_rows_explains_nothing(separating_model, tmp_path,
                                                             run_cli, monkeypatch):
    """Rows of the model's training takes deleted from its dataset's manifest: the normal
    takes left were used without a word, fewer boards, and the sentences changed. Now the
    verdicts stand, unexplained, with one line naming the manifest."""
    clips = separating_taps(tmp_path, [(5, "left", 50)])
    trained = Path(torch.load(separating_model, weights_only=True)["dataset"]["path"])
    copy = Path(shutil.copytree(trained, tmp_path / "here" / trained.name))
    manifest = copy / "manifest.csv"
    rows = manifest.read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if not r.startswith("board02/")]
    assert len(kept) < len(rows)
    manifest.write_text("\n".join(kept) + "\n")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(copy.parent))
    code, out, err = run_cli("judge", "--model", separating_model, *clips, "--explain")
    assert code == 1 and out.startswith("ANOMALOUS") and "why:" not in out, err
    said = [ln for ln in err.splitlines() if not ln.startswith("tapcheck: threshold")]
    assert len(said) == 1 and said[0].startswith(
        f"tapcheck: warning: {manifest}: no longer lists "), said
    assert f"takes {separating_model} was trained on (e.g. board02/" in said[0]


def _bad_reference_takes(root) -> list:
    """Five of a dataset's takes made unusable, each a way a take goes bad; returns them."""
    takes = sorted(root.glob("board*/*/take*.wav"))[:5]
    missing, fifo, folder, empty, junk = takes
    missing.unlink()
    fifo.unlink()
    os.mkfifo(fifo)
    folder.unlink()
    folder.mkdir()
    empty.write_bytes(b"")
    junk.write_bytes(b"junk" * 5000)
    return takes


def test_bad_reference_takes_are_left_out_and_the_verdict_stands(separating_model, small_train_set,
                                                                 tmp_path, run_cli):
    """--references only shapes explanations: its bad takes are named, one warning line each,
    then the manifest and the count; the clip is judged and explained with the other takes."""
    refs = shutil.copytree(small_train_set, tmp_path / "refs")
    missing, *others = _bad_reference_takes(refs)
    before = {p: p.read_bytes() for p in refs.rglob("*") if p.is_file()}
    clip = separating_taps(tmp_path, [(5, "left", 51)])[0]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--references", refs)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("ANOMALOUS") and lines[0].endswith(str(clip))
    assert lines[1].strip().startswith("why: ") and len(lines) == 2
    warned = [ln for ln in err.splitlines() if ln.startswith("tapcheck: warning: ")]
    assert warned[0] == (f"tapcheck: warning: {missing}: file not found (a reference take that "
                         f"{refs / 'manifest.csv'} lists) — restore it or delete its row")
    assert [w.split(": ")[2] for w in warned[1:5]] == [str(p) for p in others]
    # a row's folder, in the words train and doctor use: "pass the clips themselves" was the
    # fix for a folder given on the command line (QA)
    assert warned[2] == (f"tapcheck: warning: {others[1]}: is a folder, not a take's audio file "
                         "— fix its row's path or delete the row")
    assert warned[5] == (
        f"tapcheck: warning: {refs / 'manifest.csv'}: 5 of 16 reference takes cannot be used "
        "(listed above); explanations compare with the other 11 — restore or replace those "
        "files, or delete their rows (tapcheck doctor lists them)")
    assert len(warned) == 6 and "error" not in err
    assert {p: p.read_bytes() for p in refs.rglob("*") if p.is_file()} == before


def test_references_too_few_to_weigh_a_difference_are_warned_of(separating_model,
                                                                small_train_set, tmp_path,
                                                                run_cli):
    """One normal take explained a clip against "the healthy boards nearest it" without a word
    (QA): with no more takes than the detector's k, or of one board, the healthy boards' own
    scatter cannot be measured. Enough takes of two boards say nothing (the test above)."""
    from .conftest import copy_with_manifest

    clip = separating_taps(tmp_path, [(5, "left", 51)])[0]
    for name, keep in (("one-take", lambda r, seen: not seen),
                       ("one-board", lambda r, seen: r["board"] == "1")):
        def edit(rows, keep=keep):
            kept = []
            for r in rows:
                normal = (r["label"], r["split"]) == ("normal", "train")
                if not normal or keep(r, [k for k in kept if k["label"] == "normal"
                                          and k["split"] == "train"]):
                    kept.append(r)
            rows[:] = kept

        refs = copy_with_manifest(small_train_set, tmp_path / name, edit)
        code, out, err = run_cli("judge", "--model", separating_model, clip, "--references",
                                 refs)
        assert code == 1 and "why: " in out, err
        warned = [ln for ln in err.splitlines() if ln.startswith("tapcheck: warning: ")]
        count = "1 normal training take(s) of 1 board(s)" if name == "one-take" else \
            "8 normal training take(s) of 1 board(s)"
        assert warned == [
            f"tapcheck: warning: {refs / 'manifest.csv'}: {count} to explain with: too few to "
            "measure how healthy boards differ among themselves (that takes more than 5 takes "
            "of two boards or more), so a difference may be claimed that healthy boards show too "
            "— pass a --references dataset with more normal boards"], err


def test_references_with_no_usable_take_is_one_error(separating_model, small_train_set,
                                                     tmp_path, run_cli):
    """With none of its takes usable, --references cannot explain at all: an error naming the
    manifest, as a dataset without normal takes is, after the first few takes' lines. It is
    read before any clip is judged, so it fails alike whatever the clips: with a normal clip
    (nothing to explain) a bad --references, a typo too, passed without a word."""
    refs = shutil.copytree(small_train_set, tmp_path / "refs")
    for take in refs.glob("board*/*/take*.wav"):
        take.write_bytes(b"")
    anomalous, normal = separating_taps(tmp_path, [(5, "left", 51), (1, "left", 40)])
    for clip in (anomalous, normal):
        code, out, err = run_cli("judge", "--model", separating_model, clip, "--references",
                                 refs)
        assert code == 2 and out == "" and "Traceback" not in err
        errors = err.splitlines()
        assert len(errors) == 4 and all("is empty (0 bytes)" in e for e in errors[:3])
        assert errors[3] == (
            f"tapcheck: error: {refs / 'manifest.csv'}: none of its 16 normal training takes can "
            "be used as references (the first 3 listed above) — restore or replace those files, "
            "or delete their rows (tapcheck doctor lists them); or pass another --references "
            "dataset")
    code, out, err = run_cli("judge", "--model", separating_model, normal, "--references",
                             tmp_path / "refz")  # a typo
    assert code == 2 and out == "" and err.startswith(
        f"tapcheck: error: {tmp_path / 'refz'}: no such dataset"), err


def test_the_references_takes_warn_of_nothing(separating_model, small_train_set, tmp_path,
                                              run_cli):
    """Reference takes at 22.05 kHz: their "resampled" lines read as more of the clips' own
    (judge ended "29 more files likewise" after the clips' count); they are used unsaid, and
    the clip's own warning stays."""
    import soundfile as sf

    from tapcheck.audio import resample

    refs = Path(shutil.copytree(small_train_set, tmp_path / "refs"))
    for take in sorted(refs.glob("board*/*/take*.wav"))[:6]:
        y, sr = sf.read(take, dtype="float32")
        sf.write(take, resample(y, orig_sr=sr, target_sr=22050), 22050)
    clip = separating_taps(tmp_path, [(5, "left", 51)])[0]
    y, sr = sf.read(clip, dtype="float32")
    sf.write(clip, resample(y, orig_sr=sr, target_sr=22050), 22050)
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--references", refs)
    assert code == 1 and "why: " in out, err
    warned = [ln for ln in err.splitlines() if ln.startswith("tapcheck: warning: ")]
    assert warned == [f"tapcheck: warning: {clip}: resampled from 22050 Hz to 44100 Hz"], err


def test_a_references_board_is_the_manifests_not_its_folders(separating_model, small_train_set,
                                                            tmp_path):
    """Takes a manifest files outside their boardNN/ folders are still their board's: a
    reference's limits come from other boards' takes, and it was counted a board of its own."""
    import dataclasses

    from tapcheck.datasets import Dataset
    from tapcheck.explain import Explainer
    from tapcheck.explain_references import dataset_references
    from tapcheck.judge import Judge

    source = Dataset(small_train_set)
    flat = Dataset.create(tmp_path / "flat")
    for i, take in enumerate(source.takes):
        shutil.copyfile(source.path_of(take), flat.root / f"tap{i:02d}.wav")
        flat.takes.append(dataclasses.replace(take, path=f"tap{i:02d}.wav"))
    flat.write_manifest()
    judge = Judge(separating_model)
    refs, warned = dataset_references(flat.root, judge)
    assert warned == [] and refs.boards == [t.board for t in source.takes]
    boards = Explainer(judge, references=refs).reference_boards
    assert boards.tolist() == [t.board for t in source.takes] and set(boards) == {1, 2}
