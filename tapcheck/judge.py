"""Judging clips with a trained model: verdict, anomaly score, threshold.

:class:`Judge` loads a model file once and then judges arrays or files: crops computed with the
**model's own** feature settings, one batched forward pass, the detector's threshold. A file that
cannot be judged yields a :class:`Verdict` carrying its error; the others are still judged.
"""

from __future__ import annotations

import functools
import json
import os
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from .boards import BOARD_RULES
from .config import Config
from .console import RepeatedWarnings, percent, score_pair
from .errors import FormatWarning, ModelFileError, ParameterError, TapcheckError, TapcheckWarning
from .featurecache import FeatureCache
from .features import clip_features, crop_digest, strike_crops
from .modelfile import LoadedModel, load_model
from .models.base import represent_clips
from .runtime import bf16_inference

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
        rep = represent_clips(self.net, clips, self.model.scorer)
        return self.model.detector.anomaly_score(rep.numpy())

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
                    refuse_repeats: bool = False) -> list[Verdict]:
        """Judge files; each bad file becomes a Verdict with ``error`` set.

        With ``refuse_repeats`` (board verdicts), a tap given twice is refused before any clip
        is scored (:func:`refuse_repeated_taps`)."""
        results: list[Verdict | None] = [None] * len(paths)
        good: list[tuple[int, np.ndarray, tuple[str, ...], frozenset[str]]] = []
        for i, p in enumerate(paths):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    if self.cache is not None:
                        crops = self.cache.get(p)
                    else:
                        crops = clip_features(p, audio=self.config.audio,
                                              features=self.config.features)
                except TapcheckError as e:
                    results[i] = Verdict(os.fspath(p), None, None, None, self.name, error=str(e),
                                         trace=traceback.format_exc())
                    continue
            warned = tuple(str(w.message) for w in caught)
            formats = frozenset(str(w.message) for w in caught
                                if issubclass(w.category, FormatWarning))
            if self.heard and crop_digest(crops) in self.heard:
                # its score is in-sample: a tap of its board the model never heard scores
                # otherwise, and a user checking the model on its own takes should know
                warned += (f"{p}: {HEARD}",)
            good.append((i, crops, warned, formats))
        if refuse_repeats:
            refuse_repeated_taps(paths, {i: crops for i, crops, *_ in good})
        for start in range(0, len(good), batch_size):
            chunk = good[start:start + batch_size]
            scores = self.scores(np.stack([c for _, c, *_ in chunk]))
            verdicts = self._verdicts([os.fspath(paths[i]) for i, *_ in chunk], scores)
            for (i, _, warned, formats), v in zip(chunk, verdicts, strict=True):
                v.warnings, v.format_warnings = warned, formats
                results[i] = v
        return results  # type: ignore[return-value]

    def _verdicts(self, paths: Sequence[str], scores: np.ndarray) -> list[Verdict]:
        return [Verdict(str(p), ANOMALOUS if s > self.threshold else NORMAL, float(s),
                        float(self.threshold), self.name) if np.isfinite(s) else
                # NaN > threshold is False: without this a NaN score would read NORMAL
                Verdict(str(p), None, None, None, self.name, error=(
                    f"{p}: the model gives no usable score for it (NaN) — check the clip; if "
                    "every clip gets this, retrain the model"))
                for p, s in zip(paths, scores, strict=True)]


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


@dataclass
class Judgment:
    """What ``tapcheck judge`` found: a verdict per clip, explanations, board verdicts.

    ``explanations`` maps the index of an anomalous verdict to its
    :class:`tapcheck.explain.Explanation`; ``boards`` holds
    :class:`tapcheck.boards.BoardVerdict` rows when board verdicts were asked for.
    """

    verdicts: list[Verdict]
    calibration: dict
    explanations: dict = field(default_factory=dict)
    boards: list | None = None
    warnings: list[str] = field(default_factory=list)  # about the call, not one clip

    @property
    def errors(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.error]

    @property
    def exit_code(self) -> int:
        """0 all normal, 1 any anomalous (any board, with board verdicts), 2 any clip unjudged."""
        if self.errors:
            return 2
        if self.boards is not None:
            return 1 if any(b.verdict == ANOMALOUS for b in self.boards) else 0
        return 1 if any(v.anomalous for v in self.verdicts) else 0

    def lines(self, *, as_json: bool = False,
              debug: bool = False) -> tuple[list[str], list[str]]:
        """What the command prints: (standard output lines, standard error lines); with
        ``debug``, each clip's error line follows its traceback."""
        from .calibration import describe

        info, out, err = self.calibration, [], []
        if not as_json and len(self.errors) < len(self.verdicts):  # the statement goes with
            err.append(f"tapcheck: {describe(info)}")                # verdicts only
        heard = []  # one line for them all: judging a training folder warned once per take
        repeated = RepeatedWarnings()  # a format's warnings over many clips: a few, then a count
        for i, v in enumerate(self.verdicts):
            why = self.explanations.get(i)
            if as_json:
                row = {**v.to_dict(), "threshold_ci": info["threshold_ci"],
                       "rate_holds_for": info["holds_for"]}
                if why is not None:
                    row["explanation"] = why.to_dict()
                out.append(json.dumps(row, allow_nan=False))
            elif not v.error:
                heard += [v.path for w in v.warnings if w.endswith(HEARD)]
                err += [f"tapcheck: warning: {w}" for w in v.warnings if not w.endswith(HEARD)
                        and repeated.admit(w, FormatWarning if w in v.format_warnings
                                           else TapcheckWarning)]
                score, threshold = score_pair(v.score, v.threshold)
                out.append(f"{v.verdict:<9}  score {score}  threshold {threshold}  "
                           f"{v.model}  {v.path}")
                if why is not None:
                    out.append(f"           why: {why.sentence}")
                    if why.picture:  # take001.png, take001-2.png: which clip's is which
                        out.append(f"           picture: {why.picture}")
        if len(heard) == 1:
            err.append(f"tapcheck: warning: {heard[0]}: {HEARD}")
        elif heard:
            err.append(f"tapcheck: warning: {heard[0]} and {len(heard) - 1} more clip(s): are "
                       "recordings the model was trained or calibrated on, or given by enroll: "
                       "their scores are not new taps'")
        err += [f"tapcheck: warning: {w}" for w in repeated.summary() + self.warnings]
        for b in self.boards or []:
            out.append(json.dumps({"board_verdict": b.to_dict()}) if as_json else b.line())
            if b.taps != b.expected_taps and BOARD_RULES[b.rule].per_count:
                err.append(f"tapcheck: warning: board {b.board}: {b.taps} taps; the board "
                           f"threshold is calibrated for {b.expected_taps}, so its stated rate "
                           "holds only approximately")
        for v in self.errors:  # --debug: the traceback a bad clip's one line stands for
            err += v.trace.rstrip("\n").splitlines() if debug and v.trace else []
            err.append(f"tapcheck: error: {v.error}")
        if self.errors and len(self.verdicts) > 1:
            err.append(f"tapcheck: {len(self.errors)} of {len(self.verdicts)} clip(s) could not "
                       "be judged")
        from .console import one_line  # paths are any text: one line each, as read

        return [one_line(x) for x in out], [one_line(x) for x in err]


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
    from .files import first_repeat, repeat_problem

    digests = [crop_digest(crops[i]) if i in crops else None for i in range(len(paths))]
    repeat = first_repeat(paths, digests)
    if repeat:
        raise ParameterError(f"{repeat_problem(*repeat)}; counted twice it would weigh twice in "
                             "its board's verdict; nothing judged", path=repeat[0],
                             fix="name each clip once")


def judge_clips(paths: Sequence[str | os.PathLike], *, model, config: Config | None = None,
                explain: bool = False, picture_dir: str | os.PathLike | None = None,
                references: str | os.PathLike | None = None, per_board: bool = False,
                board: str | None = None) -> Judgment:
    """Everything ``tapcheck judge`` does: judge clips, explain the anomalous ones, and combine
    a board's taps into one verdict.

    Parameters
    ----------
    paths : sequence of path
    model : path or LoadedModel
    config : Config, optional
        Settings whose features must be the model's (see :func:`check_same_features`).
    explain, picture_dir, references
        Explain anomalous clips (:func:`tapcheck.explain.explain_verdicts`); a ``picture_dir``
        or ``references`` implies ``explain``.
    per_board, board
        Board verdicts: clips grouped by their ``boardNN/`` folder, or all of them ``board``.
    """
    from .boards import board_name, board_name_problem

    problem = None if board is None else board_name_problem(board)
    if problem:
        raise ParameterError(f"--board {problem}")
    board = None if board is None else board_name(board)
    if picture_dir is not None:  # before judging: refused after it, the verdicts would be lost
        from .pictures import check_picture_folder

        check_picture_folder(picture_dir)
    judge = Judge(model, config=config)
    named, unusable = None, []
    if references is not None:
        # read before judging, as the station does: a typo or a dataset with no usable normal
        # take failed only when a clip was anomalous (then no verdict was printed at all), and
        # passed unnoticed when none was
        from .explain_references import dataset_references

        named, unusable = dataset_references(references, judge)
    info = judge.model.detector.calibration_
    verdicts = judge.judge_files(list(paths), refuse_repeats=per_board or board is not None)
    result = Judgment(verdicts, info)
    if config is not None:
        result.warnings += unused_train_settings(judge.model, config)
    if explain or picture_dir or references:
        from .explain import explain_verdicts

        result.explanations, warned = explain_verdicts(judge, verdicts, references=named,
                                                       picture_dir=picture_dir)
        result.warnings += unusable + warned
    if per_board or board is not None:
        from .boards import (board_of_path, board_verdicts, mixed_board_folders,
                             other_board_folders, other_board_warning, unplaced_reason)

        good = [v for v in verdicts if not v.error]
        if board is not None:  # as enroll warns: the folders may know better than the option
            line = other_board_warning(other_board_folders([v.path for v in good], board),
                                       board, done="judged")
            result.warnings += [line] if line else []
        else:  # a clip no folder places on a board is a board of its own: say how to group
            loose: dict[str, list[str]] = {}  # one line per reason, not per clip (trial 39)
            for v in good:
                if board_of_path(v.path) is None:
                    loose.setdefault(unplaced_reason(v.path), []).append(v.path)
            result.warnings += [
                f"{clips[0]}: {reason}, so judged as a board of its own"
                f"{_and_more(len(clips) - 1, 'clip(s) alike')}; give --board NAME to judge "
                "clips as one board" for reason, clips in loose.items()]
            # one board number, several folders (Monday's and Tuesday's board07/): still one
            # board, but a user who mixed two boards of that number should hear of it
            result.warnings += [
                f"board {b}: its taps come from {len(folders)} folders ({folders[0]}, "
                f"{folders[1]}{', …' if len(folders) > 2 else ''}), judged as one board — if "
                "they are not the same board, judge each folder on its own"
                for b, folders in mixed_board_folders([v.path for v in good])]
        result.boards = board_verdicts(
            [v.path for v in good], [v.score for v in good], threshold=info["board_threshold"],
            expected_taps=info["board_taps"], board=board, rule=info["board_rule"])
        short = [b for b in result.boards if b.taps < b.expected_taps]
        result.warnings += [  # the per-board rate is the model's for its count of taps
            f"board {b.board}: {b.taps} tap(s), where the board verdict is calibrated for "
            f"{b.expected_taps}; tap it {b.expected_taps - b.taps} more time(s) for the "
            f"stated rate{_and_more(len(short) - 1, 'board(s) with fewer taps')}"
            for b in short[:1]]
        # many more taps than the vote was calibrated for: a board with 26 of 60 taps over the
        # tap threshold (healthy boards' taps are over it 5 % of the time) read NORMAL, silently
        # (the median rule says so of any other count on its board line)
        long = [b for b in result.boards if b.taps > b.expected_taps
                and not BOARD_RULES[b.rule].per_count]
        result.warnings += [
            f"board {b.board}: {b.taps} taps, where the board verdict is calibrated for "
            f"{b.expected_taps}: its stated rate holds for groups of {b.expected_taps} — "
            f"{b.over} of the {b.taps} taps are over the tap threshold, against "
            f"{percent(info['far'])} of a healthy board's"
            f"{_and_more(len(long) - 1, 'board(s) with more taps')}"
            for b in long[:1]]
    return result


def _and_more(count: int, what: str) -> str:
    """`` (and 3 more clip(s) alike)``, or nothing for 0: one warning for many alike."""
    return f" (and {count} more {what})" if count else ""
