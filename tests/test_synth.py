"""The synthetic rig: physics that behaves like physics, deterministic per seed, like real wood."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from tapcheck.audio import load
from tapcheck.features import find_strike, power_spectrogram
from tapcheck.synth import (Board, Wood, plate_modes, study_boards, synthesize_tap, take_rng)

from .conftest import knock_files

SPECS = {s.number: s for s in study_boards(seed=0)}


def tap(number, side, k, seed=0):
    return synthesize_tap(SPECS[number].board, side, rng=take_rng(seed, number, side, k))


def test_takes_are_deterministic_per_seed():
    np.testing.assert_array_equal(tap(1, "left", 3), tap(1, "left", 3))
    assert not np.array_equal(tap(1, "left", 3), tap(1, "left", 4))
    assert not np.array_equal(tap(1, "left", 3, seed=0), tap(1, "left", 3, seed=1))


def test_dataset_is_deterministic_per_seed(tmp_path):
    from tapcheck.synth import make_study_dataset

    a = make_study_dataset(tmp_path / "a", takes=1, seed=5)
    b = make_study_dataset(tmp_path / "b", takes=1, seed=5)
    assert [t.path for t in a.takes] == [t.path for t in b.takes]
    for t in a.takes:
        assert (a.root / t.path).read_bytes() == (b.root / t.path).read_bytes()


def test_dataset_mirrors_the_study(tiny_dataset):
    ds = tiny_dataset
    assert {t.board for t in ds.select(split="train")} == {1, 2, 3, 4, 5, 6}
    assert {t.board for t in ds.select(label="defect")} == {5, 6, 7, 8}
    assert {t.board for t in ds.select(group="similar-material")} == {11, 12, 13}
    test_boards = {t.board for t in ds.select(split="test")}
    assert test_boards == {1, 2, 3, 4, 7, 8, 11, 12, 13}  # held-out takes of 1-4 included
    assert {(t.board, t.side) for t in ds.select(board=[7, 8])} == {(7, "left"), (8, "right")}
    assert all(t.sample_rate == 44100 and t.duration_s == 3.0 and t.source == "synth"
               for t in ds.takes)


def test_modes_scale_like_a_plate():
    board = SPECS[1].board
    f = plate_modes(board).freqs_hz
    thicker = plate_modes(dataclasses.replace(board, thickness_m=2 * board.thickness_m)).freqs_hz
    # Kirchhoff plates: frequency ∝ h (stiffness h³, mass h)
    np.testing.assert_allclose(thicker[:8] / f[:8], 2.0, rtol=1e-6)
    wood = dataclasses.replace(board.wood, density=4 * board.wood.density)
    denser = dataclasses.replace(board, wood=wood)
    np.testing.assert_allclose(plate_modes(denser).freqs_hz[:8] / f[:8], 0.5, rtol=1e-6)
    assert 100 < f[0] < 800  # a 13 x 20 cm board of a few mm rings in the hundreds of Hz


def test_a_crack_lowers_modes_and_adds_damping():
    board = SPECS[1].board
    sound = plate_modes(board)
    cracked = plate_modes(dataclasses.replace(board, defect=SPECS[5].board.defect))
    n = 10
    assert (cracked.freqs_hz[:n] <= sound.freqs_hz[:n] + 1e-6).all()  # less stiffness, lower modes
    assert (cracked.freqs_hz[:n] < sound.freqs_hz[:n] * 0.999).sum() >= 5
    assert (cracked.loss_factors[:n] > sound.loss_factors[:n]).all()
    assert (sound.crack_share == 0).all() and (cracked.crack_share > 0).all()


def test_the_strike_lands_at_a_random_time_and_is_found():
    onsets = []
    for k in range(1, 6):
        y = tap(2, "right", k)
        assert y.shape == (3 * 44100,) and y.dtype == np.float32 and np.abs(y).max() < 1.0
        onsets.append(find_strike(power_spectrogram(y)))
    assert len(set(onsets)) == 5


def _decay_and_centroid(y, sr=44100):
    S = power_spectrogram(y)
    onset = find_strike(S)
    level = 10 * np.log10(S.sum(axis=0) + 1e-10)
    peak = onset + int(np.argmax(level[onset:onset + 10]))
    below = np.nonzero(level[peak:] < level[peak] - 20)[0]
    t20 = below[0] * 128 / sr if len(below) else np.nan  # a knock at the clip's very end
    freqs = np.arange(S.shape[0]) * sr / 1024
    early = S[:, onset:onset + 35].sum(axis=1)  # first 100 ms
    return t20, float((freqs * early).sum() / early.sum())


def test_synthetic_taps_are_like_real_wood_knocks():
    """Decay time (T20) and spectral centroid of synthetic normal boards vs ../shared wood knocks.

    The synthetic boards ring about as long as the real knocks; they sound darker (centroid ~1 kHz
    vs ~1.7 kHz) because a 13 x 20 cm board below its coincidence frequency radiates its low modes
    best, while the real knocks are knuckles on furniture recorded by a phone. Both lie within a
    factor of two, and the synthetic board is nothing like ceramic or marble.
    """
    real = np.array([_decay_and_centroid(load(p)) for p in knock_files("wood")])
    synth = np.array([_decay_and_centroid(tap(b, s, k)) for b in (1, 2, 3, 11)
                      for s in ("left", "right") for k in (1, 2, 3)])
    t20_ratio = np.nanmedian(synth[:, 0]) / np.nanmedian(real[:, 0])
    centroid_ratio = np.median(synth[:, 1]) / np.median(real[:, 1])
    assert 0.5 < t20_ratio < 2.0, t20_ratio
    assert 0.5 < centroid_ratio < 2.0, centroid_ratio
    marble = np.array([_decay_and_centroid(load(p)) for p in knock_files("marble")])
    assert np.median(synth[:, 1]) < np.median(marble[:, 1]) / 3


def test_side_must_be_left_or_right():
    with pytest.raises(ValueError):
        synthesize_tap(Board(0.2, 0.13, 0.005, Wood()), "top", rng=np.random.default_rng(0))


@pytest.mark.parametrize("args, problem", [
    (["--seed", "-1"], "--seed must be between 0 and 4294967295, not -1"),
    (["--takes", "5", "--test-takes", "5"], "--test-takes must be between 0 and 4"),
    (["--test-takes", "-2"], "--test-takes must be between 0 and 29"),
    (["--takes", "0"], "--takes must be between 1 and 1000, not 0 — about 30 per board side"),
    (["--takes", "100000"], "--takes must be between 1 and 1000, not 100000"),
])
def test_bad_synth_options_are_one_line_and_leave_no_folder(run_cli, tmp_path, args, problem):
    code, _, err = run_cli("synth", "--dataset", tmp_path / "new", *args)
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_a_stopped_synth_takes_back_what_it_wrote_and_a_rerun_works(tmp_path, run_cli):
    """`kill` (as Ctrl-C) mid-synthesis: the half-written dataset is gone, files that were in
    the folder before stay, and the same command then succeeds."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "half"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    proc = subprocess.Popen([sys.executable, "-m", "tapcheck", "synth", "--dataset", root],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (root / "manifest.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a board side done: takes and manifest rows are on disk
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    assert code == 0, err
    assert "wrote 18 takes" in out


def test_synth_into_a_link_to_nothing_names_the_link(tmp_path, run_cli, monkeypatch):
    """It said "recordings/x: cannot be written (File exists) — a file stands where a folder
    should be", of a folder that was not there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAPCHECK_RECORDINGS")  # ./recordings, the default
    Path("recordings").symlink_to(tmp_path / "gone")
    code, out, err = run_cli("synth", "--dataset", "x", "--takes", "1")
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: recordings: is a symbolic link to {tmp_path / 'gone'}, "
                   "which does not exist — create the folder it points to, or choose another "
                   "path\n")
    assert os.listdir(tmp_path) == ["recordings"]


@pytest.mark.parametrize("manifest", [False, True], ids=["folder", "empty-dataset"])
@pytest.mark.parametrize("link", ["board03", "board05/left"])
def test_synth_refuses_a_board_folder_linked_out_of_the_dataset(tmp_path, run_cli, link,
                                                                manifest):
    """synth wrote its takes through the link, outside the dataset, which info, train and
    doctor then refused (import and record refused such a folder); and take files already
    there counted as "take file(s) its manifest does not list" of the dataset. Now the link is
    named, as import names it, before anything is written."""
    root = tmp_path / "syn"
    (root / link).parent.mkdir(parents=True)
    if manifest:
        (root / "manifest.csv").write_text(
            "path,board,side,label,group,split,take,recorded_at,sample_rate,duration_s,source,"
            "peak_dbfs\n")
    outside = tmp_path / "outside"
    (outside / "right").mkdir(parents=True)
    (outside / "right" / "take001.wav").write_bytes(b"someone else's")
    (root / link).symlink_to(outside)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    board, side = (3, "left") if link == "board03" else (5, "left")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / link}: is a link to {outside}, outside the "
                   f"dataset; takes of board {board} {side} would be written there and the "
                   "dataset could no longer be read — replace the link by a folder (move what it "
                   "holds into the dataset)\n")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not list(root.rglob("*.wav"))


def test_synth_refuses_a_board_folder_linked_inside_the_dataset(tmp_path, run_cli):
    """board01 linked to board02: synth wrote board 2's take001 over board 1's, both rows named
    the same audio, and info and doctor saw nothing wrong. A link among the folders synth
    writes is now refused before anything is written."""
    root = tmp_path / "syn"
    (root / "board02").mkdir(parents=True)
    (root / "board01").symlink_to(root / "board02")
    code, out, err = run_cli("synth", "--dataset", root, "--takes", "1")
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / 'board01'}: is a link to {root / 'board02'}; synth "
                   "writes every board side into a folder of its own — remove the link (synth "
                   "makes the folders it needs)\n")
    assert not list(root.rglob("*.wav"))
