"""What several networks per model file (``train.members``) cost a verdict: warm judge time.

Times each model file with ``tapcheck.bench.judge_speed`` (the bench's own measurement: one
clip warm, and where its time goes), back to back on the same clips of a dataset's test split,
and writes docs/results/members-judge.json (rendered in docs/new-boards.md).

    PYTHONPATH=$PWD python3 scripts/members_judge.py MODEL.pt [MODEL.pt ...] [--dataset demo]

The model files of ``compare --keep-models`` or a grid's cells (seed 0's is kept) will do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapcheck.bench import judge_speed  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.modelfile import load_model  # noqa: E402
from tapcheck.runtime import configure_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/members-judge.json")
    args = parser.parse_args()
    threads = configure_threads()
    ds = Dataset.open(args.dataset)
    clips = [ds.path_of(t) for t in ds.select(split="test")[:32]]
    rows = []
    load_before = os.getloadavg()[0]
    for path in args.models:
        loaded = load_model(path)
        r = judge_speed(path, clips)
        rows.append({"model": loaded.name, "members": loaded.config.train.members,
                     "file": path.name, "warm_ms_median": round(r["warm_ms_median"], 2),
                     "network_ms_best": round(r["network_ms_best"], 2),
                     "steps_ms_median": {k: round(v, 2) for k, v in r["steps_ms_median"].items()},
                     "network_gflop_per_clip": round(r["network_gflop_per_clip"], 3)})
        print(f"{path}: {rows[-1]['warm_ms_median']} ms warm", file=sys.stderr)
    args.out.write_text(json.dumps({
        "command": "PYTHONPATH=$PWD python3 scripts/members_judge.py " + " ".join(
            f"<{r['model']} x{r['members']}>" for r in rows) + f" --dataset {args.dataset}",
        "measured": f"{date.today().isoformat()}, {os.cpu_count()} CPUs, {threads} torch "
                    f"thread(s), load average {load_before:.1f} → {os.getloadavg()[0]:.1f}",
        "models": rows}, indent=1, ensure_ascii=False) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
