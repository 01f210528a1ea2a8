"""Latency of ``tapcheck station``: from the end of the crop window to the verdict on the page.

Like ``tests/listen_latency.py``: a private PulseAudio server with a null sink, synthetic taps of
the study's boards played into it, and ``tapcheck station`` listening on its monitor — with
``--pages`` pages open in headless Chromium. Per tap and page the latency is

    listen's own latency (end of the crop window -> verdict shown, the log's latency_ms)
    + (the page painted the verdict - the server pushed it)

both read on this machine's clock (the page stamps ``Date.now()`` in the animation frame after
updating the DOM; the push carries the server's ``time.time()``).

    python3 -m tests.station_latency --model models/arcface-resnet18.pt --taps 60 --pages 3

(from the project's root; it drives the same audio server as the tests)
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tapcheck.inspections import InspectionLog

from .listen_latency import BOARDS
from .pulse import LiveCommand, PulseServer, tap_track
from .conftest import CHROMIUM_ARGS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--taps", type=int, default=60)
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=1.5, help="seconds between taps")
    parser.add_argument("--no-explain", action="store_true", help="station --no-explain")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="tapcheck-station-latency-"))
    taps = [(*BOARDS[i % len(BOARDS)], 100 + i) for i in range(args.taps)]
    print(f"synthesising {len(taps)} taps ...", file=sys.stderr)
    tap_track(work / "taps.wav", taps, lead_s=1.0, spacing_s=args.spacing, tail_s=1.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = PulseServer(work / "pulse").start()
    env = {**server.env, "TAPCHECK_INSPECTIONS": str(work / "inspections")}
    live = LiveCommand("station", "--model", args.model.resolve(), "--device", "pulse",
                       "--port", str(port), *(["--no-explain"] if args.no_explain else []),
                       env=env)
    try:
        url = live.expect("^station at ", stream="err", timeout=120).split()[2]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            pages = [browser.new_page() for _ in range(args.pages)]
            for page in pages:
                page.goto(url)
                page.wait_for_function("document.getElementById('status').textContent==='live'")
            time.sleep(1.0)
            player = server.play(work / "taps.wav")
            player.wait(timeout=args.spacing * len(taps) + 60)
            time.sleep(2.0)
            seen = [page.evaluate("window.verdictTimes") for page in pages]
            browser.close()
    finally:
        live.proc.send_signal(2)
        live.wait(timeout=60)
        server.stop()
    os.environ["TAPCHECK_INSPECTIONS"] = str(work / "inspections")
    rows = InspectionLog().query()
    listen_ms = np.array([r.latency_ms for r in rows])
    per_page = []
    for times in seen:
        n = min(len(times), len(rows))
        push_ms = np.array([(t["shown"] - t["sent"]) * 1000 for t in times[:n]])
        per_page.append(listen_ms[:n] + push_ms)
    total = np.concatenate(per_page)
    push = total - np.concatenate([listen_ms[:len(x)] for x in per_page])
    load = os.getloadavg()
    print(f"model {args.model}: {len(rows)} of {len(taps)} taps judged, "
          f"{[len(t) for t in seen]} verdicts seen by {len(pages)} pages")
    print(f"end of crop window -> verdict painted on a page: median {np.median(total):.0f} ms, "
          f"95th percentile {np.percentile(total, 95):.0f} ms, max {total.max():.0f} ms")
    print(f"  of which server push -> paint: median {np.median(push):.0f} ms, "
          f"95th percentile {np.percentile(push, 95):.0f} ms")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
