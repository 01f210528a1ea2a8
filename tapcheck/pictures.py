"""Explanation pictures: a PNG per explained clip, for `judge --explain-dir` and the station.

Each shows the clip's crop, its nearest normal crops and the deviation map
(:class:`tapcheck.explain.Explanation`). A picture carries a mark in its PNG text, so a later
run refreshes its own pictures and never replaces a file it did not write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .explain import Explanation

#: the PNG's Software text: how a later `judge --explain-dir` tells its own pictures apart
PICTURE_MARK = "tapcheck explanation"


def _is_picture(path: Path) -> bool:
    """Whether ``path`` is a regular file holding an explanation picture (:data:`PICTURE_MARK`
    among its first text chunks, which matplotlib writes before the image data)."""
    from .files import sniff

    head = None if path.is_symlink() else sniff(path, size=4096)
    return (head is not None and head.startswith(b"\x89PNG")
            and b"Software\x00" + PICTURE_MARK.encode() in head)


def save_picture(e: Explanation, path: str | os.PathLike) -> Path:
    """A PNG: the clip's crop, its nearest normal crops (mean), and the deviation map, with
    the explained region framed; axes in ms after the strike and Hz."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .files import atomic_write

    t0, t1 = e.window_edges_ms[0], e.window_edges_ms[-1]
    f0, f1 = e.band_edges_hz[0], e.band_edges_hz[-1]
    extent = (t0, t1, f0, f1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True, constrained_layout=True)
    panels = ((e.crop, "this clip", "magma"), (e.reference, "nearest healthy boards", "magma"),
              (e.deviation, "deviation (score drop when made healthy)", "viridis"))
    for ax, (image, title, cmap) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                          interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ms after the strike")
        ax.add_patch(Rectangle((e.time_ms[0], e.band_hz[0]), e.time_ms[1] - e.time_ms[0],
                               e.band_hz[1] - e.band_hz[0], fill=False, edgecolor="cyan", lw=1.5))
    fig.colorbar(shown, ax=axes[2], shrink=0.8)
    axes[0].set_ylabel("Hz")
    fig.suptitle(e.sentence, fontsize=10)
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=80, metadata={"Software": PICTURE_MARK})
    plt.close(fig)
    return path


def save_pictures(explanations: Sequence[Explanation], folder: str | os.PathLike) -> None:
    """A picture per explanation in ``folder``, named after its clip; sets ``e.picture``."""
    from .files import check_writable

    folder = check_writable(folder)  # before any work, with a clear error
    used: set[str] = set()
    for e in explanations:
        stem = Path(e.path).stem or "clip"
        name, n = f"{stem}.png", 1
        # two clips of the same name from different folders; a file there that is not an
        # explanation picture (a user's, a link) is never replaced: the next name is taken
        while name in used or (os.path.lexists(folder / name) and not _is_picture(folder / name)):
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        e.picture = str(save_picture(e, folder / name))
