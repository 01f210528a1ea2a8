"""How a model's verdicts hold when the plant is louder than the room it was trained in.

The synthetic rig records in a quiet room: pink background noise at -66 to -58 dBFS (RMS). A
plant is louder. This adds pink noise of a given RMS level to each test take of a dataset (a
fresh draw per take, seeded), judges it with a saved model file, and reports per level the share of
taps refused as "no strike found" (judge's answer when the tap does not stand 15 dB above the
background), and over the rest the AUC, the healthy taps flagged (known and unseen boards) and
the defective taps found at the model's own threshold — what a louder room does to the verdicts,
with no retraining.

    PYTHONPATH=/path/to/tapcheck python3 scripts/noise_robustness.py \\
        --model models/arcface-resnet18.pt --dataset recordings/demo \\
        --knocks ../shared/data/knocks --out docs/results/noise-demo.json   # and .md
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from tapcheck.audio import load
from tapcheck.datasets import Dataset
from tapcheck.errors import NoStrikeError
from tapcheck.features import RISE_MARGIN_DB, clip_rise_db, strike_crops
from tapcheck.judge import Judge
from tapcheck.metrics import auc
from tapcheck.synth import _pink_noise
from tapcheck.training_data import training_rise

LEVELS_DBFS = (None, -60.0, -55.0, -50.0, -45.0, -40.0, -35.0)


def noisy(y: np.ndarray, level_dbfs: float | None, *, seed: int) -> np.ndarray:
    """``y`` with pink noise of RMS ``level_dbfs`` added (None: ``y`` as it is)."""
    if level_dbfs is None:
        return y
    pink = _pink_noise(len(y), np.random.default_rng(seed))
    pink -= pink.mean()  # its DC would be a DC offset, which the features warn of and remove
    pink /= np.sqrt(np.mean(pink ** 2))
    return (y + pink * 10.0 ** (level_dbfs / 20.0)).astype(np.float32)


def _share(flagged: np.ndarray, mask: np.ndarray) -> float | None:
    return float(flagged[mask].mean()) if mask.any() else None


def measure(model: str, dataset: str, *, levels=LEVELS_DBFS, seed: int = 0) -> dict:
    judge = Judge(model)
    data = Dataset.open(dataset)
    test = data.select(split="test")
    trained = {t.board for t in data.select(split="train")}  # the model's, if trained on it
    clips = [load(data.path_of(t), sr=judge.config.audio.sr) for t in test]
    labels = np.array([t.label == "defect" for t in test])
    known = np.array([t.board in trained for t in test])
    rows = []
    for level in levels:
        crops, judged, rises = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same checks warn of each take at each level
            for i, y in enumerate(clips):
                try:
                    heard = noisy(y, level, seed=seed * 100_003 + i)
                    crops.append(strike_crops(heard, sr=judge.config.audio.sr,
                                              features=judge.config.features, path=test[i].path))
                    rises.append(clip_rise_db(heard, features=judge.config.features))
                    judged.append(i)
                except NoStrikeError:  # judge refuses it: "no strike found", not a verdict
                    pass
        scores = judge.scores(np.stack(crops))
        flagged = scores > judge.threshold
        lab, kn = labels[judged], known[judged]

        rows.append({
            "noise_dbfs": level, "auc": auc(lab, scores),
            "refused_no_strike": 1.0 - len(judged) / len(clips),
            "healthy_known_flagged": _share(flagged, ~lab & kn),
            "healthy_unseen_flagged": _share(flagged, ~lab & ~kn),
            "defective_found": _share(flagged, lab),
            "median_defect_score": float(np.median(scores[lab])) if lab.any() else None,
            "median_healthy_score": float(np.median(scores[~lab])) if (~lab).any() else None,
            "median_rise_db": float(np.median(rises)),
            "clips": [{"rise_db": h, "flagged": bool(f), "defect": bool(d)}
                      for h, f, d in zip(rises, flagged, lab, strict=True)],
        })
        r = rows[-1]
        name = "none" if level is None else f"{level:.0f}"
        print(f"noise {name:>4} dBFS: {r['refused_no_strike']:.1%} refused (no strike)  "
              f"AUC {r['auc']:.3f}  healthy flagged "
              f"{r['healthy_known_flagged']:.1%} known, {r['healthy_unseen_flagged']:.1%} unseen"
              f"  defective found {r['defective_found']:.1%}  median score healthy "
              f"{r['median_healthy_score']:.4f}, defective {r['median_defect_score']:.4f}",
              flush=True)
    ref = judge.training_rise_db  # a model file from before it was stored: computed here
    if ref is None:
        ref = training_rise(data, [t for t in data.select(split="train") if t.label == "normal"],
                            config=judge.config)
    return {"model": model, "dataset": dataset, "threshold": float(judge.threshold),
            "takes": len(test), "seed": seed, "training_rise_db": ref, "rows": rows}


#: strike rise below the training takes' median, dB: the bins of the second table
DEFICIT_BINS_DB = (-100, 4, 8, 10, 12, 14, 16, 19, 25, 100)


def summary(result: dict) -> tuple[dict, str]:
    """The per-level rows without their clips, the healthy and defective taps flagged by how
    far below the training takes' strike rise they stood (all levels pooled), and both as a
    markdown page."""
    ref = result["training_rise_db"]
    clips = [c for row in result["rows"] for c in row["clips"]]
    deficit = np.array([ref - c["rise_db"] for c in clips])
    flagged = np.array([c["flagged"] for c in clips])
    defect = np.array([c["defect"] for c in clips])
    bins = []
    for lo, hi in zip(DEFICIT_BINS_DB[:-1], DEFICIT_BINS_DB[1:], strict=True):
        m = (deficit >= lo) & (deficit < hi)
        bins.append({"deficit_db": [lo, hi], "healthy": int((m & ~defect).sum()),
                     "healthy_flagged": _share(flagged, m & ~defect),
                     "defective": int((m & defect).sum()),
                     "defective_found": _share(flagged, m & defect)})
    rows = [{k: v for k, v in r.items() if k != "clips"} for r in result["rows"]]
    out = {**{k: v for k, v in result.items() if k != "rows"}, "rows": rows, "by_deficit": bins}

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    lines = [f"# A louder room: `{result['model']}` on `{result['dataset']}`", "",
             "Written by `scripts/noise_robustness.py` (see its docstring for the command): pink "
             "noise of the given RMS level added to every test take, judged at the model's "
             f"threshold {result['threshold']:.4g}; the rig's own room is -66 to -58 dBFS.", "",
             "| noise (dBFS) | refused: no strike | median strike rise (dB) | AUC | "
             "healthy flagged, known boards | unseen boards | defective found |",
             "| --- " * 7 + "|"]
    for r in rows:
        level = "none added" if r["noise_dbfs"] is None else f"{r['noise_dbfs']:.0f}"
        lines.append(f"| {level} | {pct(r['refused_no_strike'])} | {r['median_rise_db']:.1f} "
                     f"| {r['auc']:.3f} | {pct(r['healthy_known_flagged'])} | "
                     f"{pct(r['healthy_unseen_flagged'])} | {pct(r['defective_found'])} |")
    lines += ["", f"By how far each tap's strike stood less above the room's noise than the "
              f"model's training takes' (their median, {ref:.1f} dB; "
              "`tapcheck.features.clip_rise_db`), every level pooled:", "",
              "| dB less | healthy taps | flagged | defective taps | found |",
              "| --- " * 5 + "|"]
    for b in bins:
        lo, hi = b["deficit_db"]
        name = f"under {hi}" if lo == DEFICIT_BINS_DB[0] else \
            f"{lo} or more" if hi == DEFICIT_BINS_DB[-1] else f"{lo} to {hi}"
        lines.append(f"| {name} | {b['healthy']} | {pct(b['healthy_flagged'])} | "
                     f"{b['defective']} | {pct(b['defective_found'])} |")
    if result.get("knocks"):
        lines += ["", "Real knocks (`--knocks`), each folder against its own median: how many "
                  f"stand more than {RISE_MARGIN_DB:g} dB short of it, as a model trained on "
                  "that folder would warn of them:", "",
                  "| folder | knocks | strike rise, median (range), dB | warned |",
                  "| --- " * 4 + "|"]
        for name, k in result["knocks"].items():
            lines.append(f"| {name} | {k['knocks']} | {k['median_db']:.1f} ({k['min_db']:.1f}-"
                         f"{k['max_db']:.1f}) | {k['warned']} |")
    return out, "\n".join(lines) + "\n"


def knocks(folder: Path, *, sr: int = 44100) -> dict:
    """Each subfolder's knocks' strike rises against their median."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            rises = np.array([clip_rise_db(load(f, sr=sr)) for f in sorted(sub.glob("*.wav"))])
            if len(rises):
                median = float(np.median(rises))
                out[sub.name] = {"knocks": len(rises), "median_db": median,
                                 "min_db": float(rises.min()), "max_db": float(rises.max()),
                                 "warned": int((median - rises > RISE_MARGIN_DB).sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--knocks", type=Path, help="a folder of real knocks, a subfolder each")
    args = parser.parse_args()
    result = measure(args.model, args.dataset, seed=args.seed)
    if args.knocks:
        result["knocks"] = knocks(args.knocks)
    result, page = summary(result)
    print(page)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(page)


if __name__ == "__main__":
    main()
