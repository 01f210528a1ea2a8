"""Latency of ``tapcheck listen``: from the end of the crop window to the printed verdict.

Starts a private PulseAudio server with a null sink (``tests/pulse.py``, as the tests do), runs
``tapcheck listen`` on the sink's monitor with the given model, plays synthetic taps of the
study's boards into the sink, and reads every judgment's latency from the inspection log (the
``latency_ms`` column): the time from the arrival of the audio block that holds the last sample
of the model's crop window to the verdict line having been written to stdout. The audio device's
own input latency comes on top (PortAudio's estimate is printed).

    python3 -m tests.listen_latency --model models/arcface-resnet18.pt --taps 60

(from the project's root; it lives beside the tests because it drives the same audio server)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tapcheck.inspections import InspectionLog

from .pulse import LiveCommand, PulseServer, tap_track

BOARDS = [(1, "left"), (2, "right"), (3, "left"), (4, "right"), (5, "left"), (6, "right"),
          (7, "left"), (8, "right"), (11, "left"), (12, "right"), (13, "left")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--taps", type=int, default=60)
    parser.add_argument("--spacing", type=float, default=1.5, help="seconds between taps")
    parser.add_argument("--config", type=Path, help="TOML config passed to listen")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tapcheck-latency-"))
    taps = [(*BOARDS[i % len(BOARDS)], 100 + i) for i in range(args.taps)]
    print(f"synthesising {len(taps)} taps ...", file=sys.stderr)
    tap_track(work / "taps.wav", taps, lead_s=1.0, spacing_s=args.spacing, tail_s=1.5)
    server = PulseServer(work / "pulse").start()
    try:
        env = {**server.env, "TAPCHECK_INSPECTIONS": str(work / "inspections")}
        extra = ["--config", str(args.config.resolve())] if args.config else []
        live = LiveCommand("listen", "--model", args.model.resolve(), "--device", "pulse",
                           "--taps", str(len(taps)), *extra, env=env)
        live.expect("^listening on", stream="err", timeout=120)
        time.sleep(1.0)
        player = server.play(work / "taps.wav")
        code = live.wait(timeout=args.spacing * len(taps) + 120)
        player.wait(timeout=30)
    finally:
        server.stop()
    if code != 0:
        print("\n".join(live.err), file=sys.stderr)
        return code
    os.environ["TAPCHECK_INSPECTIONS"] = str(work / "inspections")
    latency = np.array([r.latency_ms for r in InspectionLog().query()])
    load = os.getloadavg()
    print(f"model {args.model}: {len(latency)} of {len(taps)} taps judged")
    print(f"latency, end of crop window -> printed verdict: median {np.median(latency):.0f} ms, "
          f"95th percentile {np.percentile(latency, 95):.0f} ms, max {latency.max():.0f} ms")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} at the end")
    print("\n".join(line for line in live.err if line.startswith("tapcheck: judged")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
