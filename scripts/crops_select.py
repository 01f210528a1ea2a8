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
seed, so a second run with the same ``--work`` only re-reads them. (``recipe_select.py`` does
it for any one setting; this keeps the crop counts' result files as they were written.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipe_select, beside this script
from recipe_select import (cell_figures, measure, parser_for, recipe_model,  # noqa: E402
                           recipe_with, write_result)

__all__ = ["cell_figures", "main", "recipe_with_crops"]


def recipe_with_crops(n_crops: int, work: Path) -> Path:
    """configs/new-boards.toml with ``[features] n_crops`` set (replaced if the recipe has it)."""
    return recipe_with("features.n_crops", n_crops, work)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, work="crops-select", prefix="crops")
    parser.add_argument("--crops", default="2,4", help="crop counts to compare: 2,4")
    args = parser.parse_args(argv)
    model = args.model or recipe_model()
    rows = measure(dataset=args.dataset, model=model, seeds=args.seeds,
                   setting="features.n_crops",
                   values=[int(n) for n in args.crops.split(",")], work=args.work)
    rows = [{"n_crops": row["value"], "model": row["model"], "cells": row["cells"]}
            for row in rows]
    write_result(rows, dataset=args.dataset, name=f"crops-{args.name}",
                 script="crops_select.py", argv=argv)


if __name__ == "__main__":
    main()
