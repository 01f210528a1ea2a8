"""Regenerate docs/results/board-bound-<name>.{md,json}: how many defective boards a 3-tap vote
*could* find at the stated rate per healthy board, against what the calibrated threshold finds —
whether the board target waits on the calibration or on the model's ranking.

Usage (from the checkout, datasets and model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/board_bound.py --dataset plant --name plant-lite-st20 \
        models/plant-lite-st20-s0.pt models/plant-lite-st20-s1.pt models/plant-lite-st20-s2.pt

Each model file's network is refitted with the new-boards recipe's scorer (``knn-decay`` with the
log-normal fit, :data:`decay_fusion.LognormalDecayKNN`, hold-out calibration, as
``scripts/decay_fusion.py`` refits it). Three thresholds for the vote (a board is anomalous when
most of its ``taps`` taps score over the threshold), on the verdicts ``tapcheck evaluate`` makes
(consecutive taps of one board side):

- **calibrated**: the tap threshold (5 % per tap), what ``judge`` uses;
- **board rate**: the tap threshold refitted on the same calibration scores at the per-tap rate
  ``p`` at which a majority of ``taps`` *independent* normal taps is over it with probability
  ``board_far`` (2 %; p = 8.4 % for 3 taps) — a vote that states a rate per board;
- **best possible**: the threshold, chosen on the test split itself with the defect labels, that
  finds the most defective boards while flagging at most ``board_far`` of the healthy ones. No
  calibration flagging as few healthy boards can beat it with this model and this rule: it
  bounds the board target (a threshold that flags more healthy boards may find more).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decay_fusion import LognormalDecayKNN, model_files_main, refitted  # noqa: E402

from tapcheck.calibration import robust_threshold  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.board_figures import board_verdicts  # noqa: E402

TAPS = 3
ROWS = ("calibrated", "board rate", "best possible")


def vote_rate(taps: int, board_far: float) -> float:
    """The per-tap rate at which more than half of ``taps`` independent taps are over a
    threshold with probability ``board_far``."""
    import scipy.optimize
    import scipy.stats

    return float(scipy.optimize.brentq(
        lambda p: scipy.stats.binom.sf(taps // 2, taps, p) - board_far, 1e-9, 0.5))


def vote(takes, scores: np.ndarray, threshold: float) -> dict:
    b = board_verdicts(takes, scores, taps=TAPS, threshold=threshold,
                       board_threshold=threshold, n_boot=0)
    return {"threshold": float(threshold), "healthy_flagged": b["vote_healthy_flagged"],
            "defective_found": b["vote_defective_found"], "healthy": b["healthy"],
            "defective": b["defective"]}


def best_possible(takes, scores: np.ndarray, *, board_far: float) -> dict:
    """The vote at the test-chosen threshold that finds the most defective boards with at most
    ``board_far`` of the healthy ones flagged (the lowest such threshold on ties)."""
    best = vote(takes, scores, float(scores.max()))  # nothing flagged: within any rate
    for t in np.unique(scores)[::-1]:  # falling thresholds: flagged shares only grow
        r = vote(takes, scores, t)
        if r["healthy_flagged"] > board_far:
            break
        if r["defective_found"] >= best["defective_found"]:
            best = r
    return best


def measure(model: Path, ds: Dataset) -> dict:
    checkpoint, test, fitted = refitted(model, ds, {"recipe": LognormalDecayKNN})
    det, rows = fitted["recipe"]
    scores = det.anomaly_score(rows)
    board_far = float(det.calibration_["board_far"])
    p = vote_rate(TAPS, board_far)
    rate_threshold = robust_threshold(det.calibration_scores_, far=p, fit=det.threshold_fit)
    return {"model": model.name, "seed": checkpoint["config"]["train"]["seed"],
            "board_far": board_far, "vote_rate": p,
            "calibrated": vote(test, scores, det.threshold_),
            "board rate": vote(test, scores, rate_threshold),
            "best possible": best_possible(test, scores, board_far=board_far)}


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    def cell(row: str, key: str) -> str:
        v = 100 * np.array([r[row][key] for r in results], dtype=float)
        return f"{v.mean():.1f} %" + (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "")

    first = results[0]
    lines = [f"# Board verdicts of {TAPS} taps: calibrated against best possible, {dataset}", "",
             f"Regenerate: `{command}`", "",
             f"{len(results)} model file(s), training seeds "
             f"{', '.join(str(r['seed']) for r in results)}; the new-boards recipe's scorer "
             "refitted on each network (knn-decay, log-normal fit, hold-out); the vote: a board "
             f"is anomalous when most of its {TAPS} taps are over the threshold; "
             f"{first['calibrated']['healthy']} healthy and {first['calibrated']['defective']} "
             "defective verdicts per model file. *best possible* is chosen on the test split "
             f"with the labels, at ≤ {first['board_far']:.0%} of healthy boards flagged: no "
             "calibration reaches past it.", "",
             "| threshold | healthy boards flagged | defective boards found | per seed: healthy / "
             "found |", "| --- | --- | --- | --- |"]
    for row in ROWS:
        label = (f"{row} (taps at {100 * first['vote_rate']:.1f} %)" if row == "board rate"
                 else row)
        per_seed = ", ".join(f"{100 * r[row]['healthy_flagged']:.1f} / "
                             f"{100 * r[row]['defective_found']:.1f}" for r in results)
        lines.append(f"| {label} | {cell(row, 'healthy_flagged')} | "
                     f"{cell(row, 'defective_found')} | {per_seed} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    model_files_main(__doc__, script="board_bound.py", prefix="board-bound", measure=measure,
                     markdown=markdown)
