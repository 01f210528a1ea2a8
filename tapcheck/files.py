"""Atomic writes: a file is either its old self or wholly new, never half written.

Every file tapcheck writes that a user would miss — takes, manifests, model files, reports — goes
through :func:`atomic_write`: the bytes go to a temporary file in the same folder (so the final
rename never crosses a file system), are flushed to disk, and the temporary file is renamed over
the target. A crash or SIGKILL at any moment leaves the previous file intact and at worst a stray
``.*.tmp`` file, which readers ignore.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
