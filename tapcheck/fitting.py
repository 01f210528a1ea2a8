"""The training loop: from crops and labels to trained weights.

:func:`fit_model` runs the epochs of one training run in named steps: :func:`_start_run` (device,
layout, optimiser, batch plan, schedule, or the state of the run it resumes), :func:`_train_epoch`
(shuffled or P x K balanced batches, each augmented and stepped by :func:`_train_step`),
:func:`_validate` (the held-out normal crops' loss, for early stopping) and the per-epoch save.

What makes it fast on a CPU (``tapcheck bench`` measures it): the crops are one tensor in memory
and batches are index slices of it (no ``DataLoader``), channels-last layout, bfloat16 autocast
where the CPU computes it natively, one torch thread per core.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.optim.swa_utils import AveragedModel

from .augment import stretch_frequencies
from .config import Config, TrainConfig
from .models.base import TapModel
from .models.ensemble import Ensemble, member_seed
from .resume import restore_training_state, training_state
from .runtime import autocast_dtype, configure_threads, pick_device
from .samplers import BalancedBatchSampler


def validation_loss(model: TapModel, X: torch.Tensor, y: torch.Tensor, *,
                    batch_size: int = 64) -> float:
    """The training objective on held-out crops, in eval mode, without gradients."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            loss, _ = model.loss(X[i:i + batch_size], y[i:i + batch_size])
            total += float(loss) * len(X[i:i + batch_size])
    model.train()
    return total / max(len(X), 1)


@dataclass
class _Run:
    """What a training run carries from epoch to epoch."""

    model: TapModel
    device: torch.device
    amp: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    sampler: BalancedBatchSampler | None
    batch: int
    steps: int
    history: list[dict]
    best: tuple | None = None  # (validation loss, epoch, weights)
    average: AveragedModel | None = None  # the weights' moving average (train.ema_decay)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp or torch.float32,
                              enabled=self.amp is not None)

    def state(self, *, patience: int) -> dict[str, Any]:
        return training_state(model=self.model, optimizer=self.optimizer,
                              scheduler=self.scheduler, generator=self.generator,
                              history=self.history, best=self.best if patience > 0 else None,
                              average=self.average)


def moving_average(model: TapModel, *, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics.

    Bias-corrected as Adam's moments are: after ``n`` updates the weights ``w_1 .. w_n`` count
    ``(1 - decay) * decay ** (n - i) / (1 - decay ** n)``, so the average holds no share of the
    random initial weights, and a short run (the demo's arcface-resnet18: 15 epochs of 13 steps)
    still averages over ``1 / (1 - decay)`` steps. (TensorFlow's warm-up, ``min(decay, (1 + n)
    / (10 + n))``, would cap the decay at 0.95 for 195 steps whatever was asked.)
    """
    def ema(averaged: torch.Tensor, current: torch.Tensor,
            n_averaged: torch.Tensor) -> torch.Tensor:
        m = float(n_averaged)  # updates before this one; the first one copies the weights
        keep = decay * (1 - decay ** m) / (1 - decay ** (m + 1))
        return averaged + (current - averaged) * (1 - keep)

    return AveragedModel(model, avg_fn=ema, use_buffers=True)


def make_optimizer(params, train: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam, as the model's settings say (study: per model)."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                               weight_decay=train.weight_decay)
    return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)


def _start_run(model: TapModel, y: torch.Tensor, *, train: TrainConfig,
               resume: dict[str, Any] | None) -> _Run:
    """Device, layout, optimiser, batch plan and schedule of a run, or of the one it resumes."""
    configure_threads()
    device = pick_device()
    amp = autocast_dtype(device, bf16=train.bf16)
    torch.manual_seed(train.seed)
    model.to(device).train()
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], train)
    batch = min(train.batch_size, len(y))
    steps = max(1, len(y) // batch)  # drop the ragged last batch: BatchNorm needs > 1 sample
    sampler = None
    if model.balanced_batches:  # triplet mining: P classes x K crops in every batch
        k = max(2, min(train.triplet_k, batch))
        sampler = BalancedBatchSampler(y.numpy(), p=max(2, batch // k), k=k, seed=train.seed)
        steps = len(sampler)
    # Warm-up then cosine decay: converges in tens of epochs where the study ran a hundred.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=train.lr, total_steps=steps * train.epochs, pct_start=0.15)
    run = _Run(model=model, device=device, amp=amp, optimizer=optimizer, scheduler=scheduler,
               generator=torch.Generator().manual_seed(train.seed), sampler=sampler,
               batch=batch, steps=steps, history=[],
               average=moving_average(model, decay=train.ema_decay) if train.ema_decay else None)
    if resume is not None:
        run.history = restore_training_state(resume, model=model, optimizer=optimizer,
                                             scheduler=scheduler, generator=run.generator,
                                             average=run.average)
        run.best = resume.get("best")
    return run


def _batches(run: _Run, n: int, *, epoch: int) -> list[torch.Tensor]:
    """The index batches of one epoch: balanced P x K batches, or a shuffled pass."""
    if run.sampler is not None:
        return [torch.from_numpy(b) for b in run.sampler.batches(epoch)]
    order = torch.randperm(n, generator=run.generator)
    return [order[i * run.batch:(i + 1) * run.batch] for i in range(run.steps)]


#: a per-batch change of crops and labels, e.g. :class:`tapcheck.augment.PseudoAnomalyBatches`
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator],
                          tuple[torch.Tensor, torch.Tensor]]


def _train_step(run: _Run, xb: torch.Tensor, yb: torch.Tensor, *, train: TrainConfig,
                transform: BatchTransform | None = None) -> tuple[float, int | None]:
    """One optimiser step on a batch (augmented here); its loss and correct count."""
    if transform is not None:
        xb, yb = transform(xb, yb, run.generator)
    if train.freq_stretch > 0:
        spread = torch.rand(len(xb), generator=run.generator) * 2 - 1
        xb = stretch_frequencies(xb, 1 + spread * train.freq_stretch)
    xb = xb.to(run.device, non_blocking=True)
    if run.device.type == "cpu":
        xb = xb.contiguous(memory_format=torch.channels_last)
    with run.autocast():
        loss, n_correct = run.model.loss(xb, yb.to(run.device))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    if run.average is not None:
        run.average.update_parameters(run.model)
    return float(loss.detach()), n_correct


def _train_epoch(run: _Run, X: torch.Tensor, y: torch.Tensor, *, epoch: int,
                 train: TrainConfig, show: bool,
                 transform: BatchTransform | None = None) -> dict[str, Any]:
    """One pass over the training crops; the epoch's history entry."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    total, count, correct = 0.0, 0, None
    bar = tqdm(_batches(run, len(X), epoch=epoch), desc=f"epoch {epoch}/{train.epochs}",
               unit="batch", leave=False, disable=not show)
    for idx in bar:
        loss, n_correct = _train_step(run, X[idx], y[idx], train=train, transform=transform)
        total += loss * len(idx)
        count += len(idx)
        if n_correct is not None:
            correct = (correct or 0) + n_correct
        bar.set_postfix(loss=f"{total / count:.4f}")
    entry = {"epoch": epoch, "loss": total / max(count, 1),
             "lr": run.optimizer.param_groups[0]["lr"],
             "seconds": time.perf_counter() - start, **run.model.train_logs()}
    if correct is not None:
        entry["accuracy"] = correct / max(count, 1)
    return entry


def _validate(run: _Run, entry: dict[str, Any],
              validation: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Add the held-out normal crops' loss to ``entry``; remember the best epoch's weights."""
    with run.autocast():
        entry["val_loss"] = validation_loss(run.model, *(v.to(run.device) for v in validation))
    if run.best is None or entry["val_loss"] < run.best[0]:
        run.best = (entry["val_loss"], entry["epoch"], copy.deepcopy(run.model.state_dict()))


def _epoch_line(entry: dict[str, Any], *, epochs: int) -> str:
    extra = f"  accuracy {entry['accuracy']:.3f}" if "accuracy" in entry else ""
    if "val_loss" in entry:
        extra += f"  val {entry['val_loss']:.4f}"
    return (f"epoch {entry['epoch']}/{epochs}  loss {entry['loss']:.4f}{extra}  "
            f"{entry['seconds']:.1f} s")


def _stopped(run: _Run, *, patience: int) -> bool:
    """Early stopping: the validation loss has not improved for ``patience`` epochs."""
    return (patience > 0 and run.best is not None and bool(run.history)
            and len(run.history) - run.best[1] >= patience)


def fit_model(model: TapModel, X: torch.Tensor, y: torch.Tensor, *, config: Config,
              validation: tuple[torch.Tensor, torch.Tensor] | None = None,
              progress: bool | None = None, log: Callable[[str], None] | None = None,
              resume: dict[str, Any] | None = None,
              on_epoch: Callable[[dict[str, Any]], None] | None = None,
              transform: BatchTransform | None = None) -> list[dict]:
    """Train ``model`` on crops ``X`` (N, 1, bins, frames) with labels ``y`` (N,).

    Parameters
    ----------
    validation : (X_val, y_val), optional
        Held-out **normal** crops and their classes. Their loss is logged each epoch; with
        ``config.train.patience > 0`` training stops when it has not improved for that many
        epochs, and the best epoch's weights are kept. Defect labels never enter it.
    resume : dict, optional
        A state ``on_epoch`` was handed by an earlier run: continue that run where it stopped.
    on_epoch : callable, optional
        Receives the state after each epoch (see :func:`tapcheck.resume.training_state`).
    transform : callable, optional
        ``(crops, labels, generator) -> (crops, labels)`` applied to every training batch
        before the frequency stretch (one-class data:
        :class:`~tapcheck.augment.PseudoAnomalyBatches`).

    Returns the history: one dict per epoch (loss, learning rate, seconds, model extras).
    """
    train = config.train
    run = _start_run(model, y, train=train, resume=resume)
    show = sys.stderr.isatty() if progress is None else progress
    first = len(run.history) + 1
    if _stopped(run, patience=train.patience):  # it had stopped early before the interruption
        first = train.epochs + 1
    for epoch in range(first, train.epochs + 1):
        entry = _train_epoch(run, X, y, epoch=epoch, train=train, show=show, transform=transform)
        if validation is not None and len(validation[0]):
            _validate(run, entry, validation)
        run.history.append(entry)
        if log:
            log(_epoch_line(entry, epochs=train.epochs))
        if on_epoch is not None:
            on_epoch(run.state(patience=train.patience))
        if _stopped(run, patience=train.patience):
            if log:
                log(f"early stop: validation loss best at epoch {run.best[1]}")
            break
    if train.patience > 0 and run.best is not None:
        model.load_state_dict(run.best[2])
    elif run.average is not None:  # the averaged weights are the network kept
        model.load_state_dict(run.average.module.state_dict())
    model.to("cpu").eval()
    model.to(memory_format=torch.contiguous_format)
    return run.history


def fit_members(build: Callable[[], TapModel], X: torch.Tensor, y: torch.Tensor, *,
                config: Config, validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                progress: bool | None = None, log: Callable[[str], None] | None = None,
                resume: dict[str, Any] | None = None,
                on_epoch: Callable[[dict[str, Any]], None] | None = None,
                transform: BatchTransform | None = None) -> tuple[TapModel | Ensemble, list[dict]]:
    """Build and train ``config.train.members`` networks on the same crops, one after another.

    Member ``i`` is built and trained with :func:`~tapcheck.models.ensemble.member_seed`
    ``(seed, i)``; with one member this is :func:`fit_model` on ``build()`` under the seed.

    Parameters
    ----------
    build : callable
        A fresh network (called after the member's seed is set, so its initial weights follow it).
    X, y, validation, progress, log, transform
        As for :func:`fit_model`.
    resume : dict, optional
        A state ``on_epoch`` was handed: finished members are restored from its
        ``members_done``, the member it was training continues where it stopped.
    on_epoch : callable, optional
        Receives each epoch's state, with the finished members' weights and histories.

    Returns
    -------
    network : TapModel or Ensemble
        One member: the network; more: an :class:`~tapcheck.models.ensemble.Ensemble`.
    history : list of dict
        The members' epochs in order, each tagged ``member`` when there are several.
    """
    n = config.train.members
    done = list(resume.get("members_done", [])) if resume else []
    nets, finished, histories = [], [], []
    for i in range(n):
        train = dataclasses.replace(config.train, seed=member_seed(config.train.seed, i))
        torch.manual_seed(train.seed)
        net = build()
        if i < len(done):  # trained before the interruption
            _load_member(net, done[i]["state_dict"])
            history = [dict(h) for h in done[i]["history"]]
            net.eval()
        else:
            if log and n > 1:
                log(f"member {i + 1}/{n} (seed {train.seed})")
            saver = None if on_epoch is None else (
                lambda state, before=list(finished): on_epoch({**state, "members_done": before}))
            history = fit_model(net, X, y, config=dataclasses.replace(config, train=train),
                                validation=validation, progress=progress, log=log,
                                resume=resume if resume and i == len(done) else None,
                                on_epoch=saver, transform=transform)
        nets.append(net)
        if n > 1:  # what a later epoch's saved progress carries of the members before it
            history = [{**h, "member": i} for h in history]
            finished.append({"state_dict": {k: v.detach().clone()
                                            for k, v in net.state_dict().items()},
                             "history": history})
        histories.extend(history)
    return (nets[0] if n == 1 else Ensemble(nets)), histories


def _load_member(net: TapModel, state_dict: dict[str, torch.Tensor]) -> None:
    """A finished member's weights from a run's saved progress, or the error that says so."""
    from .errors import ModelFileError

    try:
        net.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ModelFileError(
            f"the interrupted run's finished members (.partial) do not fit this model "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]})",
            fix="delete the .partial file beside the model to start over") from None
