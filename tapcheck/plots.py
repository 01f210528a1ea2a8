"""Figures of a comparison in the study's style: t-SNE panels, score charts, ROC, training.

Every function writes one PNG (atomically) and returns its path. Boards keep one colour across
all figures: normal boards in cool colours, defective ones in warm colours.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import atomic_write


def pyplot():
    """matplotlib's pyplot, drawing to files only, its font list kept in tapcheck's cache.

    matplotlib writes ``~/.config/matplotlib`` and ``~/.cache/matplotlib`` (making a missing
    home folder), or, where it cannot, prints two lines about a temporary folder. Unless
    ``MPLCONFIGDIR`` is set, its folder is ``matplotlib/`` in the feature cache's folder
    (:func:`tapcheck.paths.cache_home`), or where that may not be written
    (:func:`tapcheck.paths.cache_problem`), a temporary folder removed at exit.
    """
    import sys

    if "matplotlib" not in sys.modules and "MPLCONFIGDIR" not in os.environ:
        # read once, on import: set for the import only, not for the rest of the process and
        # its children (a user's own matplotlibrc in ~/.config is not read: figures look the
        # same everywhere)
        os.environ["MPLCONFIGDIR"] = os.fspath(_matplotlib_folder())
        try:
            import matplotlib.pyplot  # noqa: F401
        finally:
            del os.environ["MPLCONFIGDIR"]
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _matplotlib_folder() -> Path:
    import atexit
    import shutil
    import tempfile

    from .paths import cache_home, cache_problem

    folder = cache_home() / "matplotlib"
    if cache_problem() is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
    temporary = tempfile.mkdtemp(prefix="tapcheck-matplotlib-")
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return Path(temporary)


def board_colors(boards: Sequence[int], labels: Sequence[str]) -> dict[int, tuple]:
    """A colour per board: blues/greens for normal boards, reds/oranges for defective ones."""
    plt = pyplot()
    label_of = dict(zip(boards, labels, strict=True))
    normal = sorted(b for b in set(boards) if label_of[b] == "normal")
    defect = sorted(b for b in set(boards) if label_of[b] != "normal")
    cool = plt.get_cmap("winter")
    warm = plt.get_cmap("autumn")
    colors = {b: cool(i / max(1, len(normal) - 1) * 0.9) for i, b in enumerate(normal)}
    colors.update({b: warm(i / max(1, len(defect) - 1) * 0.7) for i, b in enumerate(defect)})
    return colors


def _save(fig, path: str | os.PathLike) -> Path:
    plt = pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
    return Path(path)


def tsne_panels(train_xy: np.ndarray, train_boards: np.ndarray, train_labels: np.ndarray,
                panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *, colors: dict,
                title: str, path: str | os.PathLike) -> Path:
    """The study's three t-SNE panels on one map.

    Parameters
    ----------
    train_xy : np.ndarray, shape (n_train, 2)
        The map of the training clips.
    train_boards, train_labels : np.ndarray, shape (n_train,)
    panels : list of (title, xy (m, 2), boards (m,), labels (m,))
        Test clips placed into the same map, one panel each (study: training only; + held-out
        defective boards; + similar-material boards).
    colors : dict board -> colour
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5 * (len(panels) + 1), 4.6),
                             sharex=True, sharey=True)
    all_panels = [("training data", np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, str))] + panels
    for ax, (panel_title, xy, boards, labels) in zip(axes, all_panels, strict=True):
        for b in np.unique(train_boards):
            m = train_boards == b
            marker = "o" if train_labels[m][0] == "normal" else "^"
            ax.scatter(*train_xy[m].T, s=9, color=colors[b], marker=marker, alpha=0.35,
                       label=f"{b} (train)")
        for b in np.unique(boards):
            m = boards == b
            marker = "*" if labels[m][0] == "normal" else "X"
            ax.scatter(*xy[m].T, s=42, color=colors[b], marker=marker, edgecolors="black",
                       linewidths=0.4, label=f"{b} (test, {labels[m][0]})")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="best", markerscale=0.8, ncol=2)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def score_chart(series: list[dict], *, threshold: float, colors: dict, title: str,
                path: str | os.PathLike) -> Path:
    """Anomaly score against take index for each board side, with the threshold (study style).

    Parameters
    ----------
    series : list of dict with ``board``, ``side``, ``label``, ``takes`` (n,), ``scores`` (n,)
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for s in series:
        style = "-" if s["label"] == "normal" else "--"
        ax.plot(s["takes"], s["scores"], style, marker=".", color=colors[s["board"]], lw=1.2,
                label=f"board {s['board']} {s['side']} ({s['label']})")
    ax.axhline(threshold, color="black", lw=1, ls=":", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("take")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("anomaly score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def roc_curves(results: dict[str, tuple[np.ndarray, np.ndarray]], *,
               path: str | os.PathLike) -> Path:
    """ROC curves of several models on one chart; ``results`` maps name -> (labels, scores)."""
    from sklearn.metrics import roc_curve

    from .metrics import auc

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for name, (labels, scores) in results.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, lw=1.3, label=f"{name} (AUC {auc(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.axvspan(0, 0.1, color="grey", alpha=0.08, label="pAUC region (FPR ≤ 0.1)")
    ax.set_xlabel("false-alarm rate (normal clips flagged)")
    ax.set_ylabel("detection rate (defective clips flagged)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def training_curves(histories: dict[str, list[dict]], *, path: str | os.PathLike) -> Path:
    """Loss per epoch for each model, with accuracy and AdaCos's scale where the model has them."""
    plt = pyplot()
    n = len(histories)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (name, history) in zip(axes.flat, histories.items(), strict=False):
        # an ensemble's members train alike: the first one's curve stands for them
        history = [h for h in history if h.get("member", 0) == 0]
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="loss")
        ax.set_yscale("log" if min(h["loss"] for h in history) > 0 else "linear")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        twin = None
        if "accuracy" in history[0]:
            twin = ax.twinx()
            twin.plot(epochs, [h["accuracy"] for h in history], color="tab:green",
                      label="accuracy")
            twin.set_ylim(0, 1.05)
        scales = [h.get("scale") for h in history]
        if scales[0] is not None and max(scales) > min(scales):  # AdaCos adapts; others fixed
            twin = twin or ax.twinx()
            twin.plot(epochs, [s / max(scales) for s in scales], color="tab:red", ls="--",
                      label=f"scale / {max(scales):.1f}")
        lines, names = ax.get_legend_handles_labels()
        if twin is not None:
            extra = twin.get_legend_handles_labels()
            lines, names = lines + extra[0], names + extra[1]
        ax.legend(lines, names, fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
