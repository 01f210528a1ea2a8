"""``tapcheck demo``: the study end to end on synthesised boards, in one call."""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Callable

import numpy as np

from .config import Config
from .console import percent
from .dataset_folders import dataset_path
from .datasets import Dataset
from .evaluation import evaluate_scores, model_options
from .known_boards import boards_trained_on_defects, known_boards_of
from .judge import Judge, Verdict
from .paths import DEFAULT_MODEL, model_command, model_path


def run_demo(dataset: str = "demo", *, model: str | None = None, config: Config | None = None,
             epochs: int | None = None, seed: int = 0, say: Callable[[str], None] = print,
             train: Callable[..., dict] | None = None) -> tuple[dict, list[Verdict], float]:
    """Synthesise the study's boards (if missing), train a model (the study's best by default),
    judge the test split.

    Parameters
    ----------
    dataset : str
        Dataset name or folder; synthesised with ``seed`` when it has no manifest yet.
    model : str, optional
        Registry name of the model to train (``tapcheck models``); saved as ``models/<model>.pt``.
        ``None``: the config's (``arcface-resnet18`` by default).
    config : Config, optional
        Settings to train with (e.g. ``configs/new-boards.toml``); ``model``, ``epochs`` and
        ``seed`` override it. ``None``: the defaults.
    epochs, seed : training settings (``None`` epochs: the model's own).
    say : callable
        Receives the progress lines.
    train : callable, optional
        ``train(dataset, *, config) -> checkpoint``; default :func:`tapcheck.training.train_model`.

    Returns
    -------
    evaluation : dict
        :func:`tapcheck.evaluation.evaluate_scores` of the judged test takes.
    verdicts : list of Verdict
        One per test take, in manifest order (those that could not be judged carry ``error``).
    seconds : float
        Wall time of the whole run.
    """
    from .errors import ModelFileError
    from .files import check_writable
    from .locks import exclusive, lock_path
    from .model_target import DEMO_MADE, check_model_target
    from .buildable import check_buildable
    from .modelcheck import check_trained
    from .modelfile import load_model, save_checkpoint
    from .synth_dataset import make_study_dataset

    started = time.perf_counter()
    config = (config or Config()).replace("train", model=model, epochs=epochs, seed=seed)
    model = config.train.model
    # a misspelt model, a scorer it cannot use, crops it cannot take, or a models/<model>.pt
    # tapcheck did not write, fail here, before minutes of synthesis
    check_buildable(config)
    out = model_path(model)
    # demo has no --out: it writes models/<model>.pt of the folder it runs in
    elsewhere = (f"demo writes {out} and has no --out: run it in another folder (or with "
                 "TAPCHECK_MODELS set to another folder), or move this file away")
    check_model_target(out, elsewhere=elsewhere, only_made_by=DEMO_MADE)
    # the model file's lock for the whole run, as train holds it: an enrolment made into
    # models/<model>.pt meanwhile was lost when the demo saved over it (QA)
    check_writable(out.parent)  # made if missing, or one line on why it cannot be
    with exclusive(lock_path(out), what=out, error=ModelFileError, remove=True):
        check_model_target(out, elsewhere=elsewhere, only_made_by=DEMO_MADE)  # again, held
        if not (dataset_path(dataset) / "manifest.csv").exists():
            say(f"1/3 synthesising the study's boards into {dataset_path(dataset)} ...")
            make_study_dataset(dataset, seed=seed, progress=sys.stderr.isatty())
        else:
            say(f"1/3 using the existing dataset {dataset_path(dataset)}")
        ds = Dataset.open(dataset)
        best = " (the study's best model)" if model == DEFAULT_MODEL else ""
        say(f"2/3 training {model}{best} ...")
        if train is None:
            from .training import train_model as train
        checkpoint = train(ds, config=config)
        # refused here, not at judging; a `train` run's progress beside it is not demo's to drop
        check_trained(checkpoint, out)
        save_checkpoint(out, {**checkpoint, "made_by": DEMO_MADE})  # a later demo may replace it
        say(f"    saved {out} (trained in {checkpoint['train_seconds']:.0f} s)")
    say("3/3 judging the test split ...")
    test = ds.select(split="test")
    loaded = load_model(out)
    verdicts = Judge(loaded).judge_files([ds.path_of(t) for t in test])
    ok = [(t, v) for t, v in zip(test, verdicts, strict=True) if not v.error]
    threshold = next((v.threshold for _, v in ok), float("nan"))
    info = loaded.detector.calibration_
    evaluation = evaluate_scores([t for t, _ in ok], np.array([v.score for _, v in ok]),
                                 threshold=threshold, known_boards=known_boards_of(
                                     loaded.checkpoint),
                                 known_defect_boards=boards_trained_on_defects(loaded.checkpoint),
                                 **model_options(info))
    return evaluation, verdicts, time.perf_counter() - started


def demo_lines(evaluation: dict, *, seconds: float, model: str | os.PathLike | None = None,
               dataset: str = "demo") -> list[str]:
    """What ``tapcheck demo`` prints of its evaluation (the README shows the same lines);
    ``model`` is the file it wrote (None: the default one) and ``dataset`` the dataset it used,
    for the ``tapcheck evaluate`` it points at."""
    from .console import table
    from .board_figures import study_board_check

    boards = evaluation["boards"]
    lines = [table(boards, ["board", "label", "group", "clips", "mean score", "flagged"]),
             f"threshold {evaluation['threshold']:.4g}   AUC {evaluation['auc']:.3f}   "
             f"pAUC(FPR<=0.1) {evaluation['pauc']:.3f}   ({seconds:.0f} s in all)"]
    if evaluation.get("stated_far") is not None:
        # evaluate's own defaults are the demo dataset and the default model file
        evaluate = model_command(model, "evaluate", "" if dataset == "demo" else
                                 f"--dataset {shlex.quote(dataset)}")
        known, unseen = evaluation["false_alarms_known"], evaluation["false_alarms_unseen"]
        lines.append(f"false alarms per tap: known boards "
                     f"{'-' if known is None else f'{known:.1%}'}, unseen boards "
                     f"{'-' if unseen is None else f'{unseen:.1%}'} (the model states "
                     f"{percent(evaluation['stated_far'])}; see `{evaluate}`)")
    _, sentence = study_board_check({r["board"]: r["mean score"] for r in boards
                                     if r["label"] == "defect"})
    if sentence:
        lines.append(sentence)
    return lines
