"""Regenerate docs/results/recipe-<name>.json: the new-boards recipe with one setting changed
over several values (e.g. ``train.ema_decay``), over training seeds.

Usage, from the checkout, with the datasets under ``recordings/`` (``tapcheck synth --dataset
demo``; ``--seed 1 --dataset demo-s1``; ``--preset plant --dataset plant --takes 12``):

    PYTHONPATH=$PWD python3 scripts/recipe_select.py --dataset demo --seeds 0-4 \
        --setting train.ema_decay --values 0,0.99,0.995 --name ema-demo-lite

For each value it runs ``tapcheck compare`` with ``configs/new-boards.toml`` and only that
setting changed (a config written under ``--work``), one cell per seed, and keeps each cell's
figures — :func:`tapcheck.evaluation.evaluate_scores`'s, as ``evaluate`` prints them.
``compare`` reuses the cells a report folder already holds for the same config, dataset and
seed, so a second run with the same ``--work`` only re-reads them. ``scripts/crops_select.py``
is this for ``features.n_crops``.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "new-boards.toml"


def recipe_with(setting: str, value: Any, work: Path) -> Path:
    """configs/new-boards.toml with ``setting`` (``section.key``) set to ``value``, written
    under ``work``; the recipe's own value of it is replaced."""
    section, key = setting.split(".")
    recipe = tomllib.loads(RECIPE.read_text(encoding="utf-8"))
    recipe[section] = {**recipe.get(section, {}), key: value}
    lines = [f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())
             for name, fields in recipe.items()]
    path = work / f"new-boards-{key}-{value}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def parse_values(text: str) -> list[Any]:
    """``"0,0.99"`` -> ``[0, 0.99]``: each value as TOML reads it (a number, true, "text")."""
    return [tomllib.loads(f"v = {item.strip()}")["v"] for item in text.split(",")]


def cell_figures(cell: dict) -> dict:
    """The figures of one compare cell the tables show."""
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


def measure(*, dataset: str, model: str, seeds: str, setting: str, values: list[Any],
            work: Path) -> list[dict]:
    """One ``compare`` per value; a row per value: ``setting``, ``value``, ``model``, cells."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    for value in values:
        config = recipe_with(setting, value, work)
        out = work / f"{dataset}-{model}-{config.stem.removeprefix('new-boards-')}"
        command = ["tapcheck", "compare", "--dataset", dataset, "--models", model,
                   "--seeds", seeds, "--config", str(config), "--out", str(out)]
        subprocess.run([sys.executable, "-m", *command], check=True, env=env)
        doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        rows.append({"setting": setting, "value": value, "model": model,
                     "cells": sorted((cell_figures(c) for c in doc["cells"]),
                                     key=lambda c: c["seed"])})
    return rows


def recipe_model() -> str:
    return tomllib.loads(RECIPE.read_text(encoding="utf-8"))["train"]["model"]


def write_result(rows: list[dict], *, dataset: str, name: str, script: str,
                 argv: list[str] | None) -> Path:
    """docs/results/<name>.json, with the command that made it."""
    result = {"dataset": dataset, "measured": date.today().isoformat(),
              "command": f"PYTHONPATH=$PWD python3 scripts/{script} " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "recipe": RECIPE.relative_to(ROOT).as_posix(), "rows": rows}
    path = ROOT / "docs" / "results" / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def parser_for(doc: str, *, work: str, prefix: str) -> argparse.ArgumentParser:
    """The options every recipe comparison takes (a script adds what it varies)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--model", default=None, help="default: the recipe's (arcface-lite)")
    parser.add_argument("--work", type=Path, default=Path(work),
                        help="report folders and configs (kept: a rerun reuses its cells)")
    parser.add_argument("--name", required=True,
                        help=f"result file docs/results/{prefix}-NAME.json")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, work="recipe-select", prefix="recipe")
    parser.add_argument("--setting", required=True, help="section.key, e.g. train.ema_decay")
    parser.add_argument("--values", required=True, help="values to compare, e.g. 0,0.99")
    args = parser.parse_args(argv)
    model = args.model or recipe_model()
    rows = measure(dataset=args.dataset, model=model, seeds=args.seeds, setting=args.setting,
                   values=parse_values(args.values), work=args.work)
    write_result(rows, dataset=args.dataset, name=f"recipe-{args.name}",
                 script="recipe_select.py", argv=argv)


if __name__ == "__main__":
    main()
