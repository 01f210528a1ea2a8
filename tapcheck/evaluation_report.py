"""What ``tapcheck evaluate`` prints: :func:`tapcheck.evaluation.evaluate_model`'s result as
text for a QA engineer — per board, the false-alarm rates against the rate the model states
(with a plain line when they are far above it, or too few boards to say), recall per defect
board and severity, AUC and pAUC with their intervals, and the board verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .console import percent
from .features import RISE_MARGIN_DB
from .falsealarms import FAR_ABOVE, MIN_BOARDS
from .paths import model_command


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _stated(rate: float) -> str:
    """A stated rate as the measured ones beside it (5.0%), or all its digits (0.01%, not 0.0%)."""
    return f"{rate:.1%}" if abs(rate * 1000 - round(rate * 1000)) < 1e-9 else percent(rate)


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" (95 %: {ci[0]:.1%}-{ci[1]:.1%})"


def _interval(result: dict[str, Any], name: str) -> str:
    """" taps on 3 boards (95 %: 4.2%-12.9%)" for a rate with an interval (older results:
    " taps")."""
    ci = result.get(f"false_alarms_{name}_ci")
    if not ci:
        return " taps"
    boards = result.get(f"boards_{name}", 0)
    return f" taps on {boards} board{'s' if boards != 1 else ''}{_ci(ci)}"


_VS_STATED = {
    "within": "consistent with it",
    "above": ("flagged more often (the 95 % interval lies above it) — enrol healthy taps of "
              "such boards (`{enroll}`) or train on more boards"),
    "below": ("flagged less often (the 95 % interval lies below it): the threshold is stricter "
              "there than stated, and finds fewer defects than it could")}
#: "above" for a cross-fit threshold, which an enrolment keeps: enrolled, a board's own taps
#: score lower, but its batch-mates' hardly (new-boards.md, "What one board does for its batch")
_ABOVE_CROSS_FIT = ("flagged more often (the 95 % interval lies above it) — train on more "
                    "boards; `{enroll}` of such a board's healthy taps clears that board's "
                    "alarms, not the rate (an enrolment keeps a cross-fit threshold)")


def _far(result: dict[str, Any], name: str) -> bool:
    """Whether the ``name`` boards' rate is :data:`~tapcheck.falsealarms.FAR_ABOVE` times the
    stated one or more."""
    rate, stated = result.get(f"false_alarms_{name}"), result.get("stated_far")
    return bool(stated and rate is not None and rate >= FAR_ABOVE * stated)


def _vs_stated(result: dict[str, Any], name: str, side: str, enroll: str) -> str:
    """How one rate stands against the stated one. A rate far above it whose wide interval
    still holds it (``not told``) is not "consistent with it": that read beside "flag 39.3 % of
    healthy taps, 7.9 times the stated 5.0 %" (QA)."""
    if side == "not told":
        ci = result[f"false_alarms_{name}_ci"]
        return (f"not told from it, as its 95 % interval ({ci[0]:.1%}-{ci[1]:.1%}) is wide — "
                "measure on more boards")
    if side == "above" and (result.get("calibration") or {}).get("method") == "cross-fit":
        return _ABOVE_CROSS_FIT.format(enroll=enroll)
    return _VS_STATED[side].format(enroll=enroll)


def _far_above(result: dict[str, Any]) -> list[str]:
    """A plain line for a rate :data:`~tapcheck.falsealarms.FAR_ABOVE` times the stated one or
    more: on a few boards no interval contradicts the statement, and 46 % against 5 % must not
    read as consistent with it."""
    stated = result.get("stated_far")
    lines = []
    for name in ("known", "unseen"):
        rate = result.get(f"false_alarms_{name}")
        if _far(result, name):
            lines.append(f"{name} boards flag {rate:.1%} of healthy taps, {rate / stated:.1f} "
                         f"times the stated {_stated(stated)}")
    return lines


def _separation(result: dict[str, Any]) -> str:
    """The AUC/pAUC line; without defective or without normal test takes there is none."""
    if result.get("auc") is None or np.isnan(result["auc"]):
        labels = [row["label"] for row in result["boards"]]
        missing = "normal" if "normal" not in labels else "defective"
        return f"AUC: no {missing} test takes, so none can be computed"
    line = (f"AUC {result['auc']:.3f} {_intervals(result, 'auc')}   pAUC(FPR<=0.1) "
            f"{result['pauc']:.3f} {_intervals(result, 'pauc')}")
    n = result.get("ci_boards")
    if n is None:  # a result written before intervals over boards
        return line
    rests = f"{n['normal']} healthy, {n['defect']} defective"
    if result.get("auc_boards_ci_low") is None or np.isnan(result["auc_boards_ci_low"]):
        return f"{line} (boards: {rests}; {MIN_BOARDS} of each needed)"
    return f"{line} (boards: {rests})"


def _intervals(result: dict[str, Any], name: str) -> str:
    """A figure's 95 % intervals over clips and over boards: a board's takes score alike, so a
    new set of boards spreads wider than the clips do."""
    clips = f"[{result[f'{name}_ci_low']:.3f}, {result[f'{name}_ci_high']:.3f}] over clips"
    lo, hi = result.get(f"{name}_boards_ci_low"), result.get(f"{name}_boards_ci_high")
    if "ci_boards" not in result:
        return clips
    if lo is None or np.isnan(lo):
        return f"{clips}, none over boards"
    return f"{clips}, [{lo:.3f}, {hi:.3f}] over boards"


def _no_known_taps(result: dict[str, Any]) -> str:
    """Why there is no known-board rate: no board of the dataset is known, or no healthy test
    take of a known board is left once the model's own takes are left out (a copy whose test
    split holds training takes). "- of 0 taps" alone read as a rate that holds."""
    defect = result.get("known_defect_boards") or []
    # a defective board the model was trained on (the demo's 5, 6) has no healthy taps: listed
    # among "the boards the model knows" it read as a healthy board whose taps were missing
    boards = [b for b in result.get("known_boards") or [] if b not in defect]
    also = (f" (it also knows defective board{'s' if len(defect) > 1 else ''} "
            f"{', '.join(map(str, defect))}, which ha{'ve' if len(defect) > 1 else 's'} no "
            "healthy taps)") if defect else ""
    if not boards and not defect:
        return ("known boards: none in this dataset (the model holds recordings of none of its "
                "boards), so the rate the model states cannot be checked here")
    if not boards:
        return (f"known boards: none healthy in this dataset (the model knows only defective "
                f"board{'s' if len(defect) > 1 else ''} {', '.join(map(str, defect))}), so the "
                "rate the model states cannot be checked here")
    left = sum(result.get(key) or 0 for key in ("training_left_out", "enrolled_left_out",
                                               "copies_left_out"))
    given = (f"apart from the {left} test takes the model was trained, calibrated or enrolled "
             "on (left out: their scores are in-sample), ") if left else ""
    return (f"known boards: no taps to measure — {given}the test split holds no healthy take of "
            f"the healthy boards the model knows ({', '.join(map(str, boards))}){also}; to "
            "check the stated rate, record or import new takes of those boards with --split "
            "test")


def format_evaluation(result: dict[str, Any]) -> str:
    """The text ``tapcheck evaluate`` prints: a row per board (per board and label for a board
    with takes of both), then the rates and AUCs."""
    from .calibration import describe
    from .console import table

    # a board with a healthy and a cracked end has a row per label: its sides tell them apart
    rows = [{**r, "board": f"{r['board']} ({', '.join(r['sides'])})"} if r.get("both labels")
            else r for r in result["boards"]]
    lines = [table(rows, ["board", "label", "board is", "group", "clips", "mean score",
                          "flagged"]), ""]
    scorer = f"{result['scorer']} scorer, " if result.get("scorer") else ""
    lines.append(f"model states: {scorer}{describe(result['calibration'])}")
    if result["calibration"].get("warning"):  # train and enroll say it; the report checking
        # that rate said nothing of it (QA)
        lines.append(f"  and warns: {result['calibration']['warning']}")
    # no healthy taps: no rate at all ("known boards - of 0 taps" read like one); the line
    # below the rates says why
    rates = [f"{name} boards {_pct(result[f'false_alarms_{name}'])} of "
             f"{result[f'normal_{name}']}{_interval(result, name)}" if result[f"normal_{name}"]
             else f"{name} boards: no healthy taps" for name in ("known", "unseen")]
    left_out = [f"{result[key]} test take{'s' if result[key] != 1 else ''} {what}, left out"
                for key, what in (("enrolled_left_out", "enrolled into the model"),
                                  ("training_left_out", "the model was trained or calibrated on"),
                                  ("copies_left_out",
                                   "copying the model's own taps (resampled or requantised)"))
                if result.get(key)]
    stated = _stated(result["stated_far"])
    lines.append(f"false alarms per tap: {', '.join(rates)} (stated {stated})"
                 + "".join(f"; {x}" for x in left_out))
    if result.get("trained_on"):
        lines.append(f"the model was trained on {result['trained_on']}, not on this dataset: "
                     "its boards are boards the model never heard, whatever their numbers, so "
                     "they count as unseen unless enrolled")
    if not result["normal_known"] and (result.get("known_boards") or not result.get("trained_on")):
        lines.append(_no_known_taps(result))
    off = {name: result.get(f"false_alarms_{name}_vs_stated") for name in ("known", "unseen")}
    if set(off.values()) - {None, "within"}:
        enroll = model_command(result.get("model"), "enroll", "CLIPS")
        parts = [f"{name} boards {_vs_stated(result, name, side, enroll)}"
                 for name, side in off.items() if side in _VS_STATED or side == "not told"]
        few = [f"{name} boards ({result.get(f'boards_{name}')})" for name, side in off.items()
               if side == "too few boards"]
        if few:
            parts.append(f"{' and '.join(few)} too few to tell: an interval over fewer than "
                         f"{MIN_BOARDS} boards shows which boards were drawn more than how "
                         "boards fare — measure on more boards")
        lines.append("against the stated rate: " + "; ".join(parts))
    lines.extend(_far_above(result))
    short = result.get("short_of_training_rise")
    if short:  # the rates above measure a louder room (or softer taps) as much as the model
        lines.append(f"{len(short)} of {len(result['scores'])} test takes stand more than "
                     f"{RISE_MARGIN_DB:g} dB less above the room's noise than the model's "
                     # the dataset's path too: the take's own, pasted into judge, was not
                     # found from the folder evaluate ran in (QA)
                     f"training takes (e.g. {Path(result['dataset']) / short[0]}): healthy "
                     "ones are flagged more often "
                     "there, so the rates above are partly the room's — see `tapcheck judge` "
                     "on them")
    recall = ", ".join(f"board {b} {r:.0%}" for b, r in result["recall_per_board"].items())
    lines.append(f"recall per defect board: {recall or '-'}")
    lines.append(_separation(result))
    b = result["board_verdicts"]
    if not b["healthy"] and not b["defective"]:  # "healthy flagged - of 0" twice, no why (QA)
        lines.append(f"board verdicts of {b['taps']} taps: none — no board side holds "
                     f"{b['taps']} test takes of one label (a verdict combines {b['taps']} taps "
                     f"of one side); import or record {b['taps']} or more test takes per board "
                     "side to measure them")
        return "\n".join(lines)
    for rule, what in (("vote", "majority of taps over the tap threshold"),
                       ("median", "median over the medians' own threshold")):
        mine = "; the model's rule" if b.get("rule") == rule else ""
        lines.append(f"board verdicts of {b['taps']} taps ({what}{mine}): healthy flagged "
                     f"{_pct(b[rule + '_healthy_flagged'])} of {b['healthy']}"
                     f"{_ci(b.get(rule + '_healthy_ci'))}, defective found "
                     f"{_pct(b[rule + '_defective_found'])} of {b['defective']}"
                     f"{_ci(b.get(rule + '_defective_ci'))}")
    return "\n".join(lines)
