"""Which second knocks inside the crops are warned of, by how far a knock must rise.

A second knock inside the strongest one's crops (a stick's bounce, a double tap) changes what
the model sees. ``tapcheck.features.other_knocks`` finds them as rises of
``OTHER_KNOCK_RISE_DB`` over the 4 frames (12 ms) before; a knock that comes during the first
one's ring-down rises less, as the 1024-sample window slides over it. This counts, for each
rise, the clips warned of among

- the real knocks of ``../shared/data/knocks`` (60; many hold two to six knocks),
- healthy demo takes (one clean knock each: any warning is a false one),
- those takes with a copy of themselves added ``delay`` ms later at ``gain`` (a second knock
  of known place: every one should be warned of once it is a window, 23 ms, away).

    PYTHONPATH=/path/to/tapcheck python3 scripts/close_knocks.py \\
        --dataset recordings/demo --knocks ../shared/data/knocks
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from tapcheck.audio import load
from tapcheck.config import FeatureConfig
from tapcheck.datasets import Dataset
from tapcheck.features import frame_power, other_knocks
from tapcheck.strikes import frame_levels, strike_onset

RISES_DB = (10.0, 8.0, 6.0, 5.0, 4.0)
DELAYS_MS = (25, 35, 50, 75, 100)
GAINS = (0.5, 1.0)


def warned(y: np.ndarray, rise_db: float, f: FeatureConfig) -> bool:
    level = frame_levels(frame_power(y, n_fft=f.n_fft, hop_length=f.hop_length))
    onset = strike_onset(level, min_strike_db=f.min_strike_db, max_back=f.n_fft // f.hop_length)
    return bool(other_knocks(level, onset, features=f, min_rise_db=rise_db))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a dataset's folder (the demo's)")
    parser.add_argument("--knocks", required=True, help="the real knocks' folder")
    parser.add_argument("--takes", type=int, default=60, help="healthy takes used")
    args = parser.parse_args()
    f, sr = FeatureConfig(), 44100
    dataset = Dataset.open(args.dataset)
    healthy = sorted((t for t in dataset.takes if t.label == "normal"),
                     key=lambda t: (t.board, t.side, t.take))[::7][:args.takes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings are what this counts, by hand
        takes = [load(dataset.path_of(t), sr=sr) for t in healthy]
        real = [load(p, sr=sr) for p in sorted(Path(args.knocks).glob("*/*.wav"))]
    print(f"{len(real)} real knocks, {len(takes)} healthy demo takes of one knock each")
    header = ["rise (dB)", "real warned", "healthy warned"] + [
        f"+{d} ms x{g:g}" for g in GAINS for d in DELAYS_MS]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for rise in RISES_DB:
        row = [f"{rise:g}", f"{sum(warned(y, rise, f) for y in real)}/{len(real)}",
               f"{sum(warned(y, rise, f) for y in takes)}/{len(takes)}"]
        for gain in GAINS:
            for delay in DELAYS_MS:
                shift = int(delay / 1000 * sr)
                doubled = [np.concatenate([y[:shift], y[shift:] + gain * y[:-shift]])
                           for y in takes]
                row.append(f"{sum(warned(y, rise, f) for y in doubled)}/{len(takes)}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
