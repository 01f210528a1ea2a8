"""Regenerate docs/results/new-boards.md: stated vs observed false alarms on known and unseen
boards, before and after leave-one-board-out calibration, board verdicts, enrolment, reference
size — all from saved model files (no retraining).

Usage (from the checkout, after `tapcheck synth --dataset demo` and training seeds with
`tapcheck train --dataset demo --seed S --out models/sS.pt`):

    PYTHONPATH=$PWD python3 scripts/new_boards.py --dataset demo models/s0.pt models/s1.pt ...

Each model's embeddings of the demo's takes are cached beside it (``<model>.emb.npz``), so a
rerun only recomputes the figures. "before" is the threshold the model file was trained with
(older tapcheck: a gamma fit of the 15 % held-out takes of the training boards); "after" is
:mod:`tapcheck.calibration` on the same network: every normal training take scored against the
reference without its board. Every threshold is fitted with the gamma fit
(:data:`MEASURED_FIT`), the model files' own set again with it.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tapcheck.calibration import median_fit
from tapcheck.datasets import Dataset
from tapcheck.detectors import SCORERS, KNNDetector, gamma_threshold
from tapcheck.evaluation import evaluate_scores
from tapcheck.known_boards import known_boards_of
from tapcheck.featurecache import FeatureCache
from tapcheck.judge import Judge
from tapcheck.models.base import represent_clips
from tapcheck.training_data import dataset_crops

#: the threshold fit of every row here: gamma, tapcheck's default when the results files were
#: measured (until 2026-12-03, f7283e0); named, so that they are reproduced now that the
#: detectors' default, and a model file trained today, are log-normal
MEASURED_FIT = "gamma"


def with_measured_fit(detector):
    """A copy of a model file's own detector whose threshold is set again with
    :data:`MEASURED_FIT` from the same calibration scores (unchanged for a gamma file)."""
    det = copy.deepcopy(detector)
    det.threshold_fit = MEASURED_FIT
    det.recalibrate(method=det.calibration_["method"])
    return det


def snapshot(partial: Path, ds: Dataset) -> Path:
    """A model file from a training run's partial checkpoint (the epochs done so far), with the
    current calibration, for measuring while a run still trains: ``<model>.pt.partial`` ->
    ``<model>-eN.pt``."""
    from tapcheck.config import Config
    from tapcheck.modelfile import new_checkpoint, save_checkpoint
    from tapcheck.resume import read_partial
    from tapcheck.models import get_spec
    from tapcheck.training import make_detector

    state = read_partial(partial)
    config = Config.from_dict(state["config"])
    if config.train.members > 1:  # the partial holds the member in training, not the ensemble
        raise SystemExit(f"{partial}: a run of {config.train.members} networks; measure its "
                         "model file when it is done")
    spec = get_spec(config.train.model)
    f = config.features
    model = spec.build(n_classes=len(state["classes"]), train=config.train,
                       input_shape=(f.n_bins, f.n_frames))
    model.load_state_dict(state["state_dict"])
    out = partial.with_name(partial.name.replace(".pt.partial", f"-e{state['epoch']}.pt"))
    takes = {t.path: t for t in ds.takes}
    normal = [takes[p] for p in state["takes"] + state["calibration_takes"]
              if takes[p].label == "normal"]
    cache = FeatureCache(audio=config.audio, features=config.features)
    net = model.for_inference(bf16=config.train.bf16)
    emb = represent_clips(net, dataset_crops(ds, normal, cache=cache), "knn").numpy()
    detector = make_detector(config, None)
    detector.fit(emb, groups=np.array([t.board for t in normal]))
    save_checkpoint(out, new_checkpoint(
        name=spec.name, model_args=model.model_args, config=config.to_dict(),
        classes=state["classes"], class_labels=[
            "defect" if any(takes[p].label == "defect" and takes[p].class_name == c
                            for p in state["takes"]) else "normal" for c in state["classes"]],
        state_dict=model.state_dict(), detector=detector.get_state(), history=state["history"],
        dataset={"name": ds.name, "path": str(ds.root), "takes": state["takes"],
                 "calibration_takes": state["calibration_takes"]},
        created_at="", train_seconds=sum(h["seconds"] for h in state["history"])))
    return out


def embeddings(model: Path, ds: Dataset) -> dict[str, np.ndarray]:
    cached = model.with_name(model.name + ".emb.npz")
    if cached.exists():
        return dict(np.load(cached))
    judge = Judge(model)
    cfg = judge.model.config
    cache = FeatureCache(audio=cfg.audio, features=cfg.features)
    train = [t for t in ds.select(split="train") if t.label == "normal"]
    test = ds.select(split="test")
    out = {name: represent_clips(judge.net, dataset_crops(ds, takes, cache=cache), "knn").numpy()
           for name, takes in (("train", train), ("test", test))}
    np.savez(cached, **out)
    return out


def holdout_detectors(checkpoint: dict, emb: dict, train_takes) -> tuple[KNNDetector, ...]:
    """Reference = the normal training takes not held out, threshold from the 15 % held-out
    takes' scores: as tapcheck set it before this work (raw gamma fit) and now (robust fit,
    interval, board threshold)."""
    held = set(checkpoint["dataset"]["calibration_takes"])
    calib = np.array([t.path in held for t in train_takes])
    boards = np.array([t.board for t in train_takes])
    train = checkpoint["config"]["train"]
    det = KNNDetector(k=train["knn_k"], far=train["far"], threshold_fit=MEASURED_FIT).fit(
        emb["train"][~calib], X_calib=emb["train"][calib], groups=boards[~calib],
        calib_groups=boards[calib])
    raw = copy.deepcopy(det)
    raw.offset_ = -gamma_threshold(det.calibration_scores_, far=det.far)
    return raw, det


def figures(takes, scores, *, threshold, board_threshold, known) -> dict:
    r = evaluate_scores(takes, scores, threshold=threshold, board_threshold=board_threshold,
                        known_boards=known, n_boot=200)
    b = r["board_verdicts"]
    return {"far_known": r["false_alarms_known"], "far_unseen": r["false_alarms_unseen"],
            "recall": float(np.mean(list(r["recall_per_board"].values()))),
            "auc": r["auc"], "threshold": threshold,
            "board_median_healthy": b["median_healthy_flagged"],
            "board_median_defect": b["median_defective_found"],
            "board_vote_healthy": b["vote_healthy_flagged"],
            "board_vote_defect": b["vote_defective_found"],
            "unseen_by_board": {row["board"]: row["flagged"] for row in r["boards"]
                                if row["board is"] == "unseen"},
            # the share of each kind of defect's taps found (the manifest's group: crack length
            # and depth, saw cut), which the docs' "long cracks ... short shallow ones" read
            "recall_by_group": recall_by_group(takes, scores, threshold=threshold)}


def recall_by_group(takes, scores, *, threshold) -> dict[str, float]:
    """Share of the defective takes over ``threshold``, per manifest group (crack length and
    depth, saw cut; "defect" where a set names none)."""
    found: dict[str, list[bool]] = {}
    for t, s in zip(takes, scores, strict=True):
        if t.label == "defect":
            found.setdefault(t.group or "defect", []).append(bool(s > threshold))
    return {group: float(np.mean(v)) for group, v in sorted(found.items())}


def enrol_experiment(det: KNNDetector, test: np.ndarray, takes, *, known, n: int = 5
                     ) -> list[dict]:
    """Enrol the first n taps of each side of each unseen board (tapcheck.enroll's own
    recalibration); that board's false alarms on its other taps, AUC of the rest."""
    from tapcheck.recalibration import add_references
    from tapcheck.metrics import auc

    rows = []
    labels = np.array([t.label == "defect" for t in takes])
    for board in sorted({t.board for t in takes if t.label == "normal" and t.board not in known}):
        idx = [i for i, t in enumerate(takes) if t.board == board]
        per_side = {}
        for i in idx:
            per_side.setdefault(takes[i].side, []).append(i)
        enrol = [i for side in sorted(per_side) for i in per_side[side][:n]]
        rest = [i for i in idx if i not in enrol]
        new = copy.deepcopy(det)
        started = time.perf_counter()
        add_references(new, test[enrol], group=board)
        seconds = time.perf_counter() - started
        before, after = det.anomaly_score(test[rest]), new.anomaly_score(test[rest])
        keep = np.setdiff1d(np.arange(len(takes)), enrol)
        rows.append({"board": board, "enrolled": len(enrol), "other_taps": len(rest),
                     "far_before": float((before > det.threshold_).mean()),
                     "far_after": float((after > new.threshold_).mean()),
                     "auc_before": auc(labels[keep], det.anomaly_score(test[keep])),
                     "auc_after": auc(labels[keep], new.anomaly_score(test[keep])),
                     "recalibrate_s": seconds})
    return rows


def reference_sizes(train, groups, test, takes, *, sizes=(20, 50, 100, 200)) -> list[dict]:
    from tapcheck.metrics import auc

    labels = np.array([t.label == "defect" for t in takes])
    rng = np.random.default_rng(0)
    rows = []
    for size in [s for s in sizes if s < len(train)] + [len(train)]:
        pick = np.sort(rng.choice(len(train), size, replace=False))
        det = KNNDetector(k=5, threshold_fit=MEASURED_FIT).fit(train[pick], groups=groups[pick])
        started = time.perf_counter()
        scores = det.anomaly_score(test)
        ms = (time.perf_counter() - started) / len(test) * 1e3
        rows.append({"references": size, "auc": auc(labels, scores), "score_ms_per_clip": ms,
                     "far_unseen": figures(takes, scores, threshold=det.threshold_,
                                           board_threshold=median_fit(det.calibration_),
                                           known=sorted(set(groups.tolist())))["far_unseen"]})
    return rows


def equal_recall(emb, groups, takes, known, *, recalls=(0.8, 0.9, 0.95)) -> list[dict]:
    """Each scorer's false alarms on unseen boards when its threshold finds a given share of the
    defective test takes (defect labels set the threshold here: analysis, not calibration)."""
    defect = np.array([t.label == "defect" for t in takes])
    unseen = np.array([t.label == "normal" and t.board not in known for t in takes])
    rows = []
    for kind in ("knn", "mahalanobis", "knn-ldn"):
        det = SCORERS[kind](far=0.05, threshold_fit=MEASURED_FIT).fit(emb["train"],
                                                                       groups=groups)
        s = det.anomaly_score(emb["test"])
        for r in recalls:
            t = np.quantile(s[defect], 1 - r)
            rows.append({"scorer": kind, "recall": r, "far_unseen": float((s[unseen] > t).mean()),
                         "far_unseen_at_calibrated": float((s[unseen] > det.threshold_).mean())})
    return rows


def scores_for_ensemble(judge: Judge, emb: dict) -> list[float]:
    """The model's test scores z-normalised by its own calibration scores (no test labels), so
    that several seeds' scores can be averaged."""
    det = judge.model.detector
    ref = det.calibration_scores_
    return ((det.anomaly_score(emb["test"]) - ref.mean()) / max(ref.std(), 1e-12)).tolist()


def ensembles(results: dict, takes, *, size: int) -> list[float]:
    """AUC of the averaged z-scores of every ``size`` of the models (seeds)."""
    from itertools import combinations

    from tapcheck.metrics import auc

    labels = np.array([t.label == "defect" for t in takes])
    z = {name: np.array(r["test_scores"]) for name, r in results.items()}
    return [auc(labels, np.mean([z[n] for n in group], axis=0))
            for group in combinations(sorted(z), size)]


def timed_enroll_cli(model: Path, clips: list[Path]) -> float:
    """Wall time of the library enrolment (embed 5 files, recalibrate, rewrite) on a copy."""
    from tapcheck.enroll import enroll

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copyfile(model, Path(tmp) / model.name))
        started = time.perf_counter()
        enroll(copy, clips, force=True)
        return time.perf_counter() - started


def run(models: list[Path], ds: Dataset) -> dict:
    test_takes = ds.select(split="test")
    train_takes = [t for t in ds.select(split="train") if t.label == "normal"]
    groups = np.array([t.board for t in train_takes])
    out = {}
    for model in models:
        judge = Judge(model)
        emb = embeddings(model, ds)
        known = known_boards_of(judge.model.checkpoint)
        old, holdout = holdout_detectors(judge.model.checkpoint, emb, train_takes)
        rows = {"before (hold-out, gamma)": figures(
            test_takes, old.anomaly_score(emb["test"]), threshold=old.threshold_,
            board_threshold=old.threshold_, known=known),
            "hold-out, robust (auto below 8 boards)": figures(
            test_takes, holdout.anomaly_score(emb["test"]), threshold=holdout.threshold_,
            board_threshold=median_fit(holdout.calibration_), known=known)}
        own_detector = with_measured_fit(judge.model.detector)
        own = own_detector.calibration_
        if own["method"] == "cross-fit":  # the model's own threshold, on the same references
            rows["cross-fit (the model file's; auto from 8 boards)"] = figures(
                test_takes, own_detector.anomaly_score(emb["test"]),
                threshold=own["threshold"], board_threshold=median_fit(own), known=known)
        new = KNNDetector(k=old.k, far=old.far, threshold_fit=MEASURED_FIT).fit(
            emb["train"], groups=groups)
        scores = new.anomaly_score(emb["test"])
        raw = gamma_threshold(new.calibration_scores_, far=new.far)
        rows["leave-one-board-out, raw gamma"] = figures(
            test_takes, scores, threshold=raw, board_threshold=raw, known=known)
        rows["leave-one-board-out, robust"] = figures(
            test_takes, scores, threshold=new.threshold_,
            board_threshold=median_fit(new.calibration_), known=known)
        held = set(judge.model.checkpoint["dataset"]["calibration_takes"])
        calib = np.array([t.path in held for t in train_takes])
        for kind in ("mahalanobis", "knn-ldn"):
            det = SCORERS[kind](far=old.far, threshold_fit=MEASURED_FIT).fit(
                emb["train"][~calib], X_calib=emb["train"][calib], groups=groups[~calib],
                calib_groups=groups[calib])
            rows[f"scorer {kind} (hold-out, robust)"] = figures(
                test_takes, det.anomaly_score(emb["test"]), threshold=det.threshold_,
                board_threshold=median_fit(det.calibration_), known=known)
        for kind in ("mahalanobis", "knn-ldn"):
            det = SCORERS[kind](far=old.far, threshold_fit=MEASURED_FIT).fit(emb["train"],
                                                                            groups=groups)
            rows[f"scorer {kind} (leave-one-board-out, robust)"] = figures(
                test_takes, det.anomaly_score(emb["test"]), threshold=det.threshold_,
                board_threshold=median_fit(det.calibration_), known=known)
        unseen = [ds.path_of(t) for t in test_takes
                  if t.label == "normal" and t.board not in known][:5]
        out[model.name] = {
            "calibration": own, "rows": rows, "test_scores": scores_for_ensemble(judge, emb),
            # what `tapcheck enroll` does to this model file: its own detector and calibration
            "enrol": enrol_experiment(own_detector, emb["test"], test_takes, known=known),
            "enroll_file_seconds": timed_enroll_cli(model, unseen),
            "equal_recall": equal_recall(emb, groups, test_takes, known),
            "reference_sizes": reference_sizes(emb["train"], groups, emb["test"], test_takes)}
        print(f"{model}: done", file=sys.stderr)
    return out


def _p(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _sd(v: np.ndarray) -> float:
    """Sample standard deviation (n - 1), as everywhere else in the docs; 0 for one value."""
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def markdown(results: dict, command: str, ensemble: dict) -> str:
    lines = ["# New boards: measured", "", f"Regenerate: `{command}`", "",
             "Stated rate: 5 % false alarms per tap; board verdicts: 3 consecutive taps of one "
             "board side, stated 2 % per healthy board for the median rule. FA: false alarms "
             "per tap; recall: mean over the defect boards; sd: sample standard deviation "
             "over the models (seeds).", ""]
    summary = {}
    for res in results.values():
        for calib, r in res["rows"].items():
            summary.setdefault(calib, []).append(r)
    lines += [f"## Mean ± sd over the {len(results)} model(s) below", "",
              "| calibration | FA known | FA unseen | recall | AUC | 3-tap median: healthy "
              "flagged / defective found |", "| --- | --- | --- | --- | --- | --- |"]
    for calib, rs in summary.items():
        cells = []
        for key in ("far_known", "far_unseen", "recall"):
            v = np.array([r[key] for r in rs], dtype=float)
            cells.append(f"{100 * v.mean():.1f} ± {100 * _sd(v):.1f} %")
        auc = np.array([r["auc"] for r in rs])
        healthy = np.array([r["board_median_healthy"] for r in rs], dtype=float)
        found = np.array([r["board_median_defect"] for r in rs], dtype=float)
        lines.append(f"| {calib} | {' | '.join(cells)} | {auc.mean():.3f} ± {_sd(auc):.3f} | "
                     f"{100 * healthy.mean():.1f} % / {100 * found.mean():.1f} % |")
    lines += ["", "## Averaging seeds (z-normalised kNN scores, each by its model's calibration "
              "scores)", "", "| models averaged | combinations | AUC mean ± sd | min |",
              "| --- | --- | --- | --- |"]
    for size, aucs in ensemble.items():
        a = np.array(aucs)
        lines.append(f"| {size} | {len(a)} | {a.mean():.3f} ± {_sd(a):.3f} | {a.min():.3f} |")
    head = ("| model | calibration | threshold | FA known | FA unseen | unseen per board | "
            "recall | AUC | board median: healthy flagged / defect found | "
            "board vote 2-of-3 |")
    lines += ["", "## Stated vs observed false alarms, per model", "", head, "|" + " --- |" * 10]
    for name, res in results.items():
        for calib, r in res["rows"].items():
            per = ", ".join(f"{b}: {f}" for b, f in r["unseen_by_board"].items())
            lines.append(
                f"| {name} | {calib} | {r['threshold']:.4f} | {_p(r['far_known'])} | "
                f"{_p(r['far_unseen'])} | {per} | {_p(r['recall'])} | {r['auc']:.3f} | "
                f"{_p(r['board_median_healthy'])} / {_p(r['board_median_defect'])} | "
                f"{_p(r['board_vote_healthy'])} / {_p(r['board_vote_defect'])} |")
    groups = {g for res in results.values() for r in res["rows"].values()
              for g in r.get("recall_by_group", {})}  # results from before 2026-12-04 have none
    if groups:
        lines += ["", "## Defective taps found per defect group (mean over the models)", "",
                  "| calibration | " + " | ".join(sorted(groups)) + " |",
                  "|" + " --- |" * (len(groups) + 1)]
        for calib, rs in summary.items():
            cells = [np.mean([r["recall_by_group"][g] for r in rs if g in r.get(
                "recall_by_group", {})] or [np.nan]) for g in sorted(groups)]
            lines.append(f"| {calib} | " + " | ".join(_p(None if np.isnan(c) else c)
                                                       for c in cells) + " |")
    lines += ["", "## Enrolment of 5 taps per side of an unseen board (into the model file's own "
              "references and calibration, as `tapcheck enroll` does)", "",
              "| model | board | enrolled | other taps | FA before | FA after | AUC before | "
              "AUC after | recalibrate (s) |", "|" + " --- |" * 9]
    for name, res in results.items():
        for e in res["enrol"]:
            lines.append(f"| {name} | {e['board']} | {e['enrolled']} | {e['other_taps']} | "
                         f"{_p(e['far_before'])} | {_p(e['far_after'])} | {e['auc_before']:.3f} "
                         f"| {e['auc_after']:.3f} | {e['recalibrate_s']:.2f} |")
        lines.append(f"| {name} | `enroll()` of 5 files, end to end | | | | | | | "
                     f"{res['enroll_file_seconds']:.1f} |")
    lines += ["", "## Scorers at equal recall (unseen-board false alarms when the threshold finds "
              "this share of defective test takes)", "",
              "| model | scorer | recall | FA unseen at that recall |", "| --- | --- | --- | --- |"]
    for name, res in results.items():
        for r in res["equal_recall"]:
            lines.append(f"| {name} | {r['scorer']} | {_p(r['recall'])} | "
                         f"{_p(r['far_unseen'])} |")
    lines += ["", "## Reference-set size (random subsets of the normal training takes; false "
              "alarms at the leave-one-board-out threshold)", "",
              "| model | references | AUC | FA unseen | kNN scoring ms/clip |",
              "| --- | --- | --- | --- | --- |"]
    for name, res in results.items():
        for r in res["reference_sizes"]:
            lines.append(f"| {name} | {r['references']} | {r['auc']:.3f} | "
                         f"{_p(r['far_unseen'])} | {r['score_ms_per_clip']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path,
                        help="model files, or a run's <model>.pt.partial (measured as it is)")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--out", type=Path, default=Path("docs/results/new-boards.md"))
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the markdown from the JSON beside --out (no models read)")
    args = parser.parse_args()
    out = "" if args.out == Path("docs/results/new-boards.md") else f" --out {args.out}"
    command = ("PYTHONPATH=$PWD python3 scripts/new_boards.py --dataset " + args.dataset + out
               + " " + " ".join(str(m) for m in args.models))
    if args.render_only:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        args.out.write_text(markdown(saved["models"], command, saved["ensemble_auc"]))
        print(f"written {args.out}")
        return
    ds = Dataset.open(args.dataset)
    models = [snapshot(m, ds) if m.name.endswith(".partial") else m for m in args.models]
    results = run(models, ds)
    test_takes = ds.select(split="test")
    ensemble = {size: ensembles(results, test_takes, size=size)
                for size in range(1, len(results) + 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, command, ensemble))
    args.out.with_suffix(".json").write_text(
        json.dumps({"models": results, "ensemble_auc": ensemble}, indent=1, default=str))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
