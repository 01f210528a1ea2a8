"""How long `--explain` adds per anomalous clip, on this machine.

Synthesises taps of the study's cracked boards, judges them with a model, and times the
explanation of each anomalous one: ``Explainer.explain_array`` (a clip in memory) and
``Explainer.explain_files`` (what ``tapcheck judge --explain`` and the station run after a
verdict: the clip is read again from its file). The model's training dataset must be in the
recordings folder (run it in the folder the model was trained in, or set TAPCHECK_RECORDINGS).

    PYTHONPATH=$PWD python3 scripts/explain_speed.py --model models/arcface-resnet18.pt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tapcheck.audio import write_wav
from tapcheck.explain import Explainer
from tapcheck.features import strike_crops
from tapcheck.judge import Judge
from tapcheck.synth import study_boards, synthesize_tap, take_rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--clips", type=int, default=40, help="taps to synthesise")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (listen: 1)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    judge = Judge(args.model)
    explainer = Explainer(judge)
    boards = {b.number: b for b in study_boards(seed=args.seed)}
    sides = [(5, "left"), (6, "right"), (7, "left"), (8, "right")]
    array_t, files_t, judge_t = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips):
            number, side = sides[i % len(sides)]
            y = synthesize_tap(boards[number].board, side,
                               rng=take_rng(args.seed, number, side, 100 + i))
            crops = strike_crops(y)
            t = time.perf_counter()
            verdict = judge.judge_crops(crops)
            judge_t.append(time.perf_counter() - t)
            if not verdict.anomalous:
                continue
            path = write_wav(Path(tmp) / f"tap{i}.wav", y, sr=judge.config.audio.sr)
            t = time.perf_counter()
            explainer.explain_array(y)
            array_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            explainer.explain_files([path])
            files_t.append(time.perf_counter() - t)
    for name, values in (("judge (for scale)", judge_t), ("explain_array", array_t),
                         ("explain_files (judge --explain)", files_t)):
        ms = np.array(values[1:]) * 1000  # the first call pays one-time costs
        print(f"{name:34s} n={len(ms):3d}  median {np.median(ms):6.1f} ms  "
              f"p95 {np.percentile(ms, 95):6.1f} ms")


if __name__ == "__main__":
    main()
