"""How far taps ring down within their crops, against loud steady noise: the margin of
``tapcheck.strikes.MIN_RING_DOWN_DB``, below which ``listen`` judges no sound.

For each clip: the strike's onset (as the crops find it), then :func:`ring_down_db` from its
first 8 frames to the last 16 of its crops. Clips are the real knocks of ``--knocks`` (wood,
ceramic, marble), every 5th take of ``--dataset``, and white noise at -10 dBFS beginning 1 s into
a quiet clip (a machine switched on), five draws.

    PYTHONPATH=/path/to/tapcheck python3 scripts/ring_down.py \\
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
from tapcheck.features import crop_span_frames, strike_crops
from tapcheck.spectrogram import frame_levels, frame_power
from tapcheck.strikes import ring_down_db

SR = 44100


def onset_of(y: np.ndarray, features: FeatureConfig) -> int:
    """The strike's onset frame, as the crops find it (also scripts/tap_flatness.py's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # padded or doubled clips: measured all the same
        return strike_crops(y, sr=SR, features=features, return_onset=True)[1]


def real_knocks(knocks: Path) -> dict[str, list[np.ndarray]]:
    """The real knocks of each material folder under ``knocks``, at :data:`SR`."""
    return {f"real {m.name}": [load(p, sr=SR) for p in sorted(m.glob("*.wav"))]
            for m in sorted(p for p in knocks.iterdir() if p.is_dir())}


def ring_down(y: np.ndarray, features: FeatureConfig) -> float:
    onset = onset_of(y, features)
    level = frame_levels(frame_power(y, n_fft=features.n_fft, hop_length=features.hop_length))
    return ring_down_db(level, onset, end=onset - features.pre_frames + crop_span_frames(features))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--knocks", type=Path, required=True)
    args = ap.parse_args()
    f = FeatureConfig()
    groups = {name: [ring_down(y, f) for y in clips]
              for name, clips in real_knocks(args.knocks).items()}
    ds = Dataset(args.dataset)
    groups["dataset takes"] = [ring_down(load(ds.path_of(t), sr=SR), f) for t in ds.takes[::5]]
    noise = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = rng.normal(0, 1e-4, 3 * SR).astype(np.float32)
        y[SR:] += rng.normal(0, 10 ** (-10 / 20), 2 * SR).astype(np.float32)
        noise.append(ring_down(y, f))
    groups["steady noise"] = noise
    print("clips              n   min   5%    median  (dB from the first 8 frames to the last 16)")
    for name, values in groups.items():
        v = np.asarray(values)
        print(f"{name:<18} {len(v):>3} {v.min():5.1f} {np.percentile(v, 5):5.1f} "
              f"{np.median(v):6.1f}")


if __name__ == "__main__":
    main()
