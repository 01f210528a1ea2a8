"""Regenerate docs/results/decay-<dataset>.md: are a synthetic set's cracks audible in the
taps, and does the network hear what makes them audible?

Usage (from the checkout, with the datasets and the model files of docs/new-boards.md):

    PYTHONPATH=$PWD python3 scripts/decay_probe.py --dataset plant models/plant-lite-cf-s0.pt ...
    PYTHONPATH=$PWD python3 scripts/decay_probe.py --dataset demo --preset study \
        models/r18-cf-s0.pt ...

Three views of each defective test board of a ``tapcheck synth`` preset:

- **physics**: the rig's own modes of the board with and without its crack
  (:func:`tapcheck.plate.plate_modes`, modes below the crop's 4.3 kHz): how far the crack moves
  the modal frequencies and how much damping (loss factor) its friction adds;
- **a damping estimate** read off each take, no learning: per frequency bin of the dB power
  spectrogram (the study's n_fft 1024, hop 128) that rings 25 dB above its own median, the
  slope of its decay over 30 frames (87 ms) after its peak, as a loss factor
  ``eta = sigma / (pi f)`` with ``sigma = -slope / (10 log10 e^2)``; a take's estimate is the
  median over its ringing bins. Crack friction raises it; near the crack the faces' clatter and
  the longer contact blur it;
- **the network**: the model files' kNN scores against the training takes it trained on, as a
  hold-out calibration of the same network scores them (embeddings cached by
  ``new_boards.py``).

Each score flags 5 % of the unseen healthy boards' taps (normal test boards not in the training
split, both ends) at its threshold; the table gives the share of each defective board's taps it
flags, struck far from the crack (``left``) and near it (``right``). No defect label sets a
threshold. Last, the network and the damping estimate together (the larger of their robust
z-scores), to see whether the estimate adds what the network misses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from new_boards import embeddings, holdout_detectors  # noqa: E402

from tapcheck.audio import load  # noqa: E402
from tapcheck.config import AudioConfig  # noqa: E402
from tapcheck.datasets import Dataset  # noqa: E402
from tapcheck.judge import Judge  # noqa: E402
from tapcheck.metrics import auc  # noqa: E402
from tapcheck.plant import plant_boards  # noqa: E402
from tapcheck.plate import plate_modes  # noqa: E402
from tapcheck.scorers import _robust_location_scale  # noqa: E402
from tapcheck.synth import study_boards  # noqa: E402
from tapcheck.spectrogram import power_spectrogram, power_to_db  # noqa: E402

FAR = 0.05  # share of unseen healthy taps each score flags
FMAX_HZ = 4300.0  # the crop's top: 100 bins of 43 Hz (configs/default.toml)


def damping_estimate(y: np.ndarray, *, sr: int, n_fft: int = 1024, hop_length: int = 128,
                     ring_db: float = 25.0, fit_frames: int = 30, n_bins: int = 100) -> float:
    """Median loss factor of a take's ringing bins, read off its decay (see the module doc).

    A mode of loss factor ``eta`` at ``f`` Hz decays at ``sigma = pi f eta`` per second
    (Cremer & Heckl, *Structure-Borne Sound*, on damping; :mod:`tapcheck.synth` rings its modes
    so), which a dB power spectrogram shows as a slope of ``-10 log10(e^2) sigma`` dB/s.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        One take, mono.
    sr : int
        Its sample rate, Hz.
    n_fft, hop_length : int
        The spectrogram's frame and hop, samples (the study's 1024 and 128).
    n_bins : int
        Bins read, from 0 (the crop's 100: 0-4.3 kHz at 44.1 kHz).
    ring_db : float
        A bin rings if its peak stands this far above its own median level.
    fit_frames : int
        Frames after a bin's peak its decay slope is fitted over.

    Returns
    -------
    float
        ``nan`` when no bin rings.
    """
    S = power_to_db(power_spectrogram(y, n_fft=n_fft, hop_length=hop_length), top_db=None)
    S = S[:n_bins]
    strike = int(np.argmax(S.max(axis=0)))
    t = np.arange(fit_frames) * hop_length / sr
    etas = []
    for b in range(3, n_bins):  # below 130 Hz: hum, not the board
        row = S[b, strike + 2:strike + 60]
        if S[b].max() < np.median(S[b]) + ring_db or row.max() < S[b].max() - 3:
            continue
        seg = row[int(np.argmax(row)):][:fit_frames]
        if len(seg) < 10:
            continue
        sigma = -np.polyfit(t[:len(seg)], seg, 1)[0] / (10 * np.log10(np.e ** 2))
        etas.append(sigma / (np.pi * b * sr / n_fft))
    return float(np.median(etas)) if etas else float("nan")


PRESETS = {"plant": plant_boards, "study": study_boards}


def crack_physics(*, preset: str, seed: int) -> dict[int, dict]:
    """Per defective board: the largest shift of a mode's frequency and the median added loss
    factor, in % of the same board without its crack, over modes below the crop's top."""
    out = {}
    for spec in PRESETS[preset](seed=seed):
        if spec.label != "defect":
            continue
        cracked = plate_modes(spec.board, fmax_hz=FMAX_HZ)
        sound = plate_modes(dataclasses.replace(spec.board, defect=None), fmax_hz=FMAX_HZ)
        n = min(len(cracked.freqs_hz), len(sound.freqs_hz))
        shift = 100 * (cracked.freqs_hz[:n] / sound.freqs_hz[:n] - 1)
        damping = 100 * (cracked.loss_factors[:n] / sound.loss_factors[:n] - 1)
        out[spec.number] = {"max_shift_pct": float(np.abs(shift).max()),
                            "median_damping_pct": float(np.median(damping))}
    return out


def flagged(scores: np.ndarray, takes, *, reference: np.ndarray) -> tuple[dict[str, float], float]:
    """At the score that flags ``FAR`` of the ``reference`` (unseen healthy) taps: the share of
    each defect board's taps per side (``"board|side"``) above it, and of all defective taps."""
    threshold = np.quantile(scores[reference], 1 - FAR)
    out: dict[str, list] = {}
    for s, t in zip(scores, takes, strict=True):
        if t.label == "defect":
            out.setdefault(f"{t.board}|{t.side}", []).append(s > threshold)
    every = [hit for hits in out.values() for hit in hits]
    return {k: float(np.mean(v)) for k, v in out.items()}, float(np.mean(every))


def robust_z(x: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """``x`` in robust standard units of ``normal`` (median, MAD scaled to a normal's sd)."""
    location, scale = _robust_location_scale(normal)  # the knn-decay scorer's own
    return (x - location) / scale


def measure(ds: Dataset, models: list[Path], *, preset: str, seed: int) -> dict:
    test = ds.select(split="test")
    train = [t for t in ds.select(split="train") if t.label == "normal"]

    def damping_of(takes) -> np.ndarray:
        sr = AudioConfig().sr  # the takes' own rate: the synth writes 44.1 kHz
        d = np.array([damping_estimate(load(ds.root / t.path, sr=sr), sr=sr) for t in takes])
        return np.nan_to_num(d, nan=0.0)  # no ringing bin: nothing to flag

    damping = damping_of(test)
    z_damping = robust_z(damping, damping_of(train))  # normal training takes set the scale
    # the unseen healthy boards: normal test boards the training split does not hold
    known = {t.board for t in train}
    reference = np.array([t.label == "normal" and t.board not in known for t in test])
    defect = np.array([t.label == "defect" for t in test])
    networks = []
    for m in models:
        emb = embeddings(m, ds)
        # the network's own hold-out calibration: kNN against the training takes it trained on,
        # its held-out takes' scores as the normal scale (a cross-fit model file's calibration
        # scores come from its fold networks, on another scale)
        _, detector = holdout_detectors(Judge(m).model.checkpoint, emb, train)
        s = detector.anomaly_score(emb["test"])
        # log scale: kNN distances are skewed
        z = robust_z(np.log(s), np.log(detector.calibration_scores_))
        both = np.maximum(z, z_damping)
        found, recall = flagged(s, test, reference=reference)
        max_found, max_recall = flagged(both, test, reference=reference)
        networks.append({"model": m.name, "auc": auc(defect, s), "found": found,
                         "recall": recall, "max_auc": auc(defect, both),
                         "max_found": max_found, "max_recall": max_recall})
    physics = crack_physics(preset=preset, seed=seed)
    groups = {int(t.board): t.group for t in test if t.label == "defect"}
    return {"physics": {str(b): {"group": g, **physics[b]} for b, g in sorted(groups.items())},
            "damping": {"found": flagged(damping, test, reference=reference)[0],
                        "auc": auc(defect, damping)},
            "network": networks}


def render(result: dict, *, command: str) -> str:
    net = result["network"]
    physics = result["physics"]
    boards = sorted(physics, key=lambda b: physics[b]["median_damping_pct"])

    def cell(found: list[dict], board: str, side: str) -> str:
        v = [f[f"{board}|{side}"] for f in found if f"{board}|{side}" in f]
        if not v:
            return "-"
        return f"{100 * np.mean(v):.0f} %" + (f" ± {100 * np.std(v, ddof=1):.0f}"
                                              if len(v) > 1 else "")

    def mean_sd(values: list[float], *, pct: bool = False) -> str:
        k = 100 if pct else 1
        sd = f" ± {k * np.std(values, ddof=1):.{0 if pct else 3}f}" if len(values) > 1 else ""
        return f"{k * np.mean(values):.{0 if pct else 3}f}{' %' if pct else ''}{sd}"

    damp = [result["damping"]["found"]]
    lines = [
        "# Cracks: what the taps carry, what the network hears",
        "",
        f"Regenerate: `{command}`",
        "",
        f"Taps of each defective test board flagged at the score that flags {100 * FAR:.0f} % of "
        "the unseen healthy boards' taps; far = struck at the end away from the crack (left), "
        "near = at its end (right). Damping estimate: no learning, one number per take "
        "(scripts/decay_probe.py). Network: the model files' networks, kNN score against the "
        "training takes they trained on, mean ± sd over "
        f"{len(net)} model file(s) ({', '.join(n['model'] for n in net)}). Physics: the rig's "
        "modes below 4.3 kHz with and without the crack.",
        "",
        "| board | defect | crack moves a mode by at most | crack adds damping, median over "
        "modes | far taps found: damping estimate | far: network | near taps found: damping "
        "estimate | near: network |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b in boards:
        p = physics[b]
        lines.append(
            f"| {b} | {p['group']} | {p['max_shift_pct']:.2f} % | +{p['median_damping_pct']:.0f} % "
            f"| {cell(damp, b, 'left')} | {cell([n['found'] for n in net], b, 'left')} "
            f"| {cell(damp, b, 'right')} | {cell([n['found'] for n in net], b, 'right')} |")
    lines += [
        "",
        f"AUC over every test tap: damping estimate {result['damping']['auc']:.3f}; network "
        f"{mean_sd([n['auc'] for n in net])}.",
        "",
        "The two together, as the larger of their robust z-scores (network: log kNN score scaled "
        "by its held-out training takes' scores; damping: scaled by the normal training takes):",
        "",
        "| score | AUC | defective taps found at 5 % of unseen healthy taps |",
        "| --- | --- | --- |",
        f"| network | {mean_sd([n['auc'] for n in net])} "
        f"| {mean_sd([n['recall'] for n in net], pct=True)} |",
        f"| max(network, damping) | {mean_sd([n['max_auc'] for n in net])} "
        f"| {mean_sd([n['max_recall'] for n in net], pct=True)} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--dataset", default="plant")
    p.add_argument("--preset", choices=sorted(PRESETS), default="plant",
                   help="the synth preset the dataset was made with")
    p.add_argument("--seed", type=int, default=0, help="the seed the dataset was made with")
    p.add_argument("--out", type=Path, help="default: docs/results/decay-<dataset>")
    a = p.parse_args()
    out = a.out or Path(f"docs/results/decay-{a.dataset}")
    ds = Dataset.open(a.dataset)
    result = measure(ds, a.models, preset=a.preset, seed=a.seed)
    command = ("PYTHONPATH=$PWD python3 scripts/decay_probe.py --dataset "
               f"{a.dataset} --preset {a.preset} " + (f"--seed {a.seed} " if a.seed else "")
               + (f"--out {a.out} " if a.out else "") + " ".join(map(str, a.models)))
    out.with_suffix(".json").write_text(json.dumps({"command": command, **result}, indent=1))
    out.with_suffix(".md").write_text(render(result, command=command))
    print(render(result, command=command))


if __name__ == "__main__":
    main()
