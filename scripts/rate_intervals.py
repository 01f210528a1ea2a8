"""Regenerate docs/results/rate-intervals-<name>.{md,json}: each model file's observed false-alarm
rates per tap, on unseen and on known healthy boards, with ``tapcheck evaluate``'s 95 % interval
over boards — does a file whose rate is off the stated 5 % contradict it, or is it what a few
boards show?

Usage (from the checkout, datasets and model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/rate_intervals.py --dataset plant --name plant-lite-st20 \
        models/plant-lite-st20-s0.pt models/plant-lite-st20-s1.pt models/plant-lite-st20-s2.pt

Each network is refitted with the new-boards recipe's scorer (``knn-decay``, log-normal fit,
hold-out; :data:`decay_fusion.LognormalDecayKNN`), as ``scripts/decay_fusion.py`` refits it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decay_fusion import LognormalDecayKNN, model_files_main, refitted  # noqa: E402

from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.known_boards import known_boards_of  # noqa: E402
from tapcheck.falsealarms import against_stated, false_alarm_rates  # noqa: E402

KINDS = ("unseen", "known")


def measure(model: Path, ds: Dataset) -> dict:
    checkpoint, test, fitted = refitted(model, ds, {"recipe": LognormalDecayKNN})
    det, rows = fitted["recipe"]
    r = false_alarm_rates(test, det.anomaly_score(rows), threshold=det.threshold_,
                          known_boards=known_boards_of(checkpoint), n_boot=1000,
                          stated_far=det.far)
    out = {"model": model.name, "seed": checkpoint["config"]["train"]["seed"],
           "stated": det.far, "calibration_clips": int(len(det.calibration_scores_)),
           "threshold_ci": det.calibration_["threshold_ci"]}
    for kind in KINDS:
        ci = r[f"false_alarms_{kind}_ci"]
        out[kind] = {"rate": r[f"false_alarms_{kind}"], "ci": ci, "boards": r[f"boards_{kind}"],
                     # the interval's side alone: `evaluate` gives no verdict under 5 boards
                     # (falsealarms.MIN_BOARDS), which the demo's 3-4 boards are; the table
                     # asks where each file's interval lies, however few its boards
                     "taps": r[f"normal_{kind}"], "side": against_stated(ci, det.far)}
    return out


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    lines = [f"# Observed false-alarm rates and their intervals: {dataset}", "",
             f"Regenerate: `{command}`", "",
             "The new-boards recipe's scorer refitted on each network (knn-decay, log-normal fit, "
             f"hold-out), stated {results[0]['stated']:.0%} per tap; the 95 % interval resamples "
             "whole boards (`tapcheck evaluate`'s).", "",
             "| model file | calibration clips | unseen healthy taps flagged (95 %) | vs stated | "
             "known boards' test taps (95 %) | vs stated |", "|" + " --- |" * 6]
    for r in results:
        cells = " | ".join(f"{100 * r[k]['rate']:.1f} % ({100 * r[k]['ci'][0]:.1f}-"
                           f"{100 * r[k]['ci'][1]:.1f}) | {r[k]['side']}" for k in KINDS)
        lines.append(f"| {r['model']} | {r['calibration_clips']} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    model_files_main(__doc__, script="rate_intervals.py", prefix="rate-intervals",
                     measure=measure, markdown=markdown)
