"""Occlusion against Grad-CAM: which one names the band where the rig's defect changed modes?

For taps of the synthetic rig's defective boards (5-8) that a model judges anomalous, both
methods name a band: the occlusion explainer of :mod:`tapcheck.explain`, and Grad-CAM on the
backbone's last convolutional stage (ResNet18 ``layer4``), computed on the float32 module with the
kNN anomaly score (1 - cosine to the k-th nearest normal reference) as the target, its map
upsampled to the crop and its band the run of rows around the peak holding >= half of it. A band
"hits" when it holds a mode the defect changed (loss factor x3 or frequency moved >= 1 %, from
:func:`tapcheck.synth.plate_modes` with and without the defect). A random band of the same width
is the baseline (expected hit rate, averaged over all positions).

    PYTHONPATH=$PWD python3 -m tests.explain_compare --model models/arcface-resnet18.pt

The second check is the rig's counterfactual (tests/test_explain.py): the same take without the
defect, and the 2 of 8 bands where the crops differ most while ringing, 0-100 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from tapcheck.explain import Explainer, _run
from tapcheck.features import strike_crops
from tapcheck.judge import Judge
from tapcheck.modelfile import load_model
from tapcheck.synth import plate_modes, study_boards, synthesize_tap, take_rng

from .test_explain import counterfactual_bands, overlaps


def changed_mode_freqs(board) -> np.ndarray:
    cracked, sound = plate_modes(board), plate_modes(dataclasses.replace(board, defect=None))
    n = min(len(cracked.freqs_hz), len(sound.freqs_hz))
    changed = ((cracked.loss_factors[:n] / sound.loss_factors[:n] >= 3.0)
               | (np.abs(cracked.freqs_hz[:n] / sound.freqs_hz[:n] - 1.0) >= 0.01))
    return np.concatenate([cracked.freqs_hz[:n][changed], sound.freqs_hz[:n][changed]])


def gradcam_band(model, crops: np.ndarray, bins_hz: np.ndarray) -> tuple[float, float]:
    """Grad-CAM of the kNN score on layer4 of a float32 model, as a band in Hz."""
    module = model.module.eval()
    acts = {}
    hook = module.backbone.layer4.register_forward_hook(lambda m, i, o: acts.update(a=o))
    x = torch.as_tensor(crops[:, None], dtype=torch.float32)
    emb = torch.nn.functional.normalize(module(x).float(), dim=1).mean(dim=0, keepdim=True)
    ref = model.detector.reference_
    sim = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(ref, dim=1).T
    k = min(model.detector.k, sim.shape[1])
    score = 1.0 - torch.topk(sim[0], k).values[-1]
    (grad,) = torch.autograd.grad(score, acts["a"])
    hook.remove()
    a, g = acts["a"][0].detach(), grad[0]
    cam = torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(dim=0))
    cam = torch.nn.functional.interpolate(cam[None, None], size=crops.shape[1:],
                                          mode="bilinear", align_corners=False)[0, 0]
    lo, hi = _run(cam.mean(dim=1).numpy())
    step = bins_hz[1] - bins_hz[0]
    return float(bins_hz[lo]), float(bins_hz[hi - 1] + step)


def random_hit_rate(width: float, freqs: np.ndarray, top_hz: float) -> float:
    starts = np.linspace(0.0, max(top_hz - width, 0.0), 200)
    return float(np.mean([np.any((freqs >= s) & (freqs <= s + width)) for s in starts]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--takes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    judge = Judge(args.model)  # converts its own copy to the fast bf16 inference form
    float_model = load_model(args.model)  # Grad-CAM needs gradients: float32, as trained
    explainer = Explainer(judge)
    top_hz = float(explainer.band_edges_hz[-1])
    boards = {b.number: b for b in study_boards(seed=args.seed)}
    tally = {"occlusion": [], "grad-cam": [], "random (occlusion's widths)": [],
             "random (grad-cam's widths)": []}
    widths = {"occlusion": [], "grad-cam": []}
    truth_hits = {name: [] for name in tally}
    for number, side in ((5, "left"), (6, "right"), (7, "left"), (8, "right")):
        freqs = changed_mode_freqs(boards[number].board)
        for k in range(40, 40 + args.takes):
            y = synthesize_tap(boards[number].board, side,
                               rng=take_rng(args.seed, number, side, k))
            crops = strike_crops(y)
            if not judge.judge_crops(crops).anomalous:
                continue
            bands = {"occlusion": explainer.explain_array(y).band_hz,
                     "grad-cam": gradcam_band(float_model, crops, explainer.bins_hz)}
            truth = counterfactual_bands(boards[number].board, side,
                                         (args.seed, number, side, k), explainer)
            for name, (lo, hi) in bands.items():
                tally[name].append(bool(np.any((freqs >= lo) & (freqs <= hi))))
                tally[f"random ({name}'s widths)"].append(random_hit_rate(hi - lo, freqs, top_hz))
                widths[name].append(hi - lo)
                truth_hits[name].append(overlaps(lo, hi, truth))
                starts = np.linspace(0.0, top_hz - (hi - lo), 200)
                truth_hits[f"random ({name}'s widths)"].append(np.mean(
                    [overlaps(s0, s0 + hi - lo, truth) for s0 in starts]))
    print(f"model {args.model}: {len(tally['occlusion'])} anomalous taps of boards 5-8")
    print("band holds a mode the defect changed (mode tables) | band overlaps the 2 of 8 bands "
          "where the same take without the defect differs most (first 100 ms)")
    for name, hits in tally.items():
        print(f"{name:30s} {np.mean(hits):.2f} | {np.mean(truth_hits[name]):.2f}")
    for name, w in widths.items():
        print(f"{name:30s} band width median {np.median(w):.0f} Hz")


if __name__ == "__main__":
    main()
