"""Explanations: the band they name is where the synthetic rig's crack changed the board.

The rig knows its physics, two ways:

- its mode tables: :func:`tapcheck.synth.plate_modes` of a cracked board and of the same board
  without its crack give each mode's frequency and loss factor before and after; a mode the
  defect changed is one whose loss factor grew 3-fold or whose frequency moved by 1 % or more.
  The rig's cracks damp nearly every mode below 4.3 kHz, so this alone is weak: a random band
  of the explainer's width holds one too (97 % with the separating model);
- its counterfactual: the same take (same strike, microphone, noise draws) of the same board
  without its crack; the 2 of the 8 bands where the two crops differ most while ringing, in the
  first 100 ms, are where the defect shows. A random band of the same width overlaps them in
  about 40 %; tests/explain_compare.py measures Grad-CAM against the same checks.
"""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tapcheck.explain import Explainer, describe_difference
from tapcheck.features import strike_crops
from tapcheck.judge import Judge
from tapcheck.synth import plate_modes, study_boards, synthesize_tap, take_rng

from .conftest import training_recordings

SEED = 11  # the separating_model's boards
DEFECT_SIDES = ((5, "left"), (6, "right"), (7, "left"), (8, "right"))
TAKES = range(40, 48)  # never seen in training or calibration


def changed_mode_freqs(board) -> np.ndarray:
    """Frequencies (Hz, before and after) of the modes a board's defect changed."""
    cracked, sound = plate_modes(board), plate_modes(dataclasses.replace(board, defect=None))
    n = min(len(cracked.freqs_hz), len(sound.freqs_hz))
    loss = cracked.loss_factors[:n] / sound.loss_factors[:n]
    shift = np.abs(cracked.freqs_hz[:n] / sound.freqs_hz[:n] - 1.0)
    changed = (loss >= 3.0) | (shift >= 0.01)
    return np.concatenate([cracked.freqs_hz[:n][changed], sound.freqs_hz[:n][changed]])


def counterfactual_bands(board, side: str, rng_args, explainer, *, top: int = 2) -> np.ndarray:
    """The ``top`` bands of the explainer's grid, (top, 2) edges in Hz, where a take differs
    most from the same take of the board without its defect while ringing, 0-100 ms."""
    sound = dataclasses.replace(board, defect=None)
    a = strike_crops(synthesize_tap(board, side, rng=take_rng(*rng_args)))[0]
    b = strike_crops(synthesize_tap(sound, side, rng=take_rng(*rng_args)))[0]
    frames = (explainer.frames_ms >= 0) & (explainer.frames_ms <= 100)
    # only where either tap rings above its crop's mean level: the noise floors differ at
    # random (the defect's clatter draws shift the noise generator)
    diff = (np.abs(a - b) * (np.maximum(a, b) > 0.5))[:, frames].mean(axis=1)
    edges = explainer.bin_edges
    per_band = np.array([diff[lo:hi].mean()
                         for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    best = np.argsort(per_band)[::-1][:top]
    return np.stack([explainer.band_edges_hz[best], explainer.band_edges_hz[best + 1]], axis=1)


def overlaps(lo: float, hi: float, bands: np.ndarray) -> bool:
    return bool(np.any((bands[:, 0] < hi) & (bands[:, 1] > lo)))


@pytest.fixture(scope="module")
def explained(separating_model):
    """Every anomalous take of the defective boards, explained: (board, explanation, bands
    where the take differs from its defect-free counterfactual) triples."""
    torch.set_num_threads(1)
    judge = Judge(separating_model)
    with pytest.MonkeyPatch.context() as mp:  # the references: read where it was trained
        mp.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
        explainer = Explainer(judge)
    boards = {b.number: b for b in study_boards(seed=SEED)}
    out = []
    for number, side in DEFECT_SIDES:
        for k in TAKES:
            y = synthesize_tap(boards[number].board, side, rng=take_rng(SEED, number, side, k))
            crops = strike_crops(y)
            if judge.judge_crops(crops).anomalous:
                truth = counterfactual_bands(boards[number].board, side,
                                             (SEED, number, side, k), explainer)
                out.append((boards[number].board, explainer.explain_crops(crops), truth))
    assert len(out) >= 0.5 * len(DEFECT_SIDES) * len(TAKES)  # the model does see the defects
    return out


def test_explained_band_holds_modes_the_defect_changed(explained):
    hits = 0
    for board, e, _ in explained:
        freqs = changed_mode_freqs(board)
        hits += bool(np.any((freqs >= e.band_hz[0]) & (freqs <= e.band_hz[1])))
    assert hits >= 0.8 * len(explained), f"{hits} of {len(explained)}"
    # ...and not by naming the whole crop: the band is at most a third of 0-4.3 kHz
    narrow = sum(e.band_hz[1] - e.band_hz[0] <= 4307 / 3 for _, e, _ in explained)
    assert narrow >= 0.8 * len(explained)


def test_explained_band_is_where_the_counterfactual_differs(explained):
    hits = [overlaps(*e.band_hz, truth) for _, e, truth in explained]
    assert np.mean(hits) >= 0.8, f"{sum(hits)} of {len(hits)}"
    # ...which a band of the same width placed at random does far less often
    chance = [np.mean([overlaps(s, s + e.band_hz[1] - e.band_hz[0], truth)
                       for s in np.linspace(0, 4307 - (e.band_hz[1] - e.band_hz[0]), 100)])
              for _, e, truth in explained]
    assert np.mean(chance) <= 0.6, np.mean(chance)


def test_cracked_board_explained_by_its_damping(explained):
    """The rig's crack mostly adds friction damping: board 5/6's taps lose energy faster."""
    cracked = [e for board, e, _ in explained if board.defect.friction == 12.0]
    damped = sum(e.kind in ("faster-decay", "weaker") for e in cracked)
    assert cracked and damped >= 0.7 * len(cracked), [e.sentence for e in cracked]


def test_explanation_is_a_sentence_in_hz_and_ms(explained):
    _, e, _ = explained[0]
    assert e.sentence.endswith("ms after the strike")
    assert " kHz " in e.sentence and " on healthy boards, " in e.sentence
    # a shifted resonance compares by itself ("at X Hz instead of Y Hz"), the rest with "than"
    assert ("than on healthy" in e.sentence) == (e.kind != "shifted-resonance")
    assert 0 <= e.band_hz[0] < e.band_hz[1] <= 4307 and 0 <= e.time_ms[0] < e.time_ms[1] <= 337
    assert e.deviation.shape == (8, 4) and e.crop.shape == e.reference.shape == (100, 120)
    assert 0 < e.relief <= 1.5


def test_describe_difference_reads_decay_and_resonance():
    t = np.arange(40) * 2.9
    bins_hz = np.arange(10) * 43.0
    healthy = np.tile(-0.02 * t, (10, 1))
    assert describe_difference(np.tile(-0.06 * t, (10, 1)), healthy, bins_hz=bins_hz,
                               frames_ms=t)[:2] == ("faster-decay", pytest.approx(3.0))
    assert describe_difference(np.tile(-0.005 * t, (10, 1)), healthy, bins_hz=bins_hz,
                               frames_ms=t)[0] == "slower-decay"
    flat = np.zeros((10, 40))
    a, b = flat.copy(), flat.copy()
    a[2], b[7] = 1.0, 1.0
    kind, _, words = describe_difference(a, b, bins_hz=bins_hz, frames_ms=t)
    assert kind == "shifted-resonance" and words == (
        "has its resonance at 86 Hz instead of 301 Hz")
    assert describe_difference(flat - 1, flat, bins_hz=bins_hz, frames_ms=t)[0] == "weaker"


def _write_taps(folder, taps):
    from tapcheck.audio import write_wav

    boards = {b.number: b for b in study_boards(seed=SEED)}
    paths = []
    for number, side, k in taps:
        y = synthesize_tap(boards[number].board, side, rng=take_rng(SEED, number, side, k))
        paths.append(write_wav(folder / f"board{number}-{k}.wav", y, sr=44100))
    return paths


def test_cli_judge_explains_anomalous_clips(separating_model, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    clips = _write_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
    code, out, err = run_cli("judge", "--model", separating_model, *clips, "--json",
                             "--explain-dir", tmp_path / "why")
    assert code == 1, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["verdict"] for r in rows] == ["NORMAL", "ANOMALOUS", "ANOMALOUS"]
    assert "explanation" not in rows[0]
    for r in rows[1:]:
        why = r["explanation"]
        assert why["sentence"].endswith("ms after the strike")
        png = tmp_path / "why" / (r["path"].rsplit("/", 1)[1][:-4] + ".png")
        assert why["picture"] == str(png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000

    # judged again: its own pictures are refreshed in place; a user's file, a link or a folder
    # of the same name is kept, and the picture takes the next name
    why = tmp_path / "why"
    mine = why / "board6-50.png"
    mine.unlink()
    mine.write_bytes(b"\x89PNG my own picture")
    (why / "board6-50-2.png").symlink_to(tmp_path / "elsewhere.png")
    before = {p.name: p.lstat().st_mtime_ns for p in why.iterdir()}
    code, out, err = run_cli("judge", "--model", separating_model, *clips, "--json",
                             "--explain-dir", why)
    pictures = [json.loads(line).get("explanation", {}).get("picture") for line in out.splitlines()]
    assert pictures == [None, str(why / "board5-50.png"), str(why / "board6-50-3.png")], err
    assert mine.read_bytes() == b"\x89PNG my own picture"
    assert not (tmp_path / "elsewhere.png").exists()
    assert (why / "board5-50.png").stat().st_mtime_ns > before["board5-50.png"]

    code, out, _ = run_cli("judge", "--model", separating_model, *clips, "--explain")
    lines = out.splitlines()
    assert code == 1 and lines[0].startswith("NORMAL") and lines[1].startswith("ANOMALOUS")
    assert lines[2].strip() == f"why: {rows[1]['explanation']['sentence']}"
    assert len(lines) == 5


def test_explain_with_references_and_without_them(separating_model, tmp_path, run_cli,
                                                   monkeypatch):
    """--references DATASET gives the same explanation when it names the training dataset."""
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(training_recordings(separating_model)))
    clip = _write_taps(tmp_path, [(5, "left", 51)])[0]
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

    clips = _write_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
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
    # with every clip normal nothing needs explaining, and nothing is said about it
    code, out, err = run_cli("judge", "--model", moved, clips[0], "--explain")
    assert code == 0 and out.startswith("NORMAL") and "warning" not in err


def test_explanations_read_the_training_dataset_only_from_the_recordings_folder(
        separating_model, tmp_path, run_cli, monkeypatch):
    """A model file names its training dataset by a path that may lie anywhere (a folder of
    pytest's here, as /srv/bench or another machine's would be): it is not read unless named.
    The verdicts stand without explanations, and one line says what was left out and what
    gives it; --references PATH, or a recordings folder that holds the dataset, explain."""
    clips = _write_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
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
    import shutil

    clips = _write_taps(tmp_path, [(1, "left", 40), (5, "left", 50), (6, "right", 50)])
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
    clip = _write_taps(tmp_path, [(5, "left", 51)])[0]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--references", refs)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("ANOMALOUS") and lines[0].endswith(str(clip))
    assert lines[1].strip().startswith("why: ") and len(lines) == 2
    warned = [ln for ln in err.splitlines() if ln.startswith("tapcheck: warning: ")]
    assert warned[0] == (f"tapcheck: warning: {missing}: file not found (a reference take that "
                         f"{refs / 'manifest.csv'} lists) — restore it or delete its row")
    assert [w.split(": ")[2] for w in warned[1:5]] == [str(p) for p in others]
    assert warned[5] == (
        f"tapcheck: warning: {refs / 'manifest.csv'}: 5 of 16 reference takes cannot be used "
        "(listed above); explanations compare with the other 11 — restore or replace those "
        "files, or delete their rows (tapcheck doctor lists them)")
    assert len(warned) == 6 and "error" not in err
    assert {p: p.read_bytes() for p in refs.rglob("*") if p.is_file()} == before


def test_references_with_no_usable_take_is_one_error(separating_model, small_train_set,
                                                     tmp_path, run_cli):
    """With none of its takes usable, --references cannot explain at all: an error naming the
    manifest, as a dataset without normal takes is, after the first few takes' lines."""
    refs = shutil.copytree(small_train_set, tmp_path / "refs")
    for take in refs.glob("board*/*/take*.wav"):
        take.write_bytes(b"")
    clip = _write_taps(tmp_path, [(5, "left", 51)])[0]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--references", refs)
    assert code == 2 and out == "" and "Traceback" not in err
    errors = err.splitlines()
    assert len(errors) == 4 and all("is empty (0 bytes)" in e for e in errors[:3])
    assert errors[3] == (
        f"tapcheck: error: {refs / 'manifest.csv'}: none of its 16 normal training takes can be "
        "used as references (the first 3 listed above) — restore or replace those files, or "
        "delete their rows (tapcheck doctor lists them); or pass another --references dataset")
