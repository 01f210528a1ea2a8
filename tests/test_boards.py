"""Board verdicts: taps grouped by board, one verdict each by the model's board rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tapcheck.boards import (BOARD_RULES, board_folder, board_of_path, board_verdicts,
                             mixed_board_folders, unplaced_reason)
from tapcheck.calibration import describe


def test_board_of_path_reads_the_dataset_layout():
    assert board_of_path("recordings/demo/board11/left/take001.wav") == "11"
    assert board_folder("recordings/demo/board11/left/take001.wav") == (
        "recordings/demo/board11", "11")
    assert board_of_path("board07/take3.wav") == "7"
    assert board_of_path("inbox/clip.wav") is None
    # past manifest.MAX_BOARD a folder names no board, as --board N refuses the number
    assert board_of_path("board0999999/t.wav") == "999999"
    assert board_of_path("board1234567/t.wav") is None
    assert board_of_path("board\u0663/t.wav") is None  # an Arabic-Indic 3 is no board 3
    assert unplaced_reason("in/board1234567/left/t.wav") == (
        "its folder board1234567 names no board (board numbers go up to 999999)")
    assert unplaced_reason("inbox/clip.wav") == "not in a boardNN/ folder"
    # an inspector's capitals name the board too; another spelling is told, not guessed
    assert board_of_path("inbox/Board12/left/t.wav") == "12"
    assert board_of_path("BOARD007/t.wav") == "7"
    assert board_of_path("inbox/board-12/left/t.wav") is None
    assert unplaced_reason("inbox/board-12/left/t.wav") == (
        "its folder board-12 is not spelt boardNN (board12/)")
    assert unplaced_reason("Board 03/t.wav") == "its folder Board 03 is not spelt boardNN (board3/)"


def test_a_clip_named_from_inside_its_board_folder_is_that_boards(tmp_path, monkeypatch):
    """Typed inside board55/left/, take001.wav was a board of its own, each tap judged apart
    (one odd tap failed the board) with a false "not in a boardNN/ folder" (QA)."""
    inside = tmp_path / "plant" / "board55" / "left"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    assert board_of_path("take001.wav") == "55"
    assert board_of_path("take001.wav", as_written=True) is None  # a dataset's own paths
    assert board_folder("take001.wav") == (str(tmp_path / "plant" / "board55"), "55")
    assert board_of_path(inside / "take002.wav") == "55"
    assert not mixed_board_folders(["take001.wav", inside / "take002.wav", "./take003.wav"])
    monkeypatch.chdir(tmp_path / "plant")
    assert board_of_path("t.wav") is None and unplaced_reason("t.wav") == (
        "not in a boardNN/ folder")


def test_taps_are_grouped_per_board_and_judged_by_their_median():
    paths = ["d/board01/left/a.wav", "d/board02/left/a.wav", "d/board01/right/b.wav",
             "d/board02/left/b.wav", "d/board01/left/c.wav", "d/board02/left/c.wav",
             "inbox/odd.wav"]
    scores = [0.9, 0.1, 0.2, 0.8, 0.3, 0.9, 0.7]  # board 1: one loud tap; board 2: two
    got = {b.board: b for b in board_verdicts(paths, scores, threshold=0.5, expected_taps=3,
                                              rule="median")}
    assert set(got) == {"1", "2", "inbox/odd.wav"}
    assert (got["1"].verdict, got["1"].median, got["1"].taps) == ("NORMAL", 0.3, 3)
    assert (got["2"].verdict, got["2"].median) == ("ANOMALOUS", 0.8)
    # --board: every clip is a tap of that board, whatever its folder
    [one] = board_verdicts(paths, scores, threshold=0.5, expected_taps=3, board="21",
                           rule="median")
    assert (one.board, one.taps, one.median) == ("21", 7, 0.7)


@pytest.mark.parametrize("name", sorted(BOARD_RULES))
def test_every_board_rule_flags_a_loud_board_and_passes_a_quiet_one(name):
    rule = BOARD_RULES[name]
    assert rule.name == name
    t = rule.threshold(0.5, 0.4)
    assert np.isfinite(t) and t > 0
    assert rule.flags(np.array([9 * t, 9 * t, 9 * t]), t)
    assert not rule.flags(np.array([t / 9, t / 9, t / 9]), t)
    [loud] = board_verdicts(["a.wav"] * 3, [9 * t] * 3, threshold=t, expected_taps=3, rule=name)
    assert loud.verdict == "ANOMALOUS" and loud.line().startswith("BOARD a.wav: ANOMALOUS")
    info = {"board_threshold": t, "board_far": 0.02, "board_rule": name}
    assert rule.statement(info) and describe({"threshold": t, "threshold_ci": [t, t],
                                              "far": 0.05, "holds_for": "x", "clips": 9,
                                              "method": "hold-out", "board_taps": 3, **info}
                                             ).endswith(rule.statement(info))


def test_the_vote_flags_a_board_when_most_of_its_taps_are_over_the_tap_threshold():
    one_loud, two_loud = [0.9, 0.1, 0.2], [0.9, 0.6, 0.2]
    paths = ["board01/a.wav"] * 3 + ["board02/a.wav"] * 3
    got = board_verdicts(paths, one_loud + two_loud, threshold=0.5, expected_taps=3, rule="vote")
    assert [(b.verdict, b.over) for b in got] == [("NORMAL", 1), ("ANOMALOUS", 2)]
    assert got[1].line() == ("BOARD 2: ANOMALOUS  2 of 3 taps over the threshold 0.5000  "
                             "median 0.6000")
    # widened as tap lines are: "threshold 0.0033  median 0.0033" for 0.003251 and 0.00332
    [close] = board_verdicts(["a.wav"] * 3, [0.00332, 0.00340, 0.001], threshold=0.003251,
                             expected_taps=3, rule="vote")
    assert close.line() == ("BOARD a.wav: ANOMALOUS  2 of 3 taps over the threshold 0.00325  "
                            "median 0.00332")
    # a tie (2 of 4, or 1 of 2 when a tap of 3 was unreadable) is decided by the median: 1 of 2
    # read NORMAL with a median far over the threshold
    [even] = board_verdicts(["a.wav"] * 4, [0.9, 0.8, 0.1, 0.2], threshold=0.5,
                            expected_taps=3, rule="vote")
    assert (even.verdict, even.over, even.median) == ("NORMAL", 2, 0.5)  # not over: 0.5
    [over] = board_verdicts(["a.wav"] * 4, [0.9, 0.8, 0.3, 0.2], threshold=0.5,
                            expected_taps=3, rule="vote")
    assert (over.verdict, over.over) == ("ANOMALOUS", 2)
    [loud] = board_verdicts(["board02/a.wav"] * 2, [0.45, 0.035], threshold=0.09,
                            expected_taps=3, rule="vote")
    assert (loud.verdict, loud.over) == ("ANOMALOUS", 1)
    assert loud.line() == ("BOARD 2: ANOMALOUS  1 of 2 taps over the threshold 0.0900  "
                           "median 0.2425  (a tie: the median decides)")
    assert "tie" not in got[1].line()


def test_judge_per_board_prints_one_verdict_per_board(tiny_model, tiny_dataset, run_cli):
    clips = [tiny_dataset.path_of(t) for b in (11, 12)
             for t in tiny_dataset.select(board=[b], split="test")[:3]]
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board", "--json")
    assert code in (0, 1), err
    rows = [json.loads(line) for line in out.splitlines()]
    boards = [r["board_verdict"] for r in rows if "board_verdict" in r]
    assert [b["board"] for b in boards] == ["11", "12"] and [b["taps"] for b in boards] == [3, 3]
    taps = [r for r in rows if "board_verdict" not in r]
    assert all("rate_holds_for" in r for r in taps)
    # the rate and whether it is a guess, as the text's statement line says them (QA): the tiny
    # model's threshold rests on far fewer than 60 clips
    assert {(r["false_alarm_rate"], r["rate_is_a_guess"]) for r in taps} == {(0.05, True)}
    code, _, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board")
    assert "too few to check that rate: it is a guess; board verdict of 3 taps" in err, err
    # the vote: a board line never contradicts most of its tap lines
    for b, mine in zip(boards, (taps[:3], taps[3:]), strict=True):
        flagged = sum(t["verdict"] == "ANOMALOUS" for t in mine)
        assert (b["rule"], b["over"]) == ("vote", flagged)
        assert b["verdict"] == ("ANOMALOUS" if flagged >= 2 else "NORMAL")
    assert code == (1 if any(b["verdict"] == "ANOMALOUS" for b in boards) else 0)
    assert [b["warnings"] for b in boards] == [[], []]  # three taps each: nothing to say


def test_json_board_lines_carry_their_boards_warnings(tiny_model, tiny_dataset, run_cli,
                                                      tmp_path):
    """QA: a board's warnings (one tap where three were calibrated, a loose clip judged as a
    board of its own) reached stderr only, grouped; a script reading the board lines never
    saw them."""
    import shutil

    takes = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[12], split="test")]
    (tmp_path / "board41").mkdir()
    one = shutil.copy(takes[0], tmp_path / "board41" / "a.wav")
    loose = shutil.copy(takes[1], tmp_path / "loose.wav")
    code, out, err = run_cli("judge", one, loose, "--model", tiny_model, "--per-board", "--json")
    assert code in (0, 1), err
    boards = {r["board_verdict"]["board"]: r["board_verdict"]["warnings"]
              for r in map(json.loads, out.splitlines()) if "board_verdict" in r}
    assert boards == {
        "41": ["board 41: 1 tap(s), where the board verdict is calibrated for 3; tap it 2 more "
               "time(s) for the stated rate"],
        str(loose): [f"{loose}: not in a boardNN/ folder, so judged as a board of its own; give "
                     "--board NAME to judge clips as one board",
                     f"board {loose}: 1 tap(s), where the board verdict is calibrated for 3; tap "
                     "it 2 more time(s) for the stated rate"]}
    # stderr as before: one line for the boards short of taps
    assert err.count("tap(s), where the board verdict is calibrated for 3") == 1, err
    # a file of several taps counts as one tap: its board line says so (review)
    import numpy as np
    import soundfile as sf

    from tapcheck.audio import load

    y = np.concatenate([load(takes[2], sr=44100), 0.5 * load(takes[3], sr=44100)])
    sf.write(tmp_path / "board41" / "two.wav", y, 44100, subtype="FLOAT")
    code, out, err = run_cli("judge", one, tmp_path / "board41" / "two.wav", "--model",
                             tiny_model, "--per-board", "--json")
    (board,) = [r["board_verdict"] for r in map(json.loads, out.splitlines())
                if "board_verdict" in r]
    assert board["taps"] == 2 and any(w.startswith(f"{tmp_path / 'board41' / 'two.wav'}: holds "
                                                   "at least 2 taps") for w in board["warnings"])


def test_a_board_none_of_whose_taps_could_be_judged_has_its_line(tiny_model, tmp_path, run_cli):
    """`judge --board 9 bad.wav empty.wav` printed the two errors and no board line, nor a
    board object in --json: a script reading board verdicts saw nothing of board 9 (QA)."""
    bad, empty = tmp_path / "bad.wav", tmp_path / "empty.wav"
    bad.write_bytes(b"not audio")
    empty.write_bytes(b"")
    code, out, err = run_cli("judge", bad, empty, "--model", tiny_model, "--board", "9")
    assert code == 2 and err.count("tapcheck: error: ") == 2, err
    assert out.splitlines() == [
        "BOARD 9: NOT JUDGED  none of its 2 tap(s) could be judged: errors below"]
    assert "tap it" not in err  # not "0 tap(s) … tap it 3 more time(s)"
    code, out, _ = run_cli("judge", bad, empty, "--model", tiny_model, "--board", "9", "--json")
    (board,) = [r["board_verdict"] for r in map(json.loads, out.splitlines())
                if "board_verdict" in r]
    assert (board["board"], board["verdict"], board["median"], board["taps"],
            board["unjudged"]) == ("9", "NOT JUDGED", None, 0, 2) and code == 2


def test_a_board_verdict_says_how_many_of_its_taps_could_not_be_judged(tiny_model, tiny_dataset,
                                                                      run_cli, tmp_path):
    """One readable tap of three gave `BOARD 41: NORMAL  0 of 1 taps ...` with no word on the
    line, or in its JSON, of the two the errors below named (QA)."""
    import shutil

    side = tmp_path / "board41" / "left"
    side.mkdir(parents=True)
    shutil.copy(tiny_dataset.path_of(tiny_dataset.select(board=[12], split="test")[0]),
                side / "t1.wav")
    for name in ("t2.wav", "t3.wav"):
        (side / name).write_bytes(b"not audio")
    clips = sorted(side.iterdir())
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board")
    assert code == 2 and err.count("tapcheck: error: ") == 2, err
    (line,) = [ln for ln in out.splitlines() if ln.startswith("BOARD 41: ")]
    assert line.endswith("  (2 more tap(s) not judged: errors below)") and " of 1 taps " in line
    code, out, _ = run_cli("judge", *clips, "--model", tiny_model, "--per-board", "--json")
    (board,) = [r["board_verdict"] for r in map(json.loads, out.splitlines())
                if "board_verdict" in r]
    assert (board["taps"], board["unjudged"]) == (1, 2)
    # all judged: nothing added
    good = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[12], split="test")[:3]]
    code, out, _ = run_cli("judge", *good, "--model", tiny_model, "--per-board")
    assert "not judged" not in out


def test_judge_board_warns_when_the_clips_folders_name_another_board(tiny_model, tiny_dataset,
                                                                     run_cli):
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11], split="test")[:3]]
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--board", "7")
    assert code in (0, 1) and "BOARD 7: " in out
    warned = [line for line in err.splitlines() if line.startswith("tapcheck: warning: ")]
    assert warned == [f"tapcheck: warning: {clips[0]} and 2 more clip(s): their folders name "
                      "board 11, judged as board 7"]  # one line, however many clips
    # and on the board's JSON line, where the board's other warnings are (it was missing: QA)
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--board", "07", "--json")
    board_line, = [json.loads(line)["board_verdict"] for line in out.splitlines()
                   if "board_verdict" in line]
    assert board_line["board"] == "7" and board_line["warnings"] == [
        f"{clips[0]} and 2 more clip(s): their folders name board 11, judged as board 7"]
    # the same board, written with a leading zero or a space: nothing to warn of, and named
    # as its folder names it (it was "BOARD 011", a board apart from per-board's "BOARD 11")
    for written in ("011", " 11", "+11"):
        code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--board", written)
        assert "warning" not in err and "BOARD 11: " in out


@pytest.mark.parametrize("option", [["--per-board"], ["--board", "11"]])
def test_a_tap_given_twice_is_refused_for_a_board_verdict(tiny_model, tiny_dataset, run_cli,
                                                          tmp_path, monkeypatch, option):
    """Given twice, in another spelling or as a copy, one anomalous tap of two made the board's
    vote "2 of 3 taps over the threshold"."""
    import shutil

    monkeypatch.chdir(tiny_dataset.root)
    a, b = [t.path for t in tiny_dataset.select(board=[11], split="test")[:2]]
    copy = tmp_path / "copy.wav"
    shutil.copyfile(a, copy)
    for again, problem in ((f"./{a}", "is given twice"), (a.replace("/", "//"), "is given twice"),
                           (copy, f"is the same recording as {a}")):
        code, out, err = run_cli("judge", a, again, b, "--model", tiny_model, *option)
        assert (code, out) == (2, "")
        assert err.endswith(f": {problem}; counted twice it would weigh twice in its board's "
                            "verdict; nothing judged — name each clip once\n")
        assert len(err.splitlines()) == 1
    # tap verdicts alone: a repeat is harmless, each line names its clip
    code, out, _ = run_cli("judge", a, f"./{a}", "--model", tiny_model)
    assert code in (0, 1) and len(out.splitlines()) == 2


def test_judge_per_board_warns_of_one_board_number_in_several_folders(tiny_model, tiny_dataset,
                                                                     run_cli, tmp_path):
    """Monday's and Tuesday's board07/ and a board7/ are one board 7, as a board is; but the
    user who mixed them hears of it once, with the first two folders. The sides inside one
    board folder are not several folders."""
    import shutil

    takes = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11])[:5]]
    inbox = tmp_path / "inbox"
    clips = [inbox / "mon" / "board07" / "t1.wav", inbox / "tue" / "board07" / "t1.wav",
             inbox / "board7" / "t.wav", inbox / "board09" / "left" / "t.wav",
             inbox / "board09" / "right" / "t.wav"]
    for clip, take in zip(clips, takes, strict=True):
        clip.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(take, clip)
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board")
    assert code in (0, 1), err
    assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("BOARD")] == [
        "BOARD 7", "BOARD 9"]
    warned = [ln for ln in err.splitlines() if "folders" in ln]
    assert warned == [f"tapcheck: warning: board 7: its taps come from 3 folders "
                      f"({inbox / 'mon' / 'board07'}, {inbox / 'tue' / 'board07'}, …), judged "
                      "as one board — if they are not the same board, judge each folder on its "
                      "own"]


@pytest.mark.parametrize("name", ["7\nBOARD 3 NORMAL", "7\r", "\t", "x" * 65])
def test_a_board_name_cannot_forge_an_output_line(name, run_cli, tiny_model):
    code, out, err = run_cli("judge", "take001.wav", "--model", tiny_model, "--board", name)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "Invalid value for '--board'" in err


def test_a_file_name_cannot_forge_an_output_line(tiny_model, tiny_dataset, run_cli, tmp_path):
    """A clip outside a board folder is its own board, named by its path: a line break in the
    name is printed escaped, in the verdict line, the board line and an error line alike."""
    import shutil

    forged = tmp_path / "x.wav\nBOARD 3 NORMAL  0 of 3"
    shutil.copyfile(tiny_dataset.path_of(tiny_dataset.select(board=[11])[0]), forged)
    broken = tmp_path / "bad.wav\ntapcheck: error: forged"
    broken.write_bytes(b"not audio")
    code, out, err = run_cli("judge", forged, broken, "--model", tiny_model, "--per-board")
    # one verdict, two boards (the unreadable clip's NOT JUDGED, its name escaped)
    assert code == 2 and len(out.splitlines()) == 3
    assert not any(line.startswith("BOARD 3") for line in out.splitlines())
    assert "x.wav\\nBOARD 3 NORMAL" in out
    assert [line for line in err.splitlines() if "forged" in line] == [
        next(line for line in err.splitlines() if line.startswith(f"tapcheck: error: {tmp_path}"))]


def test_a_board_of_fewer_taps_than_calibrated_and_a_clip_outside_board_folders_are_warned(
        tiny_model, tiny_dataset, run_cli, tmp_path):
    import shutil

    loose = tmp_path / "tap.wav"
    shutil.copyfile(tiny_dataset.path_of(tiny_dataset.select(board=[12])[0]), loose)
    inside = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11])[:3]]
    code, out, err = run_cli("judge", loose, *inside, "--model", tiny_model, "--per-board")
    assert code in (0, 1), err
    assert [line for line in out.splitlines() if line.startswith("BOARD")][1].startswith(
        "BOARD 11:")  # three taps: no warning of its own
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"tapcheck: warning: {loose}: not in a boardNN/ folder, so judged as a board of its own; "
        "give --board NAME to judge clips as one board",
        f"tapcheck: warning: board {loose}: 1 tap(s), where the board verdict is calibrated for "
        "3; tap it 2 more time(s) for the stated rate"]
    # many loose clips: one line each way, not two per clip (16 clips gave 32 lines)
    more = [shutil.copyfile(tiny_dataset.path_of(t), tmp_path / f"tap{i}.wav")
            for i, t in enumerate(tiny_dataset.select(board=[12])[1:4])]
    code, out, err = run_cli("judge", loose, *more, "--model", tiny_model, "--per-board")
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"tapcheck: warning: {loose}: not in a boardNN/ folder, so judged as a board of its own "
        "(and 3 more clip(s) alike); give --board NAME to judge clips as one board",
        f"tapcheck: warning: board {loose}: 1 tap(s), where the board verdict is calibrated for "
        "3; tap it 2 more time(s) for the stated rate (and 3 more board(s) with fewer than 3 taps)"]


def test_a_board_of_many_more_taps_than_the_vote_is_calibrated_for_is_warned(
        tiny_model, tiny_dataset, run_cli):
    """`judge --per-board board13/*/*.wav`: 26 of 60 taps over the tap threshold read NORMAL by
    the majority, with no word that the vote's rate holds for 3 taps."""
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11])]
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board", "--json")
    assert code in (0, 1), err
    (board,) = [json.loads(line)["board_verdict"] for line in out.splitlines()
                if "board_verdict" in line]
    assert board["taps"] == len(clips) > 3
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"tapcheck: warning: board 11: {len(clips)} taps, where the board verdict is calibrated "
        f"for 3: its stated rate holds for groups of 3 — {board['over']} of the {len(clips)} "
        f"taps {'is' if board['over'] == 1 else 'are'} over the tap threshold, where a healthy "
        "board's are 5% of the time"]
    # several such boards: one line, naming the others ("and 2 more board(s)" named none: QA)
    clips = [tiny_dataset.path_of(t) for t in tiny_dataset.select(board=[11, 12, 13])]
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board")
    warned = [line for line in err.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("tapcheck: warning: board 11: ")
    assert warned[0].endswith("(and 2 more board(s) with more than 3 taps: 12, 13)")
