"""Re-record docs/recording.md's bench session through a PulseAudio null sink; print it.

    python3 scripts/recording_session.py WORK_FOLDER > transcript.txt

Starts its own PulseAudio server (tests/pulse.py; Debian's pulseaudio and pulseaudio-utils),
plays the synthetic rig's taps into it while `tapcheck record --trigger` and `tapcheck listen`
listen on its monitor, and prints each command with its output. Trains arcface-resnet18 on the
36 takes (a few minutes). `listen` is stopped by SIGTERM, which it handles as Ctrl-C (a
background job's SIGINT is ignored). The docs shorten the output with "...".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pulse import PulseServer, tap_track  # noqa: E402


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    server = PulseServer(work / "pulse").start()
    env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
    env.pop("TAPCHECK_RECORDINGS", None)

    def run(args: list[str], *, play: Path | None = None, delay_s: float = 4.0,
            stop_after_s: float | None = None) -> None:
        print("$ tapcheck " + " ".join(args), flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "tapcheck", *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if play is not None:
            time.sleep(delay_s)  # the command opens the microphone and sets its noise floor
            server.play(play).wait()
            if stop_after_s is not None:
                time.sleep(stop_after_s)
                proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=3600)
        print(out, flush=True)

    try:
        run(["devices"])
        for board, side, label in ((1, "left", "normal"), (1, "right", "normal"),
                                   (5, "left", "defect")):
            track = work / f"taps-{board}-{side}.wav"
            tap_track(track, [(board, side, k) for k in range(1, 13)])
            run(["record", "--board", str(board), "--side", side, "--label", label, "--takes",
                 "12", "--dataset", "bench", "--device", "pulse", "--trigger"], play=track)
        run(["train", "--dataset", "bench"])
        track = work / "taps-listen.wav"  # new takes: healthy board 1, cracked board 5
        tap_track(track, [(1, "left", 40), (5, "left", 50), (1, "right", 41), (5, "left", 51),
                          (1, "left", 42)])
        run(["listen", "--device", "pulse", "--board", "1"], play=track, delay_s=8.0,
            stop_after_s=3.0)
        run(["log", "--since", "1h"])
    finally:
        server.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
