"""Board verdicts: taps grouped by board, median against the board threshold."""

from __future__ import annotations

import json

from tapcheck.boards import board_of_path, board_verdicts


def test_board_of_path_reads_the_dataset_layout():
    assert board_of_path("recordings/demo/board11/left/take001.wav") == "11"
    assert board_of_path("board07/take3.wav") == "7"
    assert board_of_path("inbox/clip.wav") is None


def test_taps_are_grouped_per_board_and_judged_by_their_median():
    paths = ["d/board01/left/a.wav", "d/board02/left/a.wav", "d/board01/right/b.wav",
             "d/board02/left/b.wav", "d/board01/left/c.wav", "d/board02/left/c.wav",
             "inbox/odd.wav"]
    scores = [0.9, 0.1, 0.2, 0.8, 0.3, 0.9, 0.7]  # board 1: one loud tap; board 2: two
    got = {b.board: b for b in board_verdicts(paths, scores, threshold=0.5, expected_taps=3)}
    assert set(got) == {"1", "2", "inbox/odd.wav"}
    assert (got["1"].verdict, got["1"].median, got["1"].taps) == ("NORMAL", 0.3, 3)
    assert (got["2"].verdict, got["2"].median) == ("ANOMALOUS", 0.8)
    # --board: every clip is a tap of that board, whatever its folder
    [one] = board_verdicts(paths, scores, threshold=0.5, expected_taps=3, board="21")
    assert (one.board, one.taps, one.median) == ("21", 7, 0.7)


def test_judge_per_board_prints_one_verdict_per_board(tiny_model, tiny_dataset, run_cli):
    clips = [tiny_dataset.path_of(t) for b in (11, 12)
             for t in tiny_dataset.select(board=[b], split="test")[:3]]
    code, out, err = run_cli("judge", *clips, "--model", tiny_model, "--per-board", "--json")
    assert code in (0, 1), err
    rows = [json.loads(line) for line in out.splitlines()]
    boards = [r["board_verdict"] for r in rows if "board_verdict" in r]
    assert [b["board"] for b in boards] == ["11", "12"] and [b["taps"] for b in boards] == [3, 3]
    assert all("rate_holds_for" in r for r in rows if "board_verdict" not in r)
    assert code == (1 if any(b["verdict"] == "ANOMALOUS" for b in boards) else 0)
