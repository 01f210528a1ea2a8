"""import with the settings the clips will be trained with (tapcheck/importing.py)."""

import re

import numpy as np
import soundfile as sf

from tapcheck.dataset_folders import list_datasets
from tapcheck.datasets import Dataset

SHORT = """[features]
n_frames = 8
pre_frames = 2
shift_frames = 2
"""


def short_clip(path, *, n=2048, sr=44100):
    """2048 samples (46 ms) holding a sharp knock 10 ms in, after quiet noise."""
    rng = np.random.default_rng(0)
    y = rng.standard_normal(n) * 1e-4
    t = np.arange(n - 441) / sr
    y[441:] += 0.5 * np.sin(2 * np.pi * 900 * t) * np.exp(-t * 150)
    sf.write(path, y, sr)
    return path


def test_short_clips_import_with_a_config_whose_crops_fit(tmp_path, run_cli):
    clip = short_clip(tmp_path / "short.wav")
    args = ("import", clip, "--dataset", "short", "--board", "1", "--side", "left",
            "--label", "normal")
    code, out, err = run_cli(*args)
    assert code == 2 and "is too short (2048 samples)" in err and "imported 0 of 1" in out
    config = tmp_path / "short.toml"
    config.write_text(SHORT)
    code, out, err = run_cli(*args, "--config", config)
    assert code == 0 and "imported 1 of 1" in out, err
    assert [t.path for t in Dataset.open("short").takes] == ["board01/left/take001.wav"]


def test_doctor_checks_a_dataset_with_the_config_given(tmp_path, run_cli):
    config = tmp_path / "short.toml"
    config.write_text(SHORT)
    clip = short_clip(tmp_path / "short.wav")
    run_cli("import", clip, "--dataset", "short", "--board", "1", "--side", "left",
            "--label", "normal", "--config", config)
    _, with_config, _ = run_cli("doctor", "--dataset", "short", "--config", config)
    _, without, _ = run_cli("doctor", "--dataset", "short")
    assert "too short" in without and "too short" not in with_config


def test_a_file_name_cannot_forge_a_report_line(tmp_path, run_cli):
    """Each report line names a path; one with a line break in it is printed escaped, as judge
    prints verdicts, so a script reading the report line by line is not fooled."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "c.wav\nBOARD 3: NORMAL.wav", duration_s=3.0)
    code, out, err = run_cli("import", clip, "--dataset", tmp_path / "d\nx", "--board", "1",
                             "--side", "left", "--label", "normal")
    assert code == 0, err
    assert out.splitlines() == [
        f"{tmp_path}/c.wav\\nBOARD 3: NORMAL.wav -> {tmp_path}/d\\nx/board01/left/take001.wav",
        f"imported 1 of 1 file(s) into {tmp_path}/d\\nx"]
    # and so is a refused file's error line, which came out as two (QA)
    bad = tmp_path / "bad\nnl.wav"
    bad.write_bytes(b"not audio at all")
    code, out, err = run_cli("import", bad, "--dataset", tmp_path / "d\nx", "--board", "1",
                             "--side", "left", "--label", "normal")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(
        f"tapcheck: error: {tmp_path}/bad\\nnl.wav: "), err


def test_import_refuses_a_board_folder_linked_out_of_the_dataset(tmp_path, run_cli):
    """It wrote the take through the link, outside the dataset, which info, train and doctor
    then refused; now nothing is written and the dataset stays readable."""
    from .conftest import write_tone

    clips = [write_tone(tmp_path / f"c{i}.wav", duration_s=3.0, seed=i) for i in range(2)]
    args = ("--dataset", "imp", "--side", "left", "--label", "normal")
    assert run_cli("import", clips[0], "--board", "1", *args)[0] == 0
    root = Dataset.open("imp").root
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "board02").symlink_to(outside)
    code, out, err = run_cli("import", *clips, "--board", "2", *args)
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {root / 'board02'}: is a link to {outside}, outside the "
                   "dataset; takes of board 2 left would be written there and the dataset could "
                   "no longer be read — replace the link by a folder (move what it holds into "
                   "the dataset)\n")
    assert list(outside.iterdir()) == []
    assert run_cli("info", "imp")[0] == 0


def test_import_refuses_a_clip_given_twice_and_imports_nothing(tmp_path, run_cli):
    """Both were imported, two takes of one tap: judge --per-board and enroll refuse that."""
    import shutil

    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    copy = shutil.copyfile(clip, tmp_path / "copy.wav")
    other = write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1)
    args = ("--dataset", "twice", "--board", "1", "--side", "left", "--label", "normal")
    for given, problem in (((clip, other, tmp_path / "." / "a.wav"), "is given twice"),
                           ((clip, other, copy), f"is the same recording as {clip}")):
        code, out, err = run_cli("import", *given, *args)
        assert (code, out) == (2, "")
        assert err == (f"tapcheck: error: {given[2]}: {problem}; imported twice it would be two "
                       "takes of one tap and count twice (in training, or in evaluate's rates); "
                       "nothing imported — name "
                       "each clip once\n")
    assert "twice" not in list_datasets()


def test_a_group_other_than_the_boards_own_is_warned_of(tmp_path, run_cli):
    """`import --group other` split a board side across two groups without a word: two rows
    in `info` and in evaluate's groups (QA). Its own group, or none given, says nothing."""
    from .conftest import write_tone

    clips = [write_tone(tmp_path / f"{i}.wav", duration_s=3.0, seed=i) for i in range(4)]
    args = ("--dataset", "groups", "--board", "1", "--side", "left", "--label", "normal")
    assert run_cli("import", clips[0], *args, "--group", "lot-a")[0] == 0
    for clip, more in ((clips[1], ()), (clips[2], ("--group", "lot-a"))):
        code, _, err = run_cli("import", clip, *args, *more)
        assert code == 0 and "warning" not in err, err
    code, _, err = run_cli("import", clips[3], *args, "--group", "lot-b")
    root = Dataset.open("groups").root
    assert code == 0 and err == (
        f"tapcheck: warning: {root}: board 1's other normal takes are in group 'lot-a', these go "
        "in 'lot-b', so the board is counted under both in `info` and `evaluate` — leave out "
        "--group to join them\n")
    assert [t.group for t in Dataset.open("groups").takes] == ["lot-a"] * 3 + ["lot-b"]
    # takes of no group split as much (review)
    more = [write_tone(tmp_path / f"{i}.wav", duration_s=3.0, seed=i) for i in range(4, 6)]
    args = ("--dataset", "groups", "--board", "2", "--side", "left", "--label", "normal")
    assert run_cli("import", more[0], *args, "--group", "")[0] == 0
    code, _, err = run_cli("import", more[1], *args, "--group", "lot-b")
    assert code == 0 and err == (
        f"tapcheck: warning: {root}: board 2's other normal takes have no group, these go in "
        "'lot-b', so the board is counted under both in `info` and `evaluate` — leave out "
        "--group to join them\n")


def test_import_refuses_a_clip_the_dataset_holds_already(tmp_path, run_cli):
    """The same clip imported again (or its FLAC: the same samples), or a take of the dataset
    itself, is refused with its own line; the other files are imported."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    flac = tmp_path / "a.flac"
    sf.write(flac, sf.read(clip, dtype="int16")[0], 44100, subtype="PCM_16")
    other = write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1)
    args = ("--dataset", "again", "--side", "left", "--label", "normal")
    assert run_cli("import", clip, "--board", "1", *args)[0] == 0
    root = Dataset.open("again").root
    take = root / "board01" / "left" / "take001.wav"
    code, out, err = run_cli("import", flac, other, take, "--board", "2", *args)
    assert code == 2 and out.splitlines()[-1] == f"imported 1 of 3 file(s) into {root}"
    assert err.splitlines() == [
        f"tapcheck: error: {path}: is already take board01/left/take001.wav of this dataset (the "
        "same samples); imported again it would count twice (in training, or in evaluate's "
        "rates); not imported — leave "
        "it out" for path in (flac, take)]
    assert [t.path for t in Dataset.open("again").takes] == ["board01/left/take001.wav",
                                                             "board02/left/take001.wav"]


def test_import_reads_each_take_it_compares_with_once(tmp_path, run_cli, monkeypatch):
    """Level-normalised takes of one length all share the manifest's rate, length and peak:
    each clip was compared with every such take, read anew, and an import into 750 of them took
    0.39 s a file against 0.10 s into none (QA). Each take is read once a run; a copy among
    them is still refused."""
    from .conftest import write_tone

    def normalised(name, seed):
        path = write_tone(tmp_path / name, duration_s=3.0, seed=seed)
        y, sr = sf.read(path)
        sf.write(path, y / np.abs(y).max() * 0.5, sr, subtype="PCM_16")  # the same peak
        return path

    args = ("--dataset", "level", "--board", "1", "--side", "left", "--label", "normal")
    first = [normalised(f"a{i}.wav", seed=i) for i in range(4)]
    assert run_cli("import", *first, *args)[0] == 0
    root = Dataset.open("level").root
    reads = []
    real_read = sf.read

    def counted(file, *a, **kw):
        reads.append(getattr(file, "name", file))
        return real_read(file, *a, **kw)

    monkeypatch.setattr(sf, "read", counted)
    later = [normalised(f"b{i}.wav", seed=10 + i) for i in range(4)]
    code, out, err = run_cli("import", *later, first[2], *args)
    assert code == 2 and "is already take board01/left/take003.wav" in err, err
    takes = [r for r in reads if isinstance(r, str) and r.startswith(str(root))]
    assert sorted(takes) == sorted(set(takes)) and len(takes) >= 4, takes  # once each


def test_debug_shows_each_refused_files_traceback_and_imports_the_others(tmp_path, run_cli,
                                                                          monkeypatch):
    """--debug asks for tracebacks: each refused file's came before its one line (it printed
    the line alone, as without --debug); the good file is still imported."""
    from .conftest import write_tone

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....nonsense")
    silent = write_tone(tmp_path / "silent.wav", tap_at_s=None)
    good = write_tone(tmp_path / "good.wav", duration_s=3.0)
    args = ("import", bad, good, silent, "--dataset", tmp_path / "d", "--board", "1", "--side",
            "left", "--label", "normal")
    code, out, err = run_cli("--debug", *args)
    assert code == 2 and "imported 1 of 3" in out
    assert err.count("Traceback (most recent call last):") == 2, err
    first, second = err.split("Traceback (most recent call last):")[1:]
    assert "AudioError" in first and f"tapcheck: error: {bad}: is not a readable" in first
    assert "no strike found" in second and f"tapcheck: error: {silent}: " in second
    monkeypatch.delenv("TAPCHECK_DEBUG")  # main() sets it for the process; a new one has none
    code, out, err = run_cli("import", bad, silent, "--dataset", tmp_path / "e", "--board", "1",
                             "--side", "left", "--label", "normal")
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 2, err


def test_a_float_clip_beyond_full_scale_is_stored_unclipped(tmp_path, run_cli):
    """A float WAV holds a hot recording above full scale without clipping it; import cut it to
    16 bits, and `train` then refused the take it had stored as heavily clipped (trial 33).
    Now the take keeps the samples (as 32-bit float) and loads as the file did."""
    from tapcheck.audio import load

    from .conftest import write_tone

    source = write_tone(tmp_path / "tone.wav", duration_s=3.0)
    y, sr = sf.read(source, dtype="float32")
    hot = tmp_path / "hot.wav"
    sf.write(hot, y * 30, sr, subtype="FLOAT")
    code, out, err = run_cli("import", hot, "--dataset", "hot", "--board", "1", "--side", "left",
                             "--label", "normal")
    assert code == 0, err
    take = Dataset.open("hot").takes[0]
    stored = Dataset.open("hot").root / take.path
    assert sf.info(stored).subtype == "FLOAT"
    np.testing.assert_array_equal(sf.read(stored, dtype="float32")[0], y * 30)
    load(stored, sr=sr)  # no "heavily clipped": what train loads
    assert take.peak_dbfs > 0


def test_kill_during_an_import_stops_it_as_ctrl_c_does(tiny_dataset, tmp_path):
    """Outside the blocks that say what they kept, SIGTERM ended a command silently with status
    143 (trial 33: `import` killed mid-run); now every command stops on it as on Ctrl-C: one
    line, status 130, and each take written has its manifest row."""
    import signal

    from .pulse import LiveCommand

    clips = [tiny_dataset.root / t.path for t in tiny_dataset.takes][:40]
    run = LiveCommand("import", *clips, "--dataset", tmp_path / "ds", "--board", "1", "--side",
                      "left", "--label", "normal")
    run.expect(" -> ", timeout=120)  # a take is written: the import is under way
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130
    written = sorted((tmp_path / "ds").glob("board01/left/take*.wav"))
    assert 0 < len(written) < len(clips)
    assert len(Dataset.open(tmp_path / "ds").takes) == len(written)
    # a line per take kept: a stop as a take's block ended printed one fewer than it counted
    assert sum(" -> " in line for line in run.out) == len(written)
    # "interrupted" alone left the user guessing what was kept and how to go on
    assert run.err[-1] == (
        f"tapcheck: interrupted; {len(written)} of {len(clips)} clip(s) were imported into "
        f"{tmp_path / 'ds'} (take 1-{len(written)}) and are kept; to import the rest, pass the "
        "clips not yet imported (the same command refuses each clip the dataset holds "
        "already)")
    assert "Traceback" not in "\n".join(run.err)


def test_a_stop_after_the_last_clip_leaves_no_rest_to_import(tmp_path):
    """Stopped after the last clip was imported, it told the user to "import the rest" (of none),
    "by name" where a clip is refused by its samples (QA)."""
    from tapcheck.importing import ImportResult, _kept_after_stop

    dataset = Dataset.create(tmp_path / "ds")
    take = dataset.add_take(np.zeros(441, np.float32), sr=44100, board=1, side="left",
                            label="normal")
    result = ImportResult()
    result.imported.append((tmp_path / "a.wav", take))
    assert _kept_after_stop(dataset, result, 1) == (
        f"1 of 1 clip(s) were imported into {dataset.root} (take 1) and are kept; no clip was "
        "left to import")
    assert _kept_after_stop(dataset, result, 2).endswith(
        "(take 1) and are kept; to import the rest, pass the clips not yet imported (the same "
        "command refuses each clip the dataset holds already)")


def test_import_says_what_a_file_given_as_the_dataset_is(tmp_path, run_cli):
    """`--dataset clips/good.wav` (or any file) said "cannot be written (File exists) — a file
    stands where a folder should be": it says the path is an audio file, or a file. The path of
    a dataset's manifest.csv means its dataset, as `info` reads it."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    other = write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset\n")
    args = ("--board", "1", "--side", "left", "--label", "normal")
    fix = "give the dataset's folder or name, e.g. --dataset bench"
    for given, kind in ((other, "an audio file"), (notes, "a file")):
        before = given.read_bytes()
        code, out, err = run_cli("import", clip, "--dataset", given, *args)
        assert (code, out) == (2, "")
        assert err == (f"tapcheck: error: {given}: is {kind}, not a dataset's folder; the "
                       f"dataset's takes and manifest.csv go in a folder — {fix}\n")
        assert given.read_bytes() == before
    missing = tmp_path / "none" / "manifest.csv"
    code, out, err = run_cli("import", clip, "--dataset", missing, *args)
    assert (code, out) == (2, "")
    assert err == (f"tapcheck: error: {missing}: is no manifest.csv file; a dataset is the "
                   f"folder holding its manifest.csv — {fix}\n")
    assert not missing.parent.exists()
    # the commands that read a dataset say it alike (they said "no such dataset (no
    # manifest.csv)" of a manifest's path; QA)
    code, out, err = run_cli("info", missing)
    assert (code, out) == (2, "") and err.startswith(
        f"tapcheck: error: {missing}: is no manifest.csv file; a dataset is the folder holding "
        "its manifest.csv — give the dataset's folder or name (datasets here: "), err

    assert run_cli("import", clip, "--dataset", "bench", *args)[0] == 0
    root = Dataset.open("bench").root
    code, out, err = run_cli("import", other, "--dataset", root / "manifest.csv", *args)
    assert code == 0 and out.splitlines()[-1] == f"imported 1 of 1 file(s) into {root}", err
    assert [t.path for t in Dataset.open("bench").takes] == ["board01/left/take001.wav",
                                                             "board01/left/take002.wav"]


def test_an_import_that_imports_nothing_takes_back_the_folder_it_made(tmp_path, run_cli):
    """`import notaudio.wav --dataset newds` said "imported 0 of 1 file(s) into
    recordings/newds" and left an empty folder that `datasets` and `info` did not know: the
    folders the import made go again (those above a dataset given by path too), and the line
    claims no dataset. A folder that was there before stays."""
    from tapcheck.paths import recordings_home

    notaudio = tmp_path / "notaudio.wav"
    notaudio.write_text("not audio\n")
    args = ("--board", "1", "--side", "left", "--label", "normal")
    had_home = recordings_home().exists()
    code, out, err = run_cli("import", notaudio, "--dataset", "newds", *args)
    assert code == 2 and "is not a readable audio file" in err
    assert out == (f"imported 0 of 1 file(s); nothing was imported, so no dataset was made at "
                   f"{recordings_home() / 'newds'}\n")
    assert not (recordings_home() / "newds").exists()
    assert recordings_home().exists() == had_home and "newds" not in list_datasets()

    nested = tmp_path / "a" / "b" / "newds"
    code, out, err = run_cli("import", notaudio, "--dataset", nested, *args)
    assert code == 2 and out.endswith(f"no dataset was made at {nested}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notaudio.wav"]

    kept = tmp_path / "kept"
    kept.mkdir()
    code, out, err = run_cli("import", notaudio, "--dataset", kept, *args)
    assert code == 2 and out == f"imported 0 of 1 file(s) into {kept}\n" and kept.is_dir()


def test_no_new_dataset_is_made_inside_another(tmp_path, run_cli, monkeypatch):
    """`import --dataset bench/board02/left/new`, `synth --dataset bench/board03/x` and a
    recordings folder that is itself a dataset made datasets among bench's takes, which doctor
    and train never saw: refused, nothing made; bench's own folder still takes imports."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    args = ("--board", "1", "--side", "left", "--label", "normal")
    assert run_cli("import", clip, "--dataset", tmp_path / "bench", *args)[0] == 0
    bench = tmp_path / "bench"
    before = sorted(p for p in bench.rglob("*") if p.name != ".lock")
    said = (f"lies inside dataset {bench}: a new dataset there would mix its takes with that "
            f"one's — add the takes to {bench} itself, or give a folder outside it")
    for command in (("import", write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1),
                     "--dataset", bench / "board01" / "left" / "new", *args),
                    ("synth", "--takes", "1", "--dataset", bench / "board01" / "x")):
        code, out, err = run_cli(*command)
        assert code == 2 and said in err and len(err.splitlines()) == 1, err
    # the recordings folder in bench: set so, or `./recordings` run from inside bench's folder
    inside = (f"lies inside dataset {bench}, as the recordings folder {{}} does: a new dataset "
              "there would mix its takes with that one's — run tapcheck from a folder outside "
              "that dataset, or set TAPCHECK_RECORDINGS to a folder outside it")
    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(bench))
    code, out, err = run_cli("import", clip, "--dataset", "sub", *args)
    assert code == 2 and f"{bench / 'sub'}: {inside.format(bench)}" in err, err
    monkeypatch.delenv("TAPCHECK_RECORDINGS")
    monkeypatch.chdir(bench / "board01")
    code, out, err = run_cli("synth", "--takes", "1", "--dataset", "inner")
    assert code == 2 and f"recordings/inner: {inside.format('recordings')}" in err, err
    assert sorted(p for p in bench.rglob("*") if p.name != ".lock") == before


def test_a_killed_imports_temporary_take_is_removed_by_the_next_writer(tmp_path, run_cli,
                                                                      monkeypatch):
    """SIGKILL in a take's write left .take005.wav.wnkdplu5.tmp, a whole take's size, that later
    imports kept (only doctor named it). Under the dataset's lock no write is under way: the
    next import removes such files, says so once, and leaves everything else."""
    from .conftest import write_tone

    monkeypatch.setenv("TAPCHECK_RECORDINGS", str(tmp_path / "recordings"))
    args = ("--dataset", "bench", "--board", "2", "--side", "left", "--label", "normal")
    code, _, err = run_cli("import", write_tone(tmp_path / "a.wav", duration_s=3.0), *args)
    assert code == 0, err
    side = tmp_path / "recordings" / "bench" / "board02" / "left"
    stray = side / ".take002.wav.wnkdplu5.tmp"
    stray.write_bytes(b"RIFF half a take")
    # not a take's or the manifest's temporary file: kept
    mine = [side / ".notes.tmp", side / "take002.wav.tmp", side / ".notes.20261205.tmp"]
    for path in mine:
        path.write_text("mine")
    code, out, err = run_cli("import", write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1),
                             *args)
    assert code == 0, err
    assert err.count("warning") == 1 and (
        f"{tmp_path / 'recordings' / 'bench'}: removed 1 unfinished temporary file(s) a stopped "
        "run left (no take is in them), e.g. board02/left/.take002.wav.wnkdplu5.tmp") in err
    assert not stray.exists() and all(p.read_text() == "mine" for p in mine)
    assert len(Dataset.open(tmp_path / "recordings" / "bench").takes) == 2


def test_a_format_warning_said_of_every_file_is_shown_for_three_and_counted(tmp_path,
                                                                           run_cli):
    """A batch exported at 22.05 kHz printed the resampling warning once per file (288 lines
    for a dataset), burying every other line: three are shown, then one line counts the rest.
    A warning of one file stays as it is, and a warning that may put a verdict off (another
    knock in the crops) names every clip, however many say the same."""
    from tapcheck.audio import resample
    from tapcheck.synth import study_boards, synthesize_tap, take_rng

    board = study_boards(seed=0)[0]
    clips = []
    for k in range(6):
        y = synthesize_tap(board.board, "left", rng=take_rng(0, board.number, "left", k))
        clips.append(tmp_path / f"tap{k}.wav")
        sf.write(clips[-1], resample(y, orig_sr=44100, target_sr=22050), 22050)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([y, y], axis=1), 44100)
    knocks = []
    for k in range(4):  # a second knock 0.1 s after the first, inside the crops
        twice = y * (1 + 0.1 * k) + 0.5 * np.roll(y, 4410)
        knocks.append(tmp_path / f"knock{k}.wav")
        sf.write(knocks[-1], twice, 44100)
    code, out, err = run_cli("import", *clips, stereo, *knocks, "--dataset", "d22", "--board",
                             "1", "--side", "left", "--label", "normal")
    assert code == 0 and "imported 11 of 11" in out, err
    said = "resampled from 22050 Hz to 44100 Hz"
    lines = err.splitlines()
    assert lines[:4] == [
        *(f"tapcheck: warning: {c}: {said}" for c in clips[:3]),
        f"tapcheck: warning: {stereo}: 2 channels averaged to mono (the study records mono)"]
    assert lines[-1] == f"tapcheck: warning: 3 more files likewise: {said}", err
    for knock in knocks:
        assert sum(line.startswith(f"tapcheck: warning: {knock}: ") for line in lines) == 1, err


def test_an_over_long_side_is_refused_before_anything_is_made(tiny_dataset, tmp_path, run_cli):
    """A 256-letter side passed the name check; the clip was read, the folder refused by the
    file system, and the new dataset's folder was left behind (QA). A group's example was a
    side's ("e.g. --group left")."""
    clip = tiny_dataset.root / tiny_dataset.takes[0].path
    code, out, err = run_cli("import", clip, "--dataset", tmp_path / "ds", "--board", "1",
                             "--side", "b" * 256, "--label", "normal")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "tapcheck: error: side 'bbbbbbbbbbbbbbbbbbbb…' is 256 characters long; a side name has "
        "at most 64 — e.g. --side left")
    assert not (tmp_path / "ds").exists()
    code, out, err = run_cli("import", clip, "--dataset", tmp_path / "ds", "--board", "1",
                             "--side", "left", "--group", "a,b", "--label", "normal")
    assert code == 2 and err.strip().endswith("— e.g. --group reference"), err


def _second_import_refused(run_cli, clips, dataset: str, second: tuple, *, board: str = "1"):
    """Import clips[0] into board ``board`` left (normal), then clips[1] with ``second``'s
    options, which must be refused with nothing written; (the dataset's folder, stderr)."""
    code, _, err = run_cli("import", clips[0], "--dataset", dataset, "--board", board, "--side",
                           "left", "--label", "normal")
    assert code == 0, err
    root = Dataset.open(dataset).root
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out, err = run_cli("import", clips[1], "--dataset", dataset, *second)
    assert (code, out) == (2, "")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    return root, err


def test_import_refuses_a_label_the_sides_training_takes_lack(tmp_path, run_cli):
    """A training side is one class: defect takes imported into a healthy side were written,
    and train then refused the dataset until its manifest was edited by hand (QA). Refused
    before any take, nothing written; its own side name, or the test split, is taken."""
    from .conftest import write_tone

    clips = [write_tone(tmp_path / f"{i}.wav", duration_s=3.0, seed=i) for i in range(3)]
    root, err = _second_import_refused(run_cli, clips, "mixed", ("--board", "1", "--side", "left",
                                                                 "--label", "defect"))
    assert err == (f"tapcheck: error: {root / 'manifest.csv'}: board 1 left holds normal training "
                   "takes, and a board side is one class, healthy or cracked: defect takes there "
                   "would stop `train` — give the defect takes a side name of their own (e.g. "
                   "--side left-crack), or --split test\n")
    for extra in (("--side", "left-crack"), ("--side", "left", "--split", "test")):
        code, _, err = run_cli("import", clips[2 if "test" in extra else 1], "--dataset",
                               "mixed", "--board", "1", "--label", "defect", *extra)
        assert code == 0, err
    assert sorted((t.side, t.label, t.split) for t in Dataset.open("mixed").takes) == [
        ("left", "defect", "test"), ("left", "normal", "train"), ("left-crack", "defect", "train")]


def test_a_side_spelt_in_other_case_is_refused(tmp_path, run_cli):
    """`--side Left` beside a board's `left` was a side of its own: info listed both, train made
    them two classes, and on a case-blind disk they share a folder (QA)."""
    from .conftest import write_tone

    clips = [write_tone(tmp_path / f"{i}.wav", duration_s=3.0, seed=i) for i in range(2)]
    root, err = _second_import_refused(run_cli, clips, "cased", ("--board", "22", "--side",
                                                                 "Left", "--label", "normal"),
                                       board="22")
    assert err == (f"tapcheck: error: {root / 'manifest.csv'}: board 22 has a side left already; "
                   "Left differs from it only in case, and would be a board side of its own — "
                   "use --side left\n")
    # another board's Left is its own
    code, _, err = run_cli("import", clips[1], "--dataset", "cased", "--board", "23", "--side",
                           "Left", "--label", "normal")
    assert code == 0, err


def test_a_new_dataset_among_other_files_is_said_and_leaves_them(tmp_path, run_cli):
    """`import ~/clips/*.wav --dataset ~/clips` made the clips' own folder a dataset without a
    word: it is said once, when the dataset is made, and the files there are left as they were.
    An empty folder, or the dataset once made, is not warned of."""
    from .conftest import write_tone

    clips = tmp_path / "clips"
    clips.mkdir()
    first, second = (write_tone(clips / f"{k}.wav", duration_s=3.0, seed=k) for k in (1, 2))
    before = {p.name: p.read_bytes() for p in clips.iterdir()}
    args = ("--board", "1", "--side", "left", "--label", "normal")
    code, out, err = run_cli("import", first, "--dataset", clips, *args)
    assert code == 0, err
    assert err == (f"tapcheck: warning: {clips}: holds 2 other file(s) or folder(s) (e.g. 1.wav) "
                   "and no manifest.csv: the dataset's takes and manifest.csv go in beside "
                   "them; to keep them apart, give a new folder instead, e.g. --dataset bench\n")
    assert {p.name: p.read_bytes() for p in clips.glob("*.wav")} == before
    code, out, err = run_cli("import", second, "--dataset", clips, *args)
    assert code == 0 and err == "", err
    assert [t.path for t in Dataset.open(clips).takes] == ["board01/left/take001.wav",
                                                            "board01/left/take002.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"\0")  # hidden files are no one's reading
    code, out, err = run_cli("import", first, "--dataset", empty, *args)
    assert code == 0 and err == "", err


def test_a_dataset_path_through_a_missing_folder_makes_no_such_folder(tmp_path, run_cli,
                                                                      monkeypatch):
    """`--dataset a/../b` made an empty folder a beside the dataset b and named the takes
    a/../b/…, a path no shell follows once a is removed (QA): the folder meant is used."""
    from .conftest import write_tone

    monkeypatch.chdir(tmp_path)
    clip = write_tone(tmp_path / "c.wav", duration_s=3.0)
    code, out, err = run_cli("import", clip, "--dataset", "a/../b", "--board", "1", "--side",
                             "left", "--label", "normal")
    assert code == 0, err
    assert out.splitlines()[-1] == "imported 1 of 1 file(s) into b"  # ./b, not recordings/b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "c.wav"]
    assert len(Dataset.open("a/../b")) == 1
    code, out, err = run_cli("info", "x/../b/manifest.csv")  # a manifest's path alike
    assert code == 0 and out.startswith("b: 1 takes"), err
    # where the folder gone up from exists, the path is the file system's to follow
    (tmp_path / "c").mkdir()
    code, out, err = run_cli("info", "c/../b")
    assert code == 0 and out.startswith("c/../b: 1 takes"), err


def test_a_file_of_several_taps_is_warned_of_and_a_strikes_bounces_are_not(tmp_path, run_cli,
                                                                          tiny_dataset):
    """A 120 s file of 40 taps was imported as one take without a word (QA); the real knocks'
    bounces (up to 6 knocks within 0.81 s) are one tap."""
    from .conftest import knock_files

    y, sr = sf.read(tiny_dataset.path_of(tiny_dataset.takes[0]), dtype="float32")
    sf.write(tmp_path / "three.wav", np.concatenate([y, 0.8 * y, 0.9 * y]), sr)
    code, out, err = run_cli("import", tmp_path / "three.wav", *knock_files("wood")[:10],
                             "--dataset", "taps", "--board", "1", "--side", "left",
                             "--label", "normal")
    assert code == 0 and "imported 11 of 11" in out, err
    said = [line for line in err.splitlines() if "taps (at " in line]
    assert len(said) == 1, err
    found = re.fullmatch(
        rf"tapcheck: warning: {re.escape(str(tmp_path / 'three.wav'))}: holds at least 3 taps "
        r"\(at (\d+\.\d), (\d+\.\d), (\d+\.\d) s\); a take is one tap and only the loudest "
        r"is used — cut the file into one clip per tap \(or record with `tapcheck record "
        r"--trigger`, one take per tap\)", said[0])
    at = [float(t) for t in found.groups()]
    assert np.allclose(np.diff(at), 3.0, atol=0.1)  # the takes are 3 s long


def test_a_take_imported_from_a_lossy_coding_says_so_in_doctor_and_train(tmp_path, run_cli):
    """QA: an MP3, once imported, was a 16-bit WAV like any other, its manifest row said
    "import", and doctor and train said nothing of it; its source now names the coding."""
    import warnings

    from tapcheck.config import Config
    from tapcheck.training_data import prepare_data

    from .conftest import write_tone

    clips = [write_tone(tmp_path / "a.mp3", duration_s=3, subtype="MPEG_LAYER_III"),
             write_tone(tmp_path / "b.wav", duration_s=3, seed=1)]
    code, out, err = run_cli("import", *clips, "--dataset", "lossy", "--board", "1", "--side",
                             "left", "--label", "normal")
    assert code == 0 and "imported 2 of 2" in out, err
    dataset = Dataset.open("lossy")
    assert [t.source for t in dataset.takes] == ["import (MP3)", "import"]
    said = (f"{dataset.root}: 1 of its 2 takes were imported from lossy codings (MP3 x1), whose "
            "spectra differ from what the microphone heard — re-import WAV or FLAC recordings "
            "of those boards")
    _, out, _ = run_cli("doctor", "--dataset", "lossy")
    assert f"note     {said}\n" in out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_data(dataset, config=Config())
    assert said.replace("2 takes", "2 training takes") in [str(w.message) for w in caught]


def test_a_clip_imported_again_at_another_rate_is_refused(tmp_path, run_cli):
    """A clip imported again with `--config` of another [audio] sr was stored as a second take
    of the same tap (at 48000 Hz beside its 44100 Hz one): its samples at the new rate are no
    take's (QA)."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    (tmp_path / "sr48.toml").write_text("[audio]\nsr = 48000\n")
    args = ("--dataset", "rates", "--board", "1", "--side", "left", "--label", "normal")
    assert run_cli("import", clip, *args)[0] == 0
    manifest = Dataset.open("rates").root / "manifest.csv"
    before = manifest.read_bytes()
    code, out, err = run_cli("import", clip, *args, "--config", tmp_path / "sr48.toml")
    assert code == 2, err
    assert err.splitlines()[-1] == (
        f"tapcheck: error: {clip}: is already take board01/left/take001.wav of this dataset (the "
        "same samples); imported again it would count twice (in training, or in evaluate's "
        "rates); not imported — leave "
        "it out")
    assert manifest.read_bytes() == before
    # another clip is imported at that rate all the same (with the dataset's warning of rates)
    other = write_tone(tmp_path / "b.wav", duration_s=3.0, seed=1)
    assert run_cli("import", other, *args, "--config", tmp_path / "sr48.toml")[0] == 0
    assert len(Dataset.open("rates").takes) == 2


def test_a_copy_is_refused_when_its_takes_peak_was_rounded_apart(tmp_path, run_cli):
    """A take's manifest peak is that of its samples before they were rounded to 16 bits; a
    copy of its file has the rounded ones. Where the two peaks round to other hundredths of a dB
    (-13.23 and -13.24: about 5 % of synth's takes), the copy was imported (QA)."""
    from tapcheck.audio import encode_wav, peak_dbfs

    from .conftest import write_tone

    y, sr = sf.read(write_tone(tmp_path / "t.wav", duration_s=3.0, subtype="FLOAT"))
    # a gain at which the rounded samples' peak rounds to another hundredth than the float's
    for gain in np.linspace(0.2, 0.3, 2001):
        z = (y / np.abs(y).max() * gain).astype(np.float32)
        stored = sf.read(encode_wav(z, sr=44100), dtype="float32")[0]
        if round(peak_dbfs(z), 2) != round(peak_dbfs(stored), 2):
            break
    else:
        raise AssertionError("no gain rounds the two peaks apart")
    dataset = Dataset.create("copies")
    take = dataset.add_take(z, sr=44100, board=1, side="left", label="normal")
    copy = tmp_path / "copy.wav"
    copy.write_bytes(dataset.path_of(take).read_bytes())
    code, _, err = run_cli("import", copy, "--dataset", "copies", "--board", "2",
                           "--side", "left", "--label", "normal")
    assert code == 2 and "is already take board01/left/take001.wav of this dataset" in err
    assert len(Dataset.open("copies").takes) == 1


def test_a_clips_warning_says_the_take_was_imported_and_none_before_a_refusal(tmp_path,
                                                                            run_cli):
    """A knock cut short got "the verdict may be off" at import, where no verdict is given and
    the take is kept; imported again, that warning came before "is already take …" (real
    knocks, QA)."""
    from .conftest import write_tone

    clip = write_tone(tmp_path / "a.wav", duration_s=3.0)
    y, sr = sf.read(clip, dtype="float32")
    onset = int(np.argmax(np.abs(y)))
    sf.write(tmp_path / "cut.wav", y[:onset + sr // 10], sr)  # 100 ms after the strike
    args = ("--dataset", "cut", "--board", "1", "--side", "left", "--label", "normal")
    code, _, err = run_cli("import", tmp_path / "cut.wav", *args)
    assert code == 0 and re.search(
        r"cut\.wav: the strike is \d+ ms before the clip's end .* are padding, which raises a "
        r"healthy tap's score; imported all the same, though its score may be off \(in "
        r"training, calibration or evaluate\) — record the tap earlier in the clip\n$", err), err
    code, _, err = run_cli("import", tmp_path / "cut.wav", *args)
    assert code == 2 and len(err.splitlines()) == 1 and "is already take" in err, err
