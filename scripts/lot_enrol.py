"""Regenerate docs/results/lot-enrol-<name>.{md,json}: a new wood batch fixed by enrolling one
(or two) of its boards — what it does to the batch's *other* boards and to a crack in that wood.

The plant preset's third wood (boards 29-32, healthy; board 62, cracked) is in no training
split: a new delivery. For each of its healthy boards in turn, the first 5 taps of each side are
enrolled (``tapcheck enroll``'s own recalibration,
:func:`tapcheck.recalibration.add_references`) and the test split is judged again: the other
new-wood boards' taps flagged (per tap, and as 3-tap board verdicts), the new-wood crack's taps
found, every defective tap found, and the AUC of every test tap not enrolled. "two boards"
enrols the next board of the batch too; "threshold kept" adds the references but keeps the
thresholds as they were, to tell the two effects apart.

Usage (from the checkout, model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/lot_enrol.py --dataset plant --name plant-lite-st20 \
        models/plant-lite-st20-s0.pt models/plant-lite-st20-s1.pt models/plant-lite-st20-s2.pt

Each model file's network is kept and its scorer refitted as ``train`` fits it (hold-out), for
``knn`` (what the files hold) and ``knn-decay`` (``configs/new-boards.toml``), with the gamma
threshold fit, as ``scripts/decay_fusion.py`` does.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decay_fusion import FUSION_ROWS, SCORER_ROWS, model_files_main, refitted  # noqa: E402

from tapcheck.calibration import median_fit  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.recalibration import add_references  # noqa: E402
from tapcheck.board_figures import board_verdicts  # noqa: E402
from tapcheck.metrics import auc  # noqa: E402

NEW_WOOD = "new-wood"  # the plant preset's group of the wood no training split holds
ENROL_TAPS = 5  # per side, as issue 12's enrolment target


def judged(det, X: np.ndarray, takes, rest: np.ndarray, *, batch: np.ndarray,
           crack: np.ndarray) -> dict:
    """Figures of the test takes ``rest`` (indices) under detector ``det``."""
    scores = det.anomaly_score(X[rest])
    sub = [takes[i] for i in rest]
    flagged = scores > det.threshold_
    defect = np.array([t.label == "defect" for t in sub])
    on_batch, on_crack = np.isin(rest, batch), np.isin(rest, crack)
    boards = board_verdicts([t for t, b in zip(sub, on_batch, strict=True) if b],
                            scores[on_batch], taps=3, threshold=det.threshold_,
                            board_threshold=median_fit(det.calibration_))
    return {"batch_flagged": float(flagged[on_batch].mean()),
            "batch_3tap_flagged": boards["vote_healthy_flagged"],  # judge --per-board's rule
            "batch_3tap_median": boards["median_healthy_flagged"],
            "crack_found": float(flagged[on_crack].mean()),
            "defects_found": float(flagged[defect].mean()),
            "auc": auc(defect, scores), "threshold": det.threshold_,
            "board_threshold": median_fit(det.calibration_)}


def measure(model: Path, ds: Dataset) -> dict:
    checkpoint, test, fitted = refitted(model, ds,
                                        {name: FUSION_ROWS[name] for name in SCORER_ROWS})
    config = checkpoint["config"]["train"]
    wood = sorted({t.board for t in test if t.group == NEW_WOOD})
    crack = np.array([i for i, t in enumerate(test)
                      if t.label == "defect" and t.group == "crack-new-wood"])
    out = {"model": model.name, "seed": config["seed"], "new_wood_boards": wood,
           "k": config["knn_k"]}
    for scorer, (base, Xt) in fitted.items():
        runs, neighbours = [], {}
        for i, first in enumerate(wood):
            for enrolled_boards in ([first], [first, wood[(i + 1) % len(wood)]]):
                enrol = np.array([j for b in enrolled_boards for side in ("left", "right")
                                  for j in [k for k, t in enumerate(test)
                                            if t.board == b and t.side == side][:ENROL_TAPS]])
                batch = np.array([j for j, t in enumerate(test)
                                  if t.board in wood and t.board not in enrolled_boards])
                rest = np.setdiff1d(np.arange(len(test)), enrol)
                det = copy.deepcopy(base)
                started = time.perf_counter()
                for b in enrolled_boards:
                    add_references(det, Xt[[j for j in enrol if test[j].board == b]], group=b)
                seconds = time.perf_counter() - started
                if scorer == "knn":  # are the enrolled taps the batch-mates' neighbours?
                    D = det._distances(det._prepare(Xt[batch]))
                    nearest = D.topk(det.k, dim=1, largest=False).indices.numpy()
                    first_new = len(det.reference_) - len(enrol)
                    neighbours = {"enrolled_among_nearest": float((nearest >= first_new).mean()),
                                  "enrolled_share": len(enrol) / len(det.reference_)}
                kept = copy.deepcopy(det)
                kept.offset_, kept.calibration_ = base.offset_, dict(base.calibration_)
                kw = {"batch": batch, "crack": crack}
                runs.append({"enrolled": enrolled_boards, "recalibrate_s": seconds,
                             "before": judged(base, Xt, test, rest, **kw),
                             "after": judged(det, Xt, test, rest, **kw),
                             "threshold_kept": judged(kept, Xt, test, rest, **kw),
                             **neighbours})
        out[scorer] = runs
    return out


def table(results: list[dict]) -> str:
    """The enrolment table: per scorer, one board, two boards, and one with the threshold kept."""
    keys = ("batch_flagged", "batch_3tap_flagged", "crack_found", "defects_found")
    lines = ["| scorer | boards enrolled | the batch's other boards: taps flagged | their 3-tap "
             "verdicts flagged (vote) | new-wood crack: taps found | all defective taps found | "
             "AUC change | recalibration |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for scorer in SCORER_ROWS:
        for n, after, label in ((1, "after", "1"), (2, "after", "2"),
                                (1, "threshold_kept", "1, threshold kept")):
            runs = [run for r in results for run in r[scorer] if len(run["enrolled"]) == n]
            d_auc = [run[after]["auc"] - run["before"]["auc"] for run in runs]
            cells = [f"{100 * np.mean([run['before'][k] for run in runs]):.1f} % → "
                     f"{100 * np.mean([run[after][k] for run in runs]):.1f} %" for k in keys]
            lines.append(f"| {scorer} | {label} | " + " | ".join(cells)
                         + f" | {min(d_auc):+.3f} to {max(d_auc):+.3f} "
                         f"| ≤ {max(run['recalibrate_s'] for run in runs):.2f} s |")
    one = [run["enrolled_among_nearest"] for r in results for run in r["knn"]
           if len(run["enrolled"]) == 1]
    share = np.mean([run["enrolled_share"] for r in results for run in r["knn"]
                     if len(run["enrolled"]) == 1])
    lines += ["", f"Enrolled taps among the batch's other boards' {results[0]['k']} nearest "
              f"references (one board enrolled): {100 * np.mean(one):.1f} % (range "
              f"{100 * min(one):.0f}-{100 * max(one):.0f} %); they are {100 * share:.1f} % of "
              "the references."]
    return "\n".join(lines) + "\n"


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    seeds = ", ".join(str(r["seed"]) for r in results)
    return "\n".join([
        f"# A new wood batch fixed by enrolment: {dataset}", "",
        f"Regenerate: `{command}`", "",
        f"{len(results)} model file(s), training seeds {seeds}; new-wood boards "
        f"{', '.join(map(str, results[0]['new_wood_boards']))} (healthy, in no training split) "
        f"enrolled {ENROL_TAPS} taps per side, one board (or two) at a time; figures are means "
        "over the enrolments and seeds, before → after, on the test takes not enrolled. Stated "
        "rate: 5 % per tap; a 3-tap board is flagged when 2 of its taps are (the vote; the "
        "median rule's figures are `batch_3tap_median` in the JSON).", "", table(results)])


if __name__ == "__main__":
    model_files_main(__doc__, script="lot_enrol.py", prefix="lot-enrol", measure=measure,
                     markdown=markdown, dataset="plant")
