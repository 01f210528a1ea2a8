"""How flat a strike's spectrum is, taps against hiss: the margin of
``tapcheck.strikes.MAX_TAP_FLATNESS``, over which ``listen`` judges no sound.

For each clip: the strike's onset (as the crops find it), then :func:`strike_flatness` of its
first frames. Clips are the real knocks of ``--knocks`` (wood, ceramic, marble), every take of
``--dataset``, every 5th with white room noise 20 and 16 dB under its strike and clipped
(twice full scale), and bursts of white and of pink noise (5 draws each) of 30, 100 and 300 ms
in a quiet clip, which die away when they stop and so pass the ring-down check.

    PYTHONPATH=/path/to/tapcheck python3 scripts/tap_flatness.py \\
        --dataset recordings/demo --knocks ../shared/data/knocks
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ring_down import SR, onset_of, real_knocks  # this folder's: run as scripts/tap_flatness.py
from tapcheck.audio import load
from tapcheck.config import FeatureConfig
from tapcheck.datasets import Dataset
from tapcheck.strikes import strike_flatness


def flatness(y: np.ndarray, features: FeatureConfig) -> float:
    return strike_flatness(y, onset_of(y, features), sr=SR, features=features)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    x = np.fft.irfft(spectrum, n)
    return (x / x.std()).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--knocks", type=Path, required=True)
    args = ap.parse_args()
    f = FeatureConfig()
    groups = {name: [flatness(y, f) for y in clips]
              for name, clips in real_knocks(args.knocks).items()}
    ds = Dataset(args.dataset)
    takes = [load(ds.path_of(t), sr=SR) for t in ds.takes]
    groups["dataset takes"] = [flatness(y, f) for y in takes]
    rng = np.random.default_rng(0)
    for under_db in (20, 16):  # 16: just over the 15 dB a strike needs
        noisy = []
        for y in takes[::5]:
            # white noise under_db under the strike's peak power (1024-sample mean) throughout
            peak = float(np.max(np.convolve(y ** 2, np.ones(1024) / 1024, mode="same")))
            noise = rng.normal(0, np.sqrt(peak) * 10 ** (-under_db / 20), len(y))
            noisy.append(flatness(y + noise.astype(np.float32), f))
        groups[f"takes, room -{under_db} dB"] = noisy
    # clipped briefly (x2 past full scale: a few ms at the top, under the refusal's limit), as
    # listen judges such a tap with a warning: clipping adds harmonics, a flatter spectrum
    groups["takes, clipped x2"] = [
        flatness(np.clip(y * 2.0 / float(np.max(np.abs(y))), -1.0, 1.0), f) for y in takes[::5]]
    for name, make in (("white", lambda n, r: r.normal(size=n).astype(np.float32)),
                       ("pink", pink)):
        for ms in (30, 100, 300):
            values = []
            for seed in range(5):
                r = np.random.default_rng(seed)
                y = r.normal(0, 1e-4, 3 * SR).astype(np.float32)
                n = int(ms * SR / 1000)
                y[SR:SR + n] += 0.25 * make(n, r)
                values.append(flatness(y, f))
            groups[f"{name} noise {ms} ms"] = values
    print("clips                n   min    median  95%    max   (spectral flatness, 0-1)")
    for name, values in groups.items():
        v = np.asarray(values)
        print(f"{name:<20} {len(v):>3} {v.min():.3f}  {np.median(v):.3f}  "
              f"{np.percentile(v, 95):.3f}  {v.max():.3f}")


if __name__ == "__main__":
    main()
