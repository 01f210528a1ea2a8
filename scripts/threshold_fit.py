"""Regenerate docs/results/threshold-fit-<name>.{md,json}: which family describes the anomaly
scores of normal clips better — gamma or log-normal — on the calibration clips a threshold is
fitted on and on the normal test takes it is judged by.

Usage (from the checkout, datasets and model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/threshold_fit.py --dataset demo --name demo-lite-st20 \
        models/lite-st20-s0.pt ... models/lite-st20-s4.pt

Each model file's network is kept and the ``knn`` and ``knn-decay`` scorers refitted as
``scripts/decay_fusion.py`` refits them (hold-out). Per scorer: the log-likelihood of a log-normal
minus that of a gamma fit (both by maximum likelihood, shifted as
:func:`tapcheck.calibration.robust_threshold` shifts them, location fixed), on the calibration
scores and on the normal test takes' scores; positive favours log-normal. No defect label enters.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decay_fusion import model_files_main, refitted  # noqa: E402

from tapcheck.calibration import _shift  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.detectors import SCORERS  # noqa: E402

SCORERS_MEASURED = ("knn", "knn-decay")


def loglik_difference(scores: np.ndarray) -> float:
    """Log-likelihood of a log-normal minus a gamma fit of ``scores`` (shape (n,))."""
    import scipy.stats

    x = np.asarray(scores, dtype=np.float64)
    x = x - _shift(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, _, scale = scipy.stats.gamma.fit(x, floc=0.0)
        sigma, _, lscale = scipy.stats.lognorm.fit(x, floc=0.0)
    return float(scipy.stats.lognorm.logpdf(x, sigma, scale=lscale).sum()
                 - scipy.stats.gamma.logpdf(x, a, scale=scale).sum())


def measure(model: Path, ds: Dataset) -> dict:
    checkpoint, test, fitted = refitted(model, ds, {s: SCORERS[s] for s in SCORERS_MEASURED})
    normal = np.array([t.label == "normal" for t in test])
    out = {"model": model.name, "seed": checkpoint["config"]["train"]["seed"]}
    for scorer, (det, rows) in fitted.items():
        out[scorer] = {"calibration_clips": int(len(det.calibration_scores_)),
                       "calibration": loglik_difference(det.calibration_scores_),
                       "normal_test_takes": int(normal.sum()),
                       "normal_test": loglik_difference(det.anomaly_score(rows)[normal])}
    return out


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    lines = [f"# Gamma or log-normal: the scores of normal clips, {dataset}", "",
             f"Regenerate: `{command}`", "",
             "Log-likelihood of a log-normal fit minus that of a gamma fit (positive: log-normal "
             "describes the scores better).", "",
             "| model | scorer | calibration clips | on them | normal test takes | on them |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for scorer in SCORERS_MEASURED:
            c = r[scorer]
            lines.append(f"| {r['model']} | {scorer} | {c['calibration_clips']} | "
                         f"{c['calibration']:+.1f} | {c['normal_test_takes']} | "
                         f"{c['normal_test']:+.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    model_files_main(__doc__, script="threshold_fit.py", prefix="threshold-fit", measure=measure,
                     markdown=markdown)
