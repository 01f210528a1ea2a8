"""Grids of cells for ``compare``: every (model, seed, fold), each trained and scored on its own.

One seed says little about a model: ``arcface-resnet18`` alone spanned AUC 0.854-0.960 over five
training seeds on the demo (docs/new-boards.md). A grid repeats each model over seeds and, with
folds, over which normal boards it never saw, so a ranking can be tested rather than read off
one run.

- **Folds** (``--folds K``): the normal boards of the training split are dealt into K folds by
  board (both sides of a board together, the same deal for every seed and model, so cells pair
  up). In fold f the boards of fold f leave training and join the test as unseen normal boards.
- **Cells are pure**: :func:`run_cell` gets a :class:`CellTask` and the crops, and returns the
  cell's metrics, scores, history and (if asked) its model file's bytes. It reads no file, so
  the same function runs in this process or as a Ray task on another machine
  (:mod:`tapcheck.cluster`) and gives the same numbers for the same seed.
- **Resumable**: the driver writes each finished cell to ``<out>/cells/<model>/<cell>-<key>.json``
  (atomically), ``key`` a hash of the resolved config, the dataset's content, model, seed and
  fold. A rerun reuses every cell whose file is there, so a killed or extended grid only
  computes what is missing, and the report is always built from the cell files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .cellstore import CellStore
from .config import Config
from .copies import content_digest
from .datasets import Dataset, Take
from .errors import ParameterError, TapcheckWarning

# A cell's model file passes through a folder of this name (and the pid of its process) in the
# temporary folder; see sweep_dead_cell_folders.
CELL_FOLDER_PREFIX = "tapcheck-cell-"
# Bump when a cell file's contents change meaning: old cells are recomputed.
CELL_FORMAT = 2  # 2: false alarms on known and unseen boards, board verdicts


@dataclass(frozen=True)
class GridConfig:
    """How ``compare`` repeats its training: over seeds and board folds, and where cells run.

    A cell is one (model, seed, fold). These settings choose which cells exist and how they are
    run; what a cell computes is the :class:`Config`, so they are not a table of the TOML file.
    """

    seeds: tuple[int, ...] = (0,)
    folds: int = 0  # 0: the dataset's own split; K >= 2: normal training boards in K folds
    fold_seed: int = 0  # which board goes to which fold; fixed, so every seed and model pairs up
    keep_models: bool = False  # save every cell's model file, not only the representative cell's
    ray: bool = False  # run the cells as Ray tasks
    ray_address: str | None = None  # None: a local Ray instance; else a cluster ("auto", host:port)
    cpus_per_cell: int = 1  # Ray: CPUs reserved for, and torch threads of, each cell

    @property
    def single(self) -> bool:
        """One seed and no folds: the plain comparison, reported as it always was."""
        return len(self.seeds) == 1 and self.folds == 0


MAX_SEED = 2**32 - 1  # numpy's seed range, as synth --seed
MAX_SEEDS = 100  # each trains every model on every fold: a typo's 0-1000000 is not a plan


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0-4`` → (0, 1, 2, 3, 4); ``0,2,5`` and mixtures such as ``0-2,7`` work too."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        # ASCII digits only: "٠-١" (Arabic-Indic) was read as 0-1, as --since once read "৩d"
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if m and m[2] is not None and int(m[2]) < int(m[1]):  # said only "not a list" (QA)
            raise ParameterError(f"--seeds '{text}': the range {part} runs backwards",
                                 fix=f"write it low to high, e.g. --seeds {m[2]}-{m[1]}")
        if not m:
            raise ParameterError(f"--seeds '{text}' is not a list of seeds",
                                 fix="write a range or a list of whole numbers, e.g. --seeds 0-4 "
                                     "or --seeds 0,2,5")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi > MAX_SEED or hi - lo + 1 + len(seeds) > MAX_SEEDS:  # before a range is expanded
            asks = f"a seed over {MAX_SEED}" if hi > MAX_SEED else f"more than {MAX_SEEDS} seeds"
            raise ParameterError(
                f"--seeds '{text}' asks for {asks}",
                fix=f"give at most {MAX_SEEDS} seeds from 0 to {MAX_SEED}, e.g. --seeds 0-4 (each "
                    "seed trains every model once per fold)")
        seeds.extend(range(lo, hi + 1))
    once = tuple(dict.fromkeys(seeds))
    if len(once) < len(seeds):  # "0,0" made a one-seed comparison without a word (QA)
        twice = sorted(s for s, n in Counter(seeds).items() if n > 1)
        warnings.warn(f"--seeds '{text}' names seed{'s' * (len(twice) > 1)} "
                      f"{', '.join(map(str, twice))} more than once; each seed is trained once, "
                      f"so the comparison has {len(once)} seed{'s' * (len(once) > 1)}",
                      TapcheckWarning, stacklevel=2)
    return once


@dataclass(frozen=True)
class Cell:
    """One model trained with one seed on one fold (``None``: the dataset's own split)."""

    model: str
    seed: int
    fold: int | None

    @property
    def stem(self) -> str:
        return f"s{self.seed}" if self.fold is None else f"s{self.seed}-f{self.fold}"

    @property
    def label(self) -> str:
        return f"{self.model} seed {self.seed}" + ("" if self.fold is None else
                                                    f" fold {self.fold}")


@dataclass(frozen=True)
class CellTask:
    """Everything a cell needs besides the crops; small and picklable, for a Ray task."""

    cell: Cell
    config: dict  # Config.to_dict(), model and seed set
    takes: tuple[Take, ...]  # the dataset's takes, the fold's boards already moved to the test
    dataset_root: str
    keep_model: bool  # return the model file's bytes


def fold_boards(takes: Iterable[Take], folds: int, *, seed: int = 0) -> list[list[int]]:
    """The normal training boards dealt into ``folds`` folds, shuffled by ``seed``."""
    boards = sorted({t.board for t in takes if t.split == "train" and t.label == "normal"})
    if folds < 2 or folds > len(boards):
        raise ParameterError(
            f"--folds {folds} cannot split " + (f"the {len(boards)} normal training boards"
                                                 if len(boards) != 1 else
                                                 "the one normal training board"),
            fix=f"use --folds between 2 and {len(boards)}, or leave it out" if len(boards) >= 2
            else "record more normal boards (a fold holds whole boards), or leave --folds out")
    order = np.random.default_rng([seed, 2027]).permutation(boards)
    return [sorted(int(b) for b in part) for part in np.array_split(order, folds)]


def takes_for_fold(takes: Iterable[Take], held_out: Iterable[int]) -> tuple[Take, ...]:
    """The takes with the held-out boards' training takes moved to the test split."""
    out = set(held_out)
    return tuple(dataclasses.replace(t, split="test") if t.board in out and t.split == "train"
                 else t for t in takes)


def dataset_fingerprint(dataset: Dataset) -> str:
    """A hash of the manifest rows and every take's bytes: what a cell's numbers depend on."""
    h = hashlib.sha1()
    for take in dataset.takes:
        h.update(json.dumps(dataclasses.asdict(take), sort_keys=True).encode())
        path = dataset.path_of(take)
        h.update(bytes.fromhex(content_digest(path)) if path.exists() else b"missing")
    return h.hexdigest()


def cell_key(task: CellTask, *, fingerprint: str, folds: int, fold_seed: int) -> str:
    """12 hex digits naming a cell's settings: same key, same numbers."""
    from .models import get_spec

    config = Config.from_dict(task.config)
    resolved = dataclasses.replace(config, train=get_spec(task.cell.model).resolve(config.train))
    settings = resolved.to_dict()
    for field, before in (("members", 1), ("ema_decay", 0.0)):  # the key cells had before it
        if settings["train"][field] == before:
            del settings["train"][field]
    settings = {"format": CELL_FORMAT, "config": settings, "dataset": fingerprint,
                "cell": dataclasses.asdict(task.cell), "folds": folds, "fold_seed": fold_seed}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def representative(cell: Cell, grid: GridConfig) -> bool:
    """The cell whose plots the report shows: the first seed, fold 0."""
    return cell.seed == grid.seeds[0] and cell.fold in (None, 0)


def plan_cells(dataset: Dataset, names: list[str], config: Config, grid: GridConfig
               ) -> tuple[list[CellTask], dict[Cell, str], list[list[int]] | None]:
    """The grid's tasks in report order (model, seed, fold), their keys and the folds' boards."""
    folds = fold_boards(dataset.takes, grid.folds, seed=grid.fold_seed) if grid.folds else None
    views = ({None: tuple(dataset.takes)} if folds is None else
             {f: takes_for_fold(dataset.takes, boards) for f, boards in enumerate(folds)})
    fingerprint = dataset_fingerprint(dataset)
    tasks, keys = [], {}
    for name in names:
        for seed in grid.seeds:
            for fold, takes in views.items():
                cell = Cell(name, seed, fold)
                task = CellTask(cell, config.replace("train", model=name, seed=seed).to_dict(),
                                takes, str(dataset.root),
                                keep_model=grid.keep_models or representative(cell, grid))
                tasks.append(task)
                keys[cell] = cell_key(task, fingerprint=fingerprint, folds=grid.folds,
                                      fold_seed=grid.fold_seed)
    return tasks, keys, folds


class ShippedCrops:
    """The crops of a dataset's takes held in memory, in place of a :class:`FeatureCache`.

    Cells get their crops this way wherever they run, so a worker needs no dataset files.
    """

    def __init__(self, root: str | Path, crops: dict[str, np.ndarray]):
        self.root, self.crops = Path(root), crops

    def _key(self, path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def can_read(self, path) -> bool:
        return self._key(path) in self.crops

    def get_many(self, paths, *, progress: bool = False) -> np.ndarray:
        return np.stack([self.crops[self._key(p)] for p in paths])


def task_dataset(task: CellTask) -> Dataset:
    """The cell's view of the dataset: its root (files need not exist) and its takes."""
    # not Dataset(root): that reads the manifest, and a worker may have no such folder
    dataset = Dataset.__new__(Dataset)
    dataset.root, dataset.takes = Path(task.dataset_root), list(task.takes)
    dataset.name = dataset.root.name
    return dataset


def run_cell(task: CellTask, crops: dict[str, np.ndarray], *, threads: int | None = None) -> dict:
    """Train and score one cell; reads no file, so it runs the same on any machine.

    Returns
    -------
    dict
        ``row`` (:func:`tapcheck.evaluation.evaluate_scores` plus model details), ``scores``,
        ``history`` and ``model_bytes`` (the model file, or None unless ``keep_model``).
    """
    import torch

    from .evaluation import evaluate_scores, model_options
    from .judge import Judge
    from .known_boards import boards_trained_on_defects, known_boards_of
    from .modelfile import load_model, save_checkpoint
    from .models import get_spec
    from .training import train_model

    if threads:
        torch.set_num_threads(threads)
    dataset = task_dataset(task)
    cache = ShippedCrops(dataset.root, crops)
    test_takes = dataset.select(split="test")
    checkpoint = train_model(dataset, config=Config.from_dict(task.config), cache=cache,
                             progress=False)
    sweep_dead_cell_folders()
    with tempfile.TemporaryDirectory(prefix=f"{CELL_FOLDER_PREFIX}{os.getpid()}-") as tmp:
        # through a model file, as `judge` would load it: the scores are the saved model's
        path = save_checkpoint(Path(tmp) / "model.pt", checkpoint)
        model_bytes = path.read_bytes() if task.keep_model else None
        loaded = load_model(path)
    judge = Judge(loaded)
    scores = judge.scores(cache.get_many([dataset.path_of(t) for t in test_takes]))
    info = loaded.detector.calibration_
    row = {"model": task.cell.model,
           **evaluate_scores(test_takes, scores, threshold=judge.threshold,
                             known_boards=known_boards_of(checkpoint),
                             known_defect_boards=boards_trained_on_defects(checkpoint),
                             **model_options(info)),
           "summary": get_spec(task.cell.model).summary, "scorer": loaded.scorer,
           "epochs": loaded.config.train.epochs,
           "train_seconds": round(float(checkpoint["train_seconds"]), 1)}
    return {"row": row, "scores": [float(s) for s in scores],
            "history": checkpoint["history"], "model_bytes": model_bytes,
            "threads": torch.get_num_threads()}


def check_cell(task: CellTask, crops: dict[str, np.ndarray], *,
               log: Callable[[str], None] | None = None) -> None:
    """Raise what training the cell would refuse before its first epoch, training nothing
    (:func:`tapcheck.training.check_trainable`); ``log`` hears what training would say of
    its calibration, which the cells, trained without a log, keep to themselves."""
    from .training import check_trainable

    dataset = task_dataset(task)
    check_trainable(dataset, config=Config.from_dict(task.config),
                    cache=ShippedCrops(dataset.root, crops), log=log)


def sweep_dead_cell_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the cell folders that processes killed mid-cell left behind.

    A cell holds its model file in a temporary folder for a moment; a SIGKILLed ``compare``
    (or Ray worker) gets no chance to remove it. Only folders named with the pid of a process
    that no longer runs, and owned by this user, are removed.

    Parameters
    ----------
    root : path, optional
        The folder to sweep; default the temporary folder (:func:`tempfile.gettempdir`).

    Returns
    -------
    list of Path
        The folders removed.
    """
    removed: list[Path] = []
    if os.name != "posix":  # os.kill(pid, 0) asks whether a process runs on POSIX only
        return removed      # (on Windows it terminates it)
    for folder in Path(root or tempfile.gettempdir()).glob(f"{CELL_FOLDER_PREFIX}*-*"):
        match = re.fullmatch(rf"{CELL_FOLDER_PREFIX}(\d+)-[\w.]+", folder.name)
        try:
            if (not match or folder.is_symlink() or not folder.is_dir()
                    or folder.stat().st_uid != os.getuid() or _running(int(match.group(1)))):
                continue
        except OSError:  # gone meanwhile: another process swept it
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # no pid: not a folder of ours, kept
        return True
    return True


Runner = Callable[..., Iterator[tuple[CellTask, dict]]]


def run_serially(tasks: list[CellTask], crops: dict, *, log: Callable[[str], None] = print
                 ) -> Iterator[tuple[CellTask, dict]]:
    """The cells one after another in this process, on its usual torch threads."""
    for i, task in enumerate(tasks, start=1):
        log(f"[{i}/{len(tasks)}] {task.cell.label}: training ...")
        yield task, run_cell(task, crops)


def run_grid(tasks: list[CellTask], keys: dict[Cell, str], crops: dict, *, store: CellStore,
             runner: Runner = run_serially, log: Callable[[str], None] = print,
             threads: int | None = None) -> tuple[dict[Cell, dict], int]:
    """Every cell's stored result: finished ones read back (those trained on ``threads``
    torch threads, when given), the others run and saved; and how many were read back."""
    done: dict[Cell, dict] = {}
    todo = []
    other_threads = Counter()  # cells stored here, trained on another number of threads
    for task in tasks:
        stored = store.load(task.cell, keys[task.cell], need_model=task.keep_model,
                            threads=threads)
        if stored is None:
            todo.append(task)
            # read only (need_model=False moves no model file): to be counted, not reused
            found = None if threads is None else store.load(
                task.cell, keys[task.cell], need_model=False)
            if found is not None:
                other_threads[found.get("threads")] += 1
        else:
            done[task.cell] = stored
            name = store.json_path(task.cell, keys[task.cell]).relative_to(store.out)
            log(f"      {task.cell.label}: reused {name}")
    if done:
        log(f"{len(done)} of {len(tasks)} cells reused from {store.out / 'cells'}; "
            f"{len(todo)} to run")
    if other_threads:  # switching between --ray and not retrained every cell without a word
        n, shown = sum(other_threads.values()), ", ".join(map(str, sorted(other_threads)))
        log(f"tapcheck: warning: {n} cell(s) stored in {store.out / 'cells'} were trained on "
            f"{shown} torch thread(s) and this run trains on {threads}, which moves their "
            "numbers in the last bits: they are trained again and replaced — to reuse them, "
            "run as they ran (--ray trains each cell on --cpus-per-cell threads, 1 unless "
            "given; without --ray, on this process's, OMP_NUM_THREADS)")
    # a cell stored under another key (another tapcheck, or options changed since): trained
    # again under this run's key without a word, its old files left beside (upgrade QA)
    elsewhere = sum(1 for task in todo if store.other_keys(task.cell, keys[task.cell]))
    if elsewhere:
        log(f"tapcheck: warning: {elsewhere} cell(s) to run have records in "
            f"{store.out / 'cells'} made with other settings (options changed since, or "
            "another tapcheck version): those are not reused, and the cells are trained "
            "again; the old records stay beside them")
    said: list[str] = []  # e.g. "cross-fit: 4 folds, one per …": said once, not per cell
    for task in todo:  # a fold too thin to train on is refused before any cell trains
        check_cell(task, crops, log=said.append)
    for line in dict.fromkeys(said):
        log(line)
    started = time.perf_counter()
    for i, (task, result) in enumerate(runner(todo, crops, log=log), start=1):
        done[task.cell] = store.save(task.cell, keys[task.cell], result)
        row = result["row"]
        log(f"[{i}/{len(todo)}] {task.cell.label}: AUC {row['auc']:.3f}  pAUC {row['pauc']:.3f}  "
            f"({row['train_seconds']:.0f} s training, {time.perf_counter() - started:.0f} s "
            "so far)")
    return {task.cell: done[task.cell] for task in tasks}, len(tasks) - len(todo)
