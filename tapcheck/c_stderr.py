"""C libraries' own lines on standard error, kept off the user's screen where tapcheck says the
same in one line.

libsndfile decoding MPEG prints libmpg123's lines (``Note: Illegal Audio-MPEG-Header …``,
``Warning: Xing stream size off …``) above tapcheck's one-line error (QA).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from typing import Iterator

_QUIET = threading.RLock()
_QUIET_DEPTH = [0]


@contextlib.contextmanager
def quiet_c_stderr(quiet: bool = True) -> Iterator[None]:
    """Standard error (the file descriptor) sent to /dev/null around C calls, when ``quiet``.

    Only around the C calls: Python's warnings go to the same descriptor."""
    # one thread at a time: descriptor 2 is the process's, and two overlapping swaps left it on
    # /dev/null for good (review); only the first of nested ones swaps. Without a swap the lock
    # is not held while the block runs
    saved = None
    with _QUIET:
        if quiet and not _QUIET_DEPTH[0]:
            try:
                if sys.stderr is not None:  # a daemon's is None
                    sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):  # no descriptor 2: nothing to quiet
                saved = None
        if saved is None:
            swapped = False
        else:
            swapped = True
            _QUIET_DEPTH[0] += 1
            try:
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 2)
                yield
            finally:
                _QUIET_DEPTH[0] -= 1
                os.dup2(saved, 2)
                os.close(saved)
    if not swapped:
        yield


#: PortAudio's ALSA host API reports each failed call on standard error ("Expression '…' failed
#: in 'src/hostapi/alsa/pa_linux_alsa.c', line: 3665", three lines from its own thread when a
#: PulseAudio source vanishes), and so does ALSA's library below it ("ALSA lib
#: pcm_pulse.c:758:(pulse_prepare) PulseAudio: Unable to create stream: No such entity", and
#: a blank line, for each device probed), above tapcheck's one line saying the same ("no audio
#: from 'pulse' for 2 s", "cannot open 'pulse'"); neither library exports a way to divert them
PORTAUDIO_LINE = re.compile(rb"^(Expression '.*' failed in '[^']*', line: \d+"
                            rb"|ALSA lib [^:\s]+:\d+:\([^)]*\) .*)\s*$")


@contextlib.contextmanager
def portaudio_lines_dropped(*, drop: bool = True) -> Iterator[None]:
    """Standard error (the file descriptor) read through a pipe while the block runs:
    PortAudio's and ALSA's lines (:data:`PORTAUDIO_LINE`) are dropped, every other line is
    passed on as it comes.

    For C libraries that write from their own threads, which :func:`quiet_c_stderr` around a
    call cannot reach. Python's own ``sys.stderr`` writes to the real standard error meanwhile,
    so its lines keep their order with standard output's; the pipe is drained before the
    block's end returns, and descriptor 2 is given back however the block ends. ``drop=False``
    (``--debug``) changes nothing.
    """
    saved = read = forward = python = None
    try:
        if drop:
            with _QUIET:  # one swap of descriptor 2 at a time (see quiet_c_stderr)
                with contextlib.suppress(OSError, ValueError):
                    if sys.stderr is not None:
                        sys.stderr.flush()
                    saved = os.dup(2)  # no descriptor 2: nothing to filter
                if saved is not None:
                    read, write = os.pipe()
                    try:
                        os.dup2(write, 2)
                    finally:
                        os.close(write)
        if saved is not None:
            python = _python_stderr_to(saved)
            forward = threading.Thread(target=_forward, args=(read, saved), daemon=True,
                                       name="tapcheck-stderr")
            forward.start()
        yield
    finally:
        if python is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            sys.stderr = python
        if saved is not None:
            with _QUIET:
                os.dup2(saved, 2)  # the pipe's last writer gone: the thread reads to its end
            if forward is not None and forward.ident is not None:
                forward.join(timeout=2.0)  # a child process that kept descriptor 2 keeps it
            elif read is not None:
                os.close(read)  # no thread to read it
            if forward is None or not forward.is_alive():
                os.close(saved)


def _python_stderr_to(fd: int):
    """Point ``sys.stderr`` at ``fd`` when it writes to descriptor 2; return the stream it was
    (None when it writes elsewhere: a test's capture, a daemon's None). Through the pipe,
    tapcheck's warnings came out of order with its verdicts on standard output (review)."""
    stream = sys.stderr
    try:
        if stream is None or stream.fileno() != 2:
            return None
        stream.flush()
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return None
    sys.stderr = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=stream.encoding,
                                  errors=stream.errors, line_buffering=True, write_through=True)
    return stream


#: how their lines begin: text that cannot begin one is passed on before its line ends
_LEADS = (b"Expression '", b"ALSA lib ")


def _forward(read: int, to: int) -> None:
    """Copy lines from ``read`` to ``to`` until the pipe ends, leaving out PortAudio's and
    ALSA's."""
    pending, dropped = b"", False
    try:
        while chunk := os.read(read, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b""
            for line in lines:
                # the blank line ALSA's library ends its line with goes with it
                if not (PORTAUDIO_LINE.match(line) or (dropped and not line.strip())):
                    kept += line + b"\n"
                dropped = bool(PORTAUDIO_LINE.match(line))
            if pending and not any(pending.startswith(lead) or lead.startswith(pending)
                                   for lead in _LEADS):
                kept, pending = kept + pending, b""  # a prompt or a progress bar: now
            if kept:
                os.write(to, kept)
        if pending and not PORTAUDIO_LINE.match(pending):
            os.write(to, pending)
    except OSError:  # the real standard error closed: nothing more can be said there
        pass
    finally:
        os.close(read)
