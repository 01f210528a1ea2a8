"""Regenerate docs/results/board-rules.md: which way of combining a board's taps finds the most
defective boards at the stated rate per healthy board — from saved model files, no retraining.

Usage (from the checkout, with the model files of docs/new-boards.md and their datasets):

    PYTHONPATH=$PWD python3 scripts/board_rules.py --dataset plant models/plant-lite-cf-s0.pt ...

Each rule gets its own board threshold, fitted like the model's median one
(:func:`tapcheck.calibration.robust_threshold` at the board rate on ``taps`` of the model's own
calibration scores drawn 200 times within each training board); no defect label is used. Two
groupings of the test takes: ``side`` (consecutive takes of one board side, as ``tapcheck
evaluate`` reports) and ``both ends`` (one board's takes, left and right alternating — an
inspector who taps each end). Embeddings are those :mod:`new_boards` caches beside each model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from new_boards import MEASURED_FIT, embeddings, with_measured_fit  # noqa: E402

from tapcheck.calibration import robust_threshold, tap_medians  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.judge import Judge  # noqa: E402

RULES = {"median": np.median, "mean": np.mean, "max (any tap)": np.max}


def rule_threshold(scores: np.ndarray, groups: np.ndarray, *, rule, taps: int,
                   far: float) -> float:
    """The board threshold of ``rule`` over ``taps`` normal calibration scores of one board."""
    return robust_threshold(tap_medians(scores, groups, taps=taps, statistic=rule), far=far,
                            fit=MEASURED_FIT)


def chunks(takes, *, taps: int, grouping: str) -> list[list[int]]:
    """Indices of the takes each verdict sees: ``taps`` at a time, per side or both ends."""
    by: dict = {}
    for i, t in enumerate(takes):
        by.setdefault(t.class_name if grouping == "side" else t.board, []).append(i)
    out = []
    for idx in by.values():
        sides: dict = {}
        for i in sorted(idx, key=lambda i: takes[i].take):
            sides.setdefault(takes[i].class_name, []).append(i)
        # alternate the ends; a side with more takes than the other gives its extra ones up
        order = [i for pair in zip(*sides.values(), strict=False) for i in pair]
        out += [order[a:a + taps] for a in range(0, len(order) - taps + 1, taps)]
    return out


def measure(model: Path, ds: Dataset, *, taps: int) -> dict:
    det = with_measured_fit(Judge(model).model.detector)  # its tap threshold, as measured
    scores = det.anomaly_score(embeddings(model, ds)["test"])
    info = det.calibration_
    takes = ds.select(split="test")
    defect = np.array([t.label == "defect" for t in takes])
    out = {}
    for name, rule in RULES.items():
        thr = rule_threshold(det.calibration_scores_, det.calibration_groups_, rule=rule,
                             taps=taps, far=info["board_far"])
        for grouping in ("side", "both ends"):
            groups = chunks(takes, taps=taps, grouping=grouping)
            flagged = np.array([rule(scores[c]) > thr for c in groups])
            bad = np.array([defect[c[0]] for c in groups])
            out[f"{name} | {grouping}"] = {"healthy_flagged": float(flagged[~bad].mean()),
                                           "defective_found": float(flagged[bad].mean()),
                                           "healthy": int((~bad).sum()),
                                           "defective": int(bad.sum())}
    out["tap recall"] = float((scores[defect] > info["threshold"]).mean())
    return out


def markdown(results: dict[str, dict], command: str, *, taps: int, far: float) -> str:
    lines = ["# Board verdicts: which rule", "", f"Regenerate: `{command}`", "",
             f"Verdicts of {taps} taps, each rule with its own board threshold for "
             f"{100 * far:.0f} % per healthy board (fitted on the model's calibration scores, "
             "no defect label). "
             "Cells: healthy boards flagged / defective boards found, over the models "
             f"({', '.join(results)}); mean over them, then each.", "",
             "| rule | grouping | healthy flagged | defective found | per model (found) |",
             "| --- | --- | --- | --- | --- |"]
    for key in next(iter(results.values())):
        if key == "tap recall":
            continue
        rows = [r[key] for r in results.values()]
        h = np.mean([r["healthy_flagged"] for r in rows])
        d = np.mean([r["defective_found"] for r in rows])
        each = ", ".join(f"{100 * r['defective_found']:.0f} %" for r in rows)
        rule, grouping = key.split(" | ")
        lines.append(f"| {rule} | {grouping} | {100 * h:.1f} % | {100 * d:.1f} % | {each} |")
    recall = ", ".join(f"{100 * r['tap recall']:.0f} %" for r in results.values())
    lines += ["", f"Per tap, at the model's threshold, the same models found {recall} of the "
              "defective taps."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--dataset", default="plant")
    parser.add_argument("--taps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/results/board-rules.md"))
    args = parser.parse_args()
    ds = Dataset.open(args.dataset)
    results = {m.name: measure(m, ds, taps=args.taps) for m in args.models}
    far = Judge(args.models[0]).model.detector.calibration_["board_far"]
    command = (f"PYTHONPATH=$PWD python3 scripts/board_rules.py --dataset {args.dataset} "
               + " ".join(str(m) for m in args.models))
    args.out.write_text(markdown(results, command, taps=args.taps, far=far))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
