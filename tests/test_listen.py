"""`tapcheck listen` through a real PulseAudio server: a verdict per tap, each logged with its clip.

Synthetic taps of a normal and a cracked board are played into the null sink while ``listen``
records from its monitor, so the whole live path runs: PortAudio, the stream detector, the clip,
the training features, the model, the log.
"""

import re
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tapcheck.console import score_pair
from tapcheck.inspections import InspectionLog
from tapcheck.synth import study_boards, synthesize_tap, take_rng

from .pulse import LiveCommand, tap_track

SEED = 11  # tap_track's study boards
NORMAL_TAPS = [(1, "left", 40), (1, "left", 41)]
DEFECT_TAPS = [(5, "left", 40), (5, "left", 41)]


@pytest.fixture(scope="module")
def bench_model(separating_model):
    """A model that tells these boards apart (conftest's ``separating_model``: arcface-resnet18,
    6 epochs on boards 1, 2 normal and 5, 6 cracked, its threshold at a 1 % false-alarm rate),
    and the offline scores of the taps played.

    The session's tiny model (one epoch) does not separate boards yet. Before any audio runs, the
    offline verdicts of the taps the tests play are checked with a margin, so a live failure is
    the live path's fault.
    """
    from tapcheck.judge import Judge

    path = separating_model
    boards = {b.number: b for b in study_boards(seed=SEED)}

    def tap(number, side, take):
        return synthesize_tap(boards[number].board, side, rng=take_rng(SEED, number, side, take))

    judge = Judge(path)
    offline = {t: judge.judge_array(tap(*t)).score for t in NORMAL_TAPS + DEFECT_TAPS}
    threshold = judge.threshold
    assert all(offline[t] < 0.7 * threshold for t in NORMAL_TAPS), (offline, threshold)
    assert all(offline[t] > 2.0 * threshold for t in DEFECT_TAPS), (offline, threshold)
    return path, offline


def _rows():
    with InspectionLog() as log:
        return log.query()


def test_listen_judges_every_tap_and_logs_it(pulse, bench_model, tmp_path, run_cli):
    model, offline = bench_model
    taps = [NORMAL_TAPS[0], DEFECT_TAPS[0], NORMAL_TAPS[1], DEFECT_TAPS[1]]
    track = tmp_path / "four.wav"
    tap_track(track, taps, lead_s=1.0, spacing_s=2.0, tail_s=1.5, seed=SEED)
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--board", "7",
                       "--taps", "4")
    started = live.expect(r"^listening on 'pulse' at 44100 Hz \(input latency ", stream="err",
                           timeout=60)
    assert f"({model}, threshold " in started
    time.sleep(1.0)
    assert live.out == []  # the room alone is never a tap
    pulse.play(track)
    lines = [live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30) for _ in taps]
    assert live.wait() == 0, live.err
    assert [line.split()[1] for line in lines] == ["NORMAL", "ANOMALOUS", "NORMAL", "ANOMALOUS"]
    assert all(line.endswith("board 7") for line in lines)
    assert live.err[-1].startswith("tapcheck: judged 4 tap(s), 2 anomalous; verdict ")

    rows = _rows()
    assert len(rows) == 4
    home = InspectionLog().root
    from tapcheck.judge import Judge

    judge = Judge(model)
    for row, line, t in zip(rows, lines, taps, strict=True):
        assert (row.board, row.model, row.model_path, row.device) == (
            7, "arcface-resnet18", str(model), "pulse")
        assert line.split()[1] == row.verdict and f"score {row.score:.4f}" in line
        assert row.threshold == pytest.approx(judge.threshold)
        assert row.latency_ms is not None and row.latency_ms > 0
        # the score live is the score of the same tap judged from its file, give or take what
        # 16-bit audio through a sound server and the room's noise change
        assert row.score == pytest.approx(offline[t], rel=0.3, abs=0.3 * judge.threshold)
        # the saved clip is what was judged: judging it again gives the logged score
        clip = home / row.clip
        assert clip.is_file()
        assert judge.judge_files([clip])[0].score == pytest.approx(row.score, rel=1e-5)
    seconds = [np.datetime64(r.time[:23]) for r in rows]
    gaps = np.diff(seconds).astype("timedelta64[ms]").astype(float) / 1000
    assert np.all(np.abs(gaps - 2.0) < 0.1)  # the taps were played 2 s apart

    code, out, _ = run_cli("log", "--board", "7")
    assert code == 0 and out.strip().splitlines()[-1] == "4 inspection(s), 2 anomalous"
    db = sqlite3.connect(home / "inspections.sqlite")  # an auditor's view
    assert db.execute("SELECT count(*) FROM inspections WHERE verdict = 'ANOMALOUS'"
                      ).fetchone() == (2,)


def test_a_tap_shown_but_not_logged_is_counted_and_leaves_no_clip(pulse, bench_model, tmp_path):
    """The log cannot be written (a full disk; here another program holds it locked): the tap's
    line was shown, then the summary said "judged 1 tap(s)" under two lines, and the tap's
    clip stayed on disk without a row (QA)."""
    model, _ = bench_model
    track = tmp_path / "two.wav"
    tap_track(track, NORMAL_TAPS, lead_s=1.0, spacing_s=4.0, tail_s=1.5, seed=SEED)
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--taps", "2")
    live.expect(r"^listening on 'pulse'", stream="err", timeout=60)
    time.sleep(1.0)
    pulse.play(track)
    live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30)
    home = InspectionLog().root
    deadline = time.monotonic() + 10
    while not _rows() and time.monotonic() < deadline:  # the first tap's row is in
        time.sleep(0.05)
    other = sqlite3.connect(home / "inspections.sqlite", timeout=5)
    other.execute("BEGIN EXCLUSIVE")  # until listen has given up on the second tap
    try:
        live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30)
        assert live.wait(timeout=30) == 2
    finally:
        other.rollback()
        other.close()
    summary = next(line for line in live.err if line.startswith("tapcheck: judged "))
    assert summary.startswith("tapcheck: judged 2 tap(s) (1 of them not logged: the error "
                              "below), "), live.err
    assert "locked" in live.err[-1], live.err
    rows = _rows()
    assert len(rows) == 1
    assert sorted(p.relative_to(home).as_posix() for p in (home / "clips").rglob("*.wav")) == [
        rows[0].clip]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_a_tap_is_judged_acts_once_it_is_logged(pulse, bench_model, tmp_path,
                                                             stop):
    """Ctrl-C or kill while a tap whose audio was all in was judged lost it without a word, and
    one between its verdict line and its log row showed a verdict the log never got (QA). The
    stop comes here between the two, as the station's page is told of the verdict."""
    import os

    from tapcheck.devices import Microphone, find_input_device
    from tapcheck.interrupts import terminate_as_interrupt
    from tapcheck.judge import Judge
    from tapcheck.listen import Listener

    model, _ = bench_model
    track = tmp_path / "one.wav"
    tap_track(track, NORMAL_TAPS[:1], lead_s=1.0, tail_s=1.5, seed=SEED)
    shown, players = [], []
    with InspectionLog(create=True) as log, \
            Microphone(find_input_device("pulse"), sr=44100) as mic:
        listener = Listener(Judge(model), mic=mic, log=log, show=shown.append,
                            warn=shown.append,
                            on_verdict=lambda verdict, when: os.kill(os.getpid(), stop))
        mic.wait_ready()
        with terminate_as_interrupt(), pytest.raises(KeyboardInterrupt):
            listener.run(on_ready=lambda: players.append(pulse.play(track)))
    players[0].wait(timeout=10)
    lines = [line for line in shown if re.match(r"^\d\d:\d\d:\d\d  NORMAL ", line)]
    rows = _rows()
    assert len(lines) == 1 and [r.verdict for r in rows] == ["NORMAL"], (shown, rows)
    assert listener.summary().startswith("judged 1 tap(s), 0 anomalous")


def test_a_pre_roll_shorter_than_the_crops_reach_back_is_refused(separating_model):
    """stream.pre_roll_s 0.01: every tap's crops began with padding, and each was warned of as
    a clip someone had trimmed (review)."""
    from tapcheck.config import StreamConfig
    from tapcheck.errors import ConfigError
    from tapcheck.judge import Judge
    from tapcheck.listen import Listener

    with pytest.raises(ConfigError, match=r"stream.pre_roll_s 0.01 s is shorter than the 23 ms "
                                          r"the model's crops reach back before a strike"):
        Listener(Judge(separating_model), mic=None, stream=StreamConfig(pre_roll_s=0.01))


def test_a_tap_cut_off_by_the_stop_is_told(separating_model):
    """Ctrl-C 0.1-0.2 s after a strike: "no taps judged", exit 0, and the tap heard was never
    mentioned (QA). The summary says a tap was heard and not judged."""
    from tapcheck.judge import Judge
    from tapcheck.listen import Listener
    from tapcheck.stream import StrikeClipper

    judge = Judge(separating_model)
    listener = Listener(judge, mic=None)  # no microphone: the summary is all that is asked
    assert listener.summary() == "no taps judged"
    sr = judge.config.audio.sr
    listener._clipper = StrikeClipper(sr=sr, post_s=listener.post_s)
    y = np.random.default_rng(0).normal(0, 1e-3, 2 * sr).astype(np.float32)
    y[sr:sr + 2000] += 0.5 * np.exp(-np.arange(2000) / 300.0).astype(np.float32)
    for i in range(0, sr + sr // 10, 441):  # up to 0.1 s after the strike
        listener._clipper.feed(y[i:i + 441], arrived=float(i))
    assert listener.summary() == ("no taps judged; 1 tap(s) heard as it stopped were not judged "
                                  "(their audio had not all come in)")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_listen_stops_cleanly(pulse, bench_model, tmp_path, stop):
    """Ctrl-C and kill end a shift with a summary; with SIGTERM the device runs at 48 kHz, so
    the clip is resampled to the model's 44.1 kHz before it is judged."""
    model, offline = bench_model
    track = tmp_path / "one.wav"
    tap_track(track, [DEFECT_TAPS[0]], lead_s=0.5, tail_s=1.0, seed=SEED)
    args = ["listen", "--model", model, "--device", "pulse"]
    if stop == signal.SIGTERM:
        (tmp_path / "48k.toml").write_text("[stream]\ndevice_sr = 48000\n")
        args += ["--config", tmp_path / "48k.toml"]
    live = LiveCommand(*args)
    rate = 48000 if stop == signal.SIGTERM else 44100
    live.expect(f"^listening on 'pulse' at {rate} Hz", stream="err", timeout=60)
    pulse.play(track)
    assert live.expect("ANOMALOUS", timeout=30)
    time.sleep(0.3)
    live.proc.send_signal(stop)
    assert live.wait(timeout=30) == 0
    assert live.err[-1].startswith("tapcheck: judged 1 tap(s), 1 anomalous")
    assert "Traceback" not in "\n".join(live.err)
    rows = _rows()
    assert len(rows) == 1 and (Path(InspectionLog().root) / rows[0].clip).is_file()
    assert rows[0].score == pytest.approx(offline[DEFECT_TAPS[0]], rel=0.3)
    clip = sf.info(Path(InspectionLog().root) / rows[0].clip)
    assert clip.samplerate == 44100


def test_listen_taps_per_board_gives_a_board_verdict_per_three_taps(pulse, bench_model, tmp_path,
                                                                     run_cli):
    """`--taps-per-board 3`: six taps make two boards, each judged by the vote of its three
    taps over the tap threshold (judge --per-board's rule), so one odd tap does not decide a
    board: normal-defect-normal is a NORMAL board, defect-normal-defect ANOMALOUS."""
    from tapcheck.judge import Judge

    model, offline = bench_model
    info = Judge(model).model.detector.calibration_
    assert info["board_taps"] == 3 and info["board_rule"] == "vote"
    bt = info["board_threshold"]
    assert bt == info["threshold"]
    assert all(offline[t] < 0.7 * bt for t in NORMAL_TAPS), (offline, bt)
    assert all(offline[t] > 1.5 * bt for t in DEFECT_TAPS), (offline, bt)
    taps = [NORMAL_TAPS[0], DEFECT_TAPS[0], NORMAL_TAPS[1],
            DEFECT_TAPS[1], NORMAL_TAPS[0], DEFECT_TAPS[0]]
    track = tmp_path / "six.wav"
    tap_track(track, taps, lead_s=1.0, spacing_s=2.0, tail_s=1.5, seed=SEED)
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--board", "7",
                       "--taps", "6", "--taps-per-board", "3")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    assert live.wait(timeout=60) == 0, live.err
    assert not any("warning" in line for line in live.err), live.err
    out = live.out
    assert len(out) == 8, out  # tap, tap, tap, board, tap, tap, tap, board
    assert [line.split()[1] for line in out] == [
        "NORMAL", "ANOMALOUS", "NORMAL", "#1:", "ANOMALOUS", "NORMAL", "ANOMALOUS", "#2:"]
    rows = _rows()
    assert len(rows) == 6
    for k, line in ((0, out[3]), (1, out[7])):
        scores = [r.score for r in rows[3 * k:3 * k + 3]]
        median, over = float(np.median(scores)), sum(x > bt for x in scores)
        verdict = "ANOMALOUS" if over >= 2 else "NORMAL"
        assert verdict == ("NORMAL", "ANOMALOUS")[k]
        shown_median, shown_threshold = score_pair(median, bt)  # as judge's lines widen
        assert line == (f"BOARD #{k + 1}: {verdict}  {over} of 3 taps over the threshold "
                        f"{shown_threshold}  median {shown_median}  board 7")
    assert live.err[-1].startswith("tapcheck: judged 6 tap(s), 3 anomalous; 2 board(s), "
                                   "1 anomalous; verdict ")

    with InspectionLog() as log:
        boards = log.query_boards()
    assert [(b.number, b.board, b.first_inspection, b.last_inspection, b.taps, b.board_taps,
             b.verdict) for b in boards] == [
        (1, 7, rows[0].id, rows[2].id, 3, 3, "NORMAL"), (2, 7, rows[3].id, rows[5].id, 3, 3,
                                                          "ANOMALOUS")]
    assert boards[1].median == pytest.approx(np.median([r.score for r in rows[3:]]))
    assert boards[1].time == rows[5].time and boards[0].threshold == pytest.approx(bt)
    code, out, _ = run_cli("log")
    assert code == 0 and out.strip().splitlines()[-1] == "2 board verdict(s), 1 anomalous"


def test_a_pause_ends_a_board_left_short(pulse, bench_model, tmp_path):
    """A board tapped twice (its third tap missed), a pause, then three taps of a cracked
    board: without the pause rule the cracked board's first tap completed the healthy board's
    verdict (NORMAL, 1 of 3) and every later board was shifted by one tap (mic QA). With
    ``--board-gap-s 3`` the short board gets no verdict and a warning, and the cracked board
    its own three taps. Each tap line says where its board stands."""
    model, _ = bench_model
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    tap_track(first, NORMAL_TAPS, lead_s=1.0, spacing_s=1.5, tail_s=2.5, seed=SEED)
    tap_track(second, [DEFECT_TAPS[0], DEFECT_TAPS[1], DEFECT_TAPS[0]], lead_s=1.5,
              spacing_s=1.5, tail_s=1.5, seed=SEED)  # 4 s after the second tap
    both = tmp_path / "both.wav"
    a, sr = sf.read(first, dtype="float32")
    b, _ = sf.read(second, dtype="float32")
    sf.write(both, np.concatenate([a, b]), sr, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--taps", "5",
                       "--taps-per-board", "3", "--board-gap-s", "3")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(both)
    assert live.wait(timeout=60) == 0, live.err
    out = live.out
    assert [line.split()[1] for line in out] == [
        "NORMAL", "NORMAL", "ANOMALOUS", "ANOMALOUS", "ANOMALOUS", "#1:"], out
    assert [line.split("  ")[-1] for line in out[:5]] == [
        "tap 1 of 3", "tap 2 of 3", "tap 1 of 3", "tap 2 of 3", "tap 3 of 3"]
    assert out[5].startswith("BOARD #1: ANOMALOUS  3 of 3 taps over the threshold ")
    short = [line for line in live.err if "then a pause" in line]
    assert len(short) == 1 and re.fullmatch(
        r"tapcheck: warning: \d\d:\d\d:\d\d: 2 of 3 taps, then a pause of [34]\.\d s \(over "
        r"stream\.board_gap_s, 3 s\): that board gets no verdict — tap it again; the taps from "
        r"here on are the next board", short[0]), short
    assert live.err[-1].startswith(
        "tapcheck: judged 5 tap(s), 3 anomalous; 1 board(s), 1 anomalous; 1 board(s) ended by "
        "a pause before their 3 taps, without a verdict; verdict "), live.err[-1]
    with InspectionLog() as log:
        boards = log.query_boards()
    rows = _rows()
    assert [(b.first_inspection, b.last_inspection, b.verdict) for b in boards] == [
        (rows[2].id, rows[4].id, "ANOMALOUS")]


@pytest.mark.parametrize("value, problem", [
    ("0", "--taps-per-board must be 1 or more, not 0"),
    ("-3", "--taps-per-board must be 1 or more, not -3"),
    ("2.5", "--taps-per-board '2.5' is not a whole number"),
    ("1000000000", "--taps-per-board must be at most 1000, not 1000000000"),
    ("three", "--taps-per-board 'three' is not a whole number")])
def test_listen_refuses_a_bad_taps_per_board(run_cli, value, problem):
    """Refused in one line with the fix, before the model or the microphone is opened."""
    code, out, err = run_cli("listen", "--model", "no-such-model.pt", "--taps-per-board", value)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"tapcheck: error: {problem} — give how many times each board "
                                "is tapped, e.g. --taps-per-board 3, or leave the option out to "
                                "judge taps only"]


def test_a_tap_not_judged_starts_the_pause_anew(pulse, bench_model, tmp_path):
    """The pause runs from the last strike heard, judged or not: told "not judged — lower the
    input gain … and tap again", an inspector who took longer than the gap to do so had the
    board ended under him (review). Two taps, a clipped one 2.5 s later, a third 2.5 s after
    it: one board of three taps with a 3 s gap."""
    model, _ = bench_model
    parts = [tmp_path / f"{name}.wav" for name in ("two", "clipped", "third")]
    tap_track(parts[0], NORMAL_TAPS, lead_s=1.0, spacing_s=1.5, tail_s=1.0, seed=SEED)
    tap_track(parts[1], [NORMAL_TAPS[0]], lead_s=1.5, tail_s=1.0, gain=40.0, seed=SEED)
    tap_track(parts[2], [NORMAL_TAPS[1]], lead_s=1.5, tail_s=1.5, seed=SEED)
    tracks = [sf.read(p, dtype="float32") for p in parts]
    both = tmp_path / "all.wav"
    sf.write(both, np.concatenate([y for y, _ in tracks]), tracks[0][1], subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--taps", "3",
                       "--taps-per-board", "3", "--board-gap-s", "3")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(both)
    assert live.wait(timeout=60) == 0, live.err
    assert any("not judged" in line for line in live.err), live.err
    assert not any("then a pause" in line for line in live.err), live.err
    assert [line.split("  ")[-1] for line in live.out[:3]] == [
        "tap 1 of 3", "tap 2 of 3", "tap 3 of 3"], live.out
    assert live.out[3].startswith("BOARD #1: NORMAL  0 of 3 taps"), live.out


def test_a_board_gap_without_boards_is_refused(run_cli):
    """--board-gap-s alone was ignored without a word (review)."""
    code, out, err = run_cli("listen", "--model", "no-such-model.pt", "--board-gap-s", "3")
    assert code == 2 and out == "" and err == (
        "tapcheck: error: --board-gap-s ends boards, and without --taps-per-board listen judges "
        "taps only — add --taps-per-board N (e.g. 3), or leave --board-gap-s out\n")


def test_listen_warns_once_when_boards_get_other_taps_than_calibrated(separating_model, run_cli,
                                                                      tmp_path):
    """The median rule's board threshold is for the median of train.board_taps (3) taps:
    another count is still judged (as judge --per-board does), after one warning at the start.
    The vote's stated rate per board is for its count too: one warning (it said nothing, and
    the log gave each board "2 (for 3)" taps; QA)."""
    from tapcheck.detectors import detector_from_state
    from tapcheck.modelfile import read_checkpoint, save_checkpoint

    code, _, err = run_cli("listen", "--model", separating_model, "--taps-per-board", "5",
                           "--device", "no-such-device")
    lines = err.splitlines()
    assert code == 2 and lines[0] == (
        "tapcheck: warning: --taps-per-board 5: the model's board verdict (most taps over the "
        "tap threshold) is calibrated for boards of 3 taps; boards of 5 are judged by the same "
        "rule, and a healthy one is flagged at another rate — tap each board 3 times"), err
    assert sum("taps-per-board" in line for line in lines) == 1
    code, _, err = run_cli("listen", "--model", separating_model, "--taps-per-board", "3",
                           "--device", "no-such-device")
    assert code == 2 and not any("warning" in line for line in err.splitlines()), err
    checkpoint = read_checkpoint(Path(separating_model))
    detector = detector_from_state(checkpoint["detector"])
    detector.board_rule = "median"
    checkpoint["detector"] = detector.recalibrate(
        method=detector.calibration_["method"]).get_state()
    median_model = save_checkpoint(tmp_path / "median-rule.pt", checkpoint)
    code, _, err = run_cli("listen", "--model", median_model, "--taps-per-board", "5",
                           "--device", "no-such-device")
    lines = err.splitlines()
    assert lines[0].startswith("tapcheck: warning: --taps-per-board 5: the model's board "
                               "threshold ")
    assert lines[0].endswith("is calibrated for the median of 3 taps, so its 2% false-alarm "
                             "rate per board holds only approximately — tap each board 3 times, "
                             "or retrain with train.board_taps = 5")
    assert code == 2 and lines[-1].startswith("tapcheck: error: ")  # the device, not the option
    assert sum("taps-per-board" in line for line in lines) == 1


def test_listen_refuses_a_device_rate_too_slow_for_the_models_crops(pulse, tiny_dataset,
                                                                     tmp_path, run_cli):
    """``[stream] device_sr`` is checked against the crops of the model listen judges with, not
    only the config's: 16 kHz reaches the study's crop (up to 4.3 kHz) but not a model's whose
    crop starts at bin 100 (up to 8.6 kHz). Refused before the microphone or the log opens."""
    from tapcheck.config import Config
    from tapcheck.featurecache import FeatureCache
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.training import train_model

    config = Config().replace("train", model="arcface-lite", epochs=1, batch_size=16)
    config = config.replace("features", fmin_bin=100)
    checkpoint = train_model(tiny_dataset, config=config, cache=FeatureCache(tmp_path / "cache"),
                             progress=False)
    model = save_checkpoint(tmp_path / "high.pt", checkpoint)
    (tmp_path / "16k.toml").write_text("[stream]\ndevice_sr = 16000\n")
    code, out, err = run_cli("listen", "--model", model, "--device", "pulse",
                             "--config", tmp_path / "16k.toml")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == (
        "tapcheck: error: stream.device_sr 16000 Hz records sound up to 8000 Hz only; tapcheck "
        "listens up to 8613 Hz — set stream.device_sr to 0, or to a rate of at least 17227 Hz "
        "that 'pulse' has")
    assert not InspectionLog().path.exists()


def test_two_taps_inside_one_crop_window_are_judged_once(pulse, bench_model, tmp_path):
    """Two taps 0.3 s apart, the second louder: each clip judged the loudest strike, so the
    second was judged twice, the first never, and a board verdict counted one strike twice
    (QA). Now one verdict, one warning, one board tap."""
    model, _ = bench_model
    quiet, loud = tmp_path / "quiet.wav", tmp_path / "loud.wav"
    tap_track(quiet, [NORMAL_TAPS[0]], lead_s=1.0, tail_s=2.0, gain=0.5, seed=SEED)
    tap_track(loud, [NORMAL_TAPS[1]], lead_s=1.3, tail_s=1.7, seed=SEED)
    both = tmp_path / "both.wav"
    a, sr = sf.read(quiet, dtype="float32")
    b, _ = sf.read(loud, dtype="float32")
    sf.write(both, a + b, sr, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--board", "7",
                       "--taps-per-board", "2")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(both)
    live.expect(r"inside its crops: the two were judged as one tap \(the louder\), not again — "
                r"leave a second between taps$", stream="err", timeout=30)
    time.sleep(1.0)
    live.proc.send_signal(signal.SIGINT)
    assert live.wait(timeout=30) == 0, live.err
    verdicts = [line for line in live.out if re.match(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS)", line)]
    assert len(verdicts) == 1 and "(2 strikes in the clip; judged the loudest)" in verdicts[0]
    assert not any(line.startswith("BOARD") for line in live.out)  # one tap of two
    assert len(_rows()) == 1
    # and the log keeps it with the tap: `log` gave the verdict as sound (QA)
    [row] = InspectionLog().query()
    assert any("2 strikes in the clip; the loudest was judged" in w for w in row.warnings), row


def test_a_strike_judged_with_the_tap_before_says_nothing_of_its_own_clip(pulse, bench_model,
                                                                         tmp_path):
    """Taps at 1.0, 1.9 and 2.4 s: the third lies inside the second's crops and is judged with
    it, yet its own clip's warning came first — "the strike is 0 ms after the clip's start …
    do not trim the quiet before it", of a tap with no verdict, advice for files (QA)."""
    model, _ = bench_model
    parts = []
    for k, (lead_s, tap) in enumerate([(1.0, (1, "left", 40)), (1.9, (1, "left", 43)),
                                       (2.4, (1, "left", 44))]):
        tap_track(tmp_path / f"{k}.wav", [tap], lead_s=lead_s, tail_s=5.0 - lead_s, seed=SEED)
        parts.append(sf.read(tmp_path / f"{k}.wav", dtype="float32")[0])
    n = min(map(len, parts))
    sf.write(tmp_path / "three.wav", sum(p[:n] for p in parts), 44100, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--board", "2")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(tmp_path / "three.wav")
    live.expect(r"the two were judged as one tap \(the louder\), not again", stream="err",
                timeout=30)
    time.sleep(2.0)
    live.proc.send_signal(signal.SIGINT)
    assert live.wait(timeout=30) == 0, live.err
    assert not [line for line in live.err if "after the clip's start" in line], live.err


def test_a_clipped_tap_is_not_judged_live(pulse, bench_model, tmp_path):
    """judge refuses a heavily clipped clip; listen logged a verdict on it, under warnings
    that blamed the cable (a DC offset) or the timing (QA)."""
    model, _ = bench_model
    track = tmp_path / "loud.wav"
    tap_track(track, [DEFECT_TAPS[0]], lead_s=1.0, tail_s=2.0, gain=5000.0, seed=SEED)
    live = LiveCommand("listen", "--model", model, "--device", "pulse")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    line = live.expect(r"is heavily clipped", stream="err", timeout=30)
    assert line.endswith("— not judged: lower the input gain (or strike softer) and tap again")
    time.sleep(1.0)
    live.proc.send_signal(signal.SIGINT)
    assert live.wait(timeout=30) == 0, live.err
    assert live.out == [] and _rows() == []


# (noise's start and length in s, its sd, the line said of it)
NOT_TAPS = {
    # loud noise that began like a tap (a machine switched on) was logged as an ANOMALOUS
    # inspection of the board in hand, under a DC-offset warning that blamed the cable (QA)
    "machine": (0.5, 1.5, 0.3, "a sound that did not die away",
                "— not judged: noise, not a tap; tap again when it is quiet"),
    # a 0.3 s burst of white noise (a blast of compressed air) dies away when it stops, and was
    # logged as an ANOMALOUS tap of the board in hand, with no warning (QA)
    "air": (1.0, 0.3, 0.25, "a hiss, not a tap", "— not judged: tap again when it is quiet"),
}


@pytest.mark.parametrize("sound", list(NOT_TAPS))
def test_a_sound_that_is_no_tap_is_not_judged_live(pulse, bench_model, tmp_path, sound):
    """Said and not judged; a tap after it is."""
    start_s, length_s, sd, said, ending = NOT_TAPS[sound]
    model, _ = bench_model
    track = tmp_path / f"{sound}.wav"
    tap_track(track, [NORMAL_TAPS[0]], lead_s=4.0, tail_s=2.0, seed=SEED)
    y, sr = sf.read(track, dtype="float32")
    at, n = int(start_s * sr), int(length_s * sr)
    y[at:at + n] += np.random.default_rng(0).normal(0, sd, n)
    sf.write(track, y, sr, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--taps", "1")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    line = live.expect(said, stream="err", timeout=30)
    assert line.endswith(ending), line
    assert live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30).split()[1] == "NORMAL"
    assert live.wait(timeout=30) == 0, live.err
    assert not any("DC offset" in line for line in live.err), live.err
    assert [r.verdict for r in _rows()] == ["NORMAL"]


def test_a_softer_tap_in_a_louder_room_is_warned_of_live(pulse, bench_model, tmp_path):
    """As judge warns of a file: a healthy tap 10 dB softer over pink noise at -45 dBFS stands
    some 18 dB less above the room's noise than the model's training takes (23 dB against
    41), where healthy taps are flagged several times as often (scripts/noise_robustness.py).
    At the terminal once a minute: its 330 characters came with every tap (QA); each tap's
    log row keeps it."""
    from tapcheck.synth import _pink_noise

    model, _ = bench_model
    track = tmp_path / "loud-room.wav"
    tap_track(track, [NORMAL_TAPS[0]] * 2, lead_s=1.0, tail_s=2.0, seed=SEED, gain=0.3)
    y, sr = sf.read(track, dtype="float32")
    noise = _pink_noise(len(y), np.random.default_rng(0))
    sf.write(track, y + (noise - noise.mean()) * 10 ** (-45 / 20), sr, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    line = live.expect(r"the tap stands [\d.]+ dB above the room's noise", stream="err",
                       timeout=30)
    assert re.search(r"\d\d:\d\d:\d\d: the tap stands [\d.]+ dB above the room's noise, [\d.]+ "
                     r"dB less than the model's training takes \([\d.]+ dB\): a louder room",
                     line), line
    live.expect(r"(NORMAL|ANOMALOUS)", timeout=30)  # judged all the same, with the warning
    live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30)  # the second tap
    live.proc.send_signal(signal.SIGINT)
    assert live.wait(timeout=30) == 0, live.err
    warned = [r for r in _rows() if any("above the room's noise" in w for w in r.warnings)]
    assert len(warned) == 2, [r.warnings for r in _rows()]
    assert sum("above the room's noise" in line for line in live.err) == 1, live.err


def test_a_tap_too_soft_to_trigger_is_told_live(pulse, bench_model, tmp_path):
    """QA: an operator tapping too softly saw nothing happen at all. The soft tap is told once,
    with what it fell short of; a tap struck properly after it is judged."""
    model, _ = bench_model
    track = tmp_path / "soft.wav"
    tap_track(track, NORMAL_TAPS, lead_s=1.0, spacing_s=3.0, tail_s=2.0, seed=SEED)
    y, sr = sf.read(track, dtype="float32")
    y[: int(3.5 * sr)] *= 0.02  # the first tap 34 dB softer: some 14 dB above the room's noise
    sf.write(track, y, sr, subtype="FLOAT")
    live = LiveCommand("listen", "--model", model, "--device", "pulse", "--taps", "1")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    line = live.expect(r"a sound rose", stream="err", timeout=30)
    assert re.fullmatch(r"tapcheck: warning: \d\d:\d\d:\d\d: a sound rose 1\d\.\d dB above "
                        r"the noise floor, short of the 20 dB a tap must rise "
                        r"\(stream\.margin_db\) — too soft to count as a tap: strike "
                        r"harder, or bring the microphone closer", line), line
    assert live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30).split()[1] == "NORMAL"
    assert live.wait(timeout=30) == 0, live.err
    assert sum("a sound rose" in line for line in live.err) == 1, live.err
    assert [r.verdict for r in _rows()] == ["NORMAL"]


def test_a_model_file_changed_mid_session_is_said_and_kept_with_each_verdict(pulse, bench_model,
                                                                               tmp_path):
    """A QA engineer enrolled into the model mid-shift: the session went on judging with the
    model it had loaded, and its rows named a file that now judges otherwise, without a word
    (QA). Said at the terminal once; every later verdict's row keeps it."""
    import os
    import shutil

    model, _ = bench_model
    mine = tmp_path / "station.pt"
    shutil.copy(model, mine)
    track = tmp_path / "two.wav"
    tap_track(track, [NORMAL_TAPS[0]] * 3, lead_s=1.0, spacing_s=3.0, tail_s=2.0, seed=SEED)
    live = LiveCommand("listen", "--model", mine, "--device", "pulse", "--taps", "3")
    live.expect("^listening on 'pulse'", stream="err", timeout=60)
    pulse.play(track)
    live.expect(r"^\d\d:\d\d:\d\d  (NORMAL|ANOMALOUS) ", timeout=30)
    shutil.copy(model, tmp_path / "new.pt")  # as enroll writes it: a new file renamed over it
    os.replace(tmp_path / "new.pt", mine)
    assert live.wait(timeout=60) == 0, live.err
    said = [line for line in live.err if "since this session loaded it" in line]
    assert said == [f"tapcheck: warning: {mine} has changed since this session loaded it "
                    "(enrolled, trained again or moved?): its verdicts are still the loaded "
                    "model's — stop and start the session again to judge with the file"], live.err
    rows = _rows()
    assert len(rows) == 3 and not any("since this session" in w for w in rows[0].warnings)
    assert all(any("since this session" in w for w in r.warnings) for r in rows[1:])
