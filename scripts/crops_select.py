"""Regenerate docs/results/crops-<name>.json: how many crops per tap (``features.n_crops``) the
new-boards recipe should cut, over training seeds, on several datasets.

Each tap gives ``n_crops`` crops, each ``shift_frames`` (6) later than the one before; training
learns from every crop and a verdict averages the tap's crops' embeddings (the study: 2). More
crops are more training samples (later windows of the same ringing) and a verdict averaged over
more windows; both cost time in proportion.

Usage, from the checkout, with the datasets under ``recordings/`` (``tapcheck synth --dataset
demo``; ``--seed 1 --dataset demo-s1``; ``--preset plant --dataset plant --takes 12``):

    PYTHONPATH=$PWD python3 scripts/crops_select.py --dataset demo --seeds 0-4 --crops 2,4 \
        --name demo-lite

For each crop count it runs ``tapcheck compare`` with ``configs/new-boards.toml`` and only
``features.n_crops`` changed (a config written under ``--work``), one cell per seed, and keeps
each cell's figures — :func:`tapcheck.evaluation.evaluate_scores`'s, as ``evaluate`` prints them.
``compare`` reuses the cells a report folder already holds for the same config, dataset and
seed, so a second run with the same ``--work`` only re-reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "new-boards.toml"


def recipe_with_crops(n_crops: int, work: Path) -> Path:
    """configs/new-boards.toml with ``[features] n_crops`` set (replaced if the recipe has it)."""
    recipe = tomllib.loads(RECIPE.read_text(encoding="utf-8"))
    lines = [f"[{section}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                        for key, value in fields.items())
             for section, fields in {**recipe, "features": {
                 **recipe.get("features", {}), "n_crops": n_crops}}.items()]
    path = work / f"new-boards-crops{n_crops}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def cell_figures(cell: dict) -> dict:
    """The figures of one compare cell the table shows."""
    boards = cell["board_verdicts"]
    recalls = list(cell["recall_per_board"].values())
    return {"seed": cell["seed"], "auc": cell["auc"], "pauc": cell["pauc"],
            "threshold": cell["threshold"],
            "false_alarms_unseen": cell["false_alarms_unseen"],
            "false_alarms_known": cell["false_alarms_known"],
            "defect_recall": sum(recalls) / len(recalls) if recalls else None,
            "vote_healthy_flagged": boards.get("vote_healthy_flagged"),
            "vote_defective_found": boards.get("vote_defective_found"),
            "train_seconds": cell["train_seconds"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--crops", default="2,4", help="crop counts to compare: 2,4")
    parser.add_argument("--model", default=None, help="default: the recipe's (arcface-lite)")
    parser.add_argument("--work", type=Path, default=Path("crops-select"),
                        help="report folders and configs (kept: a rerun reuses its cells)")
    parser.add_argument("--name", required=True, help="result file docs/results/crops-NAME.json")
    args = parser.parse_args(argv)
    model = args.model or tomllib.loads(RECIPE.read_text(encoding="utf-8"))["train"]["model"]
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for n_crops in (int(n) for n in args.crops.split(",")):
        config = recipe_with_crops(n_crops, args.work)
        out = args.work / f"{args.dataset}-{model}-crops{n_crops}"
        command = ["tapcheck", "compare", "--dataset", args.dataset, "--models", model,
                   "--seeds", args.seeds, "--config", str(config), "--out", str(out)]
        subprocess.run([sys.executable, "-m", *command], check=True, env=env)
        doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        rows.append({"n_crops": n_crops, "model": model,
                     "cells": sorted((cell_figures(c) for c in doc["cells"]),
                                     key=lambda c: c["seed"])})
    result = {"dataset": args.dataset, "measured": date.today().isoformat(),
              "command": "PYTHONPATH=$PWD python3 scripts/crops_select.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "recipe": RECIPE.relative_to(ROOT).as_posix(), "rows": rows}
    path = ROOT / "docs" / "results" / f"crops-{args.name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
