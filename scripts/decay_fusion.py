"""Regenerate docs/results/decay-fusion-<name>.{md,json}: the knn-decay scorer against the plain
kNN one, on the same networks.

Usage (from the checkout, datasets and model files as docs/new-boards.md trains them):

    PYTHONPATH=$PWD python3 scripts/decay_fusion.py --dataset demo --name demo-r18 \
        models/r18-s0.pt ... models/r18-s4.pt

Each model file's network is kept; only the scorer is refitted, as ``tapcheck train`` fits it
(:func:`tapcheck.training._fit_detector`): the reference is the normal training takes the model
file did not hold out, the threshold is fitted on the held-out takes' scores (hold-out
calibration, what the demo's 4 boards and ``configs/wide-stretch.toml`` use). Both scorers
are refitted the same way, whichever one the model file was trained with, so the two rows
differ only in the scorer. Their threshold fit is gamma (:data:`MEASURED_FIT`: the default when
they were measured); a third, ``knn-decay-lognormal``, is ``knn-decay`` with the
log-normal threshold fit (``train.threshold_fit``), the recipe of ``configs/new-boards.toml``. The
figures are :func:`tapcheck.evaluation.evaluate_scores`'s,
as ``tapcheck evaluate`` prints them, on the dataset's test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from new_boards import MEASURED_FIT, embeddings, enrol_experiment, figures  # noqa: E402

from tapcheck.calibration import median_fit  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.decay import crop_decay  # noqa: E402
from tapcheck.detectors import SCORERS  # noqa: E402
from tapcheck.known_boards import known_boards_of  # noqa: E402
from tapcheck.featurecache import FeatureCache  # noqa: E402
from tapcheck.judge import Judge  # noqa: E402

SCORER_ROWS = ("knn", "knn-decay")


def with_fit(scorer: str | type, fit: str) -> type:
    """The detector class of ``scorer`` (a name in SCORERS, or a class) with its threshold fit
    fixed to ``fit``."""
    base = SCORERS[scorer] if isinstance(scorer, str) else scorer

    def __init__(self, **options):
        base.__init__(self, **{**options, "threshold_fit": fit})

    return type(f"{base.__name__}_{fit}", (base,), {"__init__": __init__})


#: ``knn-decay`` with the log-normal threshold fit, as ``configs/new-boards.toml`` trains it
LognormalDecayKNN = with_fit("knn-decay", "lognormal")

#: the table's rows: the two scorers (gamma fit), and the recipe's (knn-decay, log-normal fit)
FUSION_ROWS = {**{name: with_fit(name, MEASURED_FIT) for name in SCORER_ROWS},
               "knn-decay-lognormal": LognormalDecayKNN}


def decays(ds: Dataset, takes, cache: FeatureCache) -> np.ndarray:
    """Each take's :func:`crop_decay`, mean over its crops, shape (n,)."""
    return np.array([crop_decay(cache.get(ds.root / t.path)).mean() for t in takes])


def refitted(model: Path, ds: Dataset, scorers: dict[str, type]) -> tuple[dict, list, dict]:
    """Each scorer refitted on one model file's network as ``train`` fits it (hold-out).

    Returns the checkpoint, the dataset's test takes and, per scorer name, the fitted detector
    with the test takes' rows (embeddings, and the decay where the scorer reads it).
    """
    checkpoint = Judge(model).model.checkpoint
    config = checkpoint["config"]["train"]
    cache = FeatureCache()  # the study's feature settings: every dataset here uses them
    emb = embeddings(model, ds)
    train = [t for t in ds.select(split="train") if t.label == "normal"]
    test = ds.select(split="test")
    decay = {"train": decays(ds, train, cache), "test": decays(ds, test, cache)}
    held = set(checkpoint["dataset"]["calibration_takes"])
    calib = np.array([t.path in held for t in train])
    boards = np.array([t.board for t in train])
    fitted = {}
    for scorer, detector in scorers.items():
        def rows(part: str, *, with_decay: bool = detector.reads_decay) -> np.ndarray:
            if not with_decay:
                return emb[part]
            return np.hstack([emb[part], decay[part][:, None]]).astype(np.float32)

        X = rows("train")
        det = detector(k=config["knn_k"], far=config["far"]).fit(
            X[~calib], X_calib=X[calib], groups=boards[~calib], calib_groups=boards[calib])
        fitted[scorer] = (det, rows("test"))
    return checkpoint, test, fitted


def measure(model: Path, ds: Dataset, *, scorers: dict[str, type] | None = None) -> dict:
    """Figures per scorer (name -> detector class; default :data:`FUSION_ROWS`) for one model
    file's network."""
    scorers = scorers or FUSION_ROWS
    checkpoint, test, fitted = refitted(model, ds, scorers)
    known = known_boards_of(checkpoint)
    out = {"model": model.name, "seed": checkpoint["config"]["train"]["seed"]}
    for scorer, (det, rows) in fitted.items():
        out[scorer] = figures(test, det.anomaly_score(rows), threshold=det.threshold_,
                              board_threshold=median_fit(det.calibration_), known=known)
        out[scorer]["enrol"] = enrol_experiment(det, rows, test, known=known)
    return out


def markdown(results: list[dict], *, command: str, dataset: str) -> str:
    def cell(scorer: str, key: str, *, pct: bool) -> str:
        v = np.array([r[scorer][key] for r in results], dtype=float)
        k = 100 if pct else 1
        sd = f" ± {k * v.std(ddof=1):.{1 if pct else 3}f}" if len(v) > 1 else ""
        return f"{k * v.mean():.{1 if pct else 3}f}{' %' if pct else ''}{sd}"

    seeds = ", ".join(str(r["seed"]) for r in results)
    enrol_rows: list[str] = []
    lines = [
        f"# The knn-decay scorer against kNN alone: {dataset}",
        "",
        f"Regenerate: `{command}`",
        "",
        f"{len(results)} model file(s), training seeds {seeds}; each row refits only the "
        "scorer on the same networks (hold-out calibration: the held-out takes of the training "
        "boards set the threshold), stated false-alarm rate 5 % per tap.",
        "",
        "| scorer | AUC mean ± sd | AUC per seed | unseen healthy taps flagged | known boards' "
        "test taps flagged | defective taps found | 3 taps, vote: healthy boards flagged / "
        "defective found | 3 taps, median: healthy boards flagged / defective found |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scorer in [name for name in FUSION_ROWS if name in results[0]]:
        per_seed = ", ".join(f"{r[scorer]['auc']:.3f}" for r in results)
        enrolled = [e for r in results for e in r[scorer]["enrol"]]
        enrol_rows.append(
            f"| {scorer} | {sum(e['far_after'] <= 0.05 for e in enrolled)} of {len(enrolled)} "
            f"| {100 * np.mean([e['far_before'] for e in enrolled]):.1f} % → "
            f"{100 * np.mean([e['far_after'] for e in enrolled]):.1f} % "
            f"| {100 * max(e['far_after'] for e in enrolled):.1f} % "
            f"| {min(e['auc_after'] - e['auc_before'] for e in enrolled):+.3f} to "
            f"{max(e['auc_after'] - e['auc_before'] for e in enrolled):+.3f} |")
        lines.append(
            f"| {scorer} | {cell(scorer, 'auc', pct=False)} | {per_seed} "
            f"| {cell(scorer, 'far_unseen', pct=True)} | {cell(scorer, 'far_known', pct=True)} "
            f"| {cell(scorer, 'recall', pct=True)} "
            + "".join(f"| {cell(scorer, f'board_{rule}_healthy', pct=True)} / "
                      f"{cell(scorer, f'board_{rule}_defect', pct=True)} "
                      for rule in ("vote", "median")) + "|")
    lines += ["", "Enrolment (`tapcheck enroll`'s recalibration, `add_references`) of the first 5 "
              "taps of each side of each unseen healthy board, one board at a time, in each "
              "model file; that board's other taps flagged, and the AUC of every test tap not "
              "enrolled:", "",
              "| scorer | (board, seed) pairs with ≤ 5 % of the other taps flagged after | "
              "flagged before → after, mean | worst after | AUC change |",
              "| --- | --- | --- | --- | --- |", *enrol_rows]
    return "\n".join(lines) + "\n"


def model_files_main(doc: str, *, script: str, prefix: str, measure, markdown,
                     dataset: str = "demo") -> None:
    """The command line of a script that measures model files on a dataset: ``MODEL... --dataset
    D --name NAME``; writes docs/results/PREFIX-NAME.{json,md} and prints the markdown."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--dataset", default=dataset)
    p.add_argument("--name", required=True, help=f"writes docs/results/{prefix}-NAME.*")
    a = p.parse_args()
    ds = Dataset.open(a.dataset)
    results = [measure(m, ds) for m in a.models]
    command = (f"PYTHONPATH=$PWD python3 scripts/{script} --dataset {a.dataset} "
               f"--name {a.name} " + " ".join(map(str, a.models)))
    out = Path(__file__).resolve().parent.parent / "docs" / "results" / f"{prefix}-{a.name}"
    text = markdown(results, command=command, dataset=a.dataset)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "models": results},
                                                   indent=1))
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    model_files_main(__doc__, script="decay_fusion.py", prefix="decay-fusion", measure=measure,
                     markdown=markdown)
