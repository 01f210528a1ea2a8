"""How often an explanation says a clip is unlike a recording of a board
(``tapcheck.explain.UNLIKE_SHARE``): for each flagged test take of a dataset, by its manifest
label and group, and for each real knock of a knocks folder (ceramic, marble, wood), the share
of its sound after the strike lying over ``UNLIKE_MARGIN_DB`` outside the range of the healthy
taps nearest it (``Explanation.outside``), as ``judge --explain`` computes it.

Run it where the model was trained (its training dataset in ./recordings):

    PYTHONPATH=/path/to/tapcheck python3 scripts/explain_unlike.py \\
        --model models/arcface-resnet18.pt --dataset demo --knocks ../shared/data/knocks
"""

from __future__ import annotations

import argparse
import collections
import warnings
from pathlib import Path

import numpy as np
import torch

from tapcheck.datasets import Dataset
from tapcheck.explain import UNLIKE_MARGIN_DB, UNLIKE_MIN_MS, UNLIKE_SHARE, Explainer
from tapcheck.features import load_clip
from tapcheck.judge import Judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", help="its test split's flagged takes, by label and group")
    parser.add_argument("--knocks", help="a folder of <material>/*.wav knock recordings")
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")  # the knocks' "resampled", "another knock": said by judge
    judge = Judge(args.model)
    explainer = Explainer(judge)
    clips: list[tuple[str, Path]] = []
    if args.dataset:
        ds = Dataset.open(args.dataset)
        clips += [(f"{t.label} {t.group}", ds.path_of(t)) for t in ds.select(split="test")]
    if args.knocks:
        clips += [(f"knock {p.parent.name}", p) for p in sorted(Path(args.knocks).glob("*/*.wav"))]
    shares: dict[str, list[float]] = collections.defaultdict(list)
    counts: collections.Counter = collections.Counter()
    untold: collections.Counter = collections.Counter()  # clips ending soon after the strike
    for group, path in clips:
        y = load_clip(path, audio=judge.config.audio, features=explainer.features)
        counts[group] += 1
        if judge.judge_array(y).anomalous:  # only a flagged clip is explained
            e = explainer.explain_array(y, path=str(path))
            if e.unlike is None:
                untold[group] += 1
            else:
                shares[group].append(e.outside)
    print(f"{args.model}: share of the sound after the strike over {UNLIKE_MARGIN_DB:.0f} dB "
          f"outside the nearest healthy taps' range; unlike at {UNLIKE_SHARE:.0%} or more")
    print(f"| clips | given | flagged (explained) | not told (under {UNLIKE_MIN_MS:.0f} ms after "
          "the strike) | "
          "min / median / max of the told | unlike |")
    print("| --- | --- | --- | --- | --- | --- |")
    for group in counts:
        got = np.array(shares[group])
        spread = (f"{got.min():.3f} / {np.median(got):.3f} / {got.max():.3f}"
                  if len(got) else "-")
        print(f"| {group} | {counts[group]} | {len(got) + untold[group]} | {untold[group]} | "
              f"{spread} | {int((got >= UNLIKE_SHARE).sum())} |")


if __name__ == "__main__":
    main()
