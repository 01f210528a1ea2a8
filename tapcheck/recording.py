"""Recording takes at the bench: prompt, record, check, retake, save.

A take is checked while the board is still in hand: **no strike heard**, **clipped** (samples at
full scale on the device, before any resampling), **too quiet**, or a strike so close to either end
of the take that the model's crops would run off it. A bad take is said so and retaken (or kept
with ``keep_bad``). Good takes go through :meth:`tapcheck.datasets.Dataset.add_take`: numbered
after the last take on disk or in the manifest, never overwritten, the WAV and then the manifest
row each written atomically, and the pair shielded from Ctrl-C and ``kill``
(:func:`tapcheck.interrupts.deferred`).

Two ways to take:

- :meth:`Recorder.record`: one fixed window of ``duration_s`` per take, started by a prompt
  ("take 4/30 — tap now"); interactive sessions wait for Enter before each take.
- :meth:`Recorder.record_triggered`: listen continuously and keep one take per strike the stream
  detector (:mod:`tapcheck.stream`) hears, with ``pre_roll_s`` of audio before it, so a person
  can tap 30 times without touching the keyboard.

The console is the caller's: :class:`Recorder` talks through ``say`` / ``ask`` / ``meter``
callables, so the same loop serves the CLI and tests.
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .audio import peak_dbfs, resample
from .config import Config, FeatureConfig, RecordConfig
from .datasets import Dataset, Take
from .manifest import check_row_values
from .errors import DeviceError, NoStrikeError, ParameterError, TapcheckWarning
from .features import strike_crops
from .interrupts import deferred
from .new_takes import (check_take_folder, inherited_group, warn_of_other_group,
                        warn_of_other_rate)
from .stream import StrikeClipper


@dataclass
class TakeCheck:
    """What :func:`check_take` found; a take is good when ``problems`` is empty."""

    problems: list[str] = field(default_factory=list)
    peak_dbfs: float = float("-inf")
    onset_s: float | None = None  # where the strike begins in the take, s

    @property
    def ok(self) -> bool:
        return not self.problems


def check_take(y: np.ndarray, *, sr: int, features: FeatureConfig = FeatureConfig(),
               record: RecordConfig = RecordConfig(), raw: np.ndarray | None = None,
               label: str | None = None) -> TakeCheck:
    """Check a take the way a person at the bench needs it checked.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        The take as it will be stored (at ``sr``).
    sr : int
    features : FeatureConfig
        Where the model will crop: the strike must be found and its crops must fit in the take.
    record : RecordConfig
        ``clip_dbfs``, ``clip_samples``, ``min_peak_dbfs``.
    raw : np.ndarray, optional
        The samples as the device delivered them, for the clipping check (resampling smears
        clipped flat tops into ringing, so clipping is judged before it). Default: ``y``.
    label : str, optional
        What a warning about the take names it (``take 3/10``); without one it said "clip".

    Returns
    -------
    TakeCheck
    """
    raw = y if raw is None else raw
    check = TakeCheck(peak_dbfs=peak_dbfs(raw))
    full_scale = 10.0 ** (record.clip_dbfs / 20.0)
    clipped = int(np.count_nonzero(np.abs(raw) >= full_scale))
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            _, onset = strike_crops(y, sr=sr, features=features, return_onset=True, path=label)
    except NoStrikeError as e:
        check.problems.append(e.problem.replace("no strike found", "no strike heard"))
    else:
        f = features
        check.onset_s = onset * f.hop_length / sr
        n_frames = 1 + len(y) // f.hop_length
        if onset - f.pre_frames < 0:
            check.problems.append("strike at the very start of the take — tap a moment after the "
                                  "prompt")
        elif onset - f.pre_frames + (f.n_crops - 1) * f.shift_frames + f.n_frames > n_frames:
            check.problems.append("strike too close to the end of the take, its ring-down is cut "
                                  "off — tap sooner after the prompt")
    if clipped < record.clip_samples:
        # a clipped take is refused: the DC offset one-sided clipping leaves blamed "a faulty
        # microphone or cable" for a take not even saved (QA)
        for w in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if clipped >= record.clip_samples:
        check.problems.append(f"clipped ({clipped} samples at full scale) — tap softer or turn "
                              "the input gain down")
    if check.peak_dbfs < record.min_peak_dbfs:
        check.problems.append(f"too quiet (peak {check.peak_dbfs:.1f} dBFS, needs "
                              f"{record.min_peak_dbfs:g}) — move the microphone closer or turn "
                              "the input gain up")
    return check


@dataclass(frozen=True)
class TakeLabels:
    """What every manifest row of a session says."""

    board: int
    side: str
    label: str = "normal"
    group: str | None = None  # None: the group the board's takes of this label share
    split: str = "train"


@dataclass
class Session:
    """What a recording session did."""

    saved: list[Take] = field(default_factory=list)
    bad: int = 0  # takes refused (and retaken)
    kept_bad: int = 0  # bad takes saved because of keep_bad
    stopped: bool = False  # ended by the user before all takes were saved


class Recorder:
    """Records takes of one board side from an open microphone into a dataset.

    Parameters
    ----------
    dataset : Dataset
    labels : TakeLabels
    mic : tapcheck.devices.Microphone
        Open (``with Microphone(...) as mic``).
    config : Config
        ``audio`` (sr, duration_s), ``features`` (the take checks), ``record``, ``stream``.
    say : callable
        Shows one line to the person at the bench.
    ask : callable, optional
        Shows a prompt and returns the answer, or None when input has ended. Without it the
        session runs without questions (``--yes``).
    meter : callable, optional
        Sees every block of audio while recording (a level meter).
    keep_bad : bool
        Save bad takes too (with a warning) instead of retaking them.
    source : str
        The manifest's ``source`` column: the device name.
    """

    def __init__(self, dataset: Dataset, labels: TakeLabels, *, mic, config: Config = Config(),
                 say: Callable[[str], None] = print,
                 ask: Callable[[str], str | None] | None = None,
                 meter: Callable[[np.ndarray], None] | None = None, keep_bad: bool = False,
                 source: str = ""):
        self._inherit = labels.group is None  # the board's other takes' group (the CLI's
        if self._inherit:  # default), read again under the dataset's lock as the session starts
            labels = replace(labels, group=inherited_group(dataset, board=labels.board,
                                                           label=labels.label))
        check_row_values(board=labels.board, side=labels.side, label=labels.label,
                          split=labels.split, group=labels.group)
        warn_of_other_group(dataset, board=labels.board, label=labels.label,
                            group=labels.group)
        warn_of_other_rate(dataset, sr=config.audio.sr)
        self.ds, self.labels, self.mic, self.config = dataset, labels, mic, config
        self.say, self.ask, self.meter, self.keep_bad = say, ask, meter, keep_bad
        self.source = source or mic.device.name
        self.sr = config.audio.sr
        self.session = Session()  # the current (or last) session, also after Ctrl-C
        # a board folder linking out of the dataset: refused before the first tap, not after it
        check_take_folder(dataset, labels.board, labels.side, label=labels.label,
                          split=labels.split)
        self._warn_orphans()

    # -- one take at a time ----------------------------------------------------------------------
    def record(self, n_takes: int, *, duration_s: float | None = None) -> Session:
        """Record ``n_takes`` good takes, one prompted window of ``duration_s`` each."""
        duration_s = self._duration(duration_s)
        self._begin()
        session = self.session = Session()
        streak = 0
        self.mic.wait_ready()
        while len(session.saved) < n_takes:
            k = len(session.saved) + 1
            if self.ask is not None and streak == 0:
                answer = self.ask(f"take {k}/{n_takes}: press Enter to record, q Enter to stop")
                if (answer is None and not session.saved and not session.bad
                        and not sys.stdin.isatty()):
                    # nobody to answer (cron, `< /dev/null`): 0 takes saved and exit status 0,
                    # read by a script as a session done (QA). Ctrl-D at a terminal is someone
                    # stopping, as q is
                    raise ParameterError(
                        "standard input ended before the first take: nobody answered the "
                        "prompt", fix="run it at a terminal, or pass --yes (or --trigger) to "
                                      "record without questions")
                if answer is None or answer.strip().lower().startswith("q"):
                    session.stopped = True
                    break
            self.mic.drain()
            self.say(f"take {k}/{n_takes} — tap now")
            raw = self.mic.record(int(round(duration_s * self.mic.sr)), on_block=self.meter)
            y = self._to_take(raw, duration_s)
            check = check_take(y, sr=self.sr, features=self.config.features,
                               record=self.config.record, raw=raw, label=f"take {k}/{n_takes}")
            if check.ok:
                self._save(y, check, k, n_takes, session)
                streak = 0
                continue
            session.bad += 1
            streak += 1
            problems = "; ".join(check.problems)
            if self.keep_bad:
                self._save(y, check, k, n_takes, session, problems=problems)
                streak = 0
                continue
            self.say(f"take {k}/{n_takes}: {problems} — not saved")
            if self.ask is not None:
                answer = self.ask("press Enter to retake, k Enter to keep it anyway, "
                                  "q Enter to stop")
                if answer is None or answer.strip().lower().startswith("q"):
                    session.stopped = True
                    break
                if answer.strip().lower().startswith("k"):
                    self._save(y, check, k, n_takes, session, problems=problems)
                    streak = 0
                    continue
                streak = 1  # retake at once, without asking for Enter again
            elif streak > self.config.record.max_retakes:
                raise DeviceError(
                    f"{streak} bad takes in a row from '{self.mic.device.name}' (last: "
                    f"{problems})", fix="check the microphone and its level, or record "
                    "interactively (without --yes) to see each take")
        return session

    # -- one take per strike ---------------------------------------------------------------------
    def record_triggered(self, n_takes: int, *, duration_s: float | None = None) -> Session:
        """Listen continuously; keep one take per strike heard until ``n_takes`` are saved."""
        duration_s = take_duration(duration_s, config=self.config, trigger=True)
        self._begin()
        pre = self.config.stream.pre_roll_s
        session = self.session = Session()
        self.mic.wait_ready()
        self.mic.drain()
        clipper = StrikeClipper(sr=self.mic.sr, config=self.config.stream,
                                post_s=duration_s - pre)
        prompted = False
        # the end (stream index) of a take refused for holding several strikes: the strikes
        # inside it are that burst's, already counted in its line (4 taps 0.6 s apart gave "4
        # strikes", "3 strikes", "2 strikes", then saved the last; QA)
        burst_end = -1
        for block in self.mic.blocks():
            if self.meter is not None:
                self.meter(block.samples)
            strikes = clipper.feed(block.samples, arrived=block.arrived)
            if not prompted and clipper.ready:  # the noise floor is set: taps count from now
                self.say(f"tap board {self.labels.board} {self.labels.side} {n_takes} times, "
                         f"{duration_s:g} s apart — take 1/{n_takes}, tap now")
                prompted = True
            for faint in clipper.faint_sounds():  # taps too soft: nothing happened at all (QA)
                self.say(f"take {len(session.saved) + 1}/{n_takes}: "
                         f"{faint.problem(self.config.stream)}")
            for strike in strikes:
                if strike.onset < burst_end:
                    continue
                k = len(session.saved) + 1
                y = self._to_take(strike.clip, duration_s)
                check = check_take(y, sr=self.sr, features=self.config.features,
                                   record=self.config.record, raw=strike.clip,
                                   label=f"take {k}/{n_takes}")
                if strike.others:
                    check.problems.append(f"{strike.others + 1} strikes in one take — leave "
                                          f"{duration_s:g} s between taps")
                if check.ok or self.keep_bad:
                    problems = "; ".join(check.problems)
                    session.bad += bool(problems)
                    self._save(y, check, k, n_takes, session, problems=problems)
                else:
                    session.bad += 1
                    self.say(f"take {k}/{n_takes}: {'; '.join(check.problems)} — not saved, "
                             "tap again")
                    if strike.others:
                        burst_end = strike.start + len(strike.clip)
                if len(session.saved) >= n_takes:
                    return session
        return session  # pragma: no cover - blocks() only ends by an exception

    # -- helpers ---------------------------------------------------------------------------------
    def _begin(self) -> None:
        """Load what checking a take needs, and read the inherited group again under the
        dataset's lock: an import into the same board between the recorder's making and its
        session gave the board a group the new takes then lacked (import reads it under the
        lock)."""
        # the first take's check loaded torch (its STFT) after "tap now": 3 s in which a
        # Ctrl-C lost a take whose audio was all in (QA); loaded here, before any prompt
        from .spectrogram import power_spectrogram

        n_fft = self.config.features.n_fft
        power_spectrogram(np.zeros(2 * n_fft, np.float32), n_fft=n_fft,
                          hop_length=self.config.features.hop_length)
        if self._inherit:
            with self.ds.locked():
                self.labels = replace(self.labels, group=inherited_group(
                    self.ds, board=self.labels.board, label=self.labels.label))

    def _duration(self, duration_s: float | None) -> float:
        return take_duration(duration_s, config=self.config)

    def _to_take(self, raw: np.ndarray, duration_s: float) -> np.ndarray:
        """Device-rate samples → the stored take: ``sr`` and exactly ``duration_s`` long."""
        y = resample(np.asarray(raw, np.float32), orig_sr=self.mic.sr, target_sr=self.sr)
        n = int(round(duration_s * self.sr))
        return np.pad(y[:n], (0, max(0, n - len(y)))).astype(np.float32)

    def _save(self, y: np.ndarray, check: TakeCheck, k: int, n_takes: int, session: Session,
              *, problems: str = "") -> Take:
        lab = self.labels
        with deferred():  # Ctrl-C or kill wait until the WAV and its manifest row are both written
            take = self.ds.add_take(y, sr=self.sr, board=lab.board, side=lab.side, label=lab.label,
                                    group=lab.group, split=lab.split, source=self.source)
        session.saved.append(take)
        where = "" if check.onset_s is None else f", strike at {check.onset_s:.2f} s"
        line = f"take {k}/{n_takes}: peak {check.peak_dbfs:.1f} dBFS{where} — saved {take.path}"
        if problems:
            session.kept_bad += 1
            line += f" (kept although: {problems})"
        self.say(line)
        return take

    def _warn_orphans(self) -> None:
        """Take files on disk without a manifest row: a session killed between the two writes."""
        lab = self.labels
        folder = self.ds.root / f"board{lab.board:02d}" / lab.side
        if not folder.is_dir():
            return
        known = {t.path for t in self.ds.takes}
        orphans = sorted(p.relative_to(self.ds.root).as_posix() for p in folder.glob("take*.wav")
                         if re.fullmatch(r"take\d+\.wav", p.name)
                         and p.relative_to(self.ds.root).as_posix() not in known)
        if orphans:
            warnings.warn(
                f"{self.ds.root}: {len(orphans)} take file(s) are not in the manifest, e.g. "
                f"{orphans[0]} (a session was stopped while saving); they are kept, and new "
                "takes are numbered after them", TapcheckWarning, stacklevel=2)


def take_duration(duration_s: float | None, *, config: Config, trigger: bool = False) -> float:
    """A take's length in seconds: ``duration_s``, or the config's ``[audio] duration_s``.

    Raises
    ------
    ParameterError
        Outside 0.5-60 s (NaN too), or, with ``trigger``, no more than half a second
        after ``stream.pre_roll_s``: checked before a session opens the microphone or a folder
        (record --trigger refused it once listening, and left the dataset's folder made).
    """
    # a config's value was blamed on --duration, which was not given (QA)
    given = "audio.duration_s (the config's)" if duration_s is None else "--duration"
    duration_s = config.audio.duration_s if duration_s is None else float(duration_s)
    if not 0.5 <= duration_s <= 60:
        raise ParameterError(f"{given} must be between 0.5 and 60 s for a take, not "
                             f"{duration_s:g}", fix="the study records 3 s takes")
    pre = config.stream.pre_roll_s
    if trigger and duration_s <= pre + 0.5:
        raise ParameterError(
            f"a triggered take of {duration_s:g} s leaves too little after the {pre:g} s "
            "pre-roll", fix="use --duration 3 (the study's), or lower stream.pre_roll_s")
    return duration_s
