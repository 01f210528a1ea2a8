"""How faithful an explanation's "decays Nx faster" is: each anomalous test tap's decay ratio, as
``tapcheck.explain`` reads it (the band's energy decay curve, since 2026-12-05) and as it was read
before (the band's mean dB level, frame by frame), against the rig's own ringing without its
noise and hum (``synthesize_tap(..., noise=False)``, every other draw the same).

The truth of a band is the time its noise-free energy decay curve, integrated over the whole
1.5 s of ringing, takes to fall 20 dB from the tap's peak at the region's start; a ratio is the
references' (geometric mean over the clip's nearest healthy takes, the ones the sentence was
compared with) over the clip's. Only a synthetic dataset of the study's boards has such a truth:
each take is synthesised again and must match its WAV file to the last bit of 16.

    PYTHONPATH=/path/to/tapcheck python3 scripts/explain_decay_truth.py \
        --model models/arcface-resnet18.pt --dataset demo

Run it where the model was trained (the demo's folder, after ``tapcheck demo``).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings

import numpy as np
import torch

from tapcheck.datasets import Dataset
from tapcheck.explain import Explainer
from tapcheck.explain_difference import (DECAY_FALL_DB, DECAY_MIN_FALL_DB, DECAY_START_DB,
                                         FLOOR_MARGIN_DB, PEAK_FRAMES, _fall_time,
                                         measure_difference, tap_relative)
from tapcheck.features import load_clip, strike_crops
from tapcheck.judge import Judge
from tapcheck.spectrogram import power_spectrogram
from tapcheck.synth import study_boards, synthesize_tap, take_rng


def mean_db_decay(clip: np.ndarray, refs: np.ndarray, t: np.ndarray,
                  floor_db: tuple[float, float]) -> float | None:
    """The reading before 2026-12-05 (its bounds left out): the band's mean dB over bins, the
    references' curves averaged in dB, each timed from its own peak to the first frame 20 dB
    (or as far as both stay 10 dB above their lowest frame) below it."""
    level_c, level_r = clip.mean(axis=0), refs.mean(axis=1).mean(axis=0)
    s_c, s_r = (int(np.argmax(x[:PEAK_FRAMES])) for x in (level_c, level_r))
    level_c, t_c, level_r, t_r = level_c[s_c:], t[s_c:], level_r[s_r:], t[s_r:]
    fall = min(DECAY_FALL_DB, level_c[0] - floor_db[0] - FLOOR_MARGIN_DB,
               level_r[0] - floor_db[1] - FLOOR_MARGIN_DB)
    if fall < DECAY_MIN_FALL_DB or abs(level_c[0] - level_r[0]) > DECAY_START_DB:
        return None
    times = [_fall_time(tt, x, fall) for tt, x in ((t_c, level_c), (t_r, level_r))]
    return None if None in times or min(times) <= 0 else times[1] / times[0]


class Rig:
    """The noise-free power spectrogram of each take, from its crop's first frame on."""

    def __init__(self, dataset: Dataset, judge: Judge, seed: int):
        self.dataset, self.config = dataset, judge.config
        self.boards = {b.number: b.board for b in study_boards(seed=seed)}
        self.seed = seed
        self.takes = {os.path.realpath(dataset.path_of(t)): t for t in dataset.takes}
        self.done: dict[str, np.ndarray] = {}

    def clean_power(self, path: str) -> np.ndarray:
        key = os.path.realpath(path)
        if key not in self.done:  # a healthy take is the nearest of many clips: made once
            self.done[key] = self._clean_power(path)
        return self.done[key]

    def _clean_power(self, path: str) -> np.ndarray:
        take = self.takes[os.path.realpath(path)]
        f, sr = self.config.features, self.config.audio.sr
        rng = (lambda: take_rng(self.seed, take.board, take.side, take.take))
        board = self.boards[take.board]
        noisy = synthesize_tap(board, take.side, rng=rng(), sr=sr)
        stored = load_clip(path, audio=self.config.audio, features=f)
        if np.abs(np.round(np.clip(noisy, -1, 1) * 32767) / 32767 - stored).max() > 1.5 / 32767:
            sys.exit(f"{path}: not the take the rig makes with --synth-seed {self.seed}; give "
                     "the seed the dataset was synthesised with")
        _, onset = strike_crops(stored, sr=sr, features=f, return_onset=True)
        clean = synthesize_tap(board, take.side, rng=rng(), sr=sr, noise=False)
        power = power_spectrogram(clean, n_fft=f.n_fft, hop_length=f.hop_length)
        return power[f.fmin_bin:f.fmin_bin + f.n_bins, onset - f.pre_frames:]


def true_time(power: np.ndarray, bins: slice, start: int, frame_ms: float) -> float:
    """The noise-free band's energy decay: ms to fall 20 dB from its peak at ``start`` (frames
    after the strike)."""
    p = power[bins].mean(axis=0)
    s = start + int(np.argmax(p[start:start + PEAK_FRAMES]))
    edc = np.cumsum(p[::-1])[::-1][s:]
    curve = 10.0 * np.log10(edc / edc[0])
    return _fall_time(np.arange(len(curve)) * frame_ms, curve, DECAY_FALL_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="its anomalous test taps are explained")
    parser.add_argument("--synth-seed", type=int, default=0,
                        help="the seed the dataset was synthesised with (demo: 0)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    judge = Judge(args.model)
    ex = Explainer(judge)
    ds = Dataset.open(args.dataset)
    rig = Rig(ds, judge, args.synth_seed)
    index = {os.path.realpath(p): i for i, p in enumerate(ex.references.paths)}
    f = judge.config.features
    frame_ms = f.hop_length / judge.config.audio.sr * 1000.0
    after = ex.frames_ms >= 0
    rows, kinds = [], collections.Counter()
    for take in ds.select(split="test"):
        path = os.fspath(ds.path_of(take))
        if not judge.judge_files([path])[0].anomalous:
            continue
        y = load_clip(path, audio=judge.config.audio, features=f)
        e = ex.explain_array(y, path=path)
        kinds[e.kind] += 1
        b0, b1 = np.searchsorted(ex.band_edges_hz, e.band_hz)
        w1 = int(np.searchsorted(ex.window_edges_ms, e.time_ms[1]))
        w0 = 0 if e.time_ms[0] == 0 else int(np.searchsorted(ex.window_edges_ms, e.time_ms[0]))
        bins = slice(ex.bin_edges[b0], ex.bin_edges[b1])
        window = slice(ex.frame_edges[w0], ex.frame_edges[w1])
        clip = tap_relative(strike_crops(y, sr=judge.config.audio.sr, features=f,
                                         standardized=False)[0])
        refs = ex._relative()[[index[os.path.realpath(p)] for p in e.compared_with]]
        now = measure_difference(clip[bins], refs[:, bins], bins_hz=ex.bins_hz[bins],
                                 frames_ms=ex.frames_ms, window=window)
        region = np.zeros(len(after), dtype=bool)
        region[window] = True
        region &= after
        floor = (float(clip[bins][:, after].mean(axis=0).min()),
                 float(refs[:, bins][:, :, after].mean(axis=1).mean(axis=0).min()))
        before = mean_db_decay(clip[bins][:, region], refs[:, bins][:, :, region],
                               ex.frames_ms[region], floor)
        start = int(np.flatnonzero(region[after])[0])
        pre = int((~after).sum())
        truth_c = true_time(rig.clean_power(path)[:, pre:], bins, start, frame_ms)
        truth_r = [true_time(rig.clean_power(p)[:, pre:], bins, start, frame_ms)
                   for p in e.compared_with]
        truth = float(np.exp(np.mean(np.log(truth_r)))) / truth_c
        rows.append(dict(board=take.board, kind=e.kind, sentence=e.sentence, truth=truth,
                         now=None if now.decay_least else now.decay, before=before))
    print(f"anomalous test taps explained: {sum(kinds.values())}: {dict(kinds.most_common())}")
    for name in ("before", "now"):
        read = [r for r in rows if r[name] is not None]
        err = np.log([r[name] / r["truth"] for r in read])
        truth = np.array([r["truth"] for r in read])
        clear = np.abs(np.log(truth)) >= np.log(1.2)
        right = np.sign(np.log([r[name] for r in read])) == np.sign(np.log(truth))
        print(f"{name:6s} (mean dB level)" if name == "before" else
              f"{name:6s} (energy decay)  ", f"decays read {len(read)}; off the truth by a "
              f"median factor {np.exp(np.median(np.abs(err))):.2f}, within 1.25x "
              f"{np.mean(np.abs(err) <= np.log(1.25)):.0%}, median bias "
              f"{np.exp(np.median(err)):.2f}, the right way {right[clear].sum()} of "
              f"{clear.sum()} (truth 1.2x apart or more)")
    both = [r for r in rows if r["before"] is not None and r["now"] is not None]
    if both:  # the same regions: each reading read a different set
        off = {name: np.exp(np.median(np.abs(np.log([r[name] / r["truth"] for r in both]))))
               for name in ("before", "now")}
        print(f"the {len(both)} decays both read: off the truth by a median factor "
              f"{off['before']:.2f} before, {off['now']:.2f} now")
    claims = [r for r in rows if r["kind"] in ("faster-decay", "slower-decay")]
    print(f"decay sentences: {len(claims)}")
    for r in claims:
        print(f"  board {r['board']}: {r['sentence'].split(' than ')[0]}; truth "
              f"{r['truth']:.2f}x")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
