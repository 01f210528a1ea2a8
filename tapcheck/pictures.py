"""Explanation pictures: a PNG per explained clip, for `judge --explain-dir` and the station.

Each shows the clip's crop, its nearest normal crops and the deviation map
(:class:`tapcheck.explanation.Explanation`). A picture carries a mark and the clip it explains in
its PNG text, so a later run refreshes the picture of the same clip and never replaces a file it
did not write, nor the picture of another clip of the same name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .explanation import Explanation

#: the PNG's Software text: how a later `judge --explain-dir` tells its own pictures apart
PICTURE_MARK = "tapcheck explanation"
#: the PNG text key holding the explained clip's resolved path, as the file system's bytes
CLIP_KEY = "tapcheck clip"
_PNG = b"\x89PNG\r\n\x1a\n"


def clip_key(path: str | os.PathLike) -> bytes:
    """How a picture names its clip: the resolved path's bytes (any name, even one that is not
    UTF-8, is stored and compared exactly; a tEXt chunk takes any byte but NUL, which no path
    holds)."""
    return os.fsencode(os.path.realpath(path))


def picture_clip(path: str | os.PathLike) -> bytes | None:
    """The clip an explanation picture at ``path`` explains (:func:`clip_key`); ``b""`` for a
    picture that does not say (written before pictures named their clip); None when ``path``
    is not a regular file holding an explanation picture (a link, a user's file, a folder).

    Only the text chunks before the image data are read: matplotlib writes them there, and
    8 KiB holds them for any path (PATH_MAX is 4096 bytes).
    """
    from .file_kinds import sniff

    head = None if os.path.islink(path) else sniff(path, size=8192)
    if not head or not head.startswith(_PNG):
        return None
    text, at = {}, len(_PNG)
    while at + 8 <= len(head):
        size, kind = int.from_bytes(head[at:at + 4], "big"), head[at + 4:at + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"tEXt":
            key, _, value = head[at + 8:at + 8 + size].partition(b"\x00")
            text.setdefault(key, value)
        at += 12 + size  # length, type, data, CRC
    if text.get(b"Software") != PICTURE_MARK.encode():
        return None
    return text.get(CLIP_KEY.encode(), b"")


def save_picture(e: Explanation, path: str | os.PathLike) -> Path:
    """A PNG: the clip's crop, its nearest normal crops (mean), both in dB about the tap's mean
    power on one colour scale, and the deviation map, with the explained region framed; axes in
    ms after the strike and Hz."""
    from .files import atomic_write
    from .plots import pyplot

    fig = picture_figure(e)
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=80,
                    metadata={"Software": PICTURE_MARK, CLIP_KEY: clip_key(e.path)})
    pyplot().close(fig)
    return path


def picture_figure(e: Explanation):
    """The figure :func:`save_picture` saves (matplotlib's ``Figure``), its title the sentence
    wrapped to the figure's width."""
    import textwrap

    from .plots import pyplot

    plt = pyplot()  # before any other matplotlib import: it says where matplotlib keeps files
    from matplotlib.patches import Rectangle

    t0, t1 = e.window_edges_ms[0], e.window_edges_ms[-1]
    f0, f1 = e.band_edges_hz[0], e.band_edges_hz[-1]
    extent = (t0, t1, f0, f1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True, constrained_layout=True)
    # the clip and the healthy crops on one scale, in the dB the sentence reads: each with its
    # own scale, a mode as bright in both could differ by 10 dB
    top = float(max(e.crop.max(), e.reference.max()))
    levels = {"vmin": top - 60.0, "vmax": top}
    # the clip's path on the picture: take001.png, take001-2.png of three folders' clips were
    # told apart only by their PNG metadata (QA); its end, where the board and take are
    name = "" if e.path == "<array>" else e.path if len(e.path) <= 40 else "…" + e.path[-39:]
    panels = ((e.crop, f"this clip\n{name}" if name else "this clip", "magma", levels),
              (e.reference, "nearest healthy boards", "magma", levels),
              (e.deviation, "deviation (score drop when made healthy)", "viridis", {}))
    shown = []
    for ax, (image, title, cmap, scale) in zip(axes, panels, strict=True):
        shown.append(ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                               interpolation="nearest", **scale))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ms after the strike")
        ax.add_patch(Rectangle((e.time_ms[0], e.band_hz[0]), e.time_ms[1] - e.time_ms[0],
                               e.band_hz[1] - e.band_hz[0], fill=False, edgecolor="cyan", lw=1.5))
    fig.colorbar(shown[1], ax=axes[1], shrink=0.8, label="dB re the tap's mean power")
    fig.colorbar(shown[2], ax=axes[2], shrink=0.8, label="score drop")
    axes[0].set_ylabel("Hz")
    # a knn-decay sentence runs to 250 characters; 10-point type fits ~150 across 12 inches
    fig.suptitle(textwrap.fill(e.sentence, 150), fontsize=10)
    return fig


def check_picture_folder(folder: str | os.PathLike) -> None:
    """Before judging: ``folder`` may take explanation pictures; a dataset's folder, a folder
    inside one (a board's: the pictures would lie among its takes) and the recordings folder
    may not (``compare --out`` refuses them alike).

    Raises
    ------
    ParameterError
        ``folder`` is empty.
    StorageError
        ``folder`` is a file, a dataset's, inside one, or the recordings folder, or no file
        can be written there.
    """
    from .dataset_folders import refuse_dataset_folder
    from .errors import ParameterError, StorageError
    from .files import check_writable
    from .file_kinds import non_folder_kind

    if os.fspath(folder) == "":  # the current folder, unasked: pictures among whatever is there
        raise ParameterError("--explain-dir is empty, and an empty path names the current folder",
                             fix="name the folder for the pictures, e.g. --explain-dir "
                                 "explanations")
    kind = non_folder_kind(folder)  # was "cannot be written (File exists)", after judging
    if kind:
        raise StorageError(f"is {kind}, not a folder; --explain-dir names the folder the "
                           "pictures go in", path=folder,
                           fix="choose another --explain-dir, e.g. explanations")
    refuse_dataset_folder(folder, why="explanation pictures would mix with its takes",
                          home_why="pictures there would mix with the datasets' folders",
                          fix="choose another --explain-dir, e.g. explanations")
    # a read-only disk: now, while it costs nothing (made when a picture is written)
    check_writable(folder, create=False)


def save_pictures(explanations: Sequence[Explanation], folder: str | os.PathLike) -> None:
    """A picture per explanation in ``folder``, named after its clip; sets ``e.picture``.

    Raises
    ------
    StorageError
        ``folder`` is a dataset's (:func:`check_picture_folder`) or cannot be written.
    """
    from .files import check_writable

    check_picture_folder(folder)
    folder = check_writable(folder)  # before any work, with a clear error
    used: set[str] = set()
    for e in explanations:
        stem = Path(e.path).stem or "clip"
        name, n = f"{stem}.png", 1
        clip = clip_key(e.path)
        # two clips of the same name from different folders, in this run or an earlier one; a
        # file there that is not this clip's picture (a user's, a link, another clip's picture,
        # or one too old to say whose it is) is never replaced: the next name is taken
        while name in used or (os.path.lexists(folder / name)
                               and picture_clip(folder / name) != clip):
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        e.picture = str(save_picture(e, folder / name))
