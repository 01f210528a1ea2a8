"""scripts/board_bound.py's two thresholds of its own: the per-tap rate of a vote that states a
board rate, and the best threshold a vote could have (the figures of docs/results/board-bound-*
rest on them)."""


import numpy as np
import pytest

from tapcheck.datasets import Take

from .conftest import script_module

@pytest.fixture(scope="module")
def bound():
    return script_module("board_bound")


def test_vote_rate_gives_the_board_rate_for_independent_taps(bound):
    p = bound.vote_rate(3, 0.02)
    assert 3 * p**2 - 2 * p**3 == pytest.approx(0.02, rel=1e-6)  # 2 or 3 of 3 over
    assert p == pytest.approx(0.0840, abs=1e-4)
    assert bound.vote_rate(1, 0.02) == pytest.approx(0.02)
    assert bound.vote_rate(5, 0.02) > p  # a majority of more taps is rarer at the same rate


def takes_of(scores: dict[int, list[float]], defective: set[int]) -> tuple[list[Take], np.ndarray]:
    takes, values = [], []
    for board, row in scores.items():
        for k, s in enumerate(row, start=1):
            takes.append(Take(f"board{board:02d}/left/take{k:03d}.wav", board, "left",
                              "defect" if board in defective else "normal", "g", "test", k,
                              "", 44100, 3.0, "synth", -6.0))
            values.append(s)
    return takes, np.array(values)


def test_best_possible_finds_most_defects_within_the_healthy_rate(bound):
    # 50 healthy boards of 3 taps: one (board 1) loud; defective boards 101-103 at falling
    # loudness, the last one quieter than the loud healthy board
    healthy = {b: [0.1, 0.1, 0.1] for b in range(2, 51)}
    scores = {1: [0.5, 0.5, 0.5], **healthy, 101: [0.9, 0.9, 0.9], 102: [0.6, 0.6, 0.2],
              103: [0.3, 0.3, 0.3]}
    takes, values = takes_of(scores, {101, 102, 103})
    best = bound.best_possible(takes, values, board_far=0.02)  # 1 of 50 healthy boards allowed
    assert best["healthy_flagged"] == pytest.approx(0.02)
    assert best["defective_found"] == pytest.approx(1.0)  # down to 0.3 flags board 1 only
    strict = bound.best_possible(takes, values, board_far=0.0)
    assert strict["healthy_flagged"] == 0.0
    assert strict["defective_found"] == pytest.approx(2 / 3)  # 103 hides below board 1
