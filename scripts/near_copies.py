"""How near a copy of a tap lies to its tap in a model's space, against how near distinct taps
lie: the margin of ``tapcheck.copies.COPY_SPACING``, by which ``enroll`` refuses and
``evaluate`` leaves out the same tap resampled or re-encoded.

For ``--takes`` takes of ``--dataset`` (spread over its boards): copies at 48 kHz and at
22.05 kHz (float samples), as 16-bit WAV and as OGG Vorbis; each copy's distance to its own
take's embedding, the distinct takes' distances to one another, and the model's reference
spacing (the median distance from a reference to its nearest other), with the limit the rule
draws (``COPY_SPACING`` x the spacing) and how many of each kind fall under it.

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

from tapcheck.copies import COPY_SPACING
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
    takes = ds.takes[::max(1, len(ds.takes) // args.takes)][:args.takes]
    paths = [ds.path_of(t) for t in takes]
    spacing = det.reference_spacing()
    limit = COPY_SPACING * spacing
    own = rows(judge, paths)
    mutual = det.mutual_distances(own)
    distinct = mutual[~np.eye(len(own), dtype=bool)]
    distance, _ = det.nearest_reference(own)
    print(f"{args.model} ({judge.model.name}, {len(det.reference_)} references) on "
          f"{len(takes)} takes of {args.dataset}")
    print(f"reference spacing (median nearest other reference): {spacing:.3g}; "
          f"limit {COPY_SPACING} x that = {limit:.3g}")
    print(f"distinct takes: nearest pair {distinct.min():.3g}, median {np.median(distinct):.3g}"
          f"; under the limit {int((distinct < limit).sum()) // 2} pairs")
    print(f"the takes' nearest reference: least {distance.min():.3g} (0 is a take of the "
          "reference itself)")
    with tempfile.TemporaryDirectory() as tmp:
        made = [copies(p, Path(tmp) / str(i)) for i, p in enumerate(paths)]
        for kind in made[0]:
            theirs = rows(judge, [m[kind] for m in made])
            d = np.array([det.mutual_distances(np.vstack([a, b]))[0, 1]
                          for a, b in zip(own, theirs, strict=True)])
            print(f"{kind:>10} copies: to their take {np.median(d):.2g} median, "
                  f"{d.max():.2g} at most; under the limit {int((d < limit).sum())} of {len(d)}")


if __name__ == "__main__":
    main()
