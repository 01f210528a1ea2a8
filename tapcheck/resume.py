"""A training run's progress on disk, so a killed run continues where it stopped.

After every epoch, :func:`tapcheck.training.train_model` hands the run's state (weights,
optimiser, schedule, random state, history) to the saver :func:`progress_saver` makes; it lands
atomically in ``<model>.pt.partial`` (see :mod:`tapcheck.modelfile`). ``train --resume`` reads it
back, insisting on the settings and takes the run started with.
"""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from . import __version__
from .config import Config
from .errors import ConfigError, ModelFileError, ParameterError
from .features import FEATURES_VERSION
from .modelcheck import all_finite
from .modelfile import (FORMAT_VERSION, PARTIAL_FORMAT, PARTIAL_SUFFIX, RESUME_FIX,
                        read_checkpoint, save_checkpoint)
from .validate import is_int, is_real

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel

    from .datasets import Dataset
    from .models.base import TapModel
    from .training_data import TrainingData


def training_state(*, model: TapModel, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                   history: list[dict], best: tuple | None = None,
                   average: AveragedModel | None = None) -> dict[str, Any]:
    """Everything a run needs to continue after its last finished epoch (tensors and plain data).

    Weights are copied to the CPU in the contiguous layout, so the state does not depend on
    where or how the run computes.
    """
    return {
        "epoch": len(history),
        "state_dict": {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
                       for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "history": [dict(h) for h in history],
        # early stopping's best epoch so far (validation loss, epoch, weights), if it is on
        "best": None if best is None else (best[0], best[1], {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
            for k, v in best[2].items()}),
        # the weights' moving average so far (train.ema_decay), with its count of updates
        "average": None if average is None else {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
            for k, v in average.state_dict().items()}}


def restore_training_state(state: dict[str, Any], *, model: TapModel,
                           optimizer: torch.optim.Optimizer,
                           scheduler: torch.optim.lr_scheduler.LRScheduler,
                           generator: torch.Generator,
                           average: AveragedModel | None = None) -> list[dict]:
    """Put a run back where :func:`training_state` saw it; returns the history so far.

    Raises
    ------
    ModelFileError
        The saved progress does not fit this run's model (its types were checked on reading).
    """
    try:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if average is not None:
            average.load_state_dict(state["average"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ModelFileError(
            f"the interrupted run's progress (.partial) does not fit this model "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]})",
            fix="delete the .partial file beside the model to start over") from None
    return [dict(h) for h in state["history"]]


def _as_read(saved: Any, partial: Path) -> dict:
    """A saved run's settings as this tapcheck reads them: a field added since (e.g.
    ``train.members``) takes its default, so the older run still resumes."""
    try:
        return Config.from_dict(saved, source=str(partial)).to_dict()
    except ConfigError as e:
        raise ModelFileError(f"is damaged: its settings are invalid ({e.problem})", path=partial,
                             fix="delete the file to start the run over") from None


def progress_saver(partial: Path | None, *, resume: bool, config: Config, data: TrainingData,
              dataset: Dataset) -> tuple[dict | None, Callable | None]:
    """The state to resume from (or None) and the per-epoch saver for ``partial``.

    A run resumes only with the settings and takes it started with: anything else would give a
    model no single run could have given.
    """
    if partial is None:
        return None, None
    run = {"config": config.to_dict(), "classes": data.classes,
           "takes": [t.path for t in data.fit_takes],
           "calibration_takes": [t.path for t in data.calib_takes],
           # the samples, not only the names: another dataset with the same take names (another
           # synth seed) resumed, and the model said it was trained on takes it never heard
           "crop_digests": data.crop_digests}
    state = None
    if resume:
        state = read_partial(partial)
        check_progress(state, partial)  # before any of it is restored
        was = _as_read(state.get("config"), partial)
        if was != run["config"]:
            changed = [f"{section}.{key} {was.get(section, {}).get(key)!r} -> {value!r}"
                       for section, values in run["config"].items()
                       for key, value in values.items()
                       if was.get(section, {}).get(key) != value]
            raise ModelFileError(
                f"was saved by a run with other settings ({', '.join(changed) or 'format'})",
                path=partial, fix="resume with the options of the interrupted run, or delete "
                                  "the file to start over")
        if any(state.get(k) != run[k] for k in ("classes", "takes", "calibration_takes")) or (
                # progress saved before its crops' digests were: by the names only
                "crop_digests" in state and state["crop_digests"] != run["crop_digests"]):
            raise ModelFileError(
                f"was saved by a run on other takes than {dataset.root} holds now", path=partial,
                # "the same dataset" read wrong where its name stayed and its takes changed
                fix="resume with the takes the run started with (not re-recorded, re-synthesised "
                    "or renamed since), or delete the file to start over")
    return state, lambda progress: save_partial(partial, {**run, **progress})


def check_progress(state: dict[str, Any], path: str | os.PathLike) -> None:
    """A training run's saved progress (``.partial``): what ``--resume`` restores, checked first.

    Raises
    ------
    ModelFileError
        A key is missing or of the wrong type, or the weights are not finite.
    """
    def damaged(problem: str) -> ModelFileError:
        return ModelFileError(f"is damaged: {problem}", path=path,
                              fix="delete it to start the run over")

    for key, kind in (("state_dict", dict), ("optimizer", dict), ("scheduler", dict),
                      ("history", list), ("generator", torch.Tensor),
                      ("torch_rng", torch.Tensor)):
        if not isinstance(state.get(key), kind):
            raise damaged(f"'{key}' is missing or not a {kind.__name__}")
    for key, value in state["state_dict"].items():
        if not isinstance(value, torch.Tensor) or not all_finite(value):
            raise damaged(f"weight {key!r} is not a finite tensor")
    for entry in state["history"]:
        if not isinstance(entry, dict) or not is_real(entry.get("seconds")):
            raise damaged("its history is not a list of epochs")
    done = state.get("members_done", [])  # an ensemble's members trained before
    train = state.get("config", {}).get("train", {}) if isinstance(state.get("config"),
                                                                   dict) else {}
    members = train.get("members", 1) if isinstance(train, dict) else 1
    if not isinstance(done, list) or (is_int(members) and len(done) >= members):
        raise damaged("its finished members are not a list of fewer than train.members")
    for member in done:
        if not (isinstance(member, dict) and isinstance(member.get("state_dict"), dict)
                and isinstance(member.get("history"), list)
                and all(isinstance(h, dict) and is_real(h.get("seconds"))
                        for h in member["history"])):
            raise damaged("its finished members are not (weights, history)")
        for key, value in member["state_dict"].items():
            if not isinstance(value, torch.Tensor) or not all_finite(value):
                raise damaged(f"a finished member's weight {key!r} is not a finite tensor")
    folds = state.get("crossfit_done", [])  # cross-fit networks' scores, once trained
    if not isinstance(folds, list) or not all(
            isinstance(f, dict) and isinstance(f.get("scores"), list)
            and isinstance(f.get("groups"), list) and len(f["scores"]) == len(f["groups"])
            and all(is_real(x) and math.isfinite(x) for x in f["scores"])
            and all(is_int(b) for b in f["groups"]) for f in folds):
        raise damaged("its finished cross-fit folds are not (finite scores, boards)")
    average = state.get("average")  # train.ema_decay's moving average of the weights
    if average is not None and not (isinstance(average, dict) and all(
            isinstance(v, torch.Tensor) and all_finite(v) for v in average.values())):
        raise damaged("its moving average of the weights is not finite tensors")
    best = state.get("best")
    if best is not None and not (isinstance(best, (tuple, list)) and len(best) == 3
                                 and is_real(best[0]) and is_int(best[1])
                                 and isinstance(best[2], dict)):
        raise damaged("its best epoch is not (loss, epoch, weights)")


def save_partial(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training run's progress atomically (a kill mid-write keeps the previous one)."""
    return save_checkpoint(path, {"format": PARTIAL_FORMAT, "format_version": FORMAT_VERSION,
                                  "tapcheck_version": __version__,
                                  "features_version": FEATURES_VERSION, **state})


def read_partial(path: str | os.PathLike) -> dict[str, Any]:
    """A training run's progress, checked like a model file (data only, same versions)."""
    return read_checkpoint(Path(path), expect=PARTIAL_FORMAT)


def check_partial(partial: Path | None, *, resume: bool, resume_with: str | None = None) -> None:
    """Before any work: resuming needs a partial checkpoint; a fresh run must not discard one.

    ``resume_with``: the command that would continue a run found (this one with ``--resume``).
    """
    if partial is None:
        if resume:
            raise ParameterError("resuming needs the path of the model file being trained")
        return
    if resume and not partial.exists():
        # `train --resume` as told, without the run's --out, looked for the default model's
        # run: name the runs that are there
        others = sorted(p for p in partial.parent.glob(f"*{PARTIAL_SUFFIX}") if p.is_file())
        outs = [os.fspath(p)[:-len(PARTIAL_SUFFIX)] for p in others[:3]]
        fix = ("train without --resume" if not outs else
               f"give the interrupted run's --out (and its other options): "
               f"{', '.join('--out ' + shlex.quote(o) for o in outs)}"
               f"{' …' if len(others) > 3 else ''}; or train without --resume")
        raise ModelFileError("no interrupted training run to resume (no such file)",
                             path=partial, fix=fix)
    if not resume and partial.exists():
        # only a run's progress can be continued: a junk .partial was told "continue it with
        # `tapcheck train --resume`", and --resume then said "delete it and train without
        # --resume", a circle; it is told to go now (tapcheck deletes nothing it did not write)
        try:
            read_partial(partial)
        except ModelFileError as e:
            if e.fix != RESUME_FIX:  # e.g. permission denied: that fix holds as it is
                raise
            raise ModelFileError(e.problem, path=partial, fix=(
                "delete it and train again (no run can continue from it; the run starts "
                "over)")) from None
        raise ModelFileError(
            "an interrupted training run left its progress here", path=partial,
            # this command's options: the run's own are in the file, its --config's path not
            fix=(f"continue it with `{resume_with}` if it ran with these options"
                 if resume_with else
                 "continue it with `tapcheck train --resume` and the same options")
                + ", or delete the file to start over")
