"""Regenerate docs/results/leave-side-<name>.{md,json}: the threshold from taps scored without
their own board side, between the hold-out (lenient on unseen boards) and leave-one-board-out
(several times too strict on the demo) calibrations.

Usage (from the checkout, model files trained with the defaults as docs/new-boards.md trains
them, ``tapcheck train --dataset demo --seed S --out models/r18-sS.pt``):

    PYTHONPATH=$PWD python3 scripts/leave_side.py --dataset demo --name demo-r18 \
        models/r18-s0.pt ... models/r18-s4.pt

Nothing is retrained: each file's network embeds the takes once (cached beside it). Three
calibrations of the same network and ``knn`` scorer, each with today's default threshold fit
(``train.threshold_fit``; files trained before it changed are refitted, as
``scripts/default_fit.py`` does): ``hold-out`` is the file's own detector;
``leave-one-side-out`` and ``leave-one-board-out`` take every normal training take as
reference and score each against the references of the other (board, side) classes, or of
the other boards (the detector's leave-one-group-out scoring with side classes or boards as
the groups). The figures are
:func:`tapcheck.evaluation.evaluate_scores`'s on the dataset's test split.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decay_fusion import model_files_main  # noqa: E402
from new_boards import embeddings, figures  # noqa: E402

from tapcheck.calibration import median_fit  # noqa: E402
from tapcheck.config import Config  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.detectors import KNNDetector  # noqa: E402
from tapcheck.known_boards import known_boards_of  # noqa: E402
from tapcheck.judge import Judge  # noqa: E402

CALIBRATIONS = ("hold-out", "leave-one-side-out", "leave-one-board-out")


def measure(model: Path, ds: Dataset) -> dict:
    """Figures per calibration for one model file, on the dataset's test split."""
    judge = Judge(model)
    own = judge.model.detector
    if own.calibration_["method"] != "hold-out" or getattr(own, "reads_decay", False):
        raise SystemExit(f"{model}: needs a hold-out calibrated model with the knn scorer")
    checkpoint = judge.model.checkpoint
    emb = embeddings(model, ds)  # "train": the normal training takes, manifest order
    train = [t for t in ds.select(split="train") if t.label == "normal"]
    test, known = ds.select(split="test"), known_boards_of(checkpoint)
    options = checkpoint["config"]["train"]
    out = {"model": model.name, "seed": options["seed"], "auc": None}
    groups = {"leave-one-side-out": np.array([t.class_name for t in train]),
              "leave-one-board-out": np.array([t.board for t in train])}
    fit = Config().train.threshold_fit
    for name in CALIBRATIONS:
        if name == "hold-out":
            det = copy.deepcopy(own)
            det.threshold_fit = fit
            det.recalibrate(method="hold-out")
        else:
            det = KNNDetector(k=options["knn_k"], far=own.far, threshold_fit=fit).fit(
                emb["train"], groups=groups[name])
        scores = det.anomaly_score(emb["test"])
        out[name] = figures(test, scores, threshold=det.threshold_,
                            board_threshold=median_fit(det.calibration_), known=known)
    out["auc"] = out["hold-out"]["auc"]
    return out


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    def cell(name: str, key: str, each: bool = False) -> str:
        v = 100 * np.array([r[name][key] for r in results], dtype=float)
        sd = f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else ""
        per = f" ({', '.join(f'{x:.1f}' for x in v)})" if each else ""
        return f"{v.mean():.1f} %{sd}{per}"

    seeds = ", ".join(str(r["seed"]) for r in results)
    lines = [
        f"# Leave one board side out: {dataset}",
        "",
        f"Regenerate: `{command}`",
        "",
        f"{len(results)} model file(s) ({', '.join(r['model'] for r in results)}), training "
        f"seeds {seeds}; the same network and `knn` scorer per file, three calibrations, "
        f"threshold fit `{Config().train.threshold_fit}`, stated false-alarm rate 5 % per tap.",
        "",
        "| calibration | threshold, mean | unseen healthy taps flagged (per seed) | known boards' "
        "test taps flagged (per seed) | defective taps found (per seed) | 3 taps, vote: "
        "healthy boards flagged / defective found |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in CALIBRATIONS:
        thr = np.mean([r[name]["threshold"] for r in results])
        lines.append(
            f"| {name} | {thr:.4f} | {cell(name, 'far_unseen', True)} "
            f"| {cell(name, 'far_known', True)} | {cell(name, 'recall', True)} "
            f"| {cell(name, 'board_vote_healthy')} / {cell(name, 'board_vote_defect')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    model_files_main(__doc__, script="leave_side.py", prefix="leave-side", measure=measure,
                     markdown=markdown)
