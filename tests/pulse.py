"""A real PulseAudio server for the tests that record: a null sink, played into with ``paplay``.

The server runs as a child of the test session with its own socket in a temporary folder, so it
never meets a desktop's server or another test run's. Its null sink ``bench`` is the default sink,
and the sink's monitor the default source: whatever is played into the sink is what the ALSA
``pulse`` device (and so PortAudio, and so ``tapcheck --device pulse``) records. A quiet stream of
white noise plays all the time, as a room does: a real microphone never delivers digital
silence, and a noise floor that appears out of silence when ``paplay`` starts is not a tap.

Used by the ``pulse`` fixture (tests/conftest.py) and by tests/listen_latency.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SINK = "bench"
ROOM_NOISE_DBFS = -60.0  # RMS of the room's white noise, dBFS: a quiet bench, a cheap microphone


class PulseServer:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` is what clients need.

    Raises ``RuntimeError`` (with the server's log) when the server cannot start: the tests that
    need it must fail, not skip.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="tapcheck-pulse-"))
        self.socket = self.root / "native"
        self.env = {"PULSE_SERVER": f"unix:{self.socket}"}
        self._server: subprocess.Popen | None = None
        self._room: subprocess.Popen | None = None
        self._urandom = None

    def start(self) -> "PulseServer":
        missing = [t for t in ("pulseaudio", "pactl", "paplay", "pacat") if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: install Debian's pulseaudio and "
                               "pulseaudio-utils (`bash .ci/run` does)")
        self.root.mkdir(parents=True, exist_ok=True)
        script = self.root / "bench.pa"
        script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name={SINK} rate=44100 channels=1 "
            "sink_properties=device.description=tapcheck-bench\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SINK}.monitor\n")
        log = open(self.root / "pulseaudio.log", "wb")
        # As root, pulseaudio warns but runs; its own HOME and runtime folder keep it away from
        # any other server on the machine.
        env = {**os.environ, "HOME": str(self.root), "XDG_CONFIG_HOME": str(self.root / "config"),
               "XDG_RUNTIME_DIR": str(self.root), "PULSE_RUNTIME_PATH": str(self.root / "run")}
        self._server = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             "--disallow-exit", "-n", "-F", str(script), "--log-target=stderr"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                break
            if self.pactl("info", check=False).returncode == 0:
                self._start_room()
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("PulseAudio did not start:\n" + self.log())

    def _start_room(self) -> None:
        # s16 noise from /dev/urandom has an RMS of -4.8 dBFS; PulseAudio's volume is cubic.
        gain = 10.0 ** ((ROOM_NOISE_DBFS + 4.8) / 20.0)
        volume = int(round(65536 * gain ** (1.0 / 3.0)))
        self._urandom = open("/dev/urandom", "rb")
        self._room = subprocess.Popen(
            ["pacat", "--playback", "--raw", "--format=s16le", "--rate=44100", "--channels=1",
             f"--device={SINK}", f"--volume={volume}", "--client-name=room-noise"],
            stdin=self._urandom, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={**os.environ, **self.env})

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, check=check, timeout=10)

    def play(self, path: str | os.PathLike) -> subprocess.Popen:
        """Start playing an audio file into the null sink; returns the ``paplay`` process.

        A file past full scale (a float file meant to clip) is played scaled down to full scale,
        with the stream's volume raised to match. PulseAudio clamps a stream to the sink's 16 bits
        *before* mixing it with the room's noise, so played as it is, its clipped top arrived
        with the noise on it, not flat: a 40-sample flat top at 1.5 was heard as 0-18 clipped
        samples over 8 plays (and once as none, failing a test in CI). A microphone's converter
        clips after the noise; mixed at a raised volume, the sum is clamped, as there.
        """
        import numpy as np
        import soundfile as sf

        path = Path(path)
        volume = []
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 1.0:
            scaled = Path(tempfile.mkstemp(prefix="played-", suffix=".wav", dir=self.root)[1])
            sf.write(scaled, y / peak, sr, subtype="FLOAT")
            # PulseAudio's volume is cubic: 65536 * gain ** (1/3) is a linear gain of `gain`
            volume = [f"--volume={int(round(65536 * peak ** (1.0 / 3.0)))}"]
            path = scaled
        return subprocess.Popen(["paplay", f"--device={SINK}", *volume, str(path)],
                                env={**os.environ, **self.env})

    def log(self) -> str:
        path = self.root / "pulseaudio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in (self._room, self._server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._room = self._server = None
        if self._urandom is not None:
            self._urandom.close()
            self._urandom = None


def tap_track(path: str | os.PathLike, taps: list[tuple[int, str, int]], *, sr: int = 44100,
              lead_s: float = 1.0, spacing_s: float = 3.0, tail_s: float = 1.5, gain: float = 1.0,
              seed: int = 11) -> list[float]:
    """Write a WAV holding synthetic taps at known times, to play into the sink.

    Parameters
    ----------
    path : where the WAV goes (32-bit float, so a ``gain`` past full scale really clips).
    taps : (board number, side, take) of :func:`tapcheck.synth.study_boards` boards.
    lead_s : silence before the first tap's onset (the room noise fills it).
    spacing_s : from one tap's onset to the next one's.
    tail_s : after the last onset.
    gain : scale of every tap.

    Returns
    -------
    list of float
        Each tap's onset in the file, s (the strike onset :func:`find_strike` sees, at frame
        resolution).
    """
    import numpy as np
    import soundfile as sf

    from tapcheck.features import find_strike, power_spectrogram
    from tapcheck.synth import study_boards, synthesize_tap, take_rng

    boards = {b.number: b for b in study_boards(seed=seed)}
    n = int(round((lead_s + spacing_s * (len(taps) - 1) + tail_s) * sr))
    track = np.zeros(n, np.float32)
    onsets = []
    for i, (number, side, take) in enumerate(taps):
        y = synthesize_tap(boards[number].board, side, rng=take_rng(seed, number, side, take),
                           sr=sr, duration_s=3.0)
        onset = find_strike(power_spectrogram(y)) * 128
        at = int(round((lead_s + i * spacing_s) * sr))
        before = min(onset, int(0.3 * sr))  # a little of the take's own noise before the strike
        piece = y[onset - before: onset + int(min(spacing_s - 0.4, tail_s) * sr)]
        track[at - before: at - before + len(piece)] += gain * piece
        onsets.append(at / sr)
    sf.write(path, track, sr, subtype="FLOAT")
    return onsets


class LiveCommand:
    """``python -m tapcheck ARGS`` running in the background, its output read line by line.

    ``expect`` waits for the next line of stdout (or stderr) matching a regular expression, which
    is how a test plays its tap when tapcheck says "tap now".
    """

    def __init__(self, *args: str, env: dict | None = None, stdin: bool | int = False):
        """``stdin``: True for a pipe (:meth:`send`), a file descriptor (a terminal's) to read
        from it, False for none (at its end at once)."""
        import sys
        import threading

        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tapcheck", *map(str, args)], text=True, bufsize=1,
            stdin=stdin if type(stdin) is int else subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root), **(env or {})})
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self._seen = {"out": 0, "err": 0}
        self._open = {"out": True, "err": True}
        self._readers = [threading.Thread(target=self._read, args=(stream, name), daemon=True)
                         for stream, name in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for reader in self._readers:
            reader.start()

    @property
    def out(self) -> list[str]:
        return self.lines["out"]

    @property
    def err(self) -> list[str]:
        return self.lines["err"]

    def _read(self, stream, name: str) -> None:
        for line in stream:
            self.lines[name].append(line.rstrip("\n"))
        self._open[name] = False

    def expect(self, pattern: str, *, timeout: float = 30.0, stream: str = "out") -> str:
        """The next line of ``stream`` matching ``pattern``; AssertionError on timeout or exit."""
        import re

        deadline = time.monotonic() + timeout
        while True:
            # read before the scan: a last line appended as the stream closed is scanned first
            closed = not self._open[stream]
            lines = self.lines[stream]
            while self._seen[stream] < len(lines):
                line = lines[self._seen[stream]]
                self._seen[stream] += 1
                if re.search(pattern, line):
                    return line
            if closed or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s; stdout:\n"
                             + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err))

    def send(self, text: str) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
