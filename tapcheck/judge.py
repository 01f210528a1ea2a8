"""Judging clips with a trained model: verdict, anomaly score, threshold.

:class:`Judge` loads a model file once and then judges arrays or files: crops computed with the
**model's own** feature settings, one batched forward pass, the detector's threshold. A file that
cannot be judged yields a :class:`Verdict` carrying its error; the others are still judged.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .config import Config
from .errors import FormatWarning, ModelFileError, ParameterError, TapcheckError
from .featurecache import FeatureCache
from .features import (MAX_RISE_DB, RISE_MARGIN_DB, crop_digest, load_clip, strike_crops,
                       tap_onsets_s, taps_warning)
from .strikes import clip_levels, strike_rise_db
from .modelfile import LoadedModel, load_model
from .models.base import represent_clips
from .runtime import bf16_inference, limit_threads

NORMAL, ANOMALOUS = "NORMAL", "ANOMALOUS"


@dataclass
class Verdict:
    """The judgment of one clip (``error`` set, the rest None, when it could not be judged)."""

    path: str
    verdict: str | None
    score: float | None
    threshold: float | None
    model: str
    error: str | None = None
    warnings: tuple[str, ...] = ()
    # how ``error`` came about, for ``--debug`` (which asks for tracebacks): not in to_dict
    trace: str | None = field(default=None, repr=False, compare=False)
    # those of ``warnings`` that are format facts (FormatWarning): grouped over many clips
    format_warnings: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def anomalous(self) -> bool:
        return self.verdict == ANOMALOUS

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["trace"], d["format_warnings"]
        d["warnings"] = list(self.warnings)
        for key in ("score", "threshold"):  # JSON has no NaN: a bare NaN breaks every parser
            if d[key] is not None and not np.isfinite(d[key]):
                d[key] = None
        return d


#: the warning of a judged clip the model has heard (its own line in each clip's warnings)
HEARD = ("is a recording the model was trained or calibrated on, or given by enroll: its score "
         "is not a new tap's")


class Judge:
    """A loaded model, ready to judge clips.

    Parameters
    ----------
    model : str, PathLike or LoadedModel
        A model file written by ``tapcheck train``.
    config : Config, optional
        Settings the caller intends to judge with; if its features differ from the model's, that
        is an error (the model would see other inputs than it was trained on).
    cache : FeatureCache or None
        Cache for :meth:`judge_files`; default none (judging new clips gains nothing from it).
    """

    def __init__(self, model, *, config: Config | None = None, cache: FeatureCache | None = None):
        owned = not isinstance(model, LoadedModel)  # loaded here: nobody else uses the module
        self.model: LoadedModel = load_model(model) if owned else model
        self.config = self.model.config
        if config is not None:
            check_same_features(self.model, config)
        self.cache = cache
        self.name = self.model.name
        self.threshold = self.model.detector.threshold_
        # the fast copy the scores are computed with (and training computed its references with)
        self.net = self.model.module.for_inference(
            bf16=bf16_inference(bf16=self.config.train.bf16), copy=not owned)

    @functools.cached_property
    def heard(self) -> frozenset[str]:
        """Crop digests of the takes the model was trained or calibrated on and of the taps
        enrolled into it (:func:`crop_digest`; model files from before 2026-12-04 keep none)."""
        from .modelfile import enrolled_digests, provenance

        checkpoint = self.model.checkpoint
        return frozenset(provenance(checkpoint, "crop_digests")) | frozenset(
            enrolled_digests(checkpoint, "crop_digests"))

    def scores(self, clips: np.ndarray) -> np.ndarray:
        """Anomaly scores of crops (n_clips, n_crops, bins, frames), shape (n_clips,)."""
        if len(clips) == 0:
            return np.zeros(0)
        return self.model.detector.anomaly_score(self.represent(clips))

    def represent(self, clips: np.ndarray) -> np.ndarray:
        """The rows the detector scores, of crops (n_clips, n_crops, bins, frames): shape
        (n_clips, D)."""
        return represent_clips(self.net, clips, self.model.scorer).numpy()

    def judge_array(self, y: np.ndarray, *, path: str = "<array>") -> Verdict:
        """Judge one mono clip at the model's sample rate."""
        crops = strike_crops(y, sr=self.config.audio.sr, features=self.config.features,
                              path=path)
        return self.judge_crops(crops, path=path)

    def judge_crops(self, crops: np.ndarray, *, path: str = "<array>") -> Verdict:
        """Judge one clip's crops, shape (n_crops, bins, frames), computed with the model's
        features (``strike_crops(y, features=judge.config.features)``)."""
        return self._verdicts([path], self.scores(crops[None]))[0]

    def judge_files(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32,
                    refuse_repeats: bool = False,
                    on_batch: Callable[[list[Verdict]], None] | None = None) -> list[Verdict]:
        """Judge files; each bad file becomes a Verdict with ``error`` set.

        With ``refuse_repeats`` (board verdicts), a tap given twice is refused before any clip
        is scored (:func:`refuse_repeated_taps`): every clip's crops are held first. Without it,
        ``batch_size`` clips' at a time: judge held every clip's crops before scoring any, 937 MB
        for 5,000 clips and about 6.5 GB for a year's station folder (QA); and ``on_batch`` is
        called with each batch's verdicts, in order, as they are judged."""
        results: list[Verdict | None] = [None] * len(paths)
        if refuse_repeats:  # a board's few taps: all of them before any is scored
            good: list[tuple[int, np.ndarray, tuple[str, ...], frozenset[str]]] = []
            with limit_threads(1):  # the features on one thread, the batches below on all
                self._features(paths, range(len(paths)), results, good)
            refuse_repeated_taps(paths, {i: crops for i, crops, *_ in good})
            for start in range(0, len(good), batch_size):
                self._score(paths, good[start:start + batch_size], results)
            if on_batch is not None:
                on_batch(results)  # type: ignore[arg-type]
            return results  # type: ignore[return-value]
        for start in range(0, len(paths), batch_size):
            good = []
            batch = range(start, min(start + batch_size, len(paths)))
            with limit_threads(1):
                self._features(paths, batch, results, good)
            if good:
                self._score(paths, good, results)
            if on_batch is not None:
                on_batch(results[batch.start:batch.stop])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def _score(self, paths: Sequence[str | os.PathLike], chunk: list,
               results: list) -> None:
        """Score one batch of :meth:`_features`' clips into ``results``, on every thread."""
        rows = self.represent(np.stack([c for _, c, *_ in chunk]))
        scores = self.model.detector.anomaly_score(rows)
        verdicts = self._verdicts([os.fspath(paths[i]) for i, *_ in chunk], scores)
        copied = self._copies_of_references(rows)
        for (i, _, warned, formats), v, copy in zip(chunk, verdicts, copied, strict=True):
            # the same tap at another rate or bit depth: other crops, in-sample all the same
            if copy and not any(w.endswith(HEARD) for w in warned):
                warned += (f"{os.fspath(paths[i])}: {HEARD}",)
            v.warnings, v.format_warnings = warned, formats
            results[i] = v

    def _copies_of_references(self, rows: np.ndarray) -> np.ndarray:
        """Which rows lie nearer a reference than a copy's limit
        (:func:`tapcheck.copies.copy_reference`), shape (n,): all False for a scorer without
        references."""
        from .copies import nearest_reference

        if self._copy_reference is None:
            return np.zeros(len(rows), dtype=bool)
        limit, _, reference = self._copy_reference
        _, distances = nearest_reference(self.model.detector.unit_embeddings(rows), reference)
        return distances < limit

    @functools.cached_property
    def _copy_reference(self) -> tuple[float, float, np.ndarray] | None:
        """:func:`tapcheck.copies.copy_reference`, once per model."""
        from .copies import copy_reference

        return copy_reference(self.model.detector)

    def _features(self, paths: Sequence[str | os.PathLike], indices: range, results: list,
                  good: list) -> None:
        """The crops and warnings of each file of ``indices`` into ``good`` ((index, crops,
        warnings, format warnings)), or its error into ``results``."""
        for i in indices:
            p = paths[i]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                y = None  # the clip, where it is read here: read below otherwise (a cache hit)
                try:
                    if self.cache is not None:
                        crops = self.cache.get(p)
                    else:
                        y = load_clip(p, audio=self.config.audio, features=self.config.features)
                        crops = strike_crops(y, sr=self.config.audio.sr,
                                             features=self.config.features, path=p)
                except TapcheckError as e:
                    results[i] = Verdict(os.fspath(p), None, None, None, self.name, error=str(e),
                                         trace=traceback.format_exc())
                    continue
            if y is None:  # from the cache: read for the checks of the whole clip below
                y = self._clip(p)
            # the whole clip's levels, once for both checks (13 ms of a 3 s clip)
            level = None if y is None else clip_levels(y, features=self.config.features)
            warned = tuple(str(w.message) for w in caught) + self.background(p, level=level)
            taps = () if level is None else tap_onsets_s(
                None, sr=self.config.audio.sr, features=self.config.features, level=level)
            if len(taps) > 1:  # a board's taps in one file: the loudest alone decided (QA)
                warned += (taps_warning(p, taps, done="judged"),)
            formats = frozenset(str(w.message) for w in caught
                                if issubclass(w.category, FormatWarning))
            if self.heard and crop_digest(crops) in self.heard:
                # its score is in-sample: a tap of its board the model never heard scores
                # otherwise, and a user checking the model on its own takes should know
                warned += (f"{p}: {HEARD}",)
            good.append((i, crops, warned, formats))

    @functools.cached_property
    def training_rise_db(self) -> float | None:
        """How far the model's normal training takes' strikes stood above the room's noise
        (their median :func:`~tapcheck.features.clip_rise_db`); None in a model file from before
        it was stored, or one whose value no training take could give (a take under
        ``min_strike_db`` holds no strike; a hand-edited 399 told every tap it stood 381 dB
        short)."""
        source = self.model.checkpoint.get("dataset")
        value = source.get("strike_rise_db") if isinstance(source, dict) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        low = self.config.features.min_strike_db
        return float(value) if ok and low <= value <= MAX_RISE_DB else None

    def background(self, path: str | os.PathLike, *, y: np.ndarray | None = None,
                   level: np.ndarray | None = None) -> tuple[str, ...]:
        """A warning when the tap stands far less above the room's noise than the training
        takes did: healthy boards then score higher (a louder room, a softer or farther tap).

        Parameters
        ----------
        path : str or PathLike
            The clip, named in the warning (and read, without ``y``).
        y : np.ndarray, shape (n_samples,), optional
            The clip at the model's sample rate.
        level : np.ndarray, shape (n_frames,), optional
            Its :func:`~tapcheck.strikes.clip_levels`, if computed already (then ``y`` is not
            needed).

        Returns
        -------
        tuple of str
            The warning, or nothing (no figure stored, the clip unreadable or silent).
        """
        ref = self.training_rise_db
        if ref is None:
            return ()
        if level is None:
            y = self._clip(path) if y is None else y
            if y is None:
                return ()
            level = clip_levels(y, features=self.config.features)
        here = strike_rise_db(level)
        if not ref - here > RISE_MARGIN_DB:  # NaN (silence only) too
            return ()
        return (f"{path}: the tap stands {here:.1f} dB above the room's noise, {ref - here:.1f} "
                f"dB less than the model's training takes ({ref:.1f} dB): a louder room, or a "
                "softer or farther tap, makes healthy boards score higher — strike firmly "
                "near the microphone, judge where it is quieter, or train on takes recorded "
                "here",)

    def _clip(self, path: str | os.PathLike) -> np.ndarray | None:
        """The clip at the model's rate, its warnings not given again (they were, as its crops
        were made); None if it cannot be read."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return load_clip(path, audio=self.config.audio, features=self.config.features)
        except TapcheckError:
            return None

    def _verdicts(self, paths: Sequence[str], scores: np.ndarray) -> list[Verdict]:
        return [Verdict(str(p), ANOMALOUS if s > self.threshold else NORMAL, float(s),
                        float(self.threshold), self.name) if np.isfinite(s) else
                # NaN > threshold is False: without this a NaN score would read NORMAL
                Verdict(str(p), None, None, None, self.name, error=(
                    f"{p}: the model gives no usable score for it (NaN) — check the clip; if "
                    "every clip gets this, retrain the model"))
                for p, s in zip(paths, scores, strict=True)]


def live_judge(model: str | os.PathLike, config: Config) -> tuple[Judge, Config, list[str]]:
    """The judge of a live session (``listen``, ``station``): the model loaded to judge on
    ``config.stream.judge_threads`` threads; ``config`` with the model's audio and feature
    settings (the microphone records at the model's rate, at least as fast as its crops need);
    and warning lines: the config's ``[train]`` settings the model does not use, and the
    checks it has off.
    """
    from .runtime import set_judge_threads

    set_judge_threads(config.stream.judge_threads)
    judge = Judge(model)
    warned = unused_train_settings(judge.model, config) + checks_off(judge)
    return judge, dataclasses.replace(config, audio=judge.config.audio,
                                      features=judge.config.features), warned


def unused_train_settings(model: LoadedModel, config: Config) -> list[str]:
    """A warning for ``config``'s ``[train]`` settings that differ from both the defaults and
    the model's: a judging command keeps the model's own threshold, scorer and board rule, and
    a trial's ``far = 0.5`` in ``judge --config`` was silently ignored. Settings left at their
    defaults are not named (a config for the features alone says nothing of training)."""
    default = Config().train
    trained = model.config.train
    named = [f"{k} = {v!r}" for k, v in vars(config.train).items()
             if v != getattr(default, k) and v != getattr(trained, k, v)]
    if not named:
        return []
    return [f"--config's [train] settings ({', '.join(named)}) are not used: a model file keeps "
            "the threshold, scorer and board rule it was trained with — train a model with "
            "that config to change them"]


def checks_off(judge: Judge) -> list[str]:
    """A warning when the model file states no level of its training takes' strikes
    (:attr:`Judge.training_rise_db`), no fingerprint of its network (both from 2026-12-06) or
    no digest of its feature settings (from 2026-12-05): no tap is then warned of for a louder
    room, and weights or settings changed after training are not noticed, and nothing said so
    (QA: noise at 1 % of the peak turned 7 of 12 ANOMALOUS taps of a sawn board NORMAL, with no
    word; a file stripped of its fingerprint and with a layer changed judged a healthy tap
    ANOMALOUS, with no word)."""
    off = []  # (what is missing, what goes unnoticed, the day tapcheck began to store it)
    if judge.training_rise_db is None:
        off.append(("no level of its training takes' strikes above the room's noise",
                    "a tap judged in a louder room, which moves the scores, is not warned of",
                    "2026-12-06"))
    if judge.model.checkpoint.get("fingerprint") is None:
        off.append(("no fingerprint of its network", "weights changed after training are not "
                                                     "noticed", "2026-12-06"))
    # stripped, an edit of n_fft loaded without a word (QA)
    if judge.model.checkpoint.get("settings_digest") is None:
        off.append(("no digest of its feature settings", "settings changed after training "
                                                         "are not noticed", "2026-12-05"))
    if not off:
        return []
    what, effect, since = zip(*off, strict=True)
    return [f"{judge.model.path}: states {' and '.join(what)} (files trained before "
            f"{max(since)} do not), so {', and '.join(effect)} — retrain it with `tapcheck "
            f"train` to have {'that check' if len(off) == 1 else 'those checks'}"]


def check_same_features(model: LoadedModel, config: Config) -> None:
    """A model judges only crops computed as in its training; other settings are an error.

    Raises
    ------
    ModelFileError
        ``config`` computes other crops (feature settings or sample rate) than ``model`` was
        trained on; the message names each difference.
    """
    ours = {"audio.sr": config.audio.sr,
            **{f"features.{k}": v for k, v in vars(config.features).items()}}
    theirs = {"audio.sr": model.config.audio.sr,
              **{f"features.{k}": v for k, v in vars(model.config.features).items()}}
    changed = [f"{k} {theirs[k]!r} (config: {ours[k]!r})" for k in ours if ours[k] != theirs[k]]
    if changed:
        raise ModelFileError(
            f"was trained with other feature settings than the config gives: {', '.join(changed)}",
            path=model.path,
            # judge and enroll (and listen, station) check this alike: the fix names no one
            # command, which read as "judge" to a user of enroll
            fix="leave out --config (the model carries its own settings), or retrain the model "
                "with that config")


def refuse_repeated_taps(paths: Sequence[str | os.PathLike], crops: dict[int, np.ndarray]) -> None:
    """Refuse a tap given twice: counted twice, it would weigh twice in its board's verdict.

    Told by the crops the model sees (``crops[i]`` of ``paths[i]``, :func:`crop_digest`; a file
    that could not be read has none, repeats nothing and gets its own error line). They are
    computed for judging anyway, so no file is read twice.

    Raises
    ------
    ParameterError
        Naming the later of the first two paths with the same crops, and the earlier.
    """
    from .copies import first_repeat, repeat_problem

    digests = [crop_digest(crops[i]) if i in crops else None for i in range(len(paths))]
    repeat = first_repeat(paths, digests)
    if repeat:
        raise ParameterError(f"{repeat_problem(*repeat)}; counted twice it would weigh twice in "
                             "its board's verdict; nothing judged", path=repeat[0],
                             fix="name each clip once")
