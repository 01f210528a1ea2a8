"""Microphones: list input devices, pick one, and stream its audio in blocks.

``sounddevice`` (and with it PortAudio, Debian's ``libportaudio2``) is imported here and only when
a command needs a microphone, so every other command works on a machine without PortAudio. A
missing library or a machine without an input device is a :class:`~tapcheck.errors.DeviceError`
that says what to install or plug in.

Audio is recorded at the device's own rate when it lacks the wanted one (44.1 kHz); callers
resample the clips they keep with :func:`tapcheck.audio.resample`, which is better than asking
PortAudio (or ALSA's plug layer) to convert on the fly.
"""

from __future__ import annotations

import contextlib
import math
import queue
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .c_stderr import portaudio_lines_dropped
from .errors import DeviceError, debug_asked

# How long to wait for audio before calling a device dead. The first block may take a while:
# PulseAudio's null sink renders in blocks of up to 2 s until a client asks for less latency.
FIRST_BLOCK_TIMEOUT_S = 10.0
BLOCK_TIMEOUT_S = 2.0

PORTAUDIO_FIX = ("install PortAudio: `sudo apt-get install libportaudio2` on Debian/Ubuntu "
                 "(`brew install portaudio` on macOS)")
NO_INPUT_FIX = ("plug in a microphone (USB microphones need no driver); with PulseAudio or "
                "PipeWire, check it is running, and Debian's libasound2-plugins lets PortAudio "
                "(libportaudio2) reach it")


def _quiet():
    """ALSA's and PortAudio's own lines kept off standard error while PortAudio opens, probes
    or reads a device (:func:`tapcheck.c_stderr.portaudio_lines_dropped`): a source that could
    not be opened printed ten lines above tapcheck's one (QA). ``--debug`` shows them, as it
    shows tracebacks."""
    return portaudio_lines_dropped(drop=not debug_asked())


def sounddevice():
    """The ``sounddevice`` module, or a :class:`DeviceError` saying how to get PortAudio."""
    try:
        with _quiet():  # importing it probes every device
            import sounddevice as sd
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be found or loaded
        raise DeviceError(f"PortAudio is not available ({e})", fix=PORTAUDIO_FIX) from None
    except ImportError:
        raise DeviceError("the Python package sounddevice is not installed",
                          fix="pip install sounddevice (it needs PortAudio: Debian's "
                              "libportaudio2)") from None
    return sd


@dataclass(frozen=True)
class InputDevice:
    """An audio input as PortAudio sees it."""

    index: int
    name: str
    channels: int  # most input channels it offers
    default_sr: float  # Hz, its own preferred rate
    hostapi: str  # "ALSA", "JACK Audio Connection Kit", ...
    is_default: bool


def input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default = sd.default.device[0]
    except sd.PortAudioError as e:
        raise DeviceError(f"PortAudio cannot list the audio devices ({e})", fix=NO_INPUT_FIX
                          ) from None
    if default is None or default < 0:
        default = next((h["default_input_device"] for h in hostapis
                        if h["default_input_device"] >= 0), -1)
    return [InputDevice(index=d["index"], name=d["name"], channels=d["max_input_channels"],
                        default_sr=float(d["default_samplerate"]),
                        hostapi=hostapis[d["hostapi"]]["name"], is_default=d["index"] == default)
            for d in devices if d["max_input_channels"] > 0]


def find_input_device(spec: str | int | None = None) -> InputDevice:
    """The input device ``--device`` names: an index, part of a name, or ``None`` for the default.

    A name matches case-insensitively anywhere in a device's name; an exact name wins over partial
    matches, and a name several devices share is an error listing them.

    Raises
    ------
    DeviceError
        No PortAudio, no input device at all, or none (or several) matching ``spec``.
    """
    devices = input_devices()
    if not devices:
        raise DeviceError("no audio input device found", fix=NO_INPUT_FIX)
    listing = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if spec is None:
        return next((d for d in devices if d.is_default), devices[0])
    text = str(spec).strip()
    if not text:  # --device "" (an unset variable in a script) recorded from the default (QA)
        raise DeviceError("--device is empty: it names no input device",
                          fix=f"give an index or part of a name (input devices: {listing}), "
                              "or leave --device out for the default")
    if text.isascii() and text.isdigit():  # "²" is a digit to str.isdigit, not to int (QA)
        for d in devices:
            if d.index == int(text):
                return d
        raise DeviceError(f"no input device with index {text}",
                          fix=f"input devices: {listing} (see `tapcheck devices`)")
    exact = [d for d in devices if d.name.lower() == text.lower()]
    matches = exact or [d for d in devices if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(f"no input device named like '{text}'",
                          fix=f"input devices: {listing} (see `tapcheck devices`)")
    raise DeviceError(f"'{text}' matches {len(matches)} input devices",
                      fix="pass the index instead: " + "; ".join(
                          f"{d.index}: {d.name}" for d in matches))


def choose_samplerate(device: InputDevice, *, sr: int = 44100, device_sr: int = 0,
                      min_sr: float = 0.0) -> int:
    """The rate to record ``device`` at: ``device_sr`` if set, else ``sr`` if the device has it,
    else the device's own default rate (the caller resamples to ``sr``).

    Parameters
    ----------
    min_sr : float
        Lowest rate whose audio fills the crops of the model in use
        (:func:`tapcheck.features.required_sample_rate`). A device that falls back to less, or a
        ``device_sr`` below it, is refused: ``judge`` refuses such a file, and a live verdict
        would judge bands that hold nothing.

    Raises
    ------
    DeviceError
    """
    sd = sounddevice()
    wanted = device_sr or sr
    # the config file checked device_sr against its own crops; a model's may need more
    if device_sr and device_sr < min_sr:
        raise DeviceError(_too_slow(device_sr, min_sr, f"stream.device_sr {device_sr} Hz"),
                          fix=f"set stream.device_sr to 0, or to a rate of at least "
                              f"{math.ceil(min_sr)} Hz that '{device.name}' has")
    channels = _channels(device)  # a trial opening of its own, filtered there
    try:
        with _quiet():  # a trial opening of the device
            sd.check_input_settings(device=device.index, channels=channels,
                                    samplerate=wanted, dtype="float32")
        return int(wanted)
    except (sd.PortAudioError, ValueError) as e:
        if device_sr:
            raise DeviceError(f"'{device.name}' cannot record at {device_sr} Hz ({e})",
                              fix="set stream.device_sr = 0 to use the device's own rate"
                              ) from None
    own = int(round(device.default_sr))
    if own < min_sr:
        raise DeviceError(_too_slow(own, min_sr, f"'{device.name}' cannot record at {wanted} Hz "
                                                 f"and its own rate, {own} Hz,"),
                          fix=f"choose another microphone (`tapcheck devices`), or set "
                              f"stream.device_sr to a rate of at least {math.ceil(min_sr)} Hz "
                              f"that it has")
    return own


def _too_slow(rate: int, min_sr: float, what: str) -> str:
    return (f"{what} records sound up to {rate / 2:g} Hz only; tapcheck listens up to "
            f"{min_sr / 2:.0f} Hz")


def _channels(device: InputDevice) -> int:
    """Mono when the device offers it (nearly all do through ALSA's plug layer), else two."""
    sd = sounddevice()
    try:
        with _quiet():
            sd.check_input_settings(device=device.index, channels=1, dtype="float32")
        return 1
    except (sd.PortAudioError, ValueError):
        return min(2, device.channels)


@dataclass
class Block:
    """A block of input audio as it arrived."""

    samples: np.ndarray  # (n,), float32, mono, at the stream's rate
    start: int  # index of samples[0] in the stream, counted from the stream's first sample
    arrived: float  # time.monotonic() when the block reached tapcheck


class Microphone:
    """An open input stream: audio arrives in blocks on PortAudio's thread and waits in a queue.

    Parameters
    ----------
    device : InputDevice
    sr : int
        Rate to record at (see :func:`choose_samplerate`).
    block_s : float
        Length of a block, s; shorter blocks arrive sooner.

    Examples
    --------
    >>> with Microphone(find_input_device(), sr=44100) as mic:      # doctest: +SKIP
    ...     y = mic.record(3 * 44100)
    """

    def __init__(self, device: InputDevice, *, sr: int, block_s: float = 0.01):
        self.device, self.sr = device, int(sr)
        self.blocksize = max(16, int(round(block_s * self.sr)))
        self.overflows = 0  # blocks PortAudio dropped because tapcheck fell behind
        self._queue: queue.Queue = queue.Queue()
        self._stream = None
        self._quiet: contextlib.ExitStack | None = None  # PortAudio's lines, while open
        self._next_start = 0  # stream index of the next sample handed out
        self._got_audio = False

    def __enter__(self) -> "Microphone":
        sd = sounddevice()
        channels = _channels(self.device)

        def callback(indata, frames, time_info, status):  # PortAudio's thread: copy and go
            if status.input_overflow:
                self.overflows += 1
            mono = indata[:, 0] if channels == 1 else indata.mean(axis=1)
            self._queue.put((mono.astype(np.float32, copy=True), time.monotonic()))

        self._quiet = contextlib.ExitStack()  # PortAudio's thread writes while it is open
        self._quiet.enter_context(_quiet())
        try:
            self._stream = sd.InputStream(device=self.device.index, channels=channels,
                                          samplerate=self.sr, blocksize=self.blocksize,
                                          dtype="float32", callback=callback)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            self._close()
            raise DeviceError(f"cannot open '{self.device.name}' at {self.sr} Hz ({e})",
                              fix="check it is plugged in and not used by another program; "
                                  "`tapcheck devices` lists the inputs") from None
        except BaseException:  # Ctrl-C while it opens: no __exit__ runs after a failed
            self._close()      # __enter__, and the stream and standard error stayed (review)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # closing a dead device must not hide the error that got us here
                pass
            self._stream = None
        if self._quiet is not None:
            self._quiet.close()
            self._quiet = None

    @property
    def latency_s(self) -> float:
        """PortAudio's estimate of the input latency (device buffer), s."""
        return float(self._stream.latency) if self._stream is not None else float("nan")

    def _get(self) -> tuple[np.ndarray, float]:
        timeout = BLOCK_TIMEOUT_S if self._got_audio else FIRST_BLOCK_TIMEOUT_S
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise DeviceError(f"no audio from '{self.device.name}' for {timeout:g} s",
                              fix="check the microphone is still plugged in, then start again"
                              ) from None
        self._got_audio = True
        return item

    def blocks(self) -> Iterator[Block]:
        """Blocks in stream order, forever (until the caller stops or the device fails)."""
        while True:
            samples, arrived = self._get()
            block = Block(samples, self._next_start, arrived)
            self._next_start += len(samples)
            yield block

    def wait_ready(self) -> None:
        """Block until the device delivers audio (raises :class:`DeviceError` if it never does)."""
        if not self._got_audio:
            samples, arrived = self._get()
            self._next_start += len(samples)  # the warm-up audio is not used

    def drain(self) -> None:
        """Drop the audio that arrived so far: what comes next starts now."""
        while True:
            try:
                samples, _ = self._queue.get_nowait()
            except queue.Empty:
                return
            self._next_start += len(samples)

    def record(self, n_samples: int, *, on_block: Callable[[np.ndarray], None] | None = None
               ) -> np.ndarray:
        """The next ``n_samples`` of audio, shape (n_samples,); ``on_block`` sees each block."""
        parts, have = [], 0
        for block in self.blocks():
            parts.append(block.samples[: n_samples - have])
            have += len(parts[-1])
            if on_block is not None:
                on_block(block.samples)
            if have >= n_samples:
                break
        return np.concatenate(parts)
