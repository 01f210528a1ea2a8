"""C libraries' own lines on standard error, kept off the user's screen where tapcheck says the
same in one line.

libsndfile decoding MPEG prints libmpg123's lines (``Note: Illegal Audio-MPEG-Header …``,
``Warning: Xing stream size off …``) above tapcheck's one-line error (QA).
"""

from __future__ import annotations

import contextlib
import os
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
    # /dev/null for good (review); only the first of nested ones swaps
    if not quiet:
        yield
        return
    with _QUIET:
        if _QUIET_DEPTH[0]:
            yield
            return
        try:
            if sys.stderr is not None:  # a daemon's is None
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2: nothing to quiet
            yield
            return
        _QUIET_DEPTH[0] += 1
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            _QUIET_DEPTH[0] -= 1
            os.dup2(saved, 2)
            os.close(saved)
