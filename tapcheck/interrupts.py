"""Stopping cleanly: Ctrl-C and ``kill`` end a bench session between saves, never inside one.

A take or an inspection is saved in two steps (the audio file, then its manifest row or log row),
each atomic. :func:`deferred` holds Ctrl-C (SIGINT) and ``kill`` (SIGTERM) back until both steps
are done, so a stopped session never leaves a file without its row. :func:`terminate_as_interrupt`
makes SIGTERM stop a session the way Ctrl-C does. SIGKILL cannot be caught; the atomic writes
bound what it can do to a stray temporary file or an audio file without a row, which readers
ignore and numbering skips.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run a block to its end even if SIGINT or SIGTERM arrives; act on the signal afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in _HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt, so ``kill`` stops like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
