"""Judging: verdicts, exit statuses, bad files reported while the others are judged."""

import json
import re
import subprocess
import sys

import pytest
import torch

from tapcheck.judge import Judge
from tapcheck.modelfile import save_checkpoint, settings_digest

from .conftest import knock_files, write_tone


def _with_threshold(tiny_model, tmp_path, threshold):
    ck = torch.load(tiny_model, weights_only=True)
    # the calibration scores scaled alike: a threshold far from the scores it is stored with
    # is refused as damaged (modelcheck), and the fits scale with their scores
    ck["detector"]["calibration_scores"] *= threshold / -ck["detector"]["offset"]
    ck["detector"]["offset"] = -threshold
    ck["detector"]["calibration"]["threshold"] = threshold  # what judge states must agree
    return save_checkpoint(tmp_path / f"t{threshold}.pt", ck)


def test_exit_status_0_when_all_normal(tiny_model, tiny_dataset, tmp_path, run_cli):
    model = _with_threshold(tiny_model, tmp_path, 1e9)
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.takes[:2]]
    code, out, err = run_cli("judge", *clips, "--model", model)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(ln.startswith("NORMAL") for ln in lines)
    assert "threshold 1000000000.0000" in lines[0] and "arcface-resnet18" in lines[0]


def test_exit_status_1_when_any_anomalous(tiny_model, tiny_dataset, tmp_path, run_cli):
    # threshold 0: every clip with a score above nothing is anomalous (a negative threshold is
    # refused as a damaged model file: anomaly scores are never negative)
    model = _with_threshold(tiny_model, tmp_path, 0.0)
    code, out, _ = run_cli("judge", tiny_dataset.path_of(tiny_dataset.takes[0]), "--model", model)
    assert code == 1 and out.startswith("ANOMALOUS")


def test_exit_status_2_and_the_good_clips_still_judged(tiny_model, tiny_dataset, tmp_path, run_cli):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....nonsense")
    good = tiny_dataset.path_of(tiny_dataset.takes[0])
    code, out, err = run_cli("judge", bad, good, "--model", tiny_model)
    assert code == 2
    assert str(good) in out and len(out.strip().splitlines()) == 1
    assert f"{bad}: is not a readable audio file" in err and "1 of 2" in err


def test_debug_shows_each_bad_clips_traceback_and_judges_the_others(tiny_model, tiny_dataset,
                                                                    tmp_path, run_cli,
                                                                    monkeypatch):
    """--debug asks for tracebacks: a clip that cannot be judged gets its traceback (stderr),
    then its error line, and the other clips are still judged; without --debug one line each."""
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....nonsense")
    silent = write_tone(tmp_path / "silent.wav", tap_at_s=None)
    good = tiny_dataset.path_of(tiny_dataset.select(split="test")[0])  # a tap never heard
    code, out, err = run_cli("judge", "--debug", bad, good, silent, "--model", tiny_model)
    assert code == 2 and len(out.splitlines()) == 1 and str(good) in out
    assert err.count("Traceback (most recent call last):") == 2, err
    first, second = err.split("Traceback (most recent call last):")[1:]
    assert "AudioError" in first and f"tapcheck: error: {bad}: is not a readable" in first
    assert "no strike found" in second and f"tapcheck: error: {silent}: " in second
    assert err.rstrip().endswith("tapcheck: 2 of 3 clip(s) could not be judged")
    monkeypatch.delenv("TAPCHECK_DEBUG")  # main() sets it for the process; a new one has none
    code, out, err = run_cli("judge", bad, good, silent, "--model", tiny_model)
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 4, err
    for off in ("0", "false", "off"):  # any value at all turned tracebacks on
        monkeypatch.setenv("TAPCHECK_DEBUG", off)
        code, _, err = run_cli("judge", bad, "--model", tiny_model)
        assert code == 2 and "Traceback" not in err, (off, err)
    monkeypatch.delenv("TAPCHECK_DEBUG")
    code, out, err = run_cli("judge", "--json", "--debug", bad, good, "--model", tiny_model)
    assert [set(json.loads(line)) for line in out.splitlines()] == [
        {"path", "verdict", "score", "threshold", "model", "error", "warnings", "threshold_ci",
         "false_alarm_rate", "rate_holds_for", "rate_is_a_guess"}] * 2  # the traceback goes
    # to stderr, not into the JSON rows
    assert err.count("Traceback (most recent call last):") == 1


def test_json_lines(tiny_model, tiny_dataset, run_cli, tmp_path):
    silent = write_tone(tmp_path / "silent.wav", tap_at_s=None)
    good = tiny_dataset.path_of(tiny_dataset.takes[0])
    code, out, _ = run_cli("judge", good, silent, "--model", tiny_model, "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 2 and len(rows) == 2
    assert rows[0]["verdict"] in ("NORMAL", "ANOMALOUS") and rows[0]["score"] >= 0
    assert rows[0]["threshold"] > 0 and rows[0]["model"] == "arcface-resnet18"
    assert rows[1]["verdict"] is None and "no strike found" in rows[1]["error"]


def test_stereo_48k_and_a_1s_knock_are_judged(tiny_model, tmp_path):
    stereo = write_tone(tmp_path / "stereo48k.wav", sr=48000, channels=2, duration_s=3.0,
                        tap_at_s=1.0)
    short = knock_files("wood")[0]  # a real 1 s knock
    verdicts = Judge(tiny_model).judge_files([stereo, short])
    assert all(v.error is None and v.verdict in ("NORMAL", "ANOMALOUS") for v in verdicts)
    assert any("averaged to mono" in w for w in verdicts[0].warnings)
    assert any("resampled from 48000" in w for w in verdicts[0].warnings)


def test_judge_counts_a_format_warning_after_three_clips(tiny_model, tmp_path, run_cli):
    """Six clips at 48 kHz: judge printed "resampled from 48000 Hz" six times, every verdict
    line still there; now three, then one line counting the rest."""
    clips = [write_tone(tmp_path / f"t{k}.wav", sr=48000, seed=k, duration_s=3.0, tap_at_s=1.0)
             for k in range(6)]
    code, out, err = run_cli("judge", "--model", tiny_model, *clips)
    assert code in (0, 1) and len(out.splitlines()) == 6, err
    said = "resampled from 48000 Hz to 44100 Hz"
    warned = [line for line in err.splitlines() if said in line]
    assert warned == [*(f"tapcheck: warning: {c}: {said}" for c in clips[:3]),
                      f"tapcheck: warning: 3 more files likewise: {said}"], err


def test_judge_array_matches_judge_files(tiny_model, tiny_dataset):
    from tapcheck.audio import load

    path = tiny_dataset.path_of(tiny_dataset.takes[3])
    judge = Judge(tiny_model)
    assert judge.judge_array(load(path)).score == judge.judge_files([path])[0].score


def test_judge_from_the_shell_fails_cleanly(tiny_model, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "tapcheck", "judge", str(empty), "--model",
                             str(tiny_model)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"tapcheck: error: {empty}: is empty (0 bytes) — the "
                                     "recording or copy failed; record or copy it again")
    assert "Traceback" not in result.stderr


def test_too_short_names_the_seconds_the_models_settings_need(tiny_model, tmp_path, run_cli):
    """A model trained with hop_length 256 needs 32256 samples after the strike, 0.74 s at
    44.1 kHz: the fix says so for a 0.5 s clip (it once said 0.4 s, the default settings')."""
    ck = torch.load(tiny_model, weights_only=True)
    ck["config"]["features"]["hop_length"] = 256
    ck["settings_digest"] = settings_digest(ck["config"])  # as if trained so
    model = save_checkpoint(tmp_path / "hop256.pt", ck)
    half = write_tone(tmp_path / "half.wav", duration_s=0.5, tap_at_s=0.1)
    code, out, err = run_cli("judge", half, "--model", model)
    assert code == 2 and out == ""
    assert err == (f"tapcheck: error: {half}: is too short (22050 samples); the crops after the "
                   "strike need 32256 — record longer clips: at least 0.74 s, 3 s is standard\n")


def test_the_same_tap_as_wav_and_flac_is_refused_for_a_board_verdict(tiny_model, tiny_dataset,
                                                                      tmp_path, run_cli):
    """The same recording saved as WAV and as lossless FLAC (other bytes, the same samples)
    would weigh twice in a board's vote: refused as a copy is. A copy resampled to 48 kHz
    holds other samples, and is judged as another tap."""
    import soundfile as sf

    from tapcheck.audio import resample

    a, b = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11], split="test")[:2]]
    samples, sr = sf.read(a, dtype="int16")
    flac = tmp_path / "a.flac"
    sf.write(flac, samples, sr, format="FLAC", subtype="PCM_16")
    assert flac.read_bytes() != a.read_bytes()
    code, out, err = run_cli("judge", "--board", "9", a, flac, b, "--model", tiny_model)
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {flac}: is the same recording as {a}; counted twice it "
                   "would weigh twice in its board's verdict; nothing judged — name each clip "
                   "once\n")
    y, _ = sf.read(a, dtype="float32")
    resampled = tmp_path / "a-48k.wav"
    sf.write(resampled, resample(y, orig_sr=sr, target_sr=48000), 48000, subtype="PCM_16")
    code, out, err = run_cli("judge", "--board", "9", a, resampled, b, "--model", tiny_model)
    assert code in (0, 1) and len(out.splitlines()) == 4, err


def test_a_score_just_over_the_threshold_reads_over_it(tiny_model, tiny_dataset, tmp_path,
                                                       run_cli):
    # four decimals printed an ANOMALOUS "score 0.0013  threshold 0.0013": the printed pair must
    # read in the verdict's order however close the two are
    clip = tiny_dataset.path_of(tiny_dataset.takes[0])
    _, out, _ = run_cli("judge", clip, "--model", tiny_model, "--json")
    score = json.loads(out)["score"]
    for threshold, verdict in ((score * (1 - 1e-6), "ANOMALOUS"), (score * (1 + 1e-6), "NORMAL")):
        model = _with_threshold(tiny_model, tmp_path, threshold)
        _, out, _ = run_cli("judge", clip, "--model", model)
        words = out.split()
        shown_score, shown_threshold = float(words[2]), float(words[4])
        assert words[0] == verdict, out
        assert (shown_score > shown_threshold) == (verdict == "ANOMALOUS"), out
        assert len(words[4].split(".")[1]) >= 4  # never fewer than the usual four decimals


def test_a_tap_at_the_very_end_of_its_clip_is_judged_with_a_warning(tiny_model, tiny_dataset,
                                                                    tmp_path, run_cli):
    """The trial's clip: 3 s whose last 34 ms are a healthy take's strike. Its crops are
    mostly padding; it was judged ANOMALOUS (24x its whole take's score) without a word."""
    import numpy as np
    import soundfile as sf

    from tapcheck.audio import load
    from tapcheck.features import strike_crops

    take = tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0])
    y = load(take, sr=44100)
    _, onset = strike_crops(y, return_onset=True)
    start = onset * 128
    clip = np.random.default_rng(0).standard_normal(3 * 44100).astype(np.float32) * 1e-4
    tail = int(0.034 * 44100)
    clip[-tail:] = y[start:start + tail]
    late = tmp_path / "late34ms.wav"
    sf.write(late, clip, 44100, subtype="PCM_16")
    code, out, err = run_cli("judge", late, "--model", tiny_model)
    assert code in (0, 1) and out.split()[0] in ("NORMAL", "ANOMALOUS")
    assert f"tapcheck: warning: {late}: the strike is " in err
    assert "its crops reach 354 ms after it, so their last 320 ms are padding, which raises a " \
           "healthy tap's score; the verdict may be off — record the tap earlier in the clip" in err


@pytest.mark.parametrize("after_ms, warned", [(345, False), (300, True)])
def test_a_clip_cut_short_after_its_strike_is_warned_of(tiny_dataset, after_ms, warned):
    """Crops padded well short of half a crop moved verdicts without a word: healthy demo taps
    cut 300 ms after the strike were flagged 4x as often (QA, scripts/cut_short.py)."""
    import warnings

    from tapcheck.audio import load
    from tapcheck.errors import TapcheckWarning
    from tapcheck.features import strike_crops

    y = load(tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0]), sr=44100)
    _, onset = strike_crops(y, return_onset=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strike_crops(y[:onset * 128 + int(after_ms / 1000 * 44100)])
    padded = [str(w.message) for w in caught if issubclass(w.category, TapcheckWarning)
              and "are padding" in str(w.message)]
    assert bool(padded) == warned, padded


def test_train_settings_of_a_judge_config_are_named_as_unused(tiny_model, tiny_dataset,
                                                             tmp_path, run_cli):
    """A trial's `judge --config` with `[train] far = 0.5` was silently ignored: the model keeps
    its own threshold. A config of feature settings alone says nothing."""
    clip = tiny_dataset.path_of(tiny_dataset.takes[0])
    far = tmp_path / "far.toml"
    far.write_text("[train]\nfar = 0.5\n")
    code, out, err = run_cli("judge", clip, "--model", tiny_model, "--config", far)
    assert code in (0, 1) and out
    assert ("tapcheck: warning: --config's [train] settings (far = 0.5) are not used: a model "
            "file keeps the threshold, scorer and board rule it was trained with") in err
    features = tmp_path / "features.toml"
    features.write_text("[features]\nn_fft = 1024\n")
    code, out, err = run_cli("judge", clip, "--model", tiny_model, "--config", features)
    assert code in (0, 1) and out and "are not used" not in err


def test_judging_a_take_the_model_was_trained_on_says_its_score_is_not_a_new_taps(
        tiny_model, tiny_dataset, run_cli, tmp_path):
    """A new user judged a take of the one board trained on and read `score 0.0375371
    threshold 0.0375372` with no note: its score is in-sample. One warning per such clip, in
    the text and in --json's warnings; a test take (never heard) gets none."""
    from tapcheck.modelfile import provenance

    trained = tiny_dataset.root / provenance(torch.load(tiny_model, weights_only=True),
                                             "takes")[0]
    new = tiny_dataset.path_of(tiny_dataset.select(board=[11], split="test")[0])
    code, out, err = run_cli("judge", trained, new, "--model", tiny_model)
    assert code in (0, 1), err
    warned = [line for line in err.splitlines() if "warning" in line]
    assert warned == [f"tapcheck: warning: {trained}: is a recording the model was trained or "
                      "calibrated on, or given by enroll: its score is not a new tap's"]
    code, out, err = run_cli("judge", trained, new, "--model", tiny_model, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [len(r["warnings"]) for r in rows] == [1, 0]
    # a folder of them: one line, not one per take
    more = [tiny_dataset.root / p for p in provenance(
        torch.load(tiny_model, weights_only=True), "takes")[:4]]
    code, out, err = run_cli("judge", *more, "--model", tiny_model)
    warned = [line for line in err.splitlines() if "warning" in line]
    assert warned == [f"tapcheck: warning: {more[0]} and 3 more clip(s): are recordings the "
                      "model was trained or calibrated on, or given by enroll: their scores are "
                      "not new taps'"]
    # the same take at 48 kHz: other crops, the same tap (its embedding on the reference's)
    import soundfile as sf
    from scipy.signal import resample_poly

    y, sr = sf.read(trained)
    copy = tmp_path / "copy48k.wav"
    sf.write(copy, resample_poly(y, 160, 147), 48000, subtype="FLOAT")
    code, out, err = run_cli("judge", copy, new, "--model", tiny_model, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    heard = (f"{copy}: is a recording the model was trained or calibrated on, or given by "
             "enroll: its score is not a new tap's")
    assert code in (0, 1) and heard in rows[0]["warnings"] and rows[1]["warnings"] == [], err


def test_a_clip_named_like_an_option_is_told_how_to_pass(tiny_model, tiny_dataset, tmp_path,
                                                         run_cli, monkeypatch):
    """`judge -dash.wav` said "No such option '-d'", naming neither the file nor the fix."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(tiny_dataset.path_of(tiny_dataset.takes[0]), "-dash.wav")
    code, out, err = run_cli("judge", "--model", tiny_model, "-dash.wav")
    assert (code, out) == (2, "")
    assert err == ("tapcheck: error: -dash.wav: is a file whose name starts with '-', read as an "
                   "option — pass it as ./-dash.wav, or after --\n")
    code, out, _ = run_cli("judge", "--model", tiny_model, "--", "-dash.wav")
    assert code in (0, 1) and out.split()[-1] == "-dash.wav"
    code, _, err = run_cli("judge", "--model", tiny_model, "-other.wav")  # no such file
    assert code == 2 and "No such option '-o'" in err


def test_a_tap_far_less_above_the_rooms_noise_than_the_training_takes_is_warned_of(
        tiny_model, tiny_dataset, tmp_path, run_cli):
    """Pink noise at -40 dBFS under healthy demo taps flagged 47 % of them where the model
    states 5 % (scripts/noise_robustness.py), and nothing said why."""
    import numpy as np
    import soundfile as sf

    from tapcheck.audio import load
    from tapcheck.features import RISE_MARGIN_DB, clip_rise_db
    from tapcheck.synth import _pink_noise

    stored = torch.load(tiny_model, weights_only=True)["dataset"]["strike_rise_db"]
    take = tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0])
    y = load(take, sr=44100)
    assert stored - clip_rise_db(y) < RISE_MARGIN_DB  # a healthy take of the same room: no word
    noisy = (y + _pink_noise(len(y), np.random.default_rng(0)) * 10 ** (-40 / 20)).astype(
        np.float32)
    loud = tmp_path / "loud-room.wav"
    sf.write(loud, noisy, 44100, subtype="FLOAT")
    here = clip_rise_db(noisy)
    assert stored - here > RISE_MARGIN_DB + 3  # the case is not a borderline one
    code, out, err = run_cli("judge", take, loud, "--model", tiny_model)
    assert code in (0, 1)
    assert f"{take}: the tap stands" not in err
    line = (f"{loud}: the tap stands {here:.1f} dB above the room's noise, {stored - here:.1f} "
            f"dB less than the model's training takes ({stored:.1f} dB): a louder room, or a "
            "softer or farther tap, makes healthy boards score higher — strike firmly near the "
            "microphone, judge where it is quieter, or train on takes recorded here")
    assert f"tapcheck: warning: {line}" in err
    # the crops from a feature cache: the clip is read for its noise all the same
    from tapcheck.featurecache import FeatureCache

    cached = Judge(tiny_model, cache=FeatureCache(tmp_path / "cache"))
    for _ in range(2):  # computed, then from the cache
        assert line in cached.judge_files([loud])[0].warnings
    assert "states no level" not in err
    # a model file from before the figure was stored warns of no tap, nor one whose figure no
    # take could give (edited by hand: 399 told every tap it stood 381 dB short); each says
    # once that the check is off (it was off without a word, QA)
    ck = torch.load(tiny_model, weights_only=True)
    for value in (None, "40", float("nan"), -3.0, 5.0, 399.0, True):
        if value is None:
            del ck["dataset"]["strike_rise_db"]
        else:
            ck["dataset"]["strike_rise_db"] = value
        old = save_checkpoint(tmp_path / "old.pt", ck)
        code, out, err = run_cli("judge", loud, take, "--model", old)
        assert code in (0, 1) and "the tap stands" not in err, value
        assert err.count(f"tapcheck: warning: {old}: states no level of its training takes' "
                         "strikes above the room's noise (files trained before 2026-12-06 do "
                         "not), so a tap judged in a louder room, which moves the scores, is "
                         "not warned of — retrain it with `tapcheck train` to have that "
                         "check\n") == 1, (value, err)
    # nor one without its network's fingerprint: weights changed after training are not
    # noticed (a file stripped of it loaded a changed layer without a word, QA); an old file
    # says both in one line
    del ck["fingerprint"]
    old = save_checkpoint(tmp_path / "old.pt", ck)
    code, out, err = run_cli("judge", loud, take, "--model", old)
    assert code in (0, 1)
    assert err.count(f"tapcheck: warning: {old}: states no level of its training takes' strikes "
                     "above the room's noise and no fingerprint of its network (files trained "
                     "before 2026-12-06 do not), so a tap judged in a louder room, which moves "
                     "the scores, is not warned of, and weights changed after training are not "
                     "noticed — retrain it with `tapcheck train` to have those checks\n") == 1, err
    ck = torch.load(tiny_model, weights_only=True)
    del ck["fingerprint"]
    code, out, err = run_cli("judge", take, "--model", save_checkpoint(tmp_path / "nofp.pt", ck))
    assert code in (0, 1) and err.count(
        f"tapcheck: warning: {tmp_path / 'nofp.pt'}: states no fingerprint of its network (files "
        "trained before 2026-12-06 do not), so weights changed after training are not noticed "
        "— retrain it with `tapcheck train` to have that check\n") == 1, err
    # nor one without its settings' digest: stripped, an edit of n_fft loaded without a word
    # and moved every score (QA)
    ck = torch.load(tiny_model, weights_only=True)
    del ck["settings_digest"]
    ck["config"]["features"]["n_fft"] = 2048
    code, out, err = run_cli("judge", take, "--model", save_checkpoint(tmp_path / "nod.pt", ck))
    assert code in (0, 1) and err.count(
        f"tapcheck: warning: {tmp_path / 'nod.pt'}: states no digest of its feature settings "
        "(files trained before 2026-12-05 do not), so settings changed after training are not "
        "noticed — retrain it with `tapcheck train` to have that check\n") == 1, err


@pytest.mark.parametrize("edit", ["dc", "padded"])
def test_the_rooms_noise_is_measured_as_the_crops_see_it(edit):
    """A DC offset (removed before the crops are made) read as a room 29 dB louder, and an
    editor's digital silence as a room far quieter (review)."""
    import numpy as np

    from tapcheck.features import clip_rise_db

    rng = np.random.default_rng(0)
    t = np.arange(3 * 44100) / 44100
    tap = np.where(t > 0.5, np.exp(-(t - 0.5) * 8) * np.sin(2 * np.pi * 700 * t), 0.0) * 0.5
    y = (tap + rng.normal(0, 10 ** (-60 / 20), len(t))).astype(np.float32)
    clean = clip_rise_db(y)
    changed = y + np.float32(0.01) if edit == "dc" else np.r_[np.zeros(44100, np.float32), y,
                                                               np.zeros(44100, np.float32)]
    assert abs(clip_rise_db(changed) - clean) < 1.0, (clip_rise_db(changed), clean)
    assert np.isnan(clip_rise_db(np.zeros(44100, np.float32)))  # no sound, no room


def test_a_clip_of_several_taps_is_judged_by_its_strongest_with_a_warning(
        tiny_model, tiny_dataset, tmp_path, run_cli):
    """QA: a file of a board's three taps (a healthy one, then two softer taps of a cracked
    board) was judged NORMAL by its loudest and counted as one tap, with no word of the others."""
    import numpy as np
    import soundfile as sf

    from tapcheck.audio import load

    healthy = load(tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0]),
                   sr=44100)
    cracked = load(tiny_dataset.path_of(tiny_dataset.select(label="defect")[0]), sr=44100)
    clip = tmp_path / "board30" / "three.wav"
    clip.parent.mkdir()
    sf.write(clip, np.concatenate([healthy, 0.3 * cracked, 0.3 * cracked]), 44100,
             subtype="FLOAT")
    code, out, err = run_cli("judge", "--model", tiny_model, clip)
    assert code in (0, 1) and out.split()[0] in ("NORMAL", "ANOMALOUS")
    assert re.search(rf"tapcheck: warning: {re.escape(str(clip))}: holds at least 3 taps \(at "
                     r"\d\.\d, \d\.\d, \d\.\d s\); a take is one tap and only the loudest is "
                     r"judged — cut the file into one clip per tap", err), err
    # one tap per clip: no such word
    code, _, err = run_cli("judge", "--model", tiny_model,
                           tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0]))
    assert code in (0, 1) and "taps (at" not in err
    # judged through a feature cache (the API's): its crops from the cache, the same warning,
    # and again on a cache hit
    from tapcheck.featurecache import FeatureCache

    judge = Judge(tiny_model, cache=FeatureCache(tmp_path / "cache"))
    for _ in range(2):
        (v,) = judge.judge_files([clip])
        assert [w for w in v.warnings if "holds at least 3 taps" in w], v.warnings


def test_judge_holds_one_batch_of_crops_at_a_time(tiny_model, tiny_dataset):
    """judge read every clip's crops before scoring any: 937 MB for 5,000 clips, about 6.5 GB
    for a year's station folder (QA). Without board verdicts it holds one batch's; the
    verdicts are those of one batch of all the clips."""
    import tracemalloc

    judge = Judge(tiny_model)
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.takes[:10]] * 20  # 200 clips
    one = judge.judge_files(clips[:1])  # warm: the model's own allocations are made
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        verdicts = judge.judge_files(clips, batch_size=4)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    from tapcheck.features import load_clip, strike_crops

    crops = strike_crops(load_clip(clips[0], audio=judge.config.audio,
                                   features=judge.config.features),
                         sr=judge.config.audio.sr, features=judge.config.features)
    assert peak < 60 * crops.nbytes, (peak, crops.nbytes)  # all 200 held: over 200 x
    assert [v.score for v in verdicts[:10]] == pytest.approx(
        [v.score for v in judge.judge_files(clips[:10], batch_size=10)], rel=1e-4)
    assert verdicts[0].score == pytest.approx(one[0].score, rel=1e-4)


def test_each_batch_of_verdicts_is_handed_on_as_it_is_judged(tiny_model, tiny_dataset,
                                                             tmp_path):
    """``on_batch`` gets each batch's verdicts in order, a bad file's among them; with board
    verdicts (every clip's crops first) all of them at once."""
    from tapcheck.judgment import judge_clips

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....nonsense")
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.takes[:4]] + [bad]
    batches = []
    verdicts = Judge(tiny_model).judge_files(clips, batch_size=2, on_batch=batches.append)
    assert [[v.path for v in b] for b in batches] == [
        [str(c) for c in clips[:2]], [str(c) for c in clips[2:4]], [str(bad)]]
    assert [v for b in batches for v in b] == verdicts and batches[2][0].error
    calls = []
    result = judge_clips(clips[:4], model=tiny_model, per_board=True,
                         on_batch=lambda b, info: calls.append((b, info)))
    assert len(calls) == 1 and calls[0][0] == result.verdicts
    assert calls[0][1] is result.calibration


def test_judge_prints_each_batch_as_it_is_judged(tiny_model, tiny_dataset, run_cli,
                                                  monkeypatch):
    """judge printed nothing until its last clip was judged: silence for about 45 minutes for
    a year's station folder of 50,000 clips (QA), and a Ctrl-C lost every verdict found so far.
    A Ctrl-C in the second batch leaves the first batch's verdicts printed, and a whole run
    prints what it printed before."""
    clip = tiny_dataset.path_of(tiny_dataset.takes[0])
    clips = [clip] * 40  # two batches of judge_files' 32
    code, whole, whole_err = run_cli("judge", "--model", tiny_model, *clips)
    assert code in (0, 1) and len(whole.splitlines()) == 40
    scored = Judge._score
    calls = []

    def stopped_in_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a Ctrl-C amid the second batch
        return scored(self, *args, **kwargs)

    monkeypatch.setattr(Judge, "_score", stopped_in_the_second_batch)
    code, out, err = run_cli("judge", "--model", tiny_model, *clips)
    assert code == 130 and err.endswith("tapcheck: interrupted\n")
    assert out.splitlines() == whole.splitlines()[:32]
    assert err.splitlines()[0] == whole_err.splitlines()[0]  # the model's statement first
    calls.clear()
    code, out, _ = run_cli("judge", "--json", "--model", tiny_model, *clips)
    assert code == 130 and len(out.splitlines()) == 32
    assert all(json.loads(line)["path"] == str(clip) for line in out.splitlines())
