"""What reading explanations in dB changed: each anomalous test tap's sentence, described in dB
about the tap's mean power (``tapcheck.explain``, since 2026-12-05) and as it was described
before, on the standardised crops the model sees, in the same region.

Standardising divides each crop by its own spread in dB and subtracts its mean level, so on
standardised crops a decay rate is scaled by the ratio of two crops' spreads, an energy
difference is counted in spreads, and a tap that dies fast reads louder. This prints how often
the kind of sentence changes and by how much the decay ratios move, and, as a base rate, what
the explanation would claim of the healthy test taps judged normal.
Run it where the model was trained (the demo's folder, after ``tapcheck demo``):

    PYTHONPATH=/path/to/tapcheck python3 scripts/explain_units.py \
        --model models/arcface-resnet18.pt --dataset demo
"""

from __future__ import annotations

import argparse
import collections
import os
import warnings

import numpy as np
import torch

from tapcheck.datasets import Dataset
from tapcheck.explain import Explainer
from tapcheck.explain_difference import DECAY_FACTOR
from tapcheck.features import load_clip, strike_crops
from tapcheck.judge import Judge

ENERGY_MIN_SPREADS = 0.25  # the standardised description's floor for "more/less energy"


def standardised_kind(clip: np.ndarray, reference: np.ndarray, *, bins_hz: np.ndarray,
                      frames_ms: np.ndarray) -> tuple[str, float | None]:
    """The kind the description gave on standardised crops (the code before 2026-12-05)."""
    after = frames_ms >= 0
    t = frames_ms[after]
    if len(t) >= 3:
        slope_c = np.polyfit(t, clip[:, after].mean(axis=0), 1)[0]
        slope_r = np.polyfit(t, reference[:, after].mean(axis=0), 1)[0]
        if slope_r < 0 and slope_c < 0:
            ratio = float(slope_c / slope_r)
            if ratio >= DECAY_FACTOR:
                return "faster-decay", ratio
            if ratio <= 1 / DECAY_FACTOR:
                return "slower-decay", ratio
    peak_c, peak_r = int(np.argmax(clip.mean(axis=1))), int(np.argmax(reference.mean(axis=1)))
    last = len(bins_hz) - 1
    if abs(peak_c - peak_r) >= 2 and len(bins_hz) > 2 and 0 < peak_c < last \
            and 0 < peak_r < last:
        return "shifted-resonance", None
    diff = float((clip - reference).mean())
    if abs(diff) < ENERGY_MIN_SPREADS:
        return "different", None
    return ("weaker" if diff < 0 else "stronger"), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="its test split is explained")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    judge = Judge(args.model)
    ex = Explainer(judge)
    ds = Dataset.open(args.dataset)
    index = {os.fspath(p): i for i, p in enumerate(ex.references.paths)}
    rows, healthy, by_board = [], collections.Counter(), collections.defaultdict(list)
    for take in ds.select(split="test"):
        path = ds.path_of(take)
        y = load_clip(path, audio=judge.config.audio, features=judge.config.features)
        if not judge.judge_files([path])[0].anomalous:
            if take.label == "normal":  # the base rate: what a healthy tap is said to differ by
                healthy[ex.explain_array(y, path=str(path)).kind] += 1
            continue
        e = ex.explain_array(y, path=str(path))
        # the standardised crops, as the model sees them: the clip's, its references' mean
        clip = strike_crops(y, sr=judge.config.audio.sr, features=judge.config.features)[0]
        reference = np.mean([ex.references.crops[index[p], 0] for p in e.compared_with], axis=0)
        b0, b1 = np.searchsorted(ex.band_edges_hz, e.band_hz)
        w1 = int(np.searchsorted(ex.window_edges_ms, e.time_ms[1]))
        w0 = 0 if e.time_ms[0] == 0 else int(np.searchsorted(ex.window_edges_ms, e.time_ms[0]))
        region = np.s_[ex.bin_edges[b0]:ex.bin_edges[b1], ex.frame_edges[w0]:ex.frame_edges[w1]]
        kind, ratio = standardised_kind(clip[region], reference[region],
                                        bins_hz=ex.bins_hz[region[0]],
                                        frames_ms=ex.frames_ms[region[1]])
        rows.append((kind, ratio, e.kind, e.ratio))
        by_board[take.board].append(e.kind)
    n = len(rows)
    same = sum(r[0] == r[2] for r in rows)
    print(f"anomalous test taps explained: {n}; the same kind of sentence: {same} "
          f"({same / max(n, 1):.0%})")
    print("standardised:", dict(collections.Counter(r[0] for r in rows).most_common()))
    print("dB:          ", dict(collections.Counter(r[2] for r in rows).most_common()))
    flips = sum({r[0], r[2]} == {"weaker", "stronger"} for r in rows)
    print(f"more energy <-> less energy: {flips}")
    for (a, b), count in collections.Counter((r[0], r[2]) for r in rows
                                             if r[0] != r[2]).most_common():
        print(f"  {a} -> {b}: {count}")
    both = np.array([(r[1], r[3]) for r in rows if r[1] is not None and r[3] is not None])
    if len(both):
        moved = both[:, 0] / both[:, 1]
        print(f"decay ratios in both: {len(both)}; standardised / dB median {np.median(moved):.2f}"
              f", {moved.min():.2f}-{moved.max():.2f}")
    for board, kinds in sorted(by_board.items()):
        print(f"  board {board}: {dict(collections.Counter(kinds).most_common())}")
    specific = sum(c for kind, c in healthy.items() if kind != "different")
    print(f"healthy test taps judged normal, explained all the same: {sum(healthy.values())}; "
          f"a specific claim for {specific}: {dict(healthy.most_common())}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
