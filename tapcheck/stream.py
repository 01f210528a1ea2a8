"""Strikes in a stream of audio, found as they happen: for ``record --trigger`` and ``listen``.

:class:`StrikeDetector` follows the level of short frames of high-passed audio against an
adaptive noise floor. A strike begins when a frame rises ``margin_db`` above the floor; it lasts
until the level falls ``hysteresis_db`` below that trigger level; and no strike begins within
``refractory_s`` of the last onset. So the ring-down of a board (which stays loud for a few hundred
ms) and a double bounce of the stick (a second peak within tens of ms) are one strike, not two.
The floor follows quieter noise quickly and louder noise slowly (minimum tracking), and is frozen
while a strike sounds, so a strike never raises its own floor. A "strike" that stays loud for
longer than ``max_strike_s`` was a change of the background, and becomes the new floor.

:class:`StrikeClipper` keeps the last seconds of the stream and hands out, for every strike, the
audio from ``pre_roll_s`` before its onset to ``post_s`` after it, as soon as that has arrived.
Everything here works on arrays, at any sample rate; :mod:`tapcheck.devices` feeds it live audio.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.signal

from .config import FeatureConfig, StreamConfig
from .errors import ParameterError
from .live_settings import stream_problem

# A faint sound, as a tap too soft to start a strike: it rises at least FAINT_MIN_RISE_DB above
# the noise floor and to within FAINT_BELOW_DB of the trigger, sharply (from under
# FAINT_FROM_DB above the floor within FAINT_RISE_S, as a strike does and a voice or a room's
# wander does not), and falls FAINT_FALL_DB under where it began within FAINT_MAX_S (a rise that
# stays is the room changing; the margin keeps a frame of noise dipping from chopping one into
# short "faint sounds"). An operator tapping too softly saw nothing at all happen (QA): such a
# sound is told, at most once in FAINT_REPEAT_S and not within FAINT_QUIET_S of a strike's onset
# (its own ring-down). Without the minimum rise and the sharp onset, a margin_db of 12 told of
# plain room noise every 30 s, and voices by an idle station were told as taps (review); with
# them, FAINT_QUIET_S need not be 10 s, which hid a soft tap between taps 3 s apart (QA)
FAINT_MIN_RISE_DB = 10.0
FAINT_BELOW_DB = 10.0
FAINT_FROM_DB = 3.0
FAINT_RISE_S = 0.015
FAINT_FALL_DB = 5.0
FAINT_MAX_S = 0.5
FAINT_QUIET_S = 1.0
FAINT_REPEAT_S = 30.0


class StrikeDetector:
    """Onsets of strikes in audio fed block by block.

    Parameters
    ----------
    sr : int
        Sample rate of the audio, Hz.
    config : StreamConfig
        ``frame_s``, ``highpass_hz``, ``margin_db``, ``hysteresis_db``, ``refractory_s``,
        ``max_strike_s``, ``floor_rise_s``, ``floor_fall_s``, ``warmup_s``, ``min_level_dbfs``.

    Attributes
    ----------
    floor_db : float
        The noise floor, dBFS (RMS of a frame); NaN before the first frame.
    level_db : float
        Level of the last frame, dBFS.
    active : bool
        A strike is sounding.

    Examples
    --------
    >>> det = StrikeDetector(sr=44100)
    >>> onsets = det.process(np.zeros(4410, np.float32))   # stream indices of strike onsets
    """

    def __init__(self, *, sr: int, config: StreamConfig = StreamConfig()):
        c = config
        found = stream_problem(c)  # a config file's: refused when read (live_settings.check_stream)
        if found:
            raise ParameterError(f"stream.{found[0]}: {found[1]}")
        self.sr, self.config = int(sr), c
        self.frame_length = max(1, int(round(c.frame_s * sr)))
        frame_s = self.frame_length / sr
        self._rise = 1.0 - math.exp(-frame_s / max(c.floor_rise_s, 1e-9))
        self._fall = 1.0 - math.exp(-frame_s / max(c.floor_fall_s, 1e-9))
        self._warmup_frames = max(1, int(math.ceil(c.warmup_s / frame_s)))
        self._warmup_levels: list[float] = []
        self._refractory = int(round(c.refractory_s * sr))
        self._max_strike = int(round(c.max_strike_s * sr))
        self._sos = (scipy.signal.butter(2, c.highpass_hz, btype="highpass", fs=sr, output="sos")
                     if 0 < c.highpass_hz < sr / 2 else None)
        self._zi = None if self._sos is None else np.zeros((self._sos.shape[0], 2))
        self._rest = np.zeros(0, np.float32)  # filtered samples short of a whole frame
        self._position = 0  # stream index of self._rest[0]
        self._frames = 0
        self._onset: int | None = None
        self.floor_db = float("nan")
        self.level_db = float("-inf")
        self.onset_rise_db = float("nan")  # how far the last onset rose above the floor
        self.active = False
        self._max_faint = int(round(FAINT_MAX_S * sr))
        self._faint_rise = int(round(FAINT_RISE_S * sr))
        # a faint sound in progress: (start, rise, peak level, where it began, sharp)
        self._faint: tuple[int, float, float, float, bool] | None = None
        self._calm_at = 0  # the last frame near the noise floor (FAINT_FROM_DB)
        self.faint: list[Faint] = []  # faint sounds over, for the caller to take

    @property
    def ready(self) -> bool:
        """The warm-up is over: strikes from now on are reported."""
        return self._frames > self._warmup_frames

    @property
    def last_onset(self) -> int | None:
        """Stream index of the last strike's onset; None before the first."""
        return self._onset

    @property
    def trigger_db(self) -> float:
        """The level a frame must reach to start a strike, dBFS."""
        return max(self.floor_db + self.config.margin_db, self.config.min_level_dbfs)

    def process(self, y: np.ndarray) -> list[int]:
        """Feed the next samples; returns the stream indices of strike onsets found in them.

        Parameters
        ----------
        y : np.ndarray, shape (n_samples,)
            The next audio of the stream (any length, even empty).

        Returns
        -------
        list of int
            Onsets, as indices counted from the first sample ever fed (frame resolution).
        """
        y = np.asarray(y, dtype=np.float32)
        if self._sos is not None:
            y, self._zi = scipy.signal.sosfilt(self._sos, y, zi=self._zi)
        buf = np.concatenate([self._rest, y.astype(np.float32)])
        n = len(buf) // self.frame_length
        frames = buf[: n * self.frame_length].reshape(n, self.frame_length).astype(np.float64)
        levels = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)
        onsets = []
        for i, level in enumerate(levels):
            start = self._position + i * self.frame_length
            if self._step(float(level), start):
                onsets.append(start)
        self._rest = buf[n * self.frame_length:]
        self._position += n * self.frame_length
        return onsets

    def _step(self, level: float, start: int) -> bool:
        c = self.config
        self.level_db = level
        self._frames += 1
        if self._frames <= self._warmup_frames:
            # Warm-up: no strikes. The floor starts as the 20th percentile of the warm-up's
            # levels, robust to a few frames of digital silence at the start of a stream and to
            # a strike during the warm-up. A sound still loud at its end is followed as a strike
            # (not reported), so its ring-down does not count as one afterwards.
            self._warmup_levels.append(level)
            self.floor_db = min(self._warmup_levels)
            if self._frames == self._warmup_frames:
                self.floor_db = float(np.percentile(self._warmup_levels, 20))
                self._warmup_levels = []
                if level >= self.trigger_db:
                    self.active, self._onset = True, start
            return False
        if self.active:
            self._faint = None
            if level < self.trigger_db - c.hysteresis_db:
                self.active = False  # the ring-down has died away: the strike is over
            elif start - self._onset > self._max_strike:
                # Loud for too long to be a tap: the bench got noisier. Listen from this level on.
                self.active, self.floor_db = False, level
            return False
        if self._onset is not None and start - self._onset < self._refractory:
            return False
        if level >= self.trigger_db:
            self.active, self._onset, self._faint = True, start, None
            self.onset_rise_db = level - self.floor_db
            return True
        self._follow_faint(level, start)
        rate = self._rise if level > self.floor_db else self._fall
        self.floor_db += rate * (level - self.floor_db)
        return False

    def _follow_faint(self, level: float, start: int) -> None:
        """Follow a sound that rises near the trigger without reaching it (see FAINT_MIN_RISE_DB).
        """
        rise = level - self.floor_db
        if rise < FAINT_FROM_DB:
            self._calm_at = start
        zone = max(self.trigger_db - FAINT_BELOW_DB, self.floor_db + FAINT_MIN_RISE_DB)
        if self._faint is None:
            if zone <= level < self.trigger_db:
                sharp = start - self._calm_at <= self._faint_rise
                self._faint = (start, rise, level, zone, sharp)
            return
        begun, top, peak, began_at, sharp = self._faint
        if level >= began_at - FAINT_FALL_DB:  # still sounding
            if rise > top:
                self._faint = (begun, rise, level, began_at, sharp)
            return
        self._faint = None
        if sharp and start - begun <= self._max_faint:
            self.faint.append(Faint(start=begun, rise_db=top, level_db=peak,
                                    trigger_db=self.trigger_db))


@dataclass(frozen=True)
class Faint:
    """A sound that rose near a strike's trigger and died away again without reaching it."""

    start: int  # stream index of its first frame near the trigger
    rise_db: float  # how far its loudest frame stood above the noise floor
    level_db: float  # that frame's level, dBFS
    trigger_db: float  # the level a strike had to reach then, dBFS

    def problem(self, config: StreamConfig) -> str:
        """What was short, as a line says it (the margin, or the level a strike must reach)."""
        # to a tenth: rounded whole, 19.6 dB read "rose 20 dB …, short of the 20 dB" (review)
        if self.trigger_db > config.min_level_dbfs:
            heard = (f"a sound rose {self.rise_db:.1f} dB above the noise floor, short of the "
                     f"{config.margin_db:g} dB a tap must rise (stream.margin_db)")
        else:  # a silent room (a floor at digital silence): its rise says nothing
            heard = (f"a sound reached {self.level_db:.1f} dBFS, short of the "
                     f"{config.min_level_dbfs:g} dBFS a tap must reach (stream.min_level_dbfs)")
        # "not a tap" read as the tool deciding a real tap was none (QA)
        return (f"{heard} — too soft to count as a tap: strike harder, or bring the microphone "
                "closer")


@dataclass
class Strike:
    """A strike and the audio around it."""

    onset: int  # stream index of the onset
    start: int  # stream index of clip[0]
    clip: np.ndarray  # (pre + post samples,), float32
    sr: int
    arrived: float  # time.monotonic() when the clip's last sample arrived
    others: int  # further strikes heard inside the clip (0 for a clean take)
    rise_db: float  # how far the onset frame stood above the noise floor

    @property
    def onset_in_clip_s(self) -> float:
        return (self.onset - self.start) / self.sr


class StrikeClipper:
    """Cuts the audio around every strike out of a stream, as soon as it is complete.

    Parameters
    ----------
    sr : int
    config : StreamConfig
        The detector's settings and ``pre_roll_s``.
    post_s : float
        Audio wanted after each onset, s. A clip is ``pre_roll_s + post_s`` long.

    Examples
    --------
    >>> clipper = StrikeClipper(sr=44100, post_s=2.5)
    >>> for block in mic.blocks():                                  # doctest: +SKIP
    ...     for strike in clipper.feed(block.samples, arrived=block.arrived):
    ...         save(strike.clip)
    """

    def __init__(self, *, sr: int, config: StreamConfig = StreamConfig(), post_s: float):
        # The first pre_roll_s of a stream only sets the noise floor: a strike's clip must not
        # reach back before the stream began.
        self.sr = int(sr)
        self.pre = int(round(config.pre_roll_s * sr))
        self.post = int(round(post_s * sr))
        if self.post <= 0:
            raise ParameterError(f"a clip needs audio after the strike, not post_s={post_s:g}")
        warmup = max(config.warmup_s, config.pre_roll_s)
        self.detector = StrikeDetector(sr=sr, config=dataclasses.replace(config, warmup_s=warmup))
        self._capacity = self.pre + self.post + 2 * self.sr  # room for pending strikes and slack
        self._ring = np.zeros(self._capacity, np.float32)
        self._end = 0  # stream index after the last sample fed
        self._pending: list[tuple[int, int, float]] = []  # (onset, post, rise_db) awaiting audio
        self._onsets: deque[int] = deque()  # recent onsets, to count strikes inside a clip
        self._arrivals: deque[tuple[int, float]] = deque()  # (block end index, arrival time)
        self._faint_told: int | None = None  # when a faint sound was last handed out
        self._hints: list[Faint] = []

    def feed(self, samples: np.ndarray, *, arrived: float = 0.0) -> list[Strike]:
        """Add the next block; returns the strikes whose clips are now complete, oldest first."""
        samples = np.asarray(samples, dtype=np.float32)
        self._write(samples)
        self._arrivals.append((self._end, arrived))
        for onset in self.detector.process(samples):
            self._pending.append((onset, self.post, self.detector.onset_rise_db))
            self._onsets.append(onset)
        self._sort_faint()
        done = []
        for onset, post, rise in sorted(p for p in self._pending if p[0] + p[1] <= self._end):
            self._pending.remove((onset, post, rise))
            start, stop = onset - self.pre, onset + post
            others = sum(1 for o in self._onsets if start <= o < stop and o != onset)
            done.append(Strike(onset=onset, start=start, clip=self._read(start, stop), sr=self.sr,
                               arrived=self.arrival_of(stop - 1), others=others, rise_db=rise))
        oldest = self._end - self._capacity
        while self._onsets and self._onsets[0] < oldest:
            self._onsets.popleft()
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= oldest:
            self._arrivals.popleft()
        return done

    def faint_sounds(self) -> list[Faint]:
        """Faint sounds worth telling the operator of since the last call (see FAINT_QUIET_S)."""
        hints, self._hints = self._hints, []
        return hints

    def _sort_faint(self) -> None:
        quiet, repeat = int(FAINT_QUIET_S * self.sr), int(FAINT_REPEAT_S * self.sr)
        for faint in self.detector.faint:
            last = self.detector.last_onset
            if last is not None and 0 <= faint.start - last < quiet:
                continue
            if self._faint_told is not None and faint.start - self._faint_told < repeat:
                continue
            self._faint_told = faint.start
            self._hints.append(faint)
        self.detector.faint.clear()

    @property
    def ready(self) -> bool:
        """The noise floor is set (after ``max(warmup_s, pre_roll_s)``): strikes now count."""
        return self.detector.ready

    @property
    def pending(self) -> int:
        """Strikes heard whose clip's audio has not all arrived yet."""
        return len(self._pending)

    def extend(self, strike: Strike, post_s: float) -> None:
        """Hand ``strike`` out again once ``post_s`` after its onset has arrived (a longer clip).

        ``post_s`` may be at most a second beyond the clipper's own ``post_s``.
        """
        post = int(round(post_s * self.sr))
        if not self.post < post <= self.post + self.sr:
            raise ParameterError(f"a clip can be extended by up to 1 s, not to {post_s:g} s")
        self._pending.append((strike.onset, post, strike.rise_db))

    def arrival_of(self, index: int) -> float:
        """When the block holding stream sample ``index`` arrived (``time.monotonic()``)."""
        for end, arrived in self._arrivals:
            if index < end:
                return arrived
        raise ParameterError(f"sample {index} has not arrived yet (stream at {self._end})")

    def _write(self, samples: np.ndarray) -> None:
        if len(samples) > self._capacity:  # a huge block: only its tail can matter
            self._end += len(samples) - self._capacity
            samples = samples[-self._capacity:]
        pos = self._end % self._capacity
        first = min(len(samples), self._capacity - pos)
        self._ring[pos:pos + first] = samples[:first]
        self._ring[: len(samples) - first] = samples[first:]
        self._end += len(samples)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if start < self._end - self._capacity or stop > self._end:
            raise ParameterError(f"samples {start}-{stop} are not in the buffer")
        idx = np.arange(start, stop) % self._capacity
        return self._ring[idx].copy()


def crop_span_s(features: FeatureConfig = FeatureConfig(), *, sr: int = 44100) -> float:
    """Audio the model's crops need after a strike's onset, s (``listen`` waits this long).

    The crops start ``pre_frames`` before the onset frame and the last one ends
    ``(n_crops - 1) * shift_frames + n_frames`` frames after that; a centred STFT frame reaches
    ``n_fft / 2`` samples past its centre. This holds when the features find the onset where the
    detector did; when the loudest moment comes later (a crack's faces clap up to ~25 ms after the
    strike), :func:`crop_end` tells how much more is needed (see :meth:`StrikeClipper.extend`).
    """
    return crop_end(0, features) / sr


def crop_end(onset_frame: int, features: FeatureConfig = FeatureConfig()) -> int:
    """Sample (exclusive) where the crops of a strike at ``onset_frame`` end, at the clip's rate."""
    f = features
    last_frame = onset_frame - f.pre_frames + (f.n_crops - 1) * f.shift_frames + f.n_frames - 1
    return last_frame * f.hop_length + f.n_fft // 2
