"""What `tapcheck evaluate` prints: rates against the stated one, and when they cannot be told."""

from __future__ import annotations

import numpy as np

from tapcheck.evaluation import evaluate_scores
from tapcheck.evaluation_report import format_evaluation

from .test_evaluation import take


def test_evaluate_says_when_new_boards_are_flagged_more_often_than_stated():
    # 12 unseen boards of 20 taps, each flagging 4 (20 %); 5 known boards flagging 1 of 20 (5 %)
    takes = [take(b, k) for b in range(1, 6) for k in range(20)]
    takes += [take(b, k) for b in range(11, 23) for k in range(20)]
    takes += [take(7, k, "defect") for k in range(20)]
    scores = np.array([0.9 if k == 0 else 0.1 for _ in range(5) for k in range(20)]
                      + [0.9 if k < 4 else 0.1 for _ in range(12) for k in range(20)]
                      + [0.9] * 20)
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=[1, 2, 3, 4, 5],
                             stated_far=0.05, n_boot=200)
    assert result["false_alarms_unseen_vs_stated"] == "above"
    assert result["false_alarms_known_vs_stated"] == "within"
    text = format_evaluation({**result, "calibration": {
        "threshold": 0.5, "threshold_ci": [0.4, 0.6], "far": 0.05, "holds_for": "boards",
        "clips": 32, "method": "hold-out", "board_taps": 3, "board_rule": "vote"}})
    line = next(x for x in text.splitlines() if x.startswith("against the stated rate: "))
    assert "known boards consistent with it" in line
    assert "unseen boards flagged more often" in line and "(`tapcheck enroll CLIPS`)" in line
    # a model file other than the default is named, so the advice runs as written
    named = format_evaluation({**result, "model": "models/enr.pt", "calibration": {
        "threshold": 0.5, "threshold_ci": [0.4, 0.6], "far": 0.05, "holds_for": "boards",
        "clips": 32, "method": "hold-out", "board_taps": 3, "board_rule": "vote"}})
    assert "(`tapcheck enroll --model models/enr.pt CLIPS`)" in named
    # a cross-fit threshold is kept by an enrolment: not offered as the mend of the rate (QA)
    crossfit = format_evaluation({**result, "calibration": {
        "threshold": 0.5, "threshold_ci": [0.4, 0.6], "far": 0.05, "holds_for": "boards",
        "clips": 32, "method": "cross-fit", "board_taps": 3, "board_rule": "vote"}})
    assert ("unseen boards flagged more often (the 95 % interval lies above it) — train on more "
            "boards; `tapcheck enroll CLIPS` of such a board's healthy taps clears that board's "
            "alarms, not the rate (an enrolment keeps a cross-fit threshold)") in crossfit
    assert "unseen boards flag 20.0% of healthy taps, 4.0 times the stated 5.0%" in text
    # a model whose rates hold says nothing more
    quiet = evaluate_scores(takes[:100], scores[:100], threshold=0.5,
                            known_boards=[1, 2, 3, 4, 5], stated_far=0.05, n_boot=200)
    assert quiet["false_alarms_known_vs_stated"] == "within"
    assert quiet["false_alarms_unseen_vs_stated"] is None  # no unseen boards
    assert "against the stated rate" not in _text(quiet) and "times the stated" not in _text(quiet)


def _text(result: dict) -> str:
    return format_evaluation({**result, "calibration": {
        "threshold": 0.5, "threshold_ci": [0.4, 0.6], "far": 0.05, "holds_for": "boards",
        "clips": 32, "method": "hold-out", "board_taps": 3, "board_rule": "vote"}})


def test_a_rate_on_too_few_boards_is_not_called_consistent_with_the_stated_one():
    """The demo's 2-epoch model: 46 % of 180 taps on 3 unseen boards, interval 1.7-73 %, was
    called consistent with a stated 5 %. Under 5 boards there is no verdict, and a rate twice
    the stated one or more says so plainly."""
    flags = {11: 36, 12: 2, 13: 45}  # of 60 taps each, as the trial's boards 11-13 gave
    takes = [take(b, k) for b in flags for k in range(60)]
    takes += [take(b, k) for b in (1, 2, 3, 4) for k in range(12)]
    scores = np.array([0.9 if k < flags[b] else 0.1 for b in flags for k in range(60)]
                      + [0.9 if k == 0 else 0.1 for _ in range(4) for k in range(12)])
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=[1, 2, 3, 4],
                             stated_far=0.05, n_boot=200)
    assert result["false_alarms_unseen_ci"][0] < 0.05 < result["false_alarms_unseen_ci"][1]
    assert result["false_alarms_unseen_vs_stated"] == "too few boards"
    assert result["false_alarms_known_vs_stated"] == "too few boards"
    text = _text(result)
    line = next(x for x in text.splitlines() if x.startswith("against the stated rate: "))
    assert "known boards (4) and unseen boards (3) too few to tell" in line
    assert "consistent" not in line
    assert "unseen boards flag 46.1% of healthy taps, 9.2 times the stated 5.0%" in text
    assert "known boards flag" not in text  # 8.3 %: under twice the stated rate


def test_a_rate_far_above_the_stated_one_is_not_called_consistent_however_wide_its_interval():
    """QA: an enrolled model on 6 unseen boards, two of them flagging most taps: the interval
    over boards (2.8-78.6 %) held 5 %, and "unseen boards consistent with it" stood beside
    "unseen boards flag 39.3% of healthy taps, 7.9 times the stated 5.0%"."""
    flags = {11: 0, 12: 0, 13: 1, 14: 0, 15: 19, 16: 20}  # of 20 taps each
    takes = [take(b, k) for b in flags for k in range(20)]
    takes += [take(b, k) for b in range(1, 5) for k in range(20)]  # 4 known: too few
    scores = np.array([0.9 if k < flags[b] else 0.1 for b in flags for k in range(20)]
                      + [0.9 if k == 0 else 0.1 for _ in range(4) for k in range(20)])
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=[1, 2, 3, 4],
                             stated_far=0.05, n_boot=200)
    # the interval holds 5 %, but 6.7 times it is no "within" (--json read so; QA)
    assert result["false_alarms_unseen_vs_stated"] == "not told"
    text = _text(result)
    line = next(x for x in text.splitlines() if x.startswith("against the stated rate: "))
    lo, hi = result["false_alarms_unseen_ci"]
    assert (f"unseen boards not told from it, as its 95 % interval ({lo:.1%}-{hi:.1%}) is wide "
            "— measure on more boards") in line
    assert "unseen boards consistent" not in text
    assert "unseen boards flag 33.3% of healthy taps, 6.7 times the stated 5.0%" in text


def test_a_far_rate_is_told_when_the_other_rate_holds():
    """QA: unseen boards at 2.5 times the stated rate, interval 4.2-20.8 %, known boards
    within: no "against the stated rate" line at all (it was built only when a rate lay off),
    and --json said "within"."""
    flags = {11: 0, 12: 0, 13: 0, 14: 1, 15: 2, 16: 12}  # of 20 taps each: 12.5 %, one loud board
    takes = [take(b, k) for b in flags for k in range(20)]
    takes += [take(b, k) for b in range(1, 7) for k in range(20)]  # 6 known boards, 1 flag each
    scores = np.array([0.9 if k < flags[b] else 0.1 for b in flags for k in range(20)]
                      + [0.9 if k == 0 else 0.1 for _ in range(6) for k in range(20)])
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=range(1, 7),
                             stated_far=0.05, n_boot=200)
    assert result["false_alarms_known_vs_stated"] == "within"
    lo, hi = result["false_alarms_unseen_ci"]
    assert lo < 0.05 < hi and result["false_alarms_unseen"] >= 0.1
    assert result["false_alarms_unseen_vs_stated"] == "not told"
    line = next(x for x in _text(result).splitlines()
                if x.startswith("against the stated rate: "))
    assert line == ("against the stated rate: known boards consistent with it; unseen boards not "
                    f"told from it, as its 95 % interval ({lo:.1%}-{hi:.1%}) is wide — measure "
                    "on more boards")


def test_the_auc_line_gives_its_interval_over_boards_and_what_it_rests_on():
    """The interval over clips alone was narrower than a new set of boards spreads: a board's
    takes score alike. Under 5 boards of a label the interval over boards held the true AUC
    too seldom (68 % with 2 defective boards, simulated), so there is none."""
    rng = np.random.default_rng(0)
    takes = [take(b, k) for b in range(1, 6) for k in range(10)]
    takes += [take(b, k, "defect") for b in range(21, 26) for k in range(10)]
    scores = np.r_[rng.normal(0.3, 0.1, 50), rng.normal(0.6, 0.1, 50)]
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=[1], stated_far=0.05,
                             n_boot=100)
    assert result["ci_boards"] == {"normal": 5, "defect": 5}
    lo, hi = result["auc_boards_ci_low"], result["auc_boards_ci_high"]
    assert lo <= result["auc"] <= hi
    line = next(x for x in _text(result).splitlines() if x.startswith("AUC "))
    assert (f"AUC {result['auc']:.3f} [{result['auc_ci_low']:.3f}, "
            f"{result['auc_ci_high']:.3f}] over clips, [{lo:.3f}, {hi:.3f}] over boards   "
            "pAUC(FPR<=0.1) ") in line
    assert line.endswith("over boards (boards: 5 healthy, 5 defective)")
    # 3 healthy and 2 defective boards (the demo's 2): none over boards, and the line says why
    few = evaluate_scores(takes[:30] + takes[50:70], np.r_[scores[:30], scores[50:70]],
                          threshold=0.5, known_boards=[1], stated_far=0.05, n_boot=50)
    assert few["auc_boards_ci_low"] is None or np.isnan(few["auc_boards_ci_low"])
    line = next(x for x in _text(few).splitlines() if x.startswith("AUC "))
    assert "over clips, none over boards   pAUC" in line
    assert line.endswith("none over boards (boards: 3 healthy, 2 defective; 5 of each needed)")


def test_no_board_verdicts_say_why():
    """Two test takes per board side give no 3-tap verdict: evaluate printed "healthy flagged -
    of 0, defective found - of 0" for each rule, and no reason (QA)."""
    takes = [take(b, k) for b in (1, 11) for k in range(2)] + [take(7, k, "defect")
                                                             for k in range(2)]
    scores = np.array([0.1, 0.2, 0.1, 0.3, 0.9, 0.8])
    result = evaluate_scores(takes, scores, threshold=0.5, known_boards=[1], stated_far=0.05,
                             n_boot=50)
    assert result["board_verdicts"]["healthy"] == result["board_verdicts"]["defective"] == 0
    text = format_evaluation({**result, "calibration": {
        "threshold": 0.5, "threshold_ci": [0.4, 0.6], "far": 0.05, "holds_for": "boards",
        "clips": 32, "method": "hold-out", "board_taps": 3, "board_rule": "vote"}})
    assert text.splitlines()[-1] == (
        "board verdicts of 3 taps: none — no board side holds 3 test takes of one label (a "
        "verdict combines 3 taps of one side); import or record 3 or more test takes per board "
        "side to measure them")
    assert "- of 0" not in text
