"""Room on the inspection log's disk: every tap ``listen`` and ``station`` judge keeps its clip
(32-bit float, so ``judge <clip>`` gives the logged score again), and nothing deletes them. A
shift of taps at one every 3 s is about 1.5 GB (``station``'s explanation pictures add a
fifth); a disk that fills stops the session mid-shift. :func:`room_warning` says so when the
session starts, while there is time to free space.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: taps in a shift: 8 hours, a tap every 3 s
SHIFT_TAPS = 9600
#: a tap's clip and row when the log holds none to measure: 157 kB a tap with `listen` and the
#: default features (QA's 1092-tap session, 2026-12-08: 171 MB)
CLIP_BYTES = 160_000
#: the newest clips measured for the size of a tap
MEASURED_CLIPS = 50


def tap_bytes(root: str | os.PathLike) -> int:
    """What a tap takes on the log's disk: the mean size of the newest day's clips (up to
    :data:`MEASURED_CLIPS` of them), or :data:`CLIP_BYTES` where there are none."""
    days = sorted((Path(root) / "clips").glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"))
    for day in reversed(days):
        sizes = []
        for clip in sorted(day.glob("*.wav"))[-MEASURED_CLIPS:]:
            try:
                sizes.append(clip.stat().st_size)
            except OSError:
                continue
        if sizes:
            return max(int(sum(sizes) / len(sizes)), 1)
    return CLIP_BYTES


def room_warning(root: str | os.PathLike, *, taps: int | None = None) -> str | None:
    """A warning when the disk of the log folder ``root`` has room for fewer than ``taps``
    taps' clips (default :data:`SHIFT_TAPS`), else None (None too where the free space cannot
    be asked)."""
    taps = SHIFT_TAPS if taps is None else taps
    root = Path(root)
    there = next((p for p in (root, *root.parents) if p.exists()), None)
    if there is None:
        return None
    try:
        free = shutil.disk_usage(there).free
    except OSError:
        return None
    each = tap_bytes(root)
    room = free // each
    if room >= taps:
        return None
    return (f"{root}: {free / 1e9:.1f} GB free, room for about {room} more taps' clips "
            f"({each / 1e3:.0f} kB each), fewer than a shift's {taps} (8 h, a tap every 3 s); a "
            "full disk stops the session — delete old days' clips (their rows stay in the "
            f"log): {root / 'clips'}/YYYY-MM-DD, or move the log ($TAPCHECK_INSPECTIONS)")
