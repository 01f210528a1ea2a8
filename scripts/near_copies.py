"""How near a copy of a tap lies to its tap in a model's space, against how near distinct taps
lie: the margin of ``tapcheck.copies.COPY_SPACING``, by which ``enroll`` refuses and
``evaluate`` leaves out the same tap resampled or requantised.

Every take of ``--dataset``: the nearest two distinct takes, and each take's nearest reference
(the takes the reference holds: their nearest *other*). ``--takes`` of them (spread over the
boards): copies at 48 kHz and at 22.05 kHz (float samples), as 16-bit WAV and as OGG Vorbis,
each copy's distance to its take. With the model's reference spacing and the limit the rule
draws (:func:`tapcheck.copies.copy_limit`). Cosine distances on unit embeddings.

    PYTHONPATH=/path/to/tapcheck python3 scripts/near_copies.py \\
        --model models/arcface-resnet18.pt --dataset recordings/demo
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from tapcheck.copies import COPY_COSINE, COPY_SPACING, copy_limit, reference_spacing
from tapcheck.datasets import Dataset
from tapcheck.features import load_clip, strike_crops
from tapcheck.judge import Judge


def copies(path: Path, folder: Path) -> dict[str, Path]:
    """The copies of one take, in a folder of their own (takes of boards share names)."""
    folder.mkdir()
    y, sr = sf.read(path)
    made = {}
    for name, z, rate, options in (
            ("48 kHz", resample_poly(y, 160, 147), 48000, {"subtype": "FLOAT"}),
            ("22.05 kHz", resample_poly(y, 1, 2), 22050, {"subtype": "FLOAT"}),
            ("16-bit", y, sr, {"subtype": "PCM_16"}),
            ("OGG Vorbis", y, sr, {"format": "OGG", "subtype": "VORBIS"})):
        out = folder / f"{path.stem}-{len(made)}.{options.get('format', 'wav').lower()}"
        sf.write(out, z, rate, **options)
        made[name] = out
    return made


def rows(judge: Judge, paths: list[Path]) -> np.ndarray:
    c = judge.config
    crops = [strike_crops(load_clip(p, audio=c.audio, features=c.features), sr=c.audio.sr,
                          features=c.features, path=p) for p in paths]
    return judge.represent(np.stack(crops))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--takes", type=int, default=24)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # "resampled from 48000 Hz" for every copy
    judge = Judge(args.model)
    det = judge.model.detector
    ds = Dataset(args.dataset)
    every = [ds.path_of(t) for t in ds.takes]
    unit = det.unit_embeddings(rows(judge, every))
    reference = det.unit_embeddings()
    spacing = reference_spacing(det)
    limit = copy_limit(det, spacing=spacing)
    mutual = 1.0 - unit @ unit.T
    np.fill_diagonal(mutual, np.inf)
    near = (1.0 - unit @ reference.T).min(axis=1)
    print(f"{args.model} ({judge.model.name}, {len(reference)} references) on the "
          f"{len(every)} takes of {args.dataset}; cosine distances on unit embeddings")
    print(f"reference spacing (median nearest other reference): {spacing:.3g}; limit "
          f"min({COPY_COSINE}, {COPY_SPACING} x spacing) = {limit:.3g}")
    print(f"distinct takes: nearest pair {mutual.min():.3g} ({limit and mutual.min() / limit:.0f}"
          f"x the limit), median nearest other {np.median(mutual.min(axis=1)):.3g}; pairs under "
          f"the limit {int((mutual < limit).sum()) // 2}")
    # a take of the reference lies ~0 from its own row: the nearest other is the second nearest
    second = np.sort(1.0 - unit @ reference.T, axis=1)[:, 1]
    own = near < limit
    print(f"takes in the reference ({int(own.sum())}): their nearest other reference "
          f"{second[own].min():.3g} at the least; takes not in it ({int((~own).sum())}): "
          f"nearest reference {near[~own].min() if (~own).any() else float('nan'):.3g} at the "
          "least")
    picked = ds.takes[::max(1, len(ds.takes) // args.takes)][:args.takes]
    paths = [ds.path_of(t) for t in picked]
    originals = det.unit_embeddings(rows(judge, paths))
    with tempfile.TemporaryDirectory() as tmp:
        made = [copies(p, Path(tmp) / str(i)) for i, p in enumerate(paths)]
        for kind in made[0]:
            theirs = det.unit_embeddings(rows(judge, [m[kind] for m in made]))
            d = 1.0 - (originals * theirs).sum(axis=1)
            print(f"{kind:>10} copies of {len(d)} takes: to their take {np.median(d):.2g} "
                  f"median, {d.max():.2g} at most ({limit / max(d.max(), 1e-12):.0f}x under the "
                  f"limit); under the limit {int((d < limit).sum())} of {len(d)}")


if __name__ == "__main__":
    main()
