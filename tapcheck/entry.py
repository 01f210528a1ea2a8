"""The ``tapcheck`` command's entry point (``[project.scripts]``, ``python -m tapcheck``).

Loading the command line takes a second (click, NumPy, the commands' modules); a Ctrl-C in
that second ended in a ``KeyboardInterrupt`` traceback (QA), where the same Ctrl-C a moment
later says ``tapcheck: interrupted``, exit 130. It says so while loading too.
"""

from __future__ import annotations

import atexit
import signal
import sys

from .interrupts import exit_now


def _interrupted_while_loading(signum, frame) -> None:
    sys.stderr.write("tapcheck: interrupted\n")
    raise SystemExit(130)


def main() -> int:
    """Load the command line under a Ctrl-C that exits quietly, then run it
    (:func:`tapcheck.cli.main`, which handles Ctrl-C itself)."""
    # only over Python's own handler: a background job's ignored Ctrl-C (`tapcheck train &`
    # in a script) stays ignored (review)
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    atexit.register(exit_now)  # first, so it runs last: after torch's and the others'
    if ours:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from .cli import main as run
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return run()
