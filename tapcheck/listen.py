"""Live inspection: judge every tap as it happens.

:class:`Listener` reads a microphone, finds strikes with :class:`tapcheck.stream.StrikeClipper`,
and as soon as the audio the model's crops need has arrived (``pre_roll_s`` before the onset to
:func:`tapcheck.stream.crop_span_s` after it), computes the same crops as training
(:func:`tapcheck.features.strike_crops` with the model's own feature settings), judges them, and
shows the verdict. Only then does it save the judged clip and append the judgment to the
inspection log (:mod:`tapcheck.inspections`), so the disk never delays a verdict.

Latency is measured per tap from the arrival of the audio block holding the last sample of the
crop window to the verdict line having been written, and logged with the judgment.

With ``taps_per_board`` N, every N consecutive judged taps are one board: after the N-th tap's
line comes one board line, by the model's board rule (by default: anomalous when most of the N
taps are) — :func:`tapcheck.boards.board_verdicts`, the rule ``judge --per-board`` applies —
logged beside the taps (:meth:`tapcheck.inspections.InspectionLog.append_board`). A tap that
could not be judged (no strike found, no usable score) does not count. Each tap's line says
where it stands (``tap 2 of 3``), and a pause longer than ``stream.board_gap_s`` between two
judged taps ends the board in progress without a verdict: a tap missed on one board (not heard,
or not judged) had made the next board's first tap its last, and shifted every later board.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np

from .audio import resample
from .boards import BOARD_RULES, BoardVerdict, board_verdicts
from .config import StreamConfig
from .console import percent, score_pair
from .errors import (ConfigError, NoStrikeError, ParameterError, TapcheckError,
                     TapcheckWarning)
from .features import crop_lead_s, strike_crops
from .inspections import Inspection, InspectionLog
from .interrupts import deferred
from .judge import Judge, Verdict
from .live_refusals import not_a_tap
from .stream import StrikeClipper, crop_end, crop_span_s

# the room's-noise warning (Judge.background) at the terminal: once in this much audio, as a
# faint sound is told (stream.FAINT_REPEAT_S); every tap's verdict and log row keep it
ROOM_REPEAT_S = 60.0


def _file_stamp(path) -> tuple[int, int, int, int] | None:
    """What changes when a file is replaced or written (device, inode, size, mtime); None if
    it is gone."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class LiveJudgment:
    """One tap judged live (:class:`tapcheck.judgment.Judgment` is what `judge` makes of files)."""

    verdict: Verdict
    when: datetime  # wall-clock time of the strike
    latency_ms: float  # end of the crop window to the shown verdict
    inspection: Inspection | None  # the log row
    others: int  # further strikes inside the judged clip


class Listener:
    """Judges the taps heard by an open microphone.

    Parameters
    ----------
    judge : Judge
        The loaded model; its feature settings and sample rate are used.
    mic : tapcheck.devices.Microphone
        Open.
    log : InspectionLog, optional
        Where judgments and clips go; None judges without keeping anything.
    stream : StreamConfig
        The strike detector's settings.
    board : int, optional
        The board under test, written into the log.
    show : callable
        Shows a verdict line (and must have flushed it when it returns).
    warn : callable
        Shows a problem with one tap (not judged).
    on_verdict : callable, optional
        Called with each Verdict and ``when=`` its strike's time right after ``show`` and before
        the disk (a page's push), outside the measured latency.
    on_judgment : callable, optional
        Called with each LiveJudgment once it is logged.
    on_refused : callable, optional
        Called with the line said of a sound heard and not judged (clipped, or no tap: it did
        not die away) and ``when=`` its time, for the operator to tap again.
    on_joined : callable, optional
        Called with the line said of a strike judged together with the tap judged before (it
        fell inside that tap's crops), after that tap's ``on_verdict``.
    taps_per_board : int, optional
        Every this many judged taps make one board verdict (None: taps only).
    """

    def __init__(self, judge: Judge, *, mic, log: InspectionLog | None = None,
                 stream: StreamConfig = StreamConfig(), board: int | None = None,
                 show: Callable[[str], None] = print, warn: Callable[[str], None] = print,
                 on_verdict: Callable[..., None] | None = None,
                 on_judgment: Callable[["LiveJudgment"], None] | None = None,
                 on_refused: Callable[..., None] | None = None,
                 on_joined: Callable[[str], None] | None = None,
                 taps_per_board: int | None = None):
        if taps_per_board is not None and taps_per_board < 1:
            raise ParameterError(f"taps per board must be 1 or more, not {taps_per_board}")
        lead_s = crop_lead_s(judge.config.features, sr=judge.config.audio.sr)
        if stream.pre_roll_s < lead_s:  # every tap was "trimmed" then, its crops half padding
            raise ConfigError(f"stream.pre_roll_s {stream.pre_roll_s:g} s is shorter than the "
                              f"{lead_s * 1000:.0f} ms the model's crops reach back before a "
                              "strike", fix=f"set it to {2 * lead_s:.2f} s or more (default 0.5)")
        self.judge, self.mic, self.log, self.stream = judge, mic, log, stream
        self.board, self.show, self.warn = board, show, warn
        self.on_verdict, self.on_judgment, self.on_refused = on_verdict, on_judgment, on_refused
        self.on_joined = on_joined
        self.features = judge.config.features
        self.sr = judge.config.audio.sr
        self.judgments: list[LiveJudgment] = []
        self.unlogged = 0  # taps shown whose log write failed (the run then stops on its error)
        self.board_unlogged = False  # the last board verdict shown, its row not written
        self._clipper: StrikeClipper | None = None
        self.taps_per_board = taps_per_board
        self.boards: list[BoardVerdict] = []
        self._board_taps: list[LiveJudgment] = []  # the taps of the board in progress
        self.short_boards = 0  # boards in progress ended by a pause, without a verdict
        self._heard_s: float | None = None  # when the last strike came in (monotonic clock)
        self._room_told: float | None = None  # when the room's noise was last told (stream s)
        self._model_stamp = _file_stamp(judge.model.path)  # the file as the judge loaded it
        self._model_told = False
        self._room_unsaid = 0  # taps of that warning since, not told at the terminal

    @property
    def post_s(self) -> float:
        """Audio waited for after each onset before judging, s: the crops' span, plus a detector
        frame and an STFT hop, as the features' onset can fall that much after the detector's."""
        return (crop_span_s(self.features, sr=self.sr) + self.stream.frame_s
                + self.features.hop_length / self.sr)

    def warm_up(self) -> None:
        """Run the whole path once on a synthetic click, so the first tap is not slowed by
        first-call costs (memory allocation, FFT plans, resampler set-up)."""
        n_pre = int(self.stream.pre_roll_s * self.mic.sr)
        click = np.zeros(n_pre + int(self.post_s * self.mic.sr) + 1, np.float32)
        click[n_pre:n_pre + 32] = 0.5
        y = resample(click, orig_sr=self.mic.sr, target_sr=self.sr)
        with warnings.catch_warnings():
            # the click's own doing, no tap's: at 16 kHz and below its mean passed the DC
            # check, "DC offset removed (a faulty microphone or cable?)" at every start (QA)
            warnings.simplefilter("ignore")
            self.judge.judge_crops(strike_crops(y, sr=self.sr, features=self.features))

    def run(self, *, max_taps: int | None = None,
            on_ready: Callable[[], None] | None = None) -> list[LiveJudgment]:
        """Judge taps until ``max_taps`` have been judged (or forever; stop with Ctrl-C).

        ``on_ready`` is called once the noise floor is set and taps are heard.
        """
        clipper = self._clipper = StrikeClipper(sr=self.mic.sr, config=self.stream,
                                                post_s=self.post_s)
        extended: dict[int, bool] = {}  # onsets waiting for a longer clip
        # the last judged tap: where its crops end, its strike (the clip's loudest), its onset
        judged_until, judged_at, judged_onset = -1, None, 0
        self.mic.drain()
        for block in self.mic.blocks():
            # the strikes whose audio is all in are judged, shown and logged before Ctrl-C or
            # kill act: one stopped in between lost the tap without a word, or showed a verdict
            # the log never got (QA); a strike still waiting for audio is counted in the
            # summary instead (feed hands over every strike it completes: inside, too)
            with deferred():
                strikes = clipper.feed(block.samples, arrived=block.arrived)
                if on_ready is not None and clipper.ready:
                    on_ready()
                    on_ready = None
                for faint in clipper.faint_sounds():  # nothing at all happened (QA)
                    self.warn(f"{_label(_when(clipper, faint.start))}: "
                              f"{faint.problem(self.stream)}")
                for strike in strikes:
                    when = _when(clipper, strike.onset)
                    label = _label(when)
                    if strike.onset < judged_until:
                        # inside the crops of the tap just judged (which judged the louder of the
                        # two): two taps 0.3 s apart gave two verdicts on the second strike, the
                        # first never judged, and a board verdict counted one strike twice (QA)
                        self._warn_judged(label, strike.onset - judged_onset)
                        continue
                    y = resample(strike.clip, orig_sr=self.mic.sr, target_sr=self.sr)
                    with warnings.catch_warnings(record=True) as said:
                        warnings.simplefilter("always")  # given below, once the clip is final
                        try:
                            crops, onset = strike_crops(y, sr=self.sr, features=self.features,
                                                        return_onset=True, path=f"tap at {label}")
                        except NoStrikeError as e:
                            self.warn(f"{label}: a sound rose {strike.rise_db:.0f} dB above the "
                                      f"noise floor, but {e.problem} — not judged")
                            continue
                    # a tap, judged or not (a clipped one is retaken): workshop noise is none, and
                    # counted, it kept a short board open for good (review)
                    self._end_board_after_pause(clipper.arrival_of(strike.onset), label)
                    # the device samples the crops need: the features may place the onset a little
                    # later than the detector did (the loudest moment comes after the first rise)
                    end = int(np.ceil(crop_end(onset, self.features) * self.mic.sr / self.sr))
                    if end > len(strike.clip) and not extended.get(strike.onset):
                        extended[strike.onset] = True
                        more = min(end - (strike.onset - strike.start), clipper.post + self.mic.sr)
                        clipper.extend(strike, more / self.mic.sr)
                        # judged when that audio is in: crops never run off the clip. The short
                        # clip's warnings are not given: "record the tap earlier in the clip" was
                        # said of a clip listen lengthens itself (QA)
                        continue
                    extended.pop(strike.onset, None)
                    refused, clipped = not_a_tap(strike.clip, y, onset, label=label, sr=self.sr,
                                                 device_sr=self.mic.sr, features=self.features)
                    if refused is not None:
                        self.warn(refused)
                        if self.on_refused is not None:  # the station's page kept showing the
                            self.on_refused(refused, when=when)  # tap before, said nothing (QA)
                        continue
                    said = [*said, *clipped]  # brief clipping reached the terminal only (QA)
                    # the strike judged, in stream samples: the loudest in the clip, which an
                    # earlier tap's clip may have judged already
                    at = strike.start + int(round(onset * self.features.hop_length * self.mic.sr
                                                  / self.sr))
                    if judged_at is not None and abs(at - judged_at) < self.features.n_fft * \
                            self.mic.sr / self.sr:
                        # its clip's warnings unsaid: "0 ms after the clip's start" of no
                        self._warn_judged(label, strike.onset - judged_onset)  # verdict (QA)
                        continue
                    for w in said:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                    judged_until, judged_at, judged_onset = strike.start + end, at, strike.onset
                    room = self.judge.background(label, y=y)  # as judge warns of a file
                    self._tell_room(room, at / self.mic.sr)
                    verdict = self.judge.judge_crops(crops, path=label)
                    # the tap's own warnings go with its verdict: the station's page shows them
                    # beside it, where the operator looks (they were on the terminal only)
                    verdict.warnings = tuple(str(w.message) for w in said
                                             if issubclass(w.category, TapcheckWarning)) + room
                    if strike.others:  # on the verdict's line at the terminal; the page had none
                        verdict.warnings += (f"tap at {label}: {strike.others + 1} strikes in "
                                             "the clip; the loudest was judged — leave a second "
                                             "between taps",)
                    verdict.warnings += self._model_changed()
                    if verdict.error:  # no score (NaN): never logged, never a NORMAL verdict
                        self.show(f"{label}  error: {verdict.error}")
                        continue
                    last = strike.start + min(len(strike.clip), end) - 1
                    window_done = clipper.arrival_of(last)  # when the crop window's end came in
                    self.show(self._line(verdict, label, strike.others))
                    latency_ms = (time.monotonic() - window_done) * 1000.0
                    if self.on_verdict is not None:  # with the strike's time, as logged
                        self.on_verdict(verdict, when=when)
                    judgment = LiveJudgment(verdict, when, latency_ms, None, strike.others)
                    board_done = self._board_verdict(judgment)  # shown before the disk, too
                    if self.log is not None:
                        try:
                            self._save(judgment, y, board_done)
                        except TapcheckError:
                            # shown, not logged: the summary counted logged taps only and said
                            # "judged 1 tap(s)" under two verdict lines (a full disk; QA). A tap
                            # whose row is in and whose board verdict's is not is logged
                            self.judgments.append(judgment)
                            if judgment.inspection is None:
                                self.unlogged += 1
                            elif board_done is not None:
                                self.board_unlogged = True
                            raise
                    self.judgments.append(judgment)
                    if self.on_judgment is not None:
                        self.on_judgment(self.judgments[-1])
                    if max_taps is not None and len(self.judgments) >= max_taps:
                        return self.judgments
        return self.judgments  # pragma: no cover - blocks() only ends by an exception

    def _warn_judged(self, label: str, after: int) -> None:
        """A strike ``after`` stream samples from the tap just judged, judged with it (the
        clips of two taps come in either order when the first waits for more audio)."""
        line = (f"{label}: a strike {abs(after) / self.mic.sr:.2f} s from the tap judged "
                "before, inside its crops: the two were judged as one tap (the louder), not "
                "again — leave a second between taps")
        self.warn(line)
        if self.on_joined is not None:  # the station's page showed the verdict without it
            self.on_joined(line)

    def _save(self, judgment: LiveJudgment, y: np.ndarray,
              board_done: tuple[list[LiveJudgment], BoardVerdict] | None) -> None:
        """Log a tap's clip and row, and the board verdict it completes."""
        v = judgment.verdict
        with deferred():  # Ctrl-C waits until the clip and its rows are all saved
            judgment.inspection = self.log.append(
                y, sr=self.sr, when=judgment.when, board=self.board, model=self.judge.name,
                model_path=str(self.judge.model.path), score=v.score, threshold=v.threshold,
                verdict=v.verdict, latency_ms=judgment.latency_ms,
                device=self.mic.device.name, warnings=v.warnings)
            if board_done is not None:
                taps, bv = board_done
                self.log.append_board(bv, when=judgment.when, board=self.board,
                                      number=len(self.boards), first=taps[0].inspection.id,
                                      last=judgment.inspection.id)

    def _board_verdict(self, judgment: LiveJudgment
                       ) -> tuple[list[LiveJudgment], BoardVerdict] | None:
        """Count a judged tap towards the board in progress; when it is the board's last,
        show the board line and return the board's taps and verdict."""
        if self.taps_per_board is None:
            return None
        self._board_taps.append(judgment)
        if len(self._board_taps) < self.taps_per_board:
            return None
        taps, self._board_taps = self._board_taps, []
        info = self.judge.model.detector.calibration_
        bv, = board_verdicts([t.verdict.path for t in taps], [t.verdict.score for t in taps],
                             threshold=info["board_threshold"],
                             expected_taps=info["board_taps"], board=f"#{len(self.boards) + 1}",
                             rule=info["board_rule"])
        self.boards.append(bv)
        self.show(bv.line() + ("" if self.board is None else f"  board {self.board}"))
        return taps, bv

    def _end_board_after_pause(self, heard_s: float, label: str) -> None:
        """End the board in progress without a verdict when the tap heard at ``heard_s``
        (monotonic) comes more than ``stream.board_gap_s`` after the last one heard: the
        inspector has moved on to another board, one or more of this board's taps unheard or
        not judged. From the last tap heard, judged or not: a tap refused as clipped ("lower
        the input gain … and tap again") counts (review)."""
        last = self._heard_s
        self._heard_s = heard_s if last is None else max(heard_s, last)
        gap_s = self.stream.board_gap_s
        if not self._board_taps or not gap_s or last is None:
            return
        pause_s = heard_s - last
        if pause_s <= gap_s:
            return
        n = len(self._board_taps)
        self._board_taps = []
        self.short_boards += 1
        self.warn(f"{label}: {n} of {self.taps_per_board} taps, then a pause of {pause_s:.1f} s "
                  f"(over stream.board_gap_s, {gap_s:g} s): that board gets no verdict — tap it "
                  "again; the taps from here on are the next board")

    def _model_changed(self) -> tuple[str, ...]:
        """A warning for each verdict once the model file changed after this session loaded it
        (enrolled into, trained again, moved or deleted): the session went on judging with the
        model it loaded, and its rows named a file that now judges otherwise, without a word
        (QA). Told at the terminal once; each verdict (the station's page, the log's row) keeps
        it. A stat of the file a tap: a few microseconds."""
        now = _file_stamp(self.judge.model.path)
        if now == self._model_stamp:
            return ()
        line = (f"{self.judge.model.path} has {'gone' if now is None else 'changed'} since this "
                "session loaded it (enrolled, trained again or moved?): its verdicts are still "
                "the loaded model's — stop and start the session again to judge with the file")
        if not self._model_told:
            self._model_told = True
            self.warn(line)
        return (line,)

    def _tell_room(self, room: tuple[str, ...], at_s: float) -> None:
        """The room's-noise warning at the terminal, at most once in :data:`ROOM_REPEAT_S` of
        audio: in a room louder than training's its 330 characters came with every tap (QA).
        Each tap's verdict keeps it all the same (the log, the station's page)."""
        if not room:
            return
        if self._room_told is not None and 0 <= at_s - self._room_told < ROOM_REPEAT_S:
            self._room_unsaid += 1
            return
        alike = (f" (and {self._room_unsaid} tap(s) alike since it was last said)"
                 if self._room_unsaid else "")
        self._room_told, self._room_unsaid = at_s, 0
        for line in room:
            self.warn(line + alike)

    def _line(self, v: Verdict, label: str, others: int) -> str:
        board = "" if self.board is None else f"  board {self.board}"
        extra = f"  ({others + 1} strikes in the clip; judged the loudest)" if others else ""
        if self.taps_per_board is not None:  # where the board stands: a tap missed shows
            extra = f"  tap {len(self._board_taps) + 1} of {self.taps_per_board}" + extra
        score, threshold = score_pair(v.score, v.threshold)
        return f"{label}  {v.verdict:<9}  score {score}  threshold {threshold}{board}{extra}"

    def summary(self) -> str:
        """One line: taps judged, anomalous, boards judged (with ``taps_per_board``), latency
        median and 95th percentile."""
        n = len(self.judgments)
        # Ctrl-C just after a strike: its crop window had not come in, and it was dropped
        # without a word (QA)
        cut = self._clipper.pending if self._clipper is not None else 0
        cut_off = (f"; {cut} tap(s) heard as it stopped were not judged (their audio had not "
                   "all come in)" if cut else "")
        if not n:
            return "no taps judged" + cut_off
        bad = sum(j.verdict.anomalous for j in self.judgments)
        lat = np.array([j.latency_ms for j in self.judgments])
        boards = ""
        if self.taps_per_board is not None:
            boards = (f"{len(self.boards)} board(s), "
                      f"{sum(b.verdict == 'ANOMALOUS' for b in self.boards)} anomalous; ")
            if self.short_boards:
                boards += (f"{self.short_boards} board(s) ended by a pause before their "
                           f"{self.taps_per_board} taps, without a verdict; ")
            if self._board_taps:
                boards += (f"the last {len(self._board_taps)} tap(s) made no board verdict "
                           f"(a board is {self.taps_per_board} taps); ")
        unlogged = (f" ({self.unlogged} of them not logged: the error below)"
                    if self.unlogged else
                    " (the last board verdict not logged: the error below)"
                    if self.board_unlogged else "")
        return (f"judged {n} tap(s){unlogged}, {bad} anomalous; {boards}verdict "
                f"{np.median(lat):.0f} ms (median), "
                f"{np.percentile(lat, 95):.0f} ms (95th percentile) after the crop window"
                + cut_off)


def board_taps_warning(calibration: dict, taps_per_board: int) -> str | None:
    """What to tell the inspector when boards get another number of taps than the model's board
    verdict was calibrated for (``calibration`` is the detector's), or None.

    Such boards are still judged, as ``judge --per-board`` judges them: with the ``median`` rule
    the median of more taps varies less than the threshold allows for (fewer false alarms than
    stated, defects missed more often), of fewer taps more (more false alarms). The ``vote``
    needs no threshold of its own, but its stated rate per board is for its count too: a
    majority of 2 taps is not one of 3 (listen said nothing, and its log gave each board
    "2 (for 3)" taps; judge warns of it; QA).
    """
    expected = calibration["board_taps"]
    if taps_per_board == expected:
        return None
    if not BOARD_RULES[calibration["board_rule"]].per_count:
        # no rate of its own to name (judge states none for the vote), and no threshold a
        # retraining would refit: only the count to keep (review)
        return (f"--taps-per-board {taps_per_board}: the model's board verdict (most taps over "
                f"the tap threshold) is calibrated for boards of {expected} taps; boards of "
                f"{taps_per_board} are judged by the same rule, and a healthy one is flagged at "
                f"another rate — tap each board {expected} times")
    return (f"--taps-per-board {taps_per_board}: the model's board threshold "
            f"{calibration['board_threshold']:.4f} is calibrated for the median of {expected} "
            f"taps, so its {percent(calibration['board_far'])} false-alarm rate per board holds "
            f"only approximately — tap each board {expected} times, or retrain with "
            f"train.board_taps = {taps_per_board}")


def _when(clipper: StrikeClipper, index: int) -> datetime:
    """When stream sample ``index`` was heard, by the clock (its block's arrival)."""
    return datetime.now(timezone.utc) - timedelta(
        seconds=time.monotonic() - clipper.arrival_of(index))


def _label(when: datetime) -> str:
    """A time as the terminal's lines give it."""
    return when.astimezone().strftime("%H:%M:%S")
