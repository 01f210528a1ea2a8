"""Recording takes: the checks on arrays, and whole sessions through a real PulseAudio server.

The session tests run ``tapcheck record`` as a subprocess recording from the null sink's monitor
(ALSA device ``pulse``) and play synthetic taps into the sink with ``paplay`` when it says
"tap now" — the way a person at the bench taps after the prompt.
"""

import csv
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tapcheck.audio import load
from tapcheck.config import FeatureConfig, RecordConfig
from tapcheck.errors import TapcheckWarning
from tapcheck.features import find_strike, power_spectrogram
from tapcheck.recording import check_take
from tapcheck.synth import study_boards, synthesize_tap, take_rng

from .pulse import LiveCommand, tap_track

SR = 44100


# -- the checks, on arrays ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tap():
    board = study_boards(seed=2)[0]
    return synthesize_tap(board.board, "left", rng=take_rng(2, 1, "left", 0))


def test_a_good_take_passes(tap):
    check = check_take(tap, sr=SR)
    assert check.ok, check.problems


def test_a_dc_offset_warning_names_the_take(tap):
    # the bench said "clip: DC offset of +0.050 removed", naming no take the user could find
    with pytest.warns(TapcheckWarning, match=r"^take 3/10: DC offset of \+0\.050 removed"):
        check = check_take((tap + np.float32(0.05)).astype(np.float32), sr=SR,
                           label="take 3/10")
    assert check.ok, check.problems
    onset = find_strike(power_spectrogram(tap)) * 128 / SR
    assert check.onset_s == pytest.approx(onset) and -25 < check.peak_dbfs < 0


def test_silence_is_no_strike_and_too_quiet():
    noise = (np.random.default_rng(0).standard_normal(3 * SR) * 1e-3).astype(np.float32)
    check = check_take(noise, sr=SR)
    assert not check.ok
    assert check.problems[0].startswith("no strike heard (loudest moment only")
    assert check.onset_s is None
    assert any(p.startswith("too quiet (peak -") for p in check.problems)


def test_clipping_is_judged_on_the_device_samples(tap):
    loud = np.clip(tap * 20, -1, 1)  # the device clipped
    with warnings.catch_warnings():
        # lopsided flat tops hold DC, which is the clipping's: "DC offset removed (a faulty
        # microphone or cable?)" blamed the cable for a take refused, not even saved (QA)
        warnings.simplefilter("error")
        check = check_take(loud, sr=SR)
    assert [p for p in check.problems if p.startswith("clipped (")], check.problems
    assert "tap softer or turn the input gain down" in check.problems[-1]
    # a couple of samples at full scale are not yet clipping (record.clip_samples = 3)
    two = tap.copy()
    two[[100, 200]] = 1.0
    assert check_take(two, sr=SR).ok
    assert not check_take(two, sr=SR, record=RecordConfig(clip_samples=2)).ok


def test_a_strike_cut_off_by_the_end_of_the_take(tap):
    onset = find_strike(power_spectrogram(tap)) * 128
    late = tap[: onset + int(0.2 * SR)]  # 0.2 s of ring-down, the crops need 0.35 s
    check = check_take(late, sr=SR)
    assert check.problems == ["strike too close to the end of the take, its ring-down is cut "
                              "off — tap sooner after the prompt"]


def test_a_quiet_tap_is_too_quiet(tap):
    quiet = tap * 10 ** ((-45 - 20 * np.log10(np.abs(tap).max())) / 20)  # peak -45 dBFS
    check = check_take(quiet, sr=SR, features=FeatureConfig())
    assert check.problems == ["too quiet (peak -45.0 dBFS, needs -40) — move the microphone "
                              "closer or turn the input gain up"]


# -- sessions through the audio server ------------------------------------------------------------

@pytest.fixture
def recordings():
    """The test's recordings folder ($TAPCHECK_RECORDINGS, set by conftest)."""
    return Path(os.environ["TAPCHECK_RECORDINGS"])


def _rows(root):
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _onset_s(path):
    y = load(path)
    return find_strike(power_spectrogram(y)) * 128 / SR


def _record(*args, env=None, stdin=False):
    return LiveCommand("record", "--device", "pulse", *args, env=env, stdin=stdin)


def test_record_saves_each_tap_in_its_take(pulse, tmp_path, recordings):
    track = tmp_path / "tap.wav"
    tap_at = tap_track(track, [(1, "left", 0)], lead_s=0.8, tail_s=1.5)[0]
    source = sf.read(track, dtype="float32")[0]
    rec = _record("--board", "3", "--side", "left", "--label", "normal", "--group", "oak",
                  "--takes", "2", "--dataset", "bench", "--yes")
    assert "from 'pulse' at 44100 Hz" in rec.expect("^recording board 3 left")
    for k in (1, 2):
        rec.expect(f"^take {k}/2 — tap now$")
        pulse.play(track)
        line = rec.expect(f"^take {k}/2: ")
        assert line.endswith(f"saved board03/left/take00{k}.wav"), line
    assert rec.wait() == 0, rec.err
    assert rec.out[-1].startswith("saved 2 take(s) of board 3 left in ")

    root = recordings / "bench"
    rows = _rows(root)
    assert [(r["path"], r["take"]) for r in rows] == [("board03/left/take001.wav", "1"),
                                                     ("board03/left/take002.wav", "2")]
    for r in rows:
        assert (r["board"], r["side"], r["label"], r["group"], r["split"]) == (
            "3", "left", "normal", "oak", "train")
        assert (r["sample_rate"], r["duration_s"], r["source"]) == ("44100", "3.0", "pulse")
        info = sf.info(root / r["path"])
        assert (info.samplerate, info.channels, info.frames) == (44100, 1, 3 * SR)
        # the tap is in the take where it was played: ~0.8 s after the prompt ...
        y = load(root / r["path"])
        onset = _onset_s(root / r["path"])
        assert abs(onset - tap_at) < 0.25, onset
        # ... and it is the played tap, sample for sample (16-bit, through the server)
        a = int(onset * SR) - int(0.05 * SR)
        seg = y[a:a + SR // 2]
        corr = np.correlate(source, seg, mode="valid")
        best = int(np.argmax(corr))
        ref = source[best:best + len(seg)]
        assert np.corrcoef(ref, seg)[0, 1] > 0.99
        assert float(r["peak_dbfs"]) == pytest.approx(20 * np.log10(np.abs(y).max()), abs=0.05)

    # a second session, at the device rate of 48 kHz: numbering goes on, nothing is touched
    before = {r["path"]: (root / r["path"]).read_bytes() for r in rows}
    config = tmp_path / "48k.toml"
    config.write_text("[stream]\ndevice_sr = 48000\n")
    rec = _record("--board", "3", "--side", "left", "--takes", "1", "--dataset", "bench", "--yes",
                  "--config", config)
    assert "at 48000 Hz, resampled to 44100 Hz" in rec.expect("^recording board 3 left")
    rec.expect("^take 1/1 — tap now$")
    pulse.play(track)
    assert rec.expect("^take 1/1: ").endswith("saved board03/left/take003.wav")
    assert rec.wait() == 0, rec.err
    rows = _rows(root)
    assert [r["take"] for r in rows] == ["1", "2", "3"] and rows[2]["sample_rate"] == "44100"
    assert rows[2]["group"] == "oak"  # no --group: the board's takes' group, not none
    assert sf.info(root / rows[2]["path"]).frames == 3 * SR
    assert abs(_onset_s(root / rows[2]["path"]) - tap_at) < 0.25
    assert all((root / p).read_bytes() == b for p, b in before.items())


def test_bad_takes_are_said_and_retaken(pulse, tmp_path, recordings):
    good, loud = tmp_path / "tap.wav", tmp_path / "loud.wav"
    tap_track(good, [(2, "right", 1)], lead_s=0.6, tail_s=1.2)
    tap_track(loud, [(2, "right", 1)], lead_s=0.6, tail_s=1.2, gain=8.0)  # past full scale
    rec = _record("--board", "2", "--side", "right", "--takes", "1", "--duration", "2",
                  "--dataset", "retakes", "--yes")
    rec.expect("^take 1/1 — tap now$")  # nobody taps
    assert "no strike heard (loudest moment only" in rec.expect("^take 1/1: .* — not saved$")
    rec.expect("^take 1/1 — tap now$")
    pulse.play(loud)
    line = rec.expect("^take 1/1: .* — not saved$")
    assert "clipped (" in line and "no strike" not in line
    rec.expect("^take 1/1 — tap now$")
    pulse.play(good)
    assert rec.expect("^take 1/1: ").endswith("saved board02/right/take001.wav")
    assert rec.wait() == 0
    assert rec.out[-1].endswith("(take 1-1); 2 bad take(s) not kept")
    assert [r["path"] for r in _rows(recordings / "retakes")] == ["board02/right/take001.wav"]


def test_keep_bad_keeps_and_says_why(pulse, recordings):
    rec = _record("--board", "4", "--side", "left", "--takes", "1", "--duration", "1.5",
                  "--dataset", "kept", "--yes", "--keep-bad")
    line = rec.expect("^take 1/1: ")
    assert line.endswith("(kept although: no strike heard (loudest moment only "
                         + line.split("loudest moment only ")[1])
    assert "saved board04/left/take001.wav" in line
    assert rec.wait() == 0
    assert len(_rows(recordings / "kept")) == 1


def test_yes_gives_up_after_too_many_bad_takes(pulse, tmp_path, recordings):
    config = tmp_path / "c.toml"
    config.write_text("[record]\nmax_retakes = 1\n")
    rec = _record("--board", "4", "--side", "left", "--takes", "3", "--duration", "1",
                  "--dataset", "nobody", "--yes", "--config", config)
    assert rec.wait() == 2
    assert len(rec.err) == 1 and rec.err[0].startswith(
        "tapcheck: error: 2 bad takes in a row from 'pulse' (last: no strike heard")
    assert not (recordings / "nobody" / "manifest.csv").exists()


@pytest.mark.parametrize("trigger", [False, True], ids=["prompted", "trigger"])
def test_a_microphone_that_cannot_be_opened_leaves_no_dataset_folder(pulse, recordings, trigger):
    """A microphone PortAudio lists but cannot open (its PulseAudio source gone) left the new
    dataset's folder behind, holding its lock file alone (QA): the folder was made before the
    microphone was opened, outside the block that takes it back."""
    rec = _record("--board", "1", "--side", "left", "--dataset", "newds", "--yes",
                  *(["--trigger"] if trigger else []), env={"PULSE_SOURCE": "no-such-source"})
    assert rec.wait() == 2
    # one line: ALSA's and PortAudio's own lines of the failed probe and open were above it
    assert len(rec.err) == 1, rec.err
    assert rec.err[0].startswith("tapcheck: error: cannot open 'pulse' at "), rec.err
    # nothing made: not the dataset's folder, nor the recordings folder made for it
    assert not recordings.exists() or not any(recordings.iterdir())


def test_a_microphone_that_goes_away_mid_session_is_one_line(recordings):
    """A microphone unplugged while record listened: PortAudio's ALSA thread printed three
    lines of its own ("Expression 'alsa_snd_pcm_poll_descriptors_revents( … )' failed in
    'src/hostapi/alsa/pa_linux_alsa.c', line: 3665") above tapcheck's one line. A server of its
    own loses its only source (PulseAudio moves a stream to another source when there is one),
    and the session's server goes on for the other tests."""
    from .pulse import PulseServer

    own = PulseServer().start()
    try:
        rec = _record("--board", "1", "--side", "left", "--dataset", "gone", "--trigger",
                      env=own.env)
        rec.expect("tap now")
        time.sleep(1.0)  # listening, not opening
        [sink] = [line.split()[0] for line in own.pactl("list", "short", "modules").stdout
                  .splitlines() if "module-null-sink" in line]
        own.pactl("unload-module", sink)
        assert rec.wait() == 2
    finally:
        own.stop()
    assert rec.err == ["tapcheck: error: no audio from 'pulse' for 2 s — check the microphone "
                       "is still plugged in, then start again"]


def test_ctrl_c_after_the_first_takes_audio_is_in_keeps_it(pulse, tmp_path, recordings):
    """The first take's check loaded torch after "tap now" (1.4-3 s): a Ctrl-C a second after the
    take's audio was all in lost it, 3 of 3 times, where a later take's was kept (QA)."""
    track = tmp_path / "one.wav"
    [at_s] = tap_track(track, [(1, "left", 2)], lead_s=1.0, tail_s=3.0)
    rec = _record("--board", "2", "--side", "left", "--takes", "5", "--dataset", "first",
                  "--trigger")
    rec.expect("^tap board 2 left 5 times")
    started = time.monotonic()
    pulse.play(track)
    # the take ends 2.5 s after its strike (3 s, 0.5 s of them before it)
    time.sleep(max(0.0, started + at_s + 2.5 + 0.8 - time.monotonic()))
    rec.proc.send_signal(signal.SIGINT)
    assert rec.wait() == 130
    assert rec.out[-1].startswith("saved 1 take(s) of board 2 left"), rec.out
    assert len(_rows(recordings / "first")) == 1


def test_interactive_session_on_stdin(pulse, tmp_path, recordings):
    track = tmp_path / "tap.wav"
    tap_track(track, [(3, "left", 2)], lead_s=0.6, tail_s=1.2)
    rec = _record("--board", "3", "--side", "left", "--takes", "3", "--duration", "2",
                  "--dataset", "asked", stdin=True)
    time.sleep(0.5)
    rec.send("\n")  # Enter: record take 1
    rec.expect("^take 1/3 — tap now$")
    pulse.play(track)
    assert rec.expect("^take 1/3: ").endswith("saved board03/left/take001.wav")
    rec.send("q\n")  # stop after one
    assert rec.wait() == 0
    assert rec.out[-1].startswith("saved 1 take(s) of board 3 left")
    assert rec.out[-2] == "take 2/3: press Enter to record, q Enter to stop "
    assert len(_rows(recordings / "asked")) == 1


def test_a_session_nobody_can_answer_is_refused(pulse, recordings):
    """Without --yes and with standard input at its end (cron, `< /dev/null`), record saved 0
    takes and exited 0, which a script reads as a session done (QA)."""
    rec = _record("--board", "3", "--side", "left", "--takes", "2", "--dataset", "unasked")
    assert rec.wait() == 2
    assert rec.err[-1] == ("tapcheck: error: standard input ended before the first take: nobody "
                           "answered the prompt — run it at a terminal, or pass --yes (or "
                           "--trigger) to record without questions")
    assert not [line for line in rec.out if line.startswith("saved")]  # of a folder now gone
    # the new dataset's folder, which got no take, is taken back (it held a lock file alone,
    # which `datasets` and `info` did not know)
    assert not (recordings / "unasked").exists()


def test_ctrl_d_at_a_terminal_stops_the_session(pulse, recordings):
    """End of input typed at a terminal is someone stopping, as q is: not "nobody answered"."""
    import pty

    terminal, side = pty.openpty()
    try:
        rec = _record("--board", "3", "--side", "left", "--takes", "2", "--dataset", "typed",
                      stdin=side)
        rec.expect("^recording board 3 left")
        time.sleep(1.0)  # at the prompt, which ends without a line break
        os.write(terminal, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert rec.wait() == 0, rec.err
    finally:
        os.close(terminal)
        os.close(side)
    assert rec.out[-1].startswith("saved 0 take(s) of board 3 left")
    assert not [line for line in rec.err if "nobody answered" in line]


def test_trigger_saves_one_take_per_tap_and_none_for_silence(pulse, tmp_path, recordings):
    track = tmp_path / "three.wav"
    taps = [(1, "left", 2), (1, "left", 3), (2, "left", 4), (5, "left", 5)]
    tap_track(track, taps, lead_s=1.0, spacing_s=3.5, tail_s=2.8)
    y, sr = sf.read(track, dtype="float32")
    y[: int(2.5 * sr)] *= 0.05  # a tap too soft to trigger first (QA: nothing happened at all)
    sf.write(track, y, sr, subtype="FLOAT")
    rec = _record("--board", "9", "--side", "left", "--takes", "3", "--dataset", "trig",
                  "--trigger")
    rec.expect("^tap board 9 left 3 times")
    time.sleep(1.5)  # silence (room noise) first: no take
    assert not [line for line in rec.out if "saved" in line]
    pulse.play(track)
    assert rec.expect("^take 1/3: a sound rose", timeout=30).endswith(
        "short of the 20 dB a tap must rise (stream.margin_db) — too soft to count as a tap: "
        "strike harder, or "
        "bring the microphone closer")
    for k in (1, 2, 3):
        assert rec.expect(f"^take {k}/3: ", timeout=30).endswith(
            f"saved board09/left/take00{k}.wav")
    assert rec.wait() == 0
    rows = _rows(recordings / "trig")
    assert len(rows) == 3
    for r in rows:
        # the strike 0.5 s into the take (stream.pre_roll_s), to within a detector frame or two
        assert abs(_onset_s(recordings / "trig" / r["path"]) - 0.5) < 0.012
        assert sf.info(recordings / "trig" / r["path"]).frames == 3 * SR

    # nobody taps: no take, and Ctrl-C stops cleanly
    rec = _record("--board", "9", "--side", "right", "--takes", "1", "--dataset", "trig",
                  "--trigger")
    rec.expect("^tap board 9 right 1 times")
    time.sleep(4.0)
    rec.proc.send_signal(signal.SIGINT)
    assert rec.wait() == 130
    assert not [line for line in rec.out if "— saved" in line or "not saved" in line]
    assert rec.out[-1].startswith("saved 0 take(s) of board 9 right")
    assert rec.err[-1] == ("tapcheck: stopped; every finished take is saved, the take in "
                           "progress is not")
    assert len(_rows(recordings / "trig")) == 3


def test_a_burst_of_taps_is_refused_once(pulse, tmp_path, recordings):
    """Four taps 0.6 s apart: each strike's take held the rest, so record said "4 strikes in
    one take", then "3", then "2", and saved the last (QA). Now one line for the burst, no take
    of it; the next lone tap is saved."""
    parts = []
    for k in range(4):
        tap_track(tmp_path / f"{k}.wav", [(1, "left", 10 + k)], lead_s=1.0 + 0.6 * k,
                  tail_s=7.0 - 0.6 * k)
        parts.append(sf.read(tmp_path / f"{k}.wav", dtype="float32")[0])
    length = min(len(p) for p in parts)
    lone = tmp_path / "lone.wav"
    tap_track(lone, [(1, "left", 20)], lead_s=0.5, tail_s=3.0)
    burst = tmp_path / "burst.wav"
    sf.write(burst, sum(p[:length] for p in parts), SR, subtype="FLOAT")
    rec = _record("--board", "9", "--side", "left", "--takes", "1", "--dataset", "burst",
                  "--trigger")
    rec.expect("^tap board 9 left 1 times")
    pulse.play(burst).wait()
    line = rec.expect("^take 1/1: ", timeout=30)
    assert line.endswith("4 strikes in one take — leave 3 s between taps — not saved, tap "
                         "again"), line
    time.sleep(3.0)  # the burst's other strikes have come and gone
    pulse.play(lone)
    assert rec.expect("^take 1/1: ", timeout=30).endswith("saved board09/left/take001.wav")
    assert rec.wait() == 0
    assert sum(line.startswith("take 1/1: ") for line in rec.out) == 2, rec.out
    assert len(_rows(recordings / "burst")) == 1


def test_killing_record_mid_take_leaves_the_dataset_consistent(pulse, tmp_path, recordings):
    track = tmp_path / "tap.wav"
    tap_track(track, [(4, "right", 0)], lead_s=0.5, tail_s=1.2)
    rec = _record("--board", "4", "--side", "right", "--takes", "5", "--duration", "2",
                  "--dataset", "killed", "--yes")
    for k in (1, 2):
        rec.expect(f"^take {k}/5 — tap now$")
        pulse.play(track)
        rec.expect(f"^take {k}/5: .*saved")
    rec.expect("^take 3/5 — tap now$")
    pulse.play(track)
    time.sleep(1.0)  # mid-take
    rec.proc.send_signal(signal.SIGKILL)
    rec.wait()
    root = recordings / "killed"
    rows = _rows(root)
    assert [r["path"] for r in rows] == ["board04/right/take001.wav", "board04/right/take002.wav"]
    for r in rows:
        assert sf.info(root / r["path"]).frames == 2 * SR
        load(root / r["path"])  # complete and readable
    assert sorted(p.name for p in (root / "board04" / "right").iterdir()) == [
        "take001.wav", "take002.wav"]
    # a new session goes on from take 3; Ctrl-C in the middle of its second take keeps the first
    rec = _record("--board", "4", "--side", "right", "--takes", "5", "--duration", "2",
                  "--dataset", "killed", "--yes")
    rec.expect("^take 1/5 — tap now$")
    pulse.play(track)
    assert rec.expect("^take 1/5: ").endswith("saved board04/right/take003.wav")
    rec.expect("^take 2/5 — tap now$")
    time.sleep(0.7)
    rec.proc.send_signal(signal.SIGINT)
    assert rec.wait() == 130
    assert rec.out[-1].startswith("saved 1 take(s) of board 4 right")
    assert "(take 3-3)" in rec.out[-1]
    assert [r["take"] for r in _rows(root)] == ["1", "2", "3"]


def test_a_take_file_without_its_row_is_reported_kept_and_numbered_after(pulse, recordings):
    # what a SIGKILL between the WAV and the manifest row leaves behind
    folder = recordings / "orphans" / "board06" / "right"
    folder.mkdir(parents=True)
    sf.write(folder / "take005.wav", np.zeros(SR, np.float32), SR)
    before = (folder / "take005.wav").read_bytes()
    rec = _record("--board", "6", "--side", "right", "--takes", "1", "--duration", "1",
                  "--dataset", "orphans", "--yes", "--keep-bad")
    assert rec.wait() == 0, rec.err
    assert rec.err[0] == (
        f"tapcheck: warning: {recordings / 'orphans'}: 1 take file(s) are not in the manifest, "
        "e.g. board06/right/take005.wav (a session was stopped while saving); they are kept, and "
        "new takes are numbered after them")
    assert [r["path"] for r in _rows(recordings / "orphans")] == ["board06/right/take006.wav"]
    assert (folder / "take005.wav").read_bytes() == before


@pytest.mark.parametrize("duration", ["0", "-1", "nan", "inf", "121"])
def test_a_bad_duration_is_refused_before_the_microphone_or_a_folder(run_cli, tmp_path,
                                                                      duration):
    """It was checked only once the session had opened the device and made the dataset's
    folder, which then held only a lock file and read as "no such dataset"."""
    code, out, err = run_cli("record", "--board", "1", "--side", "left", "--dataset",
                             tmp_path / "r", "--duration", duration, "-y", "--takes", "1")
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert err.startswith("tapcheck: error: --duration must be between 0.5 and 60 s for a take, "
                          "not ")
    assert not (tmp_path / "r").exists()


def test_a_configs_take_length_is_named_as_the_configs(run_cli, tmp_path):
    """100 s in [audio] (valid for clips read, up to 120 s) was refused as "--duration must be
    ...", an option the user had not given (QA)."""
    config = tmp_path / "long.toml"
    config.write_text("[audio]\nduration_s = 100.0\n")
    code, out, err = run_cli("record", "--board", "1", "--side", "left", "--dataset",
                             tmp_path / "r", "--config", config, "-y", "--takes", "1")
    assert (code, out) == (2, "") and err == (
        "tapcheck: error: audio.duration_s (the config's) must be between 0.5 and 60 s for a "
        "take, not 100 — the study records 3 s takes\n"), err
    assert not (tmp_path / "r").exists()


def test_a_trigger_take_too_short_or_a_bad_stream_config_is_refused_before_anything(
        run_cli, tmp_path):
    """record --trigger refused --duration 0.6 (0.5 s pre-roll) and listen a margin_db under
    hysteresis_db only once listening: the dataset's folder (a lock file) or an empty log was
    left, and the config file was not named (QA)."""
    code, out, err = run_cli("record", "--board", "1", "--side", "left", "--dataset",
                             tmp_path / "r", "--duration", "0.6", "--trigger", "--takes", "1")
    assert (code, out) == (2, "") and err == (
        "tapcheck: error: a triggered take of 0.6 s leaves too little after the 0.5 s pre-roll "
        "— use --duration 3 (the study's), or lower stream.pre_roll_s\n")
    assert not (tmp_path / "r").exists()
    config = tmp_path / "stream.toml"
    config.write_text("[stream]\nmargin_db = 5\nhysteresis_db = 10\n")
    for command in (["record", "--board", "1", "--side", "left", "--dataset", tmp_path / "r",
                     "--trigger"], ["listen"]):
        code, out, err = run_cli(*command, "--config", config)
        assert (code, out) == (2, "") and err == (
            f"tapcheck: error: {config}: 'stream.hysteresis_db': 10 must be below "
            "stream.margin_db (5): a strike ends that far below where it began; e.g. margin_db "
            "= 20, hysteresis_db = 10 — fix it in the config file or option\n"), err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("section, key, value, problem", [
    ("stream", "block_s", "2.5", "2.5 s must be at most 1 s: a block that long reads as a "
                                 "microphone gone (listen waits 2 s for one); default 0.01"),
    ("stream", "warmup_s", "3600.0", "3600 s must be at most 10 s (default 0.3)"),
    ("stream", "pre_roll_s", "3600.0", "3600 s must be at most 10 s (default 0.5)"),
    ("stream", "highpass_hz", "100000.0", "100000 Hz must be below 20000 Hz: it removes hum "
                                          "below a tap's band (default 150)"),
    ("record", "clip_dbfs", "-400.0", "-400 must be at least -20 dBFS: samples above it count "
                                      "as clipped, so every take would be (default -0.1)"),
    ("record", "min_peak_dbfs", "0.0", "0 must be below record.clip_dbfs (-0.1): a take must "
                                       "peak above it without clipping (default -40)")])
def test_live_settings_no_session_can_work_with_are_refused_when_read(
        run_cli, tmp_path, section, key, value, problem):
    """Each was accepted, and record or listen then failed on every take or block blaming the
    microphone or the gain (-400 dBFS: "clipped — tap softer"), or went deaf for an hour (QA)."""
    config = tmp_path / "live.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    code, out, err = run_cli("record", "--board", "1", "--side", "left", "--dataset",
                             tmp_path / "r", "--config", config)
    assert (code, out) == (2, "") and err == (
        f"tapcheck: error: {config}: '{section}.{key}': {problem} — fix it in the config file or "
        "option\n"), err
    assert not (tmp_path / "r").exists()


def test_more_judging_threads_than_cpus_are_refused_by_what_judges_live(run_cli, tmp_path):
    """4096 verdict threads on 2 CPUs made listen's verdicts 14-22 s late, without a word (QA).
    Refused by listen (and station), which use it; a command that does not (doctor here, judge
    and train alike) reads the same config: a station's config on a smaller machine (review)."""
    from tapcheck.runtime import usable_cpus

    config = tmp_path / "live.toml"
    config.write_text(f"[stream]\njudge_threads = {usable_cpus() + 1}\n")
    code, _, err = run_cli("listen", "--config", config)
    assert code == 2 and err == (
        f"tapcheck: error: 'stream.judge_threads' {usable_cpus() + 1} is more than the "
        f"{usable_cpus()} CPU(s) this process may use: threads that wait for each other make "
        "verdicts seconds late — lower it in the config (default 1; 0 uses every core)\n"), err
    code, out, err = run_cli("doctor", "--config", config)
    assert "judge_threads" not in out + err


def test_record_refuses_a_board_folder_linked_out_of_the_dataset(pulse, tmp_path, recordings):
    """Takes went through the link, outside the dataset, which could then not be read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (recordings / "linked").mkdir(parents=True)
    (recordings / "linked" / "board07").symlink_to(outside)
    rec = _record("--board", "7", "--side", "left", "--takes", "1", "--duration", "1",
                  "--dataset", "linked", "--yes", "--keep-bad")
    assert rec.wait() == 2
    assert rec.err == [f"tapcheck: error: {recordings / 'linked' / 'board07'}: is a link to "
                       f"{outside}, outside the dataset; takes of board 7 left would be written "
                       "there and the dataset could no longer be read — replace the link by a "
                       "folder (move what it holds into the dataset)"]
    assert list(outside.iterdir()) == []


def test_a_session_refused_at_its_start_says_only_why(pulse, recordings):
    """A manifest that cannot take a row (here: a column tapcheck would drop) refuses the
    session before any take: one error line, and no "saved 0 take(s)" before it (mic QA)."""
    root = recordings / "notes"
    root.mkdir(parents=True)
    (root / "manifest.csv").write_text(
        "path,board,side,label,group,split,take,recorded_at,sample_rate,duration_s,source,"
        "peak_dbfs,notes\n", encoding="utf-8")
    rec = _record("--board", "7", "--side", "left", "--takes", "1", "--duration", "1",
                  "--dataset", "notes", "--yes")
    assert rec.wait() == 2
    assert rec.out == []
    assert len(rec.err) == 1 and rec.err[0].startswith(
        f"tapcheck: error: {root / 'manifest.csv'}: has column(s) 'notes' that tapcheck does "
        "not keep"), rec.err


def test_the_inherited_group_is_read_again_as_the_session_starts(pulse, tmp_path):
    """record read the board's group before taking the dataset's lock: takes imported into the
    board in between gave it a group the recorded takes then lacked (import reads it under the
    lock)."""
    from tapcheck.datasets import Dataset
    from tapcheck.devices import Microphone, find_input_device
    from tapcheck.recording import Recorder, TakeLabels

    ds = Dataset.create(tmp_path / "d")
    lines = []
    mic = Microphone(find_input_device("pulse"), sr=SR)
    recorder = Recorder(ds, TakeLabels(3, "left", "normal", None, "train"), mic=mic,
                        say=lines.append, keep_bad=True)
    # another session (an import) files the board's first takes, of lot "oak", meanwhile
    other = Dataset(ds.root)
    other.add_take(np.zeros(SR, np.float32), sr=SR, board=3, side="right", label="normal",
                   group="oak", split="train")
    with ds.locked(), mic:
        recorder.record(1, duration_s=1.0)  # room noise only: kept (keep_bad), a take all the same
    rows = _rows(ds.root)
    assert [(r["side"], r["group"]) for r in rows] == [("right", "oak"), ("left", "oak")], lines
