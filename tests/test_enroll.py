"""`tapcheck enroll`: known-good taps join the references; atomic, undoable, refuses defects."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
import torch

from tapcheck.enroll import enroll
from tapcheck.enroll_checks import refuse_limit
from tapcheck.errors import ParameterError
from tapcheck.modelfile import load_model

from .conftest import KNOCKS


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def same_values(a, b) -> bool:
    """Checkpoints equal in every key, value and tensor."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_values(a[k], b[k])
                                                                  for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_values, a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


@pytest.fixture
def model(tiny_model, tmp_path):
    return shutil.copyfile(tiny_model, tmp_path / "m.pt")


def unseen_clips(dataset, board: int = 13, n: int = 3) -> list:
    return [dataset.path_of(t) for t in dataset.select(board=[board], split="test")[:n]]


def test_taps_of_no_board_named_never_share_a_board_numbers_group(model, tiny_dataset, run_cli):
    """Each enrolment without --board is a board of its own, apart from any --board number
    (the first one's group, max + 1000, was board 1013's too, and the two weighed as one)."""
    groups = load_model(model).detector.reference_groups_
    clips = unseen_clips(tiny_dataset, n=4)
    assert run_cli("enroll", "--model", model, *clips[:1])[0] == 0
    assert run_cli("enroll", "--model", model, *clips[1:2])[0] == 0
    code, _, err = run_cli("enroll", "--model", model, "--board",
                           int(max(groups)) + 1000, *clips[2:3])
    assert code == 0, err
    new = list(load_model(model).detector.reference_groups_[len(groups):])
    assert len(set(new)) == 3 and new[2] == int(max(groups)) + 1000, new
    assert min(new[:2]) > 999_999, new


def test_enrol_round_trip_appends_references_and_undo_restores(model, tiny_dataset, run_cli):
    before, digest = load_model(model), md5(model)
    n_before, threshold_before = len(before.detector.reference_), before.detector.threshold_
    clips = unseen_clips(tiny_dataset)
    code, out, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    after = load_model(model)  # still a valid model file, loadable with weights_only
    assert len(after.detector.reference_) == n_before + 3
    assert list(after.detector.reference_groups_[-3:]) == [13, 13, 13]
    assert after.detector.calibration_["method"] == "hold-out"
    assert after.detector.calibration_["holds_for"].startswith(
        "boards in the training split or enrolled")
    assert after.detector.calibration_["boards"] == before.detector.calibration_["boards"] + 1
    [entry] = after.checkpoint["enrolled"]
    assert entry["clips"] == [str(c) for c in clips] and entry["board"] == 13
    # the enrolled clips are neighbours of each other now: their own scores drop
    enrolled = after.detector.reference_[-3:].numpy()
    now, then = after.detector.anomaly_score(enrolled), before.detector.anomaly_score(enrolled)
    assert (now <= then).all() and (now < then).any()
    code, out, err = run_cli("enroll", "--model", model, "--list")
    assert code == 0, err
    assert f"board 13  3 clip(s)  {clips[0]}" in out and "1 enrolment(s) in" in out
    # when, as `log` gives times: local, with the zone's name (it was UTC in ISO form: QA)
    at = datetime.fromisoformat(entry["at"]).astimezone()
    assert out.startswith(f"{at:%Y-%m-%d %H:%M:%S %Z}  board 13"), out
    code, out, err = run_cli("enroll", "--model", model, "--undo")
    assert code == 0 and "removed the enrolment of 3" in out, err
    undone = load_model(model)
    assert "enrolled" not in undone.checkpoint
    assert torch.equal(undone.detector.reference_, before.detector.reference_)
    assert undone.detector.threshold_ == threshold_before
    assert undone.detector.calibration_ == before.detector.calibration_
    assert same_values(undone.checkpoint, before.checkpoint)  # every weight and setting
    # and byte for byte: the same values pickled other bytes when their strings came from
    # other places, and a user checking the undo by md5 saw another file (QA)
    assert md5(model) == digest
    code, _, err = run_cli("enroll", "--model", model, "--undo")  # nothing left to undo
    assert code == 2 and "no enrolment to undo" in err


def test_a_killed_rewrites_temporary_file_is_swept_by_the_next(model, tiny_dataset):
    """A SIGKILLed enroll (or train's save) left `.m.pt.XXXXXXXX.tmp` beside the model for good,
    100 MB each for arcface-resnet18; the next writer never removed it (QA). Under the model
    file's lock no other writer can own one, so the next rewrite removes them."""
    stale = model.parent / f".{model.name}.k3x9q2ab.tmp"
    stale.write_bytes(b"half a model")
    other = model.parent / ".other.pt.k3x9q2ab.tmp"  # another file's: not this one's to remove
    other.write_bytes(b"x")
    enroll(model, unseen_clips(tiny_dataset))
    assert not stale.exists() and other.exists()


def test_clearly_defective_clips_are_refused_unless_forced(model, tiny_dataset):
    ceramic = [KNOCKS / "ceramic" / "10.wav", KNOCKS / "ceramic" / "15.wav"]
    digest, detector = md5(model), load_model(model).detector
    # the line names the clip scoring highest: 10.wav here, 15.wav within 1 % of it where the
    # CPU has no native bfloat16 (helper-50 measured both)
    with pytest.raises(ParameterError, match=r"(10|15)\.wav.*sounds defective.*--force"):
        enroll(model, ceramic)
    # among good clips: how many of them, and leaving it out is offered, not --force alone (QA)
    with pytest.raises(ParameterError) as e:
        enroll(model, [*unseen_clips(tiny_dataset, n=3), ceramic[0]])
    assert str(e.value.path) == str(ceramic[0])
    assert ", 1 of the 4 clips: it sounds defective" in str(e.value)
    assert e.value.fix == "check the board: leave it out, or pass --force to enrol it all the same"
    assert md5(model) == digest
    done = enroll(model, ceramic, force=True)
    assert max(done["scores"]) > refuse_limit(detector)
    assert load_model(model).checkpoint["enrolled"][0]["forced"] is True


def test_a_board_the_model_judges_anomalous_is_refused_unless_forced(model, tiny_dataset,
                                                                     run_cli):
    """A cracked board's taps, each over the threshold but under the limit of a clear defect,
    were enrolled with a warning per tap, and the model then found 11 % of the defective boards
    instead of 67 % (QA). Most of the clips over the threshold is the board's vote: refused
    unless forced, as a sound board that raised a false alarm may be, once checked."""
    detector = load_model(model).detector
    near = [KNOCKS / "wood" / "15.wav", KNOCKS / "ceramic" / "20.wav"]  # between the two here
    good = unseen_clips(tiny_dataset, n=2)
    clips = [*near, good[0]]
    scores = detector.anomaly_score(np.stack([enroll_embedding(model, c) for c in clips]))
    assert all(detector.threshold_ < s < refuse_limit(detector) for s in scores[:2])
    assert scores[2] < detector.threshold_
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, *clips)
    assert code == 2 and md5(model) == digest, err
    assert re.fullmatch(
        r"tapcheck: error: \S+/(15|20)\.wav: the model judges board 21 ANOMALOUS \(2 of its 3 "
        r"clips over the threshold 0\.\d+, median 0\.\d+; this clip highest, 0\.\d+\), and "
        r"enrolled, boards that sound like it would pass as sound; nothing enrolled — check "
        r"the board: pass --force if it is sound \(a new wood batch, a false alarm\), or leave "
        r"its clips out\n", err), err
    # without --board, each board folder's clips are a board, and the clips in none another:
    # board 13's two good taps do not outvote the two others
    code, _, err = run_cli("enroll", "--model", model, *near, *good)
    assert code == 2 and md5(model) == digest, err
    assert "the model judges the board of these clips ANOMALOUS (2 of its 2 clips over" in err
    code, _, err = run_cli("enroll", "--model", model, *near[:1], *good)  # a board of 1 clip
    assert code == 2 and md5(model) == digest, err
    assert "wood/15.wav: scores 0.00" in err and ": the model judges it ANOMALOUS, and" in err
    # one tap over it among good ones is the false alarm enrolment is for: one line, enrolled
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, near[0], *good)
    assert code == 0, err
    assert [x for x in err.splitlines() if "over the threshold" in x] == [
        x for x in err.splitlines() if x.startswith(f"tapcheck: warning: {near[0]}: scores 0.")]
    run_cli("enroll", "--model", model, "--undo")
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, "--force", *clips)
    assert code == 0, err
    over = [x for x in err.splitlines() if "over the threshold" in x]
    assert len(over) == 1 and re.search(r"warning: \S+/(15|20)\.wav and 1 more of the 3 clips: "
                                        r"score over the threshold 0\.", over[0]), err
    assert load_model(model).checkpoint["enrolled"][0]["forced"] is True


def test_a_take_its_dataset_labels_defect_is_refused_unless_forced(model, tiny_dataset,
                                                                   run_cli, tmp_path,
                                                                   monkeypatch):
    """Board 62's takes, from the plant set's own folder, went in as normal taps: only
    evaluate said so afterwards (QA)."""
    defect = tiny_dataset.select(board=[7], split="test")[0]  # a test take: not the model's own
    clips = [*unseen_clips(tiny_dataset, n=2), tiny_dataset.path_of(defect)]
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, *clips)
    assert code == 2 and md5(model) == digest, err
    assert err == (f"tapcheck: error: {clips[2]}: is a take of board 7 that "
                   f"{tiny_dataset.root / 'manifest.csv'} labels defect: enrolled as a normal "
                   "tap, it would teach the model that a cracked board sounds healthy; nothing "
                   "enrolled — enrol taps of sound boards, or pass --force if the label is "
                   "wrong\n")
    # a relative clip's dataset is named relative to the working folder, as the clip is
    monkeypatch.chdir(tiny_dataset.root.parent)
    relative = os.path.relpath(clips[2])
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, relative)
    assert code == 2 and f"that {tiny_dataset.root.name}/manifest.csv labels defect" in err, err
    code, _, err = run_cli("enroll", "--model", model, "--board", 21, "--force", *clips)
    assert code == 0, err
    # a defect row linked out of its dataset (which path_of refuses) refused every enrolment
    # from that dataset (review): it tells nothing of the others
    copy = shutil.copytree(tiny_dataset.root, tmp_path / "copy")
    linked = copy / tiny_dataset.select(board=[8], split="test")[0].path
    linked.unlink()
    linked.symlink_to(KNOCKS / "wood" / "1.wav")
    healthy = copy / tiny_dataset.select(board=[12], split="test")[0].path
    code, _, err = run_cli("enroll", "--model", model, "--board", 22, healthy)
    assert code == 0, err


def enroll_embedding(model, clip) -> np.ndarray:
    """A clip's embedding by the model's own network, as enroll computes it."""
    from tapcheck.enroll import _embed
    from tapcheck.judge import Judge

    return _embed(Judge(load_model(model)), [clip])[0][0]


@pytest.mark.parametrize("case", ["missing", "no-folder", "foreign", "empty", "not-audio",
                                  "features", "link", "link-loop", "link-nowhere",
                                  "read-only", "undo-read-only", "own-take", "own-take-flac",
                                  "own-defect"])
def test_bad_input_is_one_line_and_leaves_the_model_file_alone(case, model, tiny_dataset,
                                                               run_cli, tmp_path):
    clips = [str(c) for c in unseen_clips(tiny_dataset)]
    target = model
    extra = []
    if case == "missing":
        target = tmp_path / "none.pt"
    elif case == "no-folder":  # not a complaint about a lock file beside it
        target = tmp_path / "nodir" / "none.pt"
    elif case == "link":  # a rename would put a new file in the link's place
        target = tmp_path / "link.pt"
        target.symlink_to(model)
    elif case == "link-loop":  # "name the file it points to:" named the loop itself (QA)
        target = tmp_path / "loop.pt"
        target.symlink_to(tmp_path / "loop2.pt")
        (tmp_path / "loop2.pt").symlink_to(target)
    elif case == "link-nowhere":  # ...or a path that is not there
        target = tmp_path / "nowhere.pt"
        target.symlink_to(tmp_path / "gone" / "m.pt")
    elif case == "own-take":  # a take the model trained on would count twice
        clips = clips + [str(tiny_dataset.path_of(tiny_dataset.select(split="train")[0]))]
    elif case == "own-defect":  # "its reference or threshold holds it": neither does (QA)
        clips = clips + [str(tiny_dataset.path_of(tiny_dataset.select(split="train",
                                                                      label="defect")[0]))]
    elif case == "own-take-flac":  # the same samples as FLAC: other bytes, the same crops
        import soundfile as sf

        y, sr = sf.read(tiny_dataset.path_of(tiny_dataset.select(split="train")[0]),
                        dtype="int16")
        sf.write(tmp_path / "take001.flac", y, sr)
        clips = clips + [str(tmp_path / "take001.flac")]
    elif case in ("read-only", "undo-read-only"):  # renames ignore the file's permissions
        enroll(model, clips[:1])
        model.chmod(0o444)
        clips = clips[1:] if case == "read-only" else ["--undo"]
    elif case == "foreign":
        target = tmp_path / "foreign.pt"
        torch.save({"weights": torch.zeros(3)}, target)
    elif case == "empty":
        clips = []
    elif case == "not-audio":
        (tmp_path / "notes.wav").write_text("not a recording")
        clips = clips + [str(tmp_path / "notes.wav")]
    else:
        (tmp_path / "other.toml").write_text("[features]\nn_bins = 64\n")
        extra = ["--config", str(tmp_path / "other.toml")]
    digest = md5(target) if target.exists() else None
    code, out, err = run_cli("enroll", "--model", target, *extra, *clips)
    lines = [line for line in err.splitlines() if line.startswith("tapcheck: error:")]
    assert code == 2 and len(lines) == 1, err
    assert {"missing": "none.pt: model file not found", "foreign": "foreign.pt",
            "empty": "no clips", "not-audio": "notes.wav", "features": "feature settings",
            "no-folder": "none.pt: model file not found", "link": "link.pt: is a symbolic link",
            "link-loop": "loop.pt: is a symbolic link; enroll rewrites a model file and does not "
                         "write through links — it leads to no model file (a loop, or a link to "
                         "nothing); name the model file itself",
            "link-nowhere": "nowhere.pt: is a symbolic link; enroll rewrites a model file and "
                            "does not write through links — it leads to no model file",
            "read-only": "is read-only", "undo-read-only": "is read-only",
            "own-take": "take001.wav: is one of the recordings the model was trained or "
                        "calibrated on",
            "own-take-flac": "take001.flac: is one of the recordings the model was trained "
                             "or calibrated on",
            "own-defect": "take001.wav: is one of the defect takes the model was trained on: "
                          "enrolled as a normal tap, it would teach the model that a cracked "
                          "board sounds healthy; nothing enrolled — enrol taps of sound "
                          "boards"}[case] in lines[0]
    assert (md5(target) if target.exists() else None) == digest
    assert target.is_symlink() == case.startswith("link") and not (tmp_path / "nodir").exists()
    if case == "link":
        assert lines[0].endswith(f"— name the file it points to: {model.resolve()}")


def test_every_unusable_clip_is_named_at_once(model, tiny_dataset, run_cli, tmp_path):
    """Only the first was named: a user fixed and re-ran once per bad clip (QA)."""
    clips = [str(c) for c in unseen_clips(tiny_dataset)][:2]
    (tmp_path / "notes.wav").write_text("not a recording")
    (tmp_path / "empty.wav").write_bytes(b"")
    digest = md5(model)
    code, out, err = run_cli("enroll", "--model", model, tmp_path / "notes.wav", *clips,
                             tmp_path / "empty.wav")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 3, err
    assert lines[0].startswith(f"tapcheck: error: {tmp_path / 'notes.wav'}: ")
    assert lines[1].startswith(f"tapcheck: error: {tmp_path / 'empty.wav'}: is empty")
    assert lines[2] == ("tapcheck: error: 2 of 4 clips cannot be enrolled (listed above); "
                        "nothing was enrolled — fix those clips or leave them out")
    assert md5(model) == digest


def test_enrol_with_other_feature_settings_names_no_other_command(model, tiny_dataset,
                                                                  run_cli, tmp_path):
    """`enroll --config cfg/hop256.toml` was told "judge without --config": a fix for a
    command the user did not run."""
    (tmp_path / "hop256.toml").write_text("[features]\nhop_length = 256\n")
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--config", tmp_path / "hop256.toml",
                           "--board", 13, *unseen_clips(tiny_dataset, n=1))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and md5(model) == digest, err
    assert "features.hop_length" in lines[0] and "(config: 256)" in lines[0]
    assert "judge" not in lines[0]
    assert lines[0].endswith("— leave out --config (the model carries its own settings), or "
                             "retrain the model with that config")


def test_enrol_warns_of_train_settings_it_does_not_use(model, tiny_dataset, run_cli,
                                                       tmp_path):
    """`enroll --config` with `[train] far = 0.01` recalibrated at the model's own rate and
    said nothing, where judge warns (trial 34)."""
    (tmp_path / "far.toml").write_text("[train]\nfar = 0.01\n")
    code, _, err = run_cli("enroll", "--model", model, "--config", tmp_path / "far.toml",
                           "--board", 13, *unseen_clips(tiny_dataset, n=2))
    assert code == 0, err
    assert ("tapcheck: warning: --config's [train] settings (far = 0.01) are not used: a model "
            "file keeps the threshold, scorer and board rule it was trained with") in err
    assert load_model(model).detector.calibration_["far"] == 0.05


def test_a_recording_is_enrolled_once(model, tiny_dataset, run_cli, tmp_path):
    clips = [str(c) for c in unseen_clips(tiny_dataset)]
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clips[0], clips[0])
    assert code == 2 and f"{clips[0]}: is given twice;" in err and "nothing enrolled" in err
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    digest = md5(model)
    renamed = shutil.copyfile(clips[1], tmp_path / "again.wav")  # the same bytes, another name
    for again in (clips[2], renamed):
        code, _, err = run_cli("enroll", "--model", model, "--board", 13, again)
        lines = [line for line in err.splitlines() if line.startswith("tapcheck: error:")]
        assert code == 2 and len(lines) == 1 and "was enrolled into this model on" in lines[0]
        assert f"`tapcheck enroll --model {model} --undo`" in lines[0]
    assert md5(model) == digest  # a repeat would have lowered the threshold for no new tap
    # every clip given again is counted, not the first alone (QA)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 2 and (f"{clips[0]}: was enrolled into this model on " in err
                          and f"; so were 2 more of the clips given ({clips[1]}, {clips[2]}); "
                          "nothing enrolled — leave them out, or take" in err), err
    # with a later enrolment, one --undo would take back that one: the line says how many
    code, _, err = run_cli("enroll", "--model", model, "--board", 12,
                           *unseen_clips(tiny_dataset, board=12, n=2))
    assert code == 0, err
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clips[2])
    assert code == 2 and err.rstrip().endswith(
        f"it is enrolment 1 of 2 (`tapcheck enroll --model {model} --list`), and `tapcheck "
        f"enroll --model {model} --undo` takes back the last one only: run it 2 times, then "
        "enrol the clips of the 1 later enrolment again, each with its own --board"), err


def test_the_same_tap_as_wav_and_flac_is_enrolled_once(model, tiny_dataset, run_cli, tmp_path):
    """Other bytes, the same samples: the crops tell them apart, in one call and across calls
    (a digest of the file's bytes let the FLAC in, counted twice in the calibration)."""
    import soundfile as sf

    clips = [str(c) for c in unseen_clips(tiny_dataset)]
    samples, sr = sf.read(clips[0], dtype="int16")
    flac = tmp_path / "a.flac"
    sf.write(flac, samples, sr, format="FLAC", subtype="PCM_16")
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clips[0], flac)
    assert code == 2 and f"{flac}: is the same recording as {clips[0]};" in err, err
    assert md5(model) == digest
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, flac)
    assert code == 2 and f"{flac}: was enrolled into this model on" in err
    assert f"(as {clips[0]})" in err and md5(model) == digest


def test_enrol_warns_of_anomalous_clips_and_of_another_board_folder(model, tiny_dataset,
                                                                    run_cli):
    ceramic = [str(KNOCKS / "ceramic" / "10.wav")]
    code, _, err = run_cli("enroll", "--model", model, "--force", *ceramic)
    assert code == 0, err
    assert "10.wav: scores" in err and "(judged ANOMALOUS), enrolled as a normal tap" in err
    clips = [str(c) for c in unseen_clips(tiny_dataset, board=13)]
    code, _, err = run_cli("enroll", "--model", model, "--board", 12, *clips)
    assert code == 0, err
    # judge --board's warning, once however many clips
    assert err.count("enrolled as board 12") == 1, err
    assert (f"{clips[0]} and {len(clips) - 1} more clip(s): their folders name board 13, "
            "enrolled as board 12") in err


def test_enrol_under_a_board_trained_on_as_defective_is_refused_unless_forced(
        model, tiny_dataset, run_cli):
    """Board 5 is a cracked board of the tiny set's training split: taps of board 12 enrolled
    as board 5 (a mistyped number) went in without a word, as a cracked board's healthy
    references. Refused, one line, the model file untouched; --force enrols them."""
    clips = unseen_clips(tiny_dataset, board=12, n=2)
    digest = md5(model)
    code, out, err = run_cli("enroll", "--model", model, "--board", 5, *clips)
    assert code == 2 and out == "" and md5(model) == digest
    assert err == (f"tapcheck: error: {model}: board 5 is a board the model was trained on as "
                   "defective; enrolled under its number, these taps would be a cracked "
                   "board's healthy references; nothing enrolled — give the board the taps are "
                   "of (--board 12), or pass --force if board 5 is sound now\n")
    assert not list(model.parent.glob("*.lock"))
    # clips of no board folder: a number to give, not "the clips' own --board" (QA)
    loose = [shutil.copyfile(c, model.parent / f"tap{i}.wav") for i, c in enumerate(clips)]
    code, out, err = run_cli("enroll", "--model", model, "--board", 5, *loose)
    assert code == 2 and md5(model) == digest
    assert err.endswith("give the board the taps are of (e.g. --board 7, a number the model "
                        "does not know), or pass --force if board 5 is sound now\n"), err
    code, _, err = run_cli("enroll", "--model", model, "--board", 5, "--force", *clips)
    assert code == 0, err
    assert err.count(": their folders name board 12, enrolled as board 5") == 1, err
    assert list(load_model(model).detector.reference_groups_[-2:]) == [5, 5]
    from tapcheck.known_boards import trained_defect_boards

    assert trained_defect_boards(torch.load(model, weights_only=True)) == [5, 6]


def test_evaluate_counts_an_enrolled_board_as_known_and_leaves_its_enrolled_takes_out(
        model, tiny_dataset, run_cli):
    import json

    code, out, _ = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root, "--json")
    before = json.loads(out)
    clips = unseen_clips(tiny_dataset, board=13, n=3)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root,
                             "--json")
    assert code == 0, err
    after = json.loads(out)
    assert after["enrolled_left_out"] == 3 and before["enrolled_left_out"] == 0
    assert len(after["scores"]) == len(before["scores"]) - 3
    board13 = sum(1 for t in tiny_dataset.select(board=[13], split="test"))
    assert after["normal_unseen"] == before["normal_unseen"] - board13
    assert after["normal_known"] == before["normal_known"] + board13 - 3
    assert {r["board is"] for r in after["boards"] if r["board"] == 13} == {"known"}
    code, out, _ = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root)
    assert "3 test takes enrolled into the model, left out" in out


def test_a_board_number_alone_makes_no_board_of_a_dataset_known(model, tiny_dataset, run_cli,
                                                                 tmp_path):
    """`enroll --board 13` of a tap from outside the dataset (board 12's, resampled: other
    bytes) puts none of the dataset's board-13 recordings into the model: evaluate must not
    count that board's false alarms under the rate stated for the boards the model holds."""
    import json

    import soundfile as sf
    from scipy.signal import resample_poly

    code, out, _ = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root, "--json")
    before = json.loads(out)
    y, sr = sf.read(unseen_clips(tiny_dataset, board=12, n=1)[0])
    outside = tmp_path / "elsewhere" / "sr22k.wav"
    outside.parent.mkdir()
    sf.write(outside, resample_poly(y, 1, 2), sr // 2)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, outside)
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root,
                             "--json")
    assert code == 0, err
    after = json.loads(out)
    assert {r["board"]: r["board is"] for r in after["boards"]}[13] == "unseen"
    assert {r["board"]: r["board is"] for r in after["boards"]}[12] == "unseen"
    # the one take of board 12 whose copy the model now holds is left out of the rates
    assert (after["normal_known"], after["normal_unseen"], after["copies_left_out"]) == (
        before["normal_known"], before["normal_unseen"] - 1, 1)


def test_enrol_without_board_from_a_board_folder_warns_once(model, tiny_dataset, run_cli):
    """Clips of board13/ enrolled without --board stored "no board number" silently."""
    clips = unseen_clips(tiny_dataset, board=13, n=3)
    code, _, err = run_cli("enroll", "--model", model, *clips)
    assert code == 0, err
    warned = [x for x in err.splitlines() if "without --board" in x]
    assert warned == ["tapcheck: warning: the clips sit in a board13 folder, but without --board "
                      "the enrolment stores no board number (the folder name is not taken as "
                      f"one) — `tapcheck enroll --model {model} --undo`, then enrol them "
                      "with --board 13"]
    assert load_model(model).checkpoint["enrolled"][0]["board"] == -1
    code, _, err = run_cli("enroll", "--model", model, "--board", 12,
                           *unseen_clips(tiny_dataset, board=12, n=2))
    assert code == 0 and "without --board" not in err, err


def test_evaluate_warns_of_enrolled_takes_the_manifest_labels_defect(model, tiny_dataset,
                                                                     run_cli):
    """`enroll --board 8` of board 8's takes (the demo's cut board) made them normal
    references, and evaluate said nothing of it."""
    import json

    defect = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[8])[:3]]
    code, _, err = run_cli("enroll", "--model", model, "--board", 8, "--force", *defect)
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root,
                             "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled_defect_boards"] == [8]
    warned = [x for x in err.splitlines() if "labelled defect" in x]
    said = (f"tapcheck: warning: {tiny_dataset.root / 'manifest.csv'}: 3 take(s) of board 8, "
            f"labelled defect, are enrolled into {model} as normal references: it takes taps "
            "like them for sound boards — take that enrolment back unless the label is wrong: ")
    assert warned == [said + f"`tapcheck enroll --model {model} --undo`"]
    # a good board enrolled after it: one --undo took back that one, not board 8's (helper-52)
    code, _, err = run_cli("enroll", "--model", model, "--board", 12,
                           *unseen_clips(tiny_dataset, board=12, n=2))
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root)
    assert code == 0, err
    assert [x for x in err.splitlines() if "labelled defect" in x] == [
        said + f"it is enrolment 1 of 2 (`tapcheck enroll --model {model} --list`), and "
        f"`tapcheck enroll --model {model} --undo` takes back the last one only: run it 2 "
        "times, then enrol the clips of the 1 later enrolment again, each with its own "
        "--board"]
    # a later enrolment holding another of board 8's defect takes is not to be enrolled again:
    # the advice said to enrol "the 1 later enrolment" again, defect take and all (QA)
    code, _, err = run_cli("enroll", "--model", model, "--board", 22, "--force",
                           tiny_dataset.path_of(tiny_dataset.select(board=[8])[3]))
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root)
    assert code == 0, err
    assert [x for x in err.splitlines() if "labelled defect" in x] == [
        said.replace("3 take(s)", "4 take(s)").replace("that enrolment", "those enrolments")
        + f"they are in enrolments 1 and 3 of 3 (`tapcheck enroll --model {model} --list`), "
        f"and `tapcheck enroll --model {model} --undo` takes back the last one only: run it 3 "
        "times, then enrol the clips of the 1 later enrolment that holds none of them (2) "
        "again, each with its own --board"]
    # nor one that holds another defective board's takes: board 8's line said to enrol it
    # again, the line for that board a defective board too (QA)
    other = tiny_dataset.select(board=[7])[0]
    assert other.label == "defect"
    code, _, err = run_cli("enroll", "--model", model, "--board", 23, "--force",
                           tiny_dataset.path_of(other))
    assert code == 0, err
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root)
    assert code == 0, err
    lines = [x for x in err.splitlines() if "labelled defect" in x]
    assert len(lines) == 2 and "board 7, labelled defect" in lines[0]  # in board order
    assert lines[0].endswith(f"`tapcheck enroll --model {model} --undo`")
    assert lines[1].endswith(
        "run it 4 times (enrolment 4 holds another defective board's takes: do not enrol it "
        "again), then "
        "enrol the clips of the 1 later enrolment that holds none of them (2) again, each with "
        "its own --board")


def test_evaluate_after_enrolment_still_names_a_missing_test_take(model, tiny_dataset,
                                                                   run_cli, tmp_path):
    from tapcheck.datasets import Dataset

    code, _, err = run_cli("enroll", "--model", model, "--board", 13,
                           *unseen_clips(tiny_dataset, board=13, n=2))
    assert code == 0, err
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset.root, root)
    copy = Dataset.open(root)
    gone = copy.path_of(copy.select(board=[12], split="test")[0])
    gone.unlink()  # enrolments make evaluate fingerprint the takes: a missing one is not a crash
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", root)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"{gone}: file not found" in err


@pytest.mark.parametrize("case", ["enrolled", "read-only"])
def test_train_does_not_replace_enrolments_or_a_read_only_model(case, model, tiny_dataset,
                                                                run_cli):
    """Enrolled taps live only in the model file, and a read-only file is protected by its
    owner: a new training run must not rename itself over either."""
    if case == "enrolled":
        enroll(model, unseen_clips(tiny_dataset)[:1])
    else:
        model.chmod(0o444)
    digest = md5(model)
    code, out, err = run_cli("train", "--dataset", tiny_dataset.root, "--model", "ae",
                             "--epochs", "1", "--out", model)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert {"enrolled": "holds 1 enrolment(s)", "read-only": "is read-only"}[case] in err
    assert md5(model) == digest


def test_advice_about_a_model_file_runs_as_written(model, tiny_dataset, run_cli):
    """After an enrolment into models/enr.pt, `--list` and the ANOMALOUS warning advised
    "`tapcheck enroll --undo`", which run as written opened the default model file and exited
    2 (model file not found). Each command printed is run here exactly as printed."""
    import re
    import shlex

    ceramic = str(KNOCKS / "ceramic" / "10.wav")
    code, _, err = run_cli("enroll", "--model", model, "--force", ceramic)
    assert code == 0, err
    [warned] = [line for line in err.splitlines() if "enrolled as a normal tap" in line]
    code, out, err = run_cli("enroll", "--model", model, "--list")
    assert code == 0, err
    advice = [re.findall(r"`(tapcheck [^`]*)`", text) for text in (warned, out)]
    assert advice == [[f"tapcheck enroll --model {model} --undo"]] * 2
    code, out, err = run_cli(*shlex.split(advice[0][0])[1:])
    assert code == 0 and "removed the enrolment of 1 clip(s)" in out, err
    assert "enrolled" not in load_model(model).checkpoint
    # and with nothing left, the advice of the refusal runs as written too (and enrols)
    code, _, err = run_cli("enroll", "--model", model, "--undo")
    [fix] = re.findall(r"`(tapcheck [^`]*)`", err)
    assert code == 2 and fix == f"tapcheck enroll --model {model} CLIPS"
    clips = [str(c) for c in unseen_clips(tiny_dataset)]
    code, _, err = run_cli(*shlex.split(fix)[1:-1], *clips)
    assert code == 0, err


def test_sigterm_mid_enrolment_says_the_model_is_unchanged_and_removes_the_lock(
        model, tiny_dataset):
    """`kill` stops enroll as Ctrl-C does: one line saying the model file was not changed, exit
    130, no lock file left (it used to die silently, status 143, lock left)."""
    before = md5(model)
    lock = model.with_name("m.pt.lock")
    run = subprocess.Popen([sys.executable, "-m", "tapcheck", "enroll", "--model", str(model),
                            "--board", "13", *map(str, unseen_clips(tiny_dataset))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists():  # enroll holds the model file: it reads and embeds the clips next
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "enroll never took the lock"
        time.sleep(0.005)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert (out, err) == ("", f"tapcheck: interrupted; {model} is unchanged, nothing was "
                              "enrolled\n")
    assert md5(model) == before
    assert not lock.exists()


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.update(enrolled="oops"), "is damaged: its enrolment list is a str, not a list"),
    (lambda m: m.update(enrolled=[{}]), "is damaged: enrolment 1 of 1 names no clips"),
    (lambda m: m["enrolled"][-1].update(first_row=3),
     "is damaged: enrolment 1 of 1's reference rows 3-5 do not end at the reference's end"),
    (lambda m: m["enrolled"][-1].pop("previous_detector"),
     "is damaged: enrolment 1 of 1 keeps no state to undo to"),
    # a row per clip: a copy of an enrolled tap is named by its clip (an IndexError; review)
    (lambda m: m["enrolled"][-1].update(clips=m["enrolled"][-1]["clips"][:1]),
     "is damaged: enrolment 1 of 1 has 3 reference rows for 1 clips"),
    (lambda m: m["detector"].update(calibration_scores=-m["detector"]["calibration_scores"]),
     "is damaged: calibration score -"),
])
def test_a_hand_edited_enrolment_record_is_one_line(edit, problem, model, tiny_dataset, run_cli):
    """Trial 34: `enrolled = 'oops'` or `[{}]` gave tracebacks from --list, --undo, enroll and
    evaluate; a wrong first_row made --undo write a model every command then refused; negated
    calibration scores recalibrated to a threshold that flagged nothing."""
    assert run_cli("enroll", "--model", model, "--board", 13, *unseen_clips(tiny_dataset))[0] == 0
    checkpoint = torch.load(model, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, model)
    before = md5(model)
    for args in (["enroll", "--model", model, "--list"], ["enroll", "--model", model, "--undo"],
                 ["enroll", "--model", model, *unseen_clips(tiny_dataset, board=12)],
                 ["evaluate", "--model", model, "--dataset", tiny_dataset.root]):
        code, out, err = run_cli(*args)
        assert (code, out) == (2, ""), args
        assert err.startswith(f"tapcheck: error: {model}: {problem}") and len(
            err.splitlines()) == 1, (args, err)
    assert md5(model) == before


def test_undo_writes_nothing_that_would_not_load(model, tiny_dataset, run_cli):
    """A previous state edited by hand (a threshold of NaN) was written back by --undo: the
    model that had worked was gone. Now it is refused and the file left as it was."""
    assert run_cli("enroll", "--model", model, "--board", 13, *unseen_clips(tiny_dataset))[0] == 0
    checkpoint = torch.load(model, weights_only=True)
    checkpoint["enrolled"][-1]["previous_detector"]["offset"] = float("nan")
    torch.save(checkpoint, model)
    before = md5(model)
    code, out, err = run_cli("enroll", "--model", model, "--undo")
    assert (code, out) == (2, "") and err == (
        f"tapcheck: error: {model}: has a damaged enrolment record: undoing it would leave a "
        "model that is damaged: threshold nan is not a finite number; the file is unchanged — "
        "retrain it with `tapcheck train`\n")
    assert md5(model) == before
    assert load_model(model).detector.threshold_ > 0  # the enrolled model still works


def test_enrol_into_a_model_on_a_read_only_mount_is_not_told_to_chmod(model, tiny_dataset,
                                                                      tmp_path):
    """On a read-only file system enroll said "is read-only … make it writable (chmod u+w)",
    which cannot help there (trial 34)."""
    from .hostile_helpers import _private_mounts, _tapcheck

    folder = model.parent
    result = _tapcheck("enroll", "--model", model, "--board", "13",
                       *unseen_clips(tiny_dataset, n=1),
                       prefix=_private_mounts(f"mount --bind {folder} {folder}; "
                                              f"mount -o remount,ro,bind {folder}"))
    assert result.returncode == 2 and result.stderr == (
        f"tapcheck: error: {model}: lies on a read-only file system, so enroll cannot replace "
        "it — copy it to a folder you may write to and enrol into the copy (--model)\n")
    # train --out there: "name the copy" was no advice for a file about to be trained (QA)
    result = _tapcheck("train", "--dataset", tiny_dataset.root, "--epochs", "1", "--out", model,
                       prefix=_private_mounts(f"mount --bind {folder} {folder}; "
                                              f"mount -o remount,ro,bind {folder}"))
    assert result.returncode == 2 and result.stderr.endswith(
        f"tapcheck: error: {model}: lies on a read-only file system, so training cannot replace "
        "it — choose another --out, e.g. models/<name>.pt\n"), result.stderr


def test_evaluate_knows_enrolled_taps_by_their_crops(model, tiny_dataset, run_cli, tmp_path):
    """FLAC copies of board 13's test takes enrolled: evaluate called board 13 unseen and
    scored those takes in-sample among the unseen boards' (trial 34); their crops are the
    enrolled ones."""
    import json

    import soundfile as sf

    clips = []
    for i, wav in enumerate(unseen_clips(tiny_dataset, board=13, n=3)):
        y, sr = sf.read(wav, dtype="int16")
        sf.write(tmp_path / f"t{i}.flac", y, sr)
        clips.append(tmp_path / f"t{i}.flac")
    assert run_cli("enroll", "--model", model, "--board", 13, *clips)[0] == 0
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root,
                             "--json")
    assert code == 0, err
    after = json.loads(out)
    assert after["enrolled_left_out"] == 3 and 13 in after["known_boards"]
    assert {r["board is"] for r in after["boards"] if r["board"] == 13} == {"known"}


def test_a_model_without_references_says_so_to_undo_too(small_train_set, tiny_dataset, run_cli,
                                                        tmp_path):
    """`enroll --undo` of a model scoring by reconstruction said "enrol clips first", which
    that model refuses: both now say it takes no enrolment."""
    model = tmp_path / "ae.pt"
    code, _, err = run_cli("train", "--dataset", small_train_set, "--model", "ae", "--epochs",
                           "1", "--out", model)
    assert code == 0, err
    digest = md5(model)
    refused = (f"tapcheck: error: {model}: scores with 'recon', which has no reference clips to "
               "enrol into — train a model with --scorer knn (or knn-decay, knn-ldn)")
    for args in (["--undo"], unseen_clips(tiny_dataset)[:1]):
        code, out, err = run_cli("enroll", "--model", model, *args)
        assert code == 2 and out == "" and err.splitlines() == [refused], err
    assert md5(model) == digest


def test_a_model_file_replaced_by_another_program_is_not_written_over(model, tmp_path):
    """The lock keeps tapcheck's writers out only: a model copied over the file during an
    enrolment (with an enrolment of its own) was overwritten by the old one plus the clips."""
    from tapcheck.errors import ModelFileError
    from tapcheck.interrupts import file_identity
    from tapcheck.model_rewrite import refuse_changed

    seen = file_identity(model)
    refuse_changed(model, seen)  # unchanged: written
    other = shutil.copyfile(model, tmp_path / "other.pt")
    other.write_bytes(other.read_bytes())  # another file, the same bytes: `cp other.pt m.pt`
    other.replace(model)
    with pytest.raises(ModelFileError) as e:
        refuse_changed(model, seen)
    assert str(e.value) == (f"{model}: was replaced or changed by another program while tapcheck "
                            "rewrote it; it was not written over, nothing was enrolled or undone "
                            "— run the command again on the file as it is now")


def test_enrol_under_a_trained_board_from_another_dataset_warns(model, tiny_dataset, run_cli,
                                                                tmp_path):
    """Board 3 of a second site's dataset enrolled as --board 3 joined the training board 3's
    references without a word: most likely another board sharing a number. Warned, with a
    number the model does not know; the model's own board 3 taps are not warned of."""
    site = tmp_path / "site2"
    code, _, err = run_cli("import", *unseen_clips(tiny_dataset, board=12, n=2), "--dataset",
                           site, "--board", 3, "--side", "left", "--label", "normal")
    assert code == 0, err
    copies = sorted((site / "board03" / "left").glob("*.wav"))
    code, _, err = run_cli("enroll", "--model", model, "--board", 3, *copies)
    assert code == 0, err
    warned = [x for x in err.splitlines() if "another one" in x]
    assert warned == [f"tapcheck: warning: board 3 is a board the model was trained on, but "
                      f"these clips are in dataset {site}, another one: enrolled as that "
                      f"board's taps — if they are of another board, `tapcheck enroll --model "
                      f"{model} --undo`, then enrol them under a number the model does not "
                      "know (--board 7)"], err
    code, _, err = run_cli("enroll", "--model", model, "--board", 3,
                           *unseen_clips(tiny_dataset, board=3, n=1))
    assert code == 0 and "another one" not in err, err


def test_an_enrolment_that_would_leave_a_model_no_command_loads_is_refused(model, tiny_dataset,
                                                                            run_cli):
    """Every reference in one board group (hand-edited): enrolled, the recalibration set the
    threshold to nan (the training board, left out, had 3 references for k = 5), the file was
    written, and judge, enroll --list and --undo all refused it as damaged. Such a board is now
    scored against its farthest reference, so the enrolment stands; and whatever enroll would
    write is checked first, as --undo checks its own."""
    from pathlib import Path

    from tapcheck.enroll import REFUSED_UNLOADABLE
    from tapcheck.errors import ModelFileError
    from tapcheck.model_rewrite import write_if_loadable
    from tapcheck.interrupts import file_identity

    ck = torch.load(model, weights_only=True)
    ck["detector"]["reference_groups"] = torch.zeros_like(ck["detector"]["reference_groups"])
    # recalibrated by leaving a board out, as a model trained without held-out takes is
    ck["detector"]["calibration"]["method"] = "leave-one-board-out"
    torch.save(ck, model)
    code, _, err = run_cli("judge", "--model", model, *unseen_clips(tiny_dataset, n=1))
    assert code in (0, 1), err  # loads and judges as it is
    code, out, err = run_cli("enroll", "--model", model, "--board", 13,
                             *unseen_clips(tiny_dataset))
    assert code == 0, err
    assert load_model(model).checkpoint["enrolled"][0]["rows"] == 3
    code, out, err = run_cli("enroll", "--model", model, "--undo")
    assert code == 0, err
    # the check before the write: a nan threshold is not written
    digest = md5(model)
    bad = torch.load(model, weights_only=True)
    bad["detector"]["offset"] = float("nan")
    with pytest.raises(ModelFileError) as e:
        write_if_loadable(Path(model), bad, file_identity(Path(model)),
                          refused=REFUSED_UNLOADABLE)  # the template enroll passes
    assert str(e.value) == (f"{model}: cannot take these clips: enrolled, the model would be one "
                            "that is damaged: threshold nan is not a finite number; nothing "
                            "enrolled, the file is unchanged — retrain it with `tapcheck train`")
    assert md5(model) == digest




def test_many_taps_of_one_board_weigh_as_one_training_board(model, tiny_dataset, run_cli):
    """29 taps of one board side enrolled among 4 training boards' 8 held-out takes each made
    it half the calibration; scored against their siblings they score low, and the threshold
    fell from 0.090 to 0.062: the training boards' false alarms went from 12.5 to 20.8 % (QA)."""
    before = load_model(model).detector
    most = np.unique(before.calibration_groups_, return_counts=True)[1].max()
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[13])]
    assert len(clips) > most
    code, out, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    after = load_model(model).detector
    assert len(after.reference_) == len(before.reference_) + len(clips)  # every tap a reference
    mine = after.calibration_groups_ == 13
    assert mine.sum() == most
    assert np.array_equal(after.calibration_scores_[~mine], before.calibration_scores_)
    code, _, err = run_cli("enroll", "--model", model, "--undo")
    assert code == 0, err
    assert np.array_equal(load_model(model).detector.calibration_scores_,
                          before.calibration_scores_)


def test_a_clip_of_several_taps_is_enrolled_by_its_strongest_with_a_warning(
        model, tiny_dataset, run_cli, tmp_path):
    """QA: a clip of three taps was enrolled without a word that only its loudest counted."""
    import soundfile as sf

    from tapcheck.audio import load

    first, second = (load(c, sr=44100) for c in unseen_clips(tiny_dataset, n=2))
    clip = tmp_path / "three.wav"
    sf.write(clip, np.concatenate([first, 0.5 * second, 0.5 * second]), 44100, subtype="FLOAT")
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clip)
    assert code == 0, err
    assert re.search(rf"tapcheck: warning: {re.escape(str(clip))}: holds at least 3 taps \(at "
                     r"\d\.\d, \d\.\d, \d\.\d s\); a take is one tap and only the loudest is "
                     r"enrolled — cut the file into one clip per tap", err), err


def test_enrolled_clips_are_listed_by_their_whole_path(model, tiny_dataset, run_cli,
                                                       monkeypatch):
    """`enroll --list` showed a clip as it was given (`take001.wav`), relative to a folder the
    list does not say (QA)."""
    clip = unseen_clips(tiny_dataset, n=1)[0]
    monkeypatch.chdir(clip.parent)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clip.name)
    assert code == 0, err
    code, out, _ = run_cli("enroll", "--model", model, "--list")
    assert code == 0 and f"board 13  1 clip(s)  {clip}\n" in out


def resampled_copy(clip, out, *, sr_out: int = 48000):
    """The same tap at another sample rate, as float samples: other bytes and other crops."""
    import soundfile as sf
    from scipy.signal import resample_poly

    y, sr = sf.read(clip)
    sf.write(out, resample_poly(y, sr_out // 300, sr // 300), sr_out, subtype="FLOAT")
    return out


def test_the_same_tap_resampled_is_enrolled_once(model, tiny_dataset, run_cli, tmp_path):
    """A 48 kHz copy of a tap has other bytes and other crops, so neither digest told it: it
    was enrolled beside its tap, or after it, or as a training take, counted twice in the
    calibration (QA). Its embedding lies nearer the tap than any other tap's does."""
    clips = [str(c) for c in unseen_clips(tiny_dataset)]
    copy = resampled_copy(clips[0], tmp_path / "copy48k.wav")
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, clips[0], copy)
    assert code == 2 and f"{copy}: is the same tap as {clips[0]} (its embedding lies " in err, err
    assert "a resampled or requantised copy); enrolled twice it would count twice" in err
    trained = tiny_dataset.select(split="train", label="normal")[0]
    own = resampled_copy(tiny_dataset.path_of(trained), tmp_path / "own48k.wav")
    code, _, err = run_cli("enroll", "--model", model, own)
    assert code == 2 and (f"{own}: is the same tap as one of board {trained.board}'s "
                          "recordings the model was trained on and holds as references") in err, err
    assert md5(model) == digest
    # distinct taps of one board are not copies of each other
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, *clips)
    assert code == 0, err
    digest = md5(model)
    code, _, err = run_cli("enroll", "--model", model, "--board", 13, copy)
    assert code == 2 and f"{copy}: is the same tap as {clips[0]}, enrolled into this model" in err
    assert md5(model) == digest


def test_evaluate_leaves_out_a_test_take_whose_resampled_copy_is_enrolled(model, tiny_dataset,
                                                                          run_cli, tmp_path):
    """Board 13's test take enrolled as a 48 kHz copy: evaluate scored the take against its
    own copy, near 0, among the healthy taps (QA)."""
    import json

    take = unseen_clips(tiny_dataset, n=1)[0]
    assert run_cli("enroll", "--model", model, "--board", 13,
                   resampled_copy(take, tmp_path / "copy.wav"))[0] == 0
    code, out, err = run_cli("evaluate", "--model", model, "--dataset", tiny_dataset.root,
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["copies_left_out"] == 1 and result["enrolled_left_out"] == 0
    relative = str(take.relative_to(tiny_dataset.root))
    assert relative not in result["paths"]
    assert (f"test take {relative} is the same tap as one the model holds as references "
            "(trained on or enrolled), resampled or requantised") in err, err
