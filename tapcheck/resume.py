"""A training run's progress on disk, so a killed run continues where it stopped.

After every epoch, :func:`tapcheck.training.train_model` hands the run's state (weights,
optimiser, schedule, random state, history) to the saver :func:`progress_saver` makes; it lands
atomically in ``<model>.pt.partial`` (see :mod:`tapcheck.modelfile`). ``train --resume`` reads it
back, insisting on the settings and takes the run started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .config import Config
from .errors import ConfigError, ModelFileError
from .modelcheck import check_progress
from .modelfile import read_partial, save_partial

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
           "calibration_takes": [t.path for t in data.calib_takes]}
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
        if any(state.get(k) != run[k] for k in ("classes", "takes", "calibration_takes")):
            raise ModelFileError(
                f"was saved by a run on other takes than {dataset.root} holds now", path=partial,
                fix="resume on the same dataset, or delete the file to start over")
    return state, lambda progress: save_partial(partial, {**run, **progress})
