"""How a clip cut short after its strike moves a healthy tap's verdict: padding in the crops.

The crops reach 354 ms after the strike (the study's settings); a clip that ends sooner has its
crops' last frames filled with the picture's lowest level, which no training clip had. This cuts
healthy test takes of the unseen boards a given time after their strike and counts how many the
model then flags (``tapcheck.features.MAX_PADDED_MS`` is set from it). Run it where the model was
trained (the demo's folder, after ``tapcheck demo``):

    PYTHONPATH=/path/to/tapcheck python3 scripts/cut_short.py \
        --model models/arcface-resnet18.pt --dataset demo --boards 11,12,13 --takes 48
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from tapcheck.audio import load
from tapcheck.datasets import Dataset
from tapcheck.features import crop_span_frames, strike_crops
from tapcheck.judge import Judge

CUTS_MS = (None, 350, 340, 330, 320, 300, 280, 250, 200)  # None: the whole clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="the dataset's folder")
    parser.add_argument("--boards", default="11,12,13", help="healthy boards, comma-separated")
    parser.add_argument("--takes", type=int, default=48, help="first N of their test takes")
    args = parser.parse_args()
    judge = Judge(args.model)
    f = judge.config.features
    dataset = Dataset.open(args.dataset)
    boards = [int(b) for b in args.boards.split(",")]
    takes = [t for t in dataset.select(board=boards, split="test") if t.label == "normal"]
    takes = sorted(takes, key=lambda t: (t.board, t.side, t.take))[:args.takes]
    sr = judge.config.audio.sr
    reach_ms = (crop_span_frames(f) - f.pre_frames) * f.hop_length / sr * 1000
    scores = {cut: [] for cut in CUTS_MS}
    for take in takes:
        y = load(dataset.path_of(take), sr=sr)
        _, onset = strike_crops(y, features=f, return_onset=True)
        at = onset * f.hop_length
        for cut in CUTS_MS:
            clip = y if cut is None else y[:at + int(cut / 1000 * sr)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the padding warning is what this measures
                crops = strike_crops(clip, features=f)
            scores[cut].append(float(judge.scores(crops[None])[0]))
    whole = np.array(scores[None])
    print(f"{len(takes)} healthy test takes of boards {args.boards}, threshold "
          f"{judge.threshold:.4g}; the crops reach {reach_ms:.0f} ms after the strike")
    print("cut after strike  padding  flagged  median score / whole clip's")
    for cut in CUTS_MS:
        s = np.array(scores[cut])
        pad = "-" if cut is None else f"{max(reach_ms - cut, 0):.0f} ms"
        print(f"{'whole clip' if cut is None else f'{cut} ms':>17}  {pad:>7}  "
              f"{int((s > judge.threshold).sum()):>3}/{len(s)}  "
              f"{float(np.median(s / whole)):.2f}")


if __name__ == "__main__":
    main()
