"""Text for a terminal: aligned tables, and the person at the bench (lines, questions on stdin,
a level meter)."""

from __future__ import annotations

import math

import os
import sys
import time

import click
import numpy as np


def one_line(text: str) -> str:
    """``text`` with every line break or other control character escaped (``\\n``,
    ``\\x85``, ``\\u2028``): a printed line stays one line, so a file named
    ``x.wav\\nBOARD 3 NORMAL`` cannot forge a verdict line that a script reads. Bytes of a
    name that are not UTF-8 (surrogate escapes) print as they are."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or "\udc80" <= c <= "\udcff" else
                   repr(c)[1:-1] for c in text)


class RepeatedWarnings:
    """Format warnings that say the same of many files, shown for the first few files only.

    A dataset exported at 22.05 kHz printed ``<take>: resampled from 22050 Hz to 44100 Hz`` for
    each of its 288 takes, burying every other line. A format warning ``<file>: <text>`` (the
    file exists; :class:`tapcheck.errors.FormatWarning`: resampled, channels averaged, 8-bit) is
    shown for the first :attr:`SHOWN` files with that text; the rest are counted, and
    :meth:`summary` gives one line per text at the end of the command. Any other warning is
    always shown: one that may put a clip's verdict off (another knock, clipping) must name
    every clip it is of.
    """

    SHOWN = 3

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def admit(self, text: str, category: type = Warning) -> bool:
        """Whether to show warning ``text`` of ``category`` now (else it is counted for
        :meth:`summary`)."""
        from .errors import FormatWarning

        if not issubclass(category, FormatWarning):
            return True
        rest = _after_file(text)
        if rest is None:
            return True
        self.counts[rest] = self.counts.get(rest, 0) + 1
        return self.counts[rest] <= self.SHOWN

    def summary(self) -> list[str]:
        """One line per text held back, with the count of files it was said of; then empty."""
        lines = [f"{n - self.SHOWN} more files likewise: {rest}"
                 for rest, n in self.counts.items() if n > self.SHOWN]
        self.counts.clear()
        return lines


def _after_file(text: str) -> str | None:
    """The text after ``<file>: `` when ``text`` begins with an existing file's name, else None.
    Each ``: `` is tried in turn (a name may hold one), the first few only."""
    start = 0
    for _ in range(4):
        at = text.find(": ", start)
        if at <= 0:
            return None
        if os.path.isfile(text[:at]):
            return text[at + 2:]
        start = at + 2
    return None


class BenchConsole:
    """The person at the bench: lines, questions on stdin, and a level meter on a terminal."""

    METER_DB = 60.0  # the meter spans -60..0 dBFS
    METER_EVERY_S = 0.05

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._shown = False
        self._peak = 0.0
        self._last = 0.0

    def say(self, line: str) -> None:
        self.clear()
        click.echo(line)

    def ask(self, prompt: str) -> str | None:
        self.clear()
        click.echo(f"{prompt} ", nl=False)
        line = sys.stdin.readline()
        if not sys.stdin.isatty() or line == "":
            # a terminal echoes the Enter; a pipe does not, nor a terminal Ctrl-D (the next
            # line followed the prompt on its line)
            click.echo("")
        return None if line == "" else line  # "" is end of input

    def meter(self, samples) -> None:
        if not self.tty:
            return
        self._peak = max(self._peak, float(np.max(np.abs(samples))) if len(samples) else 0.0)
        now = time.monotonic()
        if now - self._last < self.METER_EVERY_S:
            return
        db = 20.0 * np.log10(self._peak) if self._peak > 0 else -np.inf
        filled = int(round(30 * min(1.0, max(0.0, (db + self.METER_DB) / self.METER_DB))))
        level = f"{db:6.1f}" if np.isfinite(db) else "  -inf"
        click.echo(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {level} dBFS", nl=False)
        self._shown, self._peak, self._last = True, 0.0, now

    def clear(self) -> None:
        if self._shown:
            click.echo("\r\033[K", nl=False)
            self._shown = False


def table(rows: list[dict], columns: list[str]) -> str:
    """Rows as aligned text columns, ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def percent(rate: float) -> str:
    """A stated rate as people write it: 5%, 2%, 0.5%, 99.9%, 0.01% (``:.0%`` printed a rate of
    0.999 as 100% and one of 0.0001 as 0%)."""
    text = f"{rate * 100:.3g}"
    if rate < 1 and float(text) >= 100:  # 0.9999: not 100%
        text = f"{rate * 100:.6g}"
    return f"{text}%"


def score_pair(score: float, threshold: float, *, decimals: int = 4,
               kind: str = "f") -> tuple[str, str]:
    """``score`` and ``threshold`` as text with ``decimals`` decimals (``kind="g"``: significant
    digits), or as many more (up to 12) as it takes for two different values to read
    different.

    Rounding keeps the order, so the printed score reads above the printed threshold exactly
    when the verdict says so: with a small threshold a fixed four decimals printed an
    ANOMALOUS ``score 0.0013  threshold 0.0013``. In ``f`` the threshold keeps two significant
    digits, on every line alike: a threshold of 1.26e-05 printed ``score 0.00000  threshold
    0.00001`` on one line and ``0.000006  threshold 0.000013`` on the next.
    """
    start = decimals
    if kind == "f" and max(abs(score), abs(threshold)) >= 1e15:
        kind = "g"  # past the digits a float holds: 1e308 printed 309 digits, most of them noise
    if kind == "f" and math.isfinite(threshold) and threshold != 0:
        start = min(12, max(decimals, 1 - math.floor(math.log10(abs(threshold)))))
    for d in range(start, 13):
        a, b = f"{score:.{d}{kind}}", f"{threshold:.{d}{kind}}"
        if a != b or score == threshold:
            break
    return a, b


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
