"""Why a clip was judged anomalous: where in its crop it differs from its nearest normal clips.

Counterfactual occlusion scored by the model itself. The clip's first crop is cut into a grid of
frequency bands x time windows; for each cell a copy of the crop gets that cell replaced by the
same cell of its nearest normal reference crops (the mean of the detector's k nearest), and all
copies go through the network in **one** batched forward pass. How much each replacement lowers
the kNN anomaly score is the deviation map; the connected cells that remove at least half of the
largest drop are the explained region. Replacing with normal content rather than zeros asks the
question a user asks ("what would have to look healthy for the verdict to be normal?") and does
not punish a cell just for being loud.

The region is then described by comparing the clip with those references inside it, in dB about
each tap's own mean level (the crops before standardising, which would scale a decay rate by the
crop's spread): faster or slower decay (slope of the band's level over time), a resonance at
another frequency, less or more energy, or one frequency ringing louder or quieter — "2.1-3.4 kHz
decays 3.0x faster than on healthy boards, 20-120 ms after the strike".

Grad-CAM on the last convolutional stage (the AdaCos source's choice) was not kept: its map is
7 x 8 cells for a 100 x 120 crop and it needs a float32 backward pass; occlusion answers in the
crop's own units (Hz, ms) at the resolution of the grid and needs only the fast inference copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .detectors import KNNDetector
from .errors import DatasetError, ParameterError, TapcheckError
from .explain_references import References, dataset_references, training_references
from .judge import Judge
from .models.base import represent_clips

#: a decay-rate ratio counts as "faster"/"slower" from this factor on
DECAY_FACTOR = 1.5
#: a region's mean level difference, dB, below which no "more" or "less energy" is claimed:
#: half or twice the power. (Claims once rested on 0.1 of a standardised crop's spread, about
#: 1 dB; the old floor, 0.25 of a spread, was about 3 dB at the demo's 10-12 dB spreads.)
ENERGY_MIN_DB = 3.0
#: one frequency's level difference, dB, from which a region whose mean level differs less is
#: said to ring louder or quieter there (4x the power; and at least TONE_MIN_SD times the
#: spread of that level among the healthy references): on the demo, 46 of 95 anomalous taps'
#: regions differed by under 3 dB on average but by 7-25 dB at one mode of the board
TONE_MIN_DB = 6.0
TONE_MIN_SD = 2.0
#: a decay is fitted over the frames after the strike whose level stands this far above the
#: band's floor, its lowest level in the crop after the strike (the frames before the strike are
#: no floor: the STFT's 23 ms window already holds the strike in the last of them): a band that
#: has died into the floor fits a flat line, and a tap that died fastest read as ringing longest.
#: 10 dB as room acoustics' decay fits (ISO 3382-1: the evaluated range ends at least 10 dB
#: above the background noise); at 6 dB one take read "rings 2.2x longer" off its floor's edge
FLOOR_MARGIN_DB = 10.0
#: decays are compared only between bands that start within this of each other: a band 19 dB
#: below the healthy ones at the strike, near its floor throughout, read "rings 1.7x longer"
DECAY_START_DB = 10.0
#: the fall a decay time is read over (T20, as room acoustics' decay times) and the least fall
#: left above both floors for a decay to be read at all
DECAY_FALL_DB = 20.0
DECAY_MIN_FALL_DB = 10.0
#: no tone is named below this: the strike's thump and the DC bin ("rings 10 dB louder at 0 Hz")
TONE_MIN_HZ = 100.0
#: a resonance is a maximum standing this far above its region's median level, in the clip and
#: in the references alike (a 1 dB bump was named "its resonance at 1249 Hz")
RESONANCE_MIN_DB = 3.0
#: cells whose score drop is at least this share of the largest belong to the region
REGION_SHARE = 0.5


@dataclass
class Explanation:
    """Where and how one clip differs from its nearest normal references.

    ``deviation`` has shape (n_bands, n_windows): the anomaly-score drop when that cell is
    replaced by normal content; ``crop`` and ``reference`` (bins, frames) are the clip's first
    crop and the mean of its nearest normal crops, in dB about each tap's mean power
    (:func:`tap_relative`), as the sentence reads them (:func:`describe_difference`);
    ``compared_with`` names those normal clips' files.
    """

    path: str
    sentence: str
    band_hz: tuple[float, float]
    time_ms: tuple[float, float]
    kind: str  # "faster-decay", "slower-decay", "shifted-resonance", "weaker", "stronger",
    # "quieter-at", "louder-at", "different"
    ratio: float | None  # decay rate of the clip over the references' (decay kinds)
    score: float
    relief: float  # share of the score removed by making the region look normal
    deviation: np.ndarray = field(repr=False)
    crop: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)
    band_edges_hz: np.ndarray = field(repr=False)  # (n_bands + 1,)
    window_edges_ms: np.ndarray = field(repr=False)  # (n_windows + 1,)
    compared_with: list[str] = field(default_factory=list)  # the nearest references' files
    picture: str | None = None  # the PNG, once saved
    decay_z: float | None = None  # knn-decay only: the decay's z-score against its neighbours'

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "band_hz": list(self.band_hz),
                "time_ms": list(self.time_ms), "kind": self.kind, "ratio": self.ratio,
                "relief": self.relief, "compared_with": self.compared_with,
                "picture": self.picture, "decay_z": self.decay_z}


class Explainer:
    """Explains a :class:`~tapcheck.judge.Judge`'s kNN scores.

    Parameters
    ----------
    judge : Judge
        A loaded kNN model (the study's ArcFace on ResNet18 is one).
    references : References, optional
        Normal clips to compare with, and their files. Default: the normal takes the model's
        reference embeddings were computed from, read from its training dataset in the
        recordings folder (:func:`training_references`).
    n_bands, n_windows : int
        The occlusion grid: 8 bands x 4 windows make a cell of 12-13 bins (~540 Hz) x 30 frames
        (87 ms) at the study's settings.
    """

    def __init__(self, judge: Judge, *, references: References | None = None,
                 n_bands: int = 8, n_windows: int = 4):
        if not isinstance(judge.model.detector, KNNDetector):  # knn, knn-ldn
            raise ParameterError(
                f"explanations need a kNN model; {judge.name} scores with '{judge.model.scorer}'",
                fix="explain a model trained with the knn scorer (e.g. arcface-resnet18)")
        f = judge.config.features
        if not (1 <= n_bands <= f.n_bins and 1 <= n_windows <= f.n_frames):
            raise ParameterError(f"n_bands must be in 1..{f.n_bins} and n_windows in "
                                 f"1..{f.n_frames}, not {n_bands} and {n_windows}")
        self.judge, self.detector, self.features = judge, judge.model.detector, f
        own = references is None
        if own:
            references = training_references(judge)
        if own and len(references) == len(self.detector.reference_):
            emb = self.detector.reference_  # the model's own references, in their order
        else:
            emb = represent_clips(judge.net, references.crops, "knn")
        self.reference_emb = torch.nn.functional.normalize(emb.float(), dim=1)
        self.references = references
        self.reference_clips = np.asarray(references.crops, dtype=np.float32)
        self.bin_edges = np.linspace(0, f.n_bins, n_bands + 1).round().astype(int)
        self.frame_edges = np.linspace(0, f.n_frames, n_windows + 1).round().astype(int)
        hz_per_bin = judge.config.audio.sr / f.n_fft
        ms_per_frame = 1000.0 * f.hop_length / judge.config.audio.sr
        self.band_edges_hz = (f.fmin_bin + self.bin_edges) * hz_per_bin
        self.window_edges_ms = (self.frame_edges - f.pre_frames) * ms_per_frame
        self.bins_hz = (f.fmin_bin + np.arange(f.n_bins)) * hz_per_bin
        self.frames_ms = (np.arange(f.n_frames) - f.pre_frames) * ms_per_frame

    def explain_array(self, y: np.ndarray, *, path: str = "<array>") -> Explanation:
        """Explain one clip, shape (n_samples,) at the model's sample rate (its crops computed
        as :meth:`Judge.judge_array` does)."""
        from .features import strike_crops

        return self.explain_db(strike_crops(y, sr=self.judge.config.audio.sr,
                                            features=self.features, path=path,
                                            standardized=False), path=path)

    def explain_db(self, db: np.ndarray, *, path: str = "<array>") -> Explanation:
        """Explain one clip's crops in dB, before standardising, shape (n_crops, bins, frames)
        (:func:`~tapcheck.features.strike_crops` with ``standardized=False``).

        A first pass embeds the clip's standardised crops, as the judge does, and finds its
        nearest normal references; then the first crop, patched with their content band by band
        (all frames) and window by window (all bins), goes through the network in one pass of
        n_bands + n_windows copies. The deviation map is the geometric mean of the two drop
        profiles, a band x window grid. The region is described in dB
        (:func:`describe_difference`): standardised crops would misstate a decay rate by the
        ratio of two crops' spreads.
        """
        from .features import standardize

        db = np.asarray(db, dtype=np.float32)
        crops = standardize(db)
        n_crops, n_bands = len(crops), len(self.bin_edges) - 1
        emb = represent_clips(self.judge.net, crops[:, None], "knn")  # (n_crops, D)
        clip = emb.mean(dim=0, keepdim=True)
        sim = torch.nn.functional.normalize(clip, dim=1) @ self.reference_emb.T
        k = min(getattr(self.detector, "k", 5), sim.shape[1])
        nearest = torch.topk(sim[0], k).indices.numpy()
        # the k nearest normal clips' first crops, averaged: what "healthy" looks like here
        reference = self.reference_clips[nearest, 0].mean(axis=0)
        variants = []
        for b0, b1 in zip(self.bin_edges[:-1], self.bin_edges[1:], strict=True):
            variants.append(_patched(crops[0], reference, np.s_[b0:b1, :]))
        for f0, f1 in zip(self.frame_edges[:-1], self.frame_edges[1:], strict=True):
            variants.append(_patched(crops[0], reference, np.s_[:, f0:f1]))
        occluded = represent_clips(self.judge.net, np.stack(variants)[:, None], "knn")
        reps = (occluded + emb[1:].sum(dim=0)) / n_crops  # the other crops stay as they are
        scores = self.detector.embedding_score(torch.cat([clip, reps]).numpy())
        drop = scores[0] - scores[1:]
        band_drop, window_drop = drop[:n_bands], drop[n_bands:]
        deviation = np.sqrt(np.outer(np.maximum(band_drop, 0), np.maximum(window_drop, 0)))
        clip_db = tap_relative(db[0])
        references_db = np.stack([tap_relative(self.references.db[i, 0]) for i in nearest])
        explanation = self._describe(clip_db, references_db, deviation, _run(band_drop),
                                     _run(window_drop), score=float(scores[0]), path=path)
        explanation.compared_with = [os.fspath(self.references.paths[i]) for i in nearest]
        if getattr(self.detector, "reads_decay", False):
            _add_decay(explanation, self.detector, clip.numpy(), crops)
        return explanation

    def explain_files(self, paths: Sequence[str | os.PathLike]) -> list[Explanation | None]:
        """Explain files (crops computed as :meth:`Judge.judge_files` does); None for a file
        whose crops cannot be computed (its verdict already carries the error)."""
        from .features import load_clip

        out: list[Explanation | None] = []
        for p in paths:
            try:
                y = load_clip(p, audio=self.judge.config.audio, features=self.features)
                out.append(self.explain_array(y, path=os.fspath(p)))
            except TapcheckError:
                out.append(None)
        return out

    def _describe(self, clip_db, references_db, deviation, bands, windows, *, score: float,
                  path: str) -> Explanation:
        (b0, b1), (w0, w1) = bands, windows
        region = np.s_[self.bin_edges[b0]:self.bin_edges[b1],
                       self.frame_edges[w0]:self.frame_edges[w1]]
        band_hz = (float(self.band_edges_hz[b0]), float(self.band_edges_hz[b1]))
        time_ms = (max(0.0, float(self.window_edges_ms[w0])), float(self.window_edges_ms[w1]))
        after = self.frames_ms >= 0  # the band's floor: its lowest level after the strike
        floor = None if not after.any() else (
            float(clip_db[region[0]][:, after].mean(axis=0).min()),
            float(references_db[:, region[0]][:, :, after].mean(axis=1).mean(axis=0).min()))
        kind, ratio, what = describe_difference(
            clip_db[region], references_db[:, region[0], region[1]],
            bins_hz=self.bins_hz[region[0]], frames_ms=self.frames_ms[region[1]], floor_db=floor)
        # "has its resonance at X Hz instead of Y Hz" compares by itself; the rest need "than"
        than = "" if kind == "shifted-resonance" else " than"
        sentence = (f"{band_hz[0] / 1000:.1f}-{band_hz[1] / 1000:.1f} kHz {what}{than} on healthy "
                    f"boards, {time_ms[0]:.0f}-{time_ms[1]:.0f} ms after the strike")
        relief = float(deviation[b0:b1, w0:w1].max()) / score if score > 0 else 0.0
        return Explanation(path=path, sentence=sentence, band_hz=band_hz, time_ms=time_ms,
                           kind=kind, ratio=ratio, score=score, relief=relief,
                           deviation=deviation, crop=clip_db,
                           reference=references_db.mean(axis=0),
                           band_edges_hz=self.band_edges_hz, window_edges_ms=self.window_edges_ms)


def _add_decay(explanation: Explanation, detector, embedding: np.ndarray,
               crops: np.ndarray) -> None:
    """For the knn-decay scorer: when the decay, not the network, gave the score, say so first
    (the occlusion map explains the network's part only)."""
    from .decay import crop_decay

    row = np.hstack([embedding, [[crop_decay(crops).mean()]]]).astype(np.float32)
    reading = {k: float(v[0]) for k, v in detector.decay_reading(row).items()}
    explanation.decay_z = reading["z"]
    if not reading["decides"]:
        return
    if reading["expected"] > 0:
        how = (f"dies away {reading['decay'] / reading['expected']:.1f}x faster than on the "
               "healthy boards that sound like it")
    else:  # the neighbours' modes ring through the whole crop: no rate to divide by
        how = "dies away inside the crop, while the healthy boards that sound like it ring on"
    explanation.sentence = (
        f"its ringing {how} ({reading['z']:.1f} times the spread of healthy taps); the network "
        "hears the most difference where " + explanation.sentence)


def tap_relative(db: np.ndarray) -> np.ndarray:
    """A crop in dB, shape (bins, frames), about the tap's mean power over the crop.

    A harder strike raises every level alike and cancels here, as in the study's standardising.
    The mean *power* is the strike and its first ringing; the crop's mean *level* in dB (what
    standardising subtracts) also counts the frames a tap has died into the floor, so a tap that
    dies fast read as louder everywhere, "carries 8 dB more" of a mode no louder than healthy.
    """
    db = np.asarray(db, dtype=np.float64)
    return db - _power_db(db)


def _power_db(db: np.ndarray, axis=None) -> np.ndarray:
    """The mean power of dB levels, in dB (over ``axis``)."""
    top = np.max(db, axis=axis, keepdims=True)
    mean = np.mean(10.0 ** ((db - top) / 10.0), axis=axis, keepdims=True)
    out = top + 10.0 * np.log10(mean)
    return out if axis is not None else float(out.ravel()[0])


def describe_difference(clip: np.ndarray, references: np.ndarray, *, bins_hz: np.ndarray,
                        frames_ms: np.ndarray, floor_db: tuple[float, float] | None = None
                        ) -> tuple[str, float | None, str]:
    """How a region of a crop differs from the same region of its nearest normal crops.

    Parameters
    ----------
    clip : np.ndarray, shape (n_bins, n_frames)
        The region of the clip's crop in dB about the tap's mean power (:func:`tap_relative`).
    references : np.ndarray, shape (k, n_bins, n_frames) or (n_bins, n_frames)
        The same region of the nearest normal crops, each alike.
    bins_hz : np.ndarray, shape (n_bins,)
    frames_ms : np.ndarray, shape (n_frames,)
        Time of each frame after the strike, ms (negative before it). Only the frames after
        the strike are compared (all of them if none is): the ones before hold background
        noise, up to 27 dB apart between the demo's taps.
    floor_db : (float, float), optional
        The region's band floor, the clip's and the references' mean (dB, as ``clip``; its
        lowest level in the crop after the strike): a decay time is read over a fall that
        ends :data:`FLOOR_MARGIN_DB` above both floors.

    Returns
    -------
    kind : str
        ``faster-decay``, ``slower-decay``, ``shifted-resonance``, ``weaker``, ``stronger``,
        ``quieter-at``, ``louder-at`` (one frequency) or ``different``.
    ratio : float or None
        The references' time to fall :data:`DECAY_FALL_DB` (or less, above their floors) over
        the clip's: its decay rate over theirs (decay kinds only).
    words : str
        The verb phrase of the sentence ("decays 3.0x faster", "carries 5 dB less of the
        tap's energy", "rings 12 dB quieter at 646 Hz").
    """
    refs = np.asarray(references, dtype=np.float64)
    refs = refs[None] if refs.ndim == 2 else refs
    after = frames_ms >= 0
    if after.any():
        clip, refs, t = clip[:, after], refs[:, :, after], frames_ms[after]
    else:
        t = frames_ms
    # decay: how long the band's mean level takes to fall the same number of dB from where the
    # region starts, the clip against the references (room acoustics' decay times, read off the
    # curve itself: a line fitted over a fast fall and a slow tail, or over different spans,
    # misread both ways: "2.5x faster" where the same frames gave 1.2x, a damped tap 1.3x)
    level_c, level_r = clip.mean(axis=0), refs.mean(axis=1).mean(axis=0)
    room = min(level_c[0] - (-np.inf if floor_db is None else floor_db[0] + FLOOR_MARGIN_DB),
               level_r[0] - (-np.inf if floor_db is None else floor_db[1] + FLOOR_MARGIN_DB))
    fall = min(DECAY_FALL_DB, room)
    if fall >= DECAY_MIN_FALL_DB and abs(level_c[0] - level_r[0]) <= DECAY_START_DB:
        time_c, time_r = _fall_time(t, level_c, fall), _fall_time(t, level_r, fall)
        span = float(t[-1] - t[0])  # one that never falls that far takes longer than this
        if time_c is not None and time_c > 0:
            ratio = float((span if time_r is None else time_r) / time_c)
            least = "at least " if time_r is None else ""
            if ratio >= DECAY_FACTOR:
                return "faster-decay", ratio, f"decays {least}{ratio:.1f}x faster"
        if time_r is not None and time_r > 0:
            ratio = float(time_r / (span if time_c is None else time_c))
            least = "at least " if time_c is None else ""
            if ratio <= 1.0 / DECAY_FACTOR:
                return "slower-decay", ratio, f"rings {least}{1.0 / ratio:.1f}x longer"
    # each frequency's energy after the strike, against the tap's (dB)
    spec_c = _power_db(clip, axis=1)[:, 0]
    specs_r = _power_db(refs, axis=2)[:, :, 0]  # (k, n_bins)
    spec_r = specs_r.mean(axis=0)
    peak_c, peak_r = int(np.argmax(spec_c)), int(np.argmax(spec_r))
    last = len(bins_hz) - 1
    # a maximum at the region's edge is no resonance: the strike's thump at 0 Hz, or the
    # crop's top bin, were named as one ("its resonance at 0 Hz instead of 689 Hz")
    if abs(peak_c - peak_r) >= 2 and len(bins_hz) > 2 and 0 < peak_c < last \
            and 0 < peak_r < last \
            and spec_c[peak_c] - np.median(spec_c) >= RESONANCE_MIN_DB \
            and spec_r[peak_r] - np.median(spec_r) >= RESONANCE_MIN_DB:
        return ("shifted-resonance", None,
                f"has its resonance at {bins_hz[peak_c]:.0f} Hz instead of "
                f"{bins_hz[peak_r]:.0f} Hz")
    # the region's share of the tap's energy, the clip's against the references' mean
    diff = _power_db(clip) - float(np.mean([_power_db(r) for r in refs]))
    if abs(diff) >= ENERGY_MIN_DB:
        return ("weaker" if diff < 0 else "stronger", None,
                f"carries {abs(diff):.0f} dB {'less' if diff < 0 else 'more'} of the tap's "
                "energy")
    tone = spec_c - spec_r  # (n_bins,)
    telling = ((np.abs(tone) >= TONE_MIN_DB) & (np.abs(tone) >= TONE_MIN_SD * specs_r.std(axis=0))
               & (bins_hz >= TONE_MIN_HZ))
    if telling.any():
        i = int(np.argmax(np.where(telling, np.abs(tone), 0.0)))
        louder = tone[i] > 0
        return ("louder-at" if louder else "quieter-at", None,
                f"rings {abs(tone[i]):.0f} dB {'louder' if louder else 'quieter'} at "
                f"{bins_hz[i]:.0f} Hz")
    return "different", None, "sounds different"


def _fall_time(t: np.ndarray, level: np.ndarray, fall_db: float) -> float | None:
    """Time (as ``t``) from ``t[0]`` until ``level`` first lies ``fall_db`` below ``level[0]``,
    interpolated between frames; None if it never does."""
    below = np.flatnonzero(level <= level[0] - fall_db)
    if not len(below):
        return None
    i = int(below[0])  # >= 1: level[0] itself is not below
    frac = (level[i - 1] - (level[0] - fall_db)) / (level[i - 1] - level[i])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]) - t[0])


def _patched(crop: np.ndarray, reference: np.ndarray, where) -> np.ndarray:
    out = crop.copy()
    out[where] = reference[where]
    return out


def _run(drop: np.ndarray) -> tuple[int, int]:
    """The run of neighbouring cells (start, end exclusive) around the largest score drop that
    each remove at least :data:`REGION_SHARE` of it."""
    best = int(np.argmax(drop))
    keep = drop >= REGION_SHARE * drop[best] if drop[best] > 0 else drop >= drop[best]
    lo, hi = best, best + 1
    while lo > 0 and keep[lo - 1]:
        lo -= 1
    while hi < len(drop) and keep[hi]:
        hi += 1
    return lo, hi


def explain_verdicts(judge: Judge, verdicts, *,
                     references: str | os.PathLike | References | None = None,
                     picture_dir: str | os.PathLike | None = None
                     ) -> tuple[dict[int, Explanation], list[str]]:
    """Explanations of the anomalous verdicts of :meth:`Judge.judge_files`, by index, and
    warning lines (reference takes left out, see :func:`dataset_references`; the model's own
    training dataset gone or changed, when no ``references`` are given: then no explanations).

    ``references``: a dataset to compare with, or its :class:`References` read already
    (``judge --references`` reads them before judging, so a bad one fails with no verdict
    printed whatever the clips). The model's own references are read only when a verdict is
    anomalous: nothing else needs them. With ``picture_dir``, also a PNG per explained clip
    (:func:`tapcheck.pictures.save_pictures`).
    """
    wanted = [i for i, v in enumerate(verdicts) if v.anomalous]
    if not wanted:
        return {}, []
    if references is None or isinstance(references, References):
        named, warned = references, []
    else:
        named, warned = dataset_references(references, judge)
    try:
        explainer = Explainer(judge, references=named)
    except DatasetError as e:
        if references is not None:  # only the model's own references are looked up here
            raise
        # The model's training dataset moved or changed: the verdicts stand without it (an
        # explanation only says why), so it is one warning, not an error that swallows them.
        # It is looked for here, when the first anomalous clip needs it, not before judging:
        # a run whose clips are all normal needs no references and should hear nothing about
        # them; and one Explainer per run makes it one warning however many clips it leaves.
        return {}, warned + [f"{e.path}: {e.problem}, so {len(wanted)} anomalous clip(s) "
                             f"are judged but not explained — {e.fix}"]
    import warnings

    from .errors import TapcheckWarning

    with warnings.catch_warnings():
        # the clips' verdicts said them already: `--explain` printed each one twice. Here, in
        # judge's one thread: the filter is the process's (station's listener runs beside its
        # explainer and keeps its warnings)
        warnings.simplefilter("ignore", TapcheckWarning)
        found = explainer.explain_files([verdicts[i].path for i in wanted])
    out = {i: e for i, e in zip(wanted, found, strict=True) if e is not None}
    if picture_dir is not None:
        from .errors import StorageError
        from .pictures import save_pictures

        try:
            save_pictures(list(out.values()), picture_dir)
        except StorageError as e:  # a full disk: the verdicts stand (it lost every one)
            warned.append(f"{e}; the verdicts and explanations stand, without those pictures")
    return out, warned
