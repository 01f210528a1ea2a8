"""``tapcheck compare``: train several models on one dataset and compare them side by side.

Each model is trained on the training split (features from the cache, so the STFTs are computed
once for all models), saved to ``<out>/models/<name>.pt``, and scores the test split. The report
folder gets ``metrics.csv``, ``metrics.json`` and an offline ``index.html`` with the study's
figures: t-SNE maps in three panels, distance-score charts per board, ROC curves, training curves.
Training is deterministic per seed, so a re-run gives the same numbers (timings aside).
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
import warnings
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import __version__
from .cellstore import CellStore
from .config import Config
from .datasets import Dataset, Take
from .errors import DatasetError, ParameterError, StorageError, TapcheckWarning
from .featurecache import FeatureCache
from .grid import Cell, GridConfig, plan_cells, representative, run_grid, run_serially
from .judge import Judge
from .misfiled import refuse_misfiled
from .models import MODELS, STUDY_MODELS, get_spec
from .models.base import represent_clips
from .report_folder import check_report_folder, compared_models
from .runtime import cpu_has_bf16
from .training_data import dataset_crops


def resolve_models(selection: str) -> list[str]:
    """``all``, ``study`` (the study's eight) or a comma-separated list of registered names."""
    if selection == "all":
        return list(MODELS)
    if selection == "study":
        return list(STUDY_MODELS)
    names = [n.strip() for n in selection.split(",") if n.strip()]
    if not names:
        raise ParameterError("--models is empty", fix="use all, study, or names like ae,vae")
    for name in names:
        if name in ("all", "study"):  # "study,ae" was "unknown model 'study'" (QA)
            raise ParameterError(f"--models '{selection}': {name} stands alone, not in a list",
                                 fix=f"use --models {name}, or list every model by name")
        get_spec(name)  # an unknown name lists the valid ones
    once = list(OrderedDict.fromkeys(names))
    if len(once) < len(names):  # "ae,ae" compared one model without a word (QA)
        twice = [n for n in once if names.count(n) > 1]
        warnings.warn(f"--models '{selection}' names {', '.join(twice)} more than once; each "
                      "model is trained once per seed", TapcheckWarning, stacklevel=2)
    return once


def compare_models(dataset: Dataset, names: list[str], *, config: Config, out: str | os.PathLike,
                   grid: GridConfig | None = None, log: Callable[[str], None] = print,
                   progress: bool | None = None) -> list[dict]:
    """Train and evaluate ``names`` on ``dataset``, over the cells of ``grid``; write ``out``.

    Parameters
    ----------
    grid : GridConfig, optional
        Seeds, folds and where the cells run (:mod:`tapcheck.grid`). Default: one cell per
        model, ``config.train.seed``, the dataset's own split, in this process.

    Returns
    -------
    list of dict
        One metrics row per model (also in ``metrics.json``): the cell's metrics for a single
        cell per model, the summaries over cells (:mod:`tapcheck.gridreport`) for a grid.
    """
    started = time.perf_counter()
    out = Path(out)
    # before the features and the training, not after
    check_report_folder(out, names, dataset=dataset)
    grid = grid or GridConfig(seeds=(config.train.seed,))
    with _held(out, names, models=grid.single):
        # again, held: an enrolment made since is not lost (its warning was given above)
        check_report_folder(out, names, warn=False, dataset=dataset)
        return _compare(dataset, names, config=config, out=out, grid=grid, log=log,
                        progress=progress, started=started)


@contextlib.contextmanager
def _held(out: Path, names: list[str], *, models: bool) -> Iterator[None]:
    """The report folder's lock, and each model file's (``models``: a plain comparison's
    ``models/<name>.pt``) as ``train`` and ``enroll`` take it, for the whole run: a second
    compare into the same folder finished over the first one's files, and an enrolment made
    into a report's model while compare ran was lost when it saved over it (QA)."""
    from .errors import ModelFileError
    from .files import check_writable
    from .locks import exclusive, lock_path

    made = [folder for folder in (out / "models", out) if not os.path.lexists(folder)]
    with contextlib.ExitStack() as stack:
        # last, once the locks are gone: a refused run leaves no empty report folder behind
        stack.callback(lambda: [_rmdir_if_empty(folder) for folder in made])
        check_writable(out)
        stack.enter_context(exclusive(lock_path(out / "metrics.json"), what=out,
                                      error=StorageError, remove=True))
        if models:
            check_writable(out / "models")
            for name in names:
                path = out / "models" / f"{name}.pt"
                stack.enter_context(exclusive(lock_path(path), what=path, error=ModelFileError,
                                              remove=True))
        yield


def _rmdir_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _compare(dataset: Dataset, names: list[str], *, config: Config, out: Path, grid: GridConfig,
             log: Callable[[str], None], progress: bool | None, started: float) -> list[dict]:
    """:func:`compare_models` with the report folder held."""
    dropped = [name for name in compared_models(out / "metrics.json") if name not in names]
    crops = _all_crops(dataset, config=config, progress=bool(progress), log=log)
    tasks, keys, folds = plan_cells(dataset, names, config, grid)
    store = CellStore(out, models_beside=grid.single)
    if grid.ray:
        from .cluster import ray_runner

        runner = ray_runner(address=grid.ray_address, cpus_per_cell=grid.cpus_per_cell)
    else:
        runner = run_serially
    # the torch threads each cell trains on: part of what its numbers depend on
    import torch

    threads = grid.cpus_per_cell if grid.ray else torch.get_num_threads()
    cells, reused = run_grid(tasks, keys, crops, store=store, runner=runner, log=log,
                             threads=threads)
    meta = {"dataset": str(dataset.root), "dataset folder": os.path.abspath(dataset.root),
            "models": ", ".join(names),
            # the grid's seeds: `--seeds 7` trained seed 7 and reported config.train.seed, 0
            "seed": grid.seeds[0] if grid.single else ", ".join(map(str, grid.seeds)),
            "train clips": len(dataset.select(split="train")),
            "test clips": len(dataset.select(split="test")), "tapcheck": __version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"bf16 {'yes' if cpu_has_bf16() else 'no'}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if reused:
        # the wall time is this run's: a rerun reusing every cell took seconds, and its report
        # read as if the comparison had (QA); the training it reused is told apart
        trained = sum(cells[t.cell]["row"]["train_seconds"] for t in tasks)
        meta["cells reused"] = (f"{reused} of {len(cells)}, trained by an earlier run in this "
                                "folder (the wall time is this run's)")
        meta["training, all cells (s)"] = round(trained, 1)
    if not grid.single:
        meta.update({"folds": grid.folds or "none (the dataset's split)",
                     "fold boards": folds or "–", "cells": len(cells),
                     "ran on": f"Ray ({grid.ray_address or 'local'}), {grid.cpus_per_cell} CPU "
                               "per cell" if grid.ray else "this process, one cell at a time"})
    shown = [t for t in tasks if representative(t.cell, grid)]
    runs, cell_rows = _representative_runs(out, dataset, shown, cells, crops, log=log)
    figures = _figures(out, runs, *_split(shown[0].takes), seed=shown[0].cell.seed)
    if grid.single:
        rows = _write_single(out, cell_rows, meta, figures, started=started)
    else:
        rows = _write_grid(out, names, cells, meta, figures, cell_rows, shown=shown[0].cell,
                           started=started)
    # the earlier report's figures of a model no longer compared read as this report's (QA);
    # its model file and cells stay, for a later run that compares it again
    for name in dropped:
        for kind in ("tsne", "scores"):
            (out / f"{kind}-{name}.png").unlink(missing_ok=True)
    return rows


def _all_crops(dataset: Dataset, *, config: Config, progress: bool,
               log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Every take's crops by its path in the dataset: what each cell gets shipped."""
    train_takes, test_takes = dataset.select(split="train"), dataset.select(split="test")
    if not test_takes:
        raise DatasetError("has no takes in the test split: nothing to compare on",
                           path=dataset.root / "manifest.csv",
                           fix="record or import takes with --split test (tapcheck record --split "
                               "test, or tapcheck import --split test), or set the split column of "
                               "a few takes per board to test in the manifest")
    for takes, split in ((train_takes, "training"), (test_takes, "test")):  # before any cell
        refuse_misfiled(takes, every=dataset.takes, manifest=dataset.root / "manifest.csv",
                        split=split)
    labels = np.array([t.label == "defect" for t in test_takes])
    if labels.all() or not labels.any():  # said so that the report's dashes are understood
        has, lacks, fix = (("defect", "normal", "healthy boards") if labels.all() else
                           ("normal", "defect", "a cracked board"))
        log(f"tapcheck: warning: {dataset.root}: the test split holds {has} takes only, no "
            f"{lacks} ones, so no AUC or pAUC can be computed (the report shows – for them) — "
            f"add takes of {fix} with --split test")
    cache = FeatureCache(audio=config.audio, features=config.features)
    train = dataset_crops(dataset, train_takes, cache=cache, progress=progress)
    test = dataset_crops(dataset, test_takes, cache=cache, progress=progress, split="test")
    return {t.path: c for t, c in zip(train_takes + test_takes, np.concatenate([train, test]),
                                      strict=True)}


def _split(takes) -> tuple[list[Take], list[Take], np.ndarray]:
    train = [t for t in takes if t.split == "train"]
    test = [t for t in takes if t.split == "test"]
    return train, test, np.array([t.label == "defect" for t in test])


def _representative_runs(out: Path, dataset: Dataset, shown: list, cells: dict, crops: dict,
                         *, log: Callable[[str], None]) -> tuple[dict, list[dict]]:
    """What the plots need of each model's representative cell, from its model file; its row
    with the judging latency, measured here and not on a busy worker."""
    runs, rows = {}, []
    for task in shown:
        stored = cells[task.cell]
        train_takes, test_takes, _ = _split(task.takes)
        judge = Judge(out / stored["row"]["model_file"])
        row = {k: v for k, v in stored["row"].items() if k != "model_file"}
        row.update(judge_ms=round(_judge_latency_ms(judge, dataset.path_of(test_takes[0])), 2),
                   model_file=stored["row"]["model_file"])
        rows.append(row)
        train_clips = np.stack([crops[t.path] for t in train_takes])
        test_clips = np.stack([crops[t.path] for t in test_takes])
        runs[task.cell.model] = dict(
            scores=np.array(stored["scores"]), history=stored["history"],
            train_emb=represent_clips(judge.net, train_clips, "knn").numpy(),
            test_emb=represent_clips(judge.net, test_clips, "knn").numpy(),
            threshold=judge.threshold)
    return runs, rows


def _write_single(out: Path, rows: list[dict], meta: dict, figures: dict, *,
                  started: float) -> list[dict]:
    from .gridreport import best_first
    from .report import write_index, write_metrics

    meta["wall time (s)"] = round(time.perf_counter() - started, 1)
    rows = best_first(rows)
    write_metrics(out, rows, meta)
    write_index(out, rows=rows, meta=meta, figures=figures)
    return rows


def _write_grid(out: Path, names: list[str], cells: dict, meta: dict, figures: dict,
                cell_rows: list[dict], *, shown: Cell, started: float) -> list[dict]:
    from .gridreport import (best_first, model_summaries, paired_tests, write_grid_index,
                             write_grid_metrics)

    rows, pairs = best_first(model_summaries(names, cells)), paired_tests(names, cells)
    meta["wall time (s)"] = round(time.perf_counter() - started, 1)
    # what the driver itself needed: with --ray the cells' memory is the workers'
    meta["driver peak memory (MB)"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    write_grid_metrics(out, rows=rows, pairs=pairs, cells=cells, meta=meta)
    shown_text = f"seed {shown.seed}" + ("" if shown.fold is None else f", fold {shown.fold}")
    write_grid_index(out, rows=rows, pairs=pairs, meta=meta, figures=figures, shown=shown_text,
                     cell_rows=cell_rows)
    for row in rows:
        row["pairs"] = [p for p in pairs if row["model"] in (p["a"], p["b"])]
    return rows


def _judge_latency_ms(judge: Judge, path: Path, *, repeats: int = 15) -> float:
    """Median wall time to judge one clip from its file (load, STFT, crops, network, kNN)."""
    for _ in range(2):
        judge.judge_files([path])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        judge.judge_files([path])
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def _figures(out: Path, runs: dict, train_takes: list[Take], test_takes: list[Take],
             labels: np.ndarray, *, seed: int) -> dict:
    from . import plots

    train_boards = np.array([t.board for t in train_takes])
    train_labels = np.array([t.label for t in train_takes])
    test_boards = np.array([t.board for t in test_takes])
    test_labels = np.array([t.label for t in test_takes])
    colors = plots.board_colors(list(train_boards) + list(test_boards),
                                list(train_labels) + list(test_labels))
    seen = set(train_boards.tolist())
    defect = test_labels != "normal"
    unseen_normal = (test_labels == "normal") & ~np.isin(test_boards, list(seen))
    if not unseen_normal.any():
        unseen_normal = test_labels == "normal"
    figures: dict = {"models": {}}
    for name, run in runs.items():
        xy_train, xy_test = tsne_map(run["train_emb"], run["test_emb"], seed=seed)
        panels = [("+ held-out defective boards", xy_test[defect], test_boards[defect],
                   test_labels[defect]),
                  ("+ unseen normal boards (similar material)", xy_test[unseen_normal],
                   test_boards[unseen_normal], test_labels[unseen_normal])]
        tsne = plots.tsne_panels(xy_train, train_boards, train_labels, panels, colors=colors,
                                 title=f"{name}: t-SNE of the embeddings",
                                 path=out / f"tsne-{name}.png")
        series = []
        for board, side in sorted({(t.board, t.side) for t in test_takes}):
            idx = [i for i, t in enumerate(test_takes) if t.board == board and t.side == side]
            idx.sort(key=lambda i: test_takes[i].take)
            series.append({"board": board, "side": side, "label": test_takes[idx[0]].label,
                           "takes": [test_takes[i].take for i in idx],
                           "scores": run["scores"][idx]})
        scores = plots.score_chart(series, threshold=run["threshold"], colors=colors,
                                   title=f"{name}: anomaly score per take (test split)",
                                   path=out / f"scores-{name}.png")
        figures["models"][name] = {"tsne": tsne.name, "scores": scores.name}
    figures["roc"] = plots.roc_curves({n: (labels, r["scores"]) for n, r in runs.items()},
                                      path=out / "roc.png").name
    figures["training"] = plots.training_curves({n: r["history"] for n, r in runs.items()},
                                                path=out / "training.png").name
    return figures


def tsne_map(train: np.ndarray, test: np.ndarray, *, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D t-SNE map of the training embeddings, with the test embeddings placed into it.

    openTSNE's ``transform`` optimises only the new points against the fixed map, so every panel
    shows the same map and test clips land where the training clips they resemble are.
    """
    from openTSNE import TSNE

    # openTSNE lowers a perplexity over (n - 1) / 3 itself, saying so on stderr: 2 was too high
    # for a tiny set's 5 training crops (QA)
    perplexity = float(min(30.0, (len(train) - 1) / 3.0))
    embedding = TSNE(n_components=2, perplexity=perplexity, metric="cosine", random_state=seed,
                     n_jobs=1, verbose=False).fit(np.ascontiguousarray(train, dtype=np.float64))
    # transform's own perplexity (5) is too high for a map of a few clips: openTSNE printed
    # "Perplexity value 5 is too high" into compare's output
    placed = embedding.transform(np.ascontiguousarray(test, dtype=np.float64),
                                 perplexity=float(min(5.0, (len(train) - 1) / 3.0)))
    return np.asarray(embedding), np.asarray(placed)


def default_out(dataset: Dataset) -> Path:
    return Path("reports") / dataset.name

