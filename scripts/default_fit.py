"""Regenerate docs/results/default-fit-<name>.{md,json}: the gamma and the log-normal threshold
fit (``train.threshold_fit``) on model files trained with the defaults.

Usage (from the checkout, datasets and model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/default_fit.py --dataset demo --name demo-r18 \
        models/r18-s0.pt ... models/r18-s4.pt

Nothing is retrained or refitted but the threshold: each model file's own detector (network,
references, calibration clips and their scores, whichever calibration the file was trained
with) sets its threshold again from the same calibration scores with each fit
(:meth:`tapcheck.detectors.ThresholdDetector.recalibrate`), so the two rows differ only in the
fit. The figures are :func:`tapcheck.evaluation.evaluate_scores`'s, as ``tapcheck evaluate``
prints them, on the dataset's test split. Scorers that read the decay are not measured here
(``scripts/decay_fusion.py`` refits those).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decay_fusion import model_files_main  # noqa: E402
from new_boards import embeddings, figures  # noqa: E402

from tapcheck.calibration import THRESHOLD_FITS, median_fit  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.known_boards import known_boards_of  # noqa: E402
from tapcheck.judge import Judge  # noqa: E402


def measure(model: Path, ds: Dataset) -> dict:
    """Figures per threshold fit for one model file, on the dataset's test split."""
    judge = Judge(model)
    own = judge.model.detector
    if getattr(own, "reads_decay", False):
        raise SystemExit(f"{model}: its scorer reads the decay; use scripts/decay_fusion.py")
    checkpoint = judge.model.checkpoint
    scores = own.anomaly_score(embeddings(model, ds)["test"])
    test, known = ds.select(split="test"), known_boards_of(checkpoint)
    out = {"model": model.name, "seed": checkpoint["config"]["train"]["seed"],
           "method": own.calibration_["method"], "clips": own.calibration_["clips"]}
    for fit in THRESHOLD_FITS:
        det = copy.deepcopy(own)
        det.threshold_fit = fit
        det.recalibrate(method=own.calibration_["method"])
        out[fit] = figures(test, scores, threshold=det.threshold_,
                           board_threshold=median_fit(det.calibration_), known=known)
    return out


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    def cell(fit: str, key: str) -> str:
        v = 100 * np.array([r[fit][key] for r in results], dtype=float)
        sd = f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else ""
        return f"{v.mean():.1f} %{sd}"

    def each(fit: str, key: str) -> str:
        return ", ".join(f"{100 * r[fit][key]:.1f}" for r in results)

    seeds = ", ".join(str(r["seed"]) for r in results)
    methods = ", ".join(sorted({f"{r['method']} ({r['clips']} clips)" for r in results}))
    aucs = np.array([r["gamma"]["auc"] for r in results])
    lines = [
        f"# Threshold fit on the default model files: {dataset}",
        "",
        f"Regenerate: `{command}`",
        "",
        f"{len(results)} model file(s) ({', '.join(r['model'] for r in results)}), training "
        f"seeds {seeds}, calibration {methods}; each row sets the threshold again from the "
        "same calibration scores with one fit, stated false-alarm rate 5 % per tap. AUC (the "
        f"fit does not move it): {aucs.mean():.3f}"
        + (f" ± {aucs.std(ddof=1):.3f}" if len(aucs) > 1 else "") + ".",
        "",
        "| fit | unseen healthy taps flagged (per seed) | known boards' test taps flagged (per "
        "seed) | defective taps found | 3 taps, vote: healthy boards flagged / defective "
        "found |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fit in THRESHOLD_FITS:
        lines.append(
            f"| {fit} | {cell(fit, 'far_unseen')} ({each(fit, 'far_unseen')}) "
            f"| {cell(fit, 'far_known')} ({each(fit, 'far_known')}) | {cell(fit, 'recall')} "
            f"| {cell(fit, 'board_vote_healthy')} / {cell(fit, 'board_vote_defect')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    model_files_main(__doc__, script="default_fit.py", prefix="default-fit", measure=measure,
                     markdown=markdown)
