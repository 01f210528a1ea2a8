"""Explanations: the band they name is where the synthetic rig's crack changed the board's modes.

The rig knows its physics: :func:`tapcheck.synth.plate_modes` of a cracked board and of the same
board without its crack give each mode's frequency and loss factor before and after. A mode the
defect changed is one whose loss factor grew 3-fold or whose frequency moved by 1 % or more.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from tapcheck.explain import Explainer, describe_difference
from tapcheck.features import strike_crops
from tapcheck.judge import Judge
from tapcheck.synth import plate_modes, study_boards, synthesize_tap, take_rng

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


@pytest.fixture(scope="module")
def explained(separating_model):
    """Every anomalous take of the defective boards, explained: (board, explanation) pairs."""
    torch.set_num_threads(1)
    judge = Judge(separating_model)
    explainer = Explainer(judge)
    boards = {b.number: b for b in study_boards(seed=SEED)}
    out = []
    for number, side in DEFECT_SIDES:
        for k in TAKES:
            y = synthesize_tap(boards[number].board, side, rng=take_rng(SEED, number, side, k))
            crops = strike_crops(y)
            if judge.judge_crops(crops).anomalous:
                out.append((boards[number].board, explainer.explain_crops(crops)))
    assert len(out) >= 0.5 * len(DEFECT_SIDES) * len(TAKES)  # the model does see the defects
    return out


def test_explained_band_holds_modes_the_defect_changed(explained):
    hits = 0
    for board, e in explained:
        freqs = changed_mode_freqs(board)
        hits += bool(np.any((freqs >= e.band_hz[0]) & (freqs <= e.band_hz[1])))
    assert hits >= 0.8 * len(explained), f"{hits} of {len(explained)}"
    # ...and not by naming the whole crop: the band is at most a third of 0-4.3 kHz
    narrow = sum(e.band_hz[1] - e.band_hz[0] <= 4307 / 3 for _, e in explained)
    assert narrow >= 0.8 * len(explained)


def test_cracked_board_explained_by_its_damping(explained):
    """The rig's crack mostly adds friction damping: board 5/6's taps lose energy faster."""
    cracked = [e for board, e in explained if board.defect.friction == 12.0]
    damped = sum(e.kind in ("faster-decay", "weaker") for e in cracked)
    assert cracked and damped >= 0.7 * len(cracked), [e.sentence for e in cracked]


def test_explanation_is_a_sentence_in_hz_and_ms(explained):
    _, e = explained[0]
    assert e.sentence.endswith("ms after the strike")
    assert " kHz " in e.sentence and "than on healthy boards" in e.sentence
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


def test_cli_judge_explains_anomalous_clips(separating_model, tmp_path, run_cli):
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

    code, out, _ = run_cli("judge", "--model", separating_model, *clips, "--explain")
    lines = out.splitlines()
    assert code == 1 and lines[0].startswith("NORMAL") and lines[1].startswith("ANOMALOUS")
    assert lines[2].strip() == f"why: {rows[1]['explanation']['sentence']}"
    assert len(lines) == 5


def test_explain_with_references_and_without_them(separating_model, tmp_path, run_cli):
    """--references DATASET gives the same explanation when it names the training dataset; a
    model whose dataset is gone says so in one line with the fix."""
    import torch as t

    from tapcheck.modelfile import save_checkpoint

    clip = _write_taps(tmp_path, [(5, "left", 51)])[0]
    checkpoint = t.load(separating_model, weights_only=True)
    dataset = checkpoint["dataset"]["path"]
    code, out, err = run_cli("judge", "--model", separating_model, clip, "--explain")
    code2, out2, _ = run_cli("judge", "--model", separating_model, clip, "--references",
                             dataset)
    assert code == code2 == 1 and out == out2, err

    checkpoint["dataset"]["path"] = str(tmp_path / "gone")
    moved = save_checkpoint(tmp_path / "moved.pt", checkpoint)
    code, out, err = run_cli("judge", "--model", moved, clip, "--explain")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"tapcheck: error: {moved}: its training dataset is not at {tmp_path / 'gone'}; "
        "explanations compare with its normal takes — pass --references DATASET (a dataset "
        "with normal takes of the same boards)"]
