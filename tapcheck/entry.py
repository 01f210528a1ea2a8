"""The ``tapcheck`` command's entry point (``[project.scripts]``, ``python -m tapcheck``).

Loading the command line takes a second (click, NumPy, the commands' modules); a Ctrl-C in
that second ended in a ``KeyboardInterrupt`` traceback (QA), where the same Ctrl-C a moment
later says ``tapcheck: interrupted``, exit 130. It says so while loading too, and so do ``kill``
and a closed terminal (they ended the process silently, 143, QA).
"""

from __future__ import annotations

import atexit
import signal
import sys

from .interrupts import exit_now, held


def _interrupted_while_loading(signum, frame) -> None:
    sys.stderr.write("tapcheck: interrupted\n")
    raise SystemExit(130)


def main() -> int:
    """Load the command line under a Ctrl-C that exits quietly, then run it
    (:func:`tapcheck.cli.main`, which handles Ctrl-C itself)."""
    # not over an ignored signal: a background job's ignored Ctrl-C (`tapcheck train &` in a
    # script) stays ignored (review)
    atexit.register(exit_now)  # first, so it runs last: after torch's and the others'
    before = {sig: signal.signal(sig, _interrupted_while_loading) for sig in held()}
    try:
        from .cli import main as run
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    return run()
