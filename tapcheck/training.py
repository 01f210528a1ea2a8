"""Training: from a dataset's training split to a self-describing model file.

1. The training split's takes become crops (from the feature cache) held in memory as one tensor.
   Classes are the (board, side) identities of the training split.
2. A share of each normal class's takes is held out for **calibration**: they are neither trained
   on nor used as reference, so their scores are honest scores of unseen normal clips.
3. The model trains with its objective under a warm-up + cosine learning-rate schedule
   (OneCycle), bfloat16 autocast where the CPU supports it.
4. The detector is fitted: reference = the normal training clips, threshold = a gamma fit of the
   calibration clips' scores at the configured false-alarm rate. Defect labels never set it.
5. Everything goes into one checkpoint, written atomically only at the end.

A run saves its progress after every epoch to a partial checkpoint beside the model file
(``models/<name>.pt.partial``: weights, optimiser, schedule, random state, history), so a killed
run loses at most one epoch and ``tapcheck train --resume`` continues it to the same result.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import Config
from .augment import PSEUDO_ANOMALIES, stretch_frequencies
from .datasets import Dataset, Take
from .detectors import SCORERS, ThresholdDetector
from .errors import AudioError, DatasetError, ModelFileError, TapcheckWarning
from .features import FeatureCache
from .modelcheck import check_progress
from .modelfile import check_partial, new_checkpoint, read_partial, save_partial
from .models import get_spec
from .models.base import TapModel, represent_clips
from .runtime import autocast_dtype, configure_threads, bf16_inference, pick_device
from .samplers import BalancedBatchSampler


@dataclass
class TrainingData:
    """Crops of a dataset's training split, ready for a model."""

    fit_clips: np.ndarray  # (n_fit, n_crops, bins, frames)
    fit_labels: np.ndarray  # (n_fit,) class index per clip
    fit_normal: np.ndarray  # (n_fit,) bool: clip of a normal class
    calib_clips: np.ndarray  # (n_calib, n_crops, bins, frames), normal only
    classes: list[str]  # class names, "board03/left"
    class_labels: list[str]  # "normal" or "defect" per class
    fit_takes: list[Take]
    calib_takes: list[Take]

    def validation_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibration crops (normal only) with their class indices, for validation loss."""
        index = {name: i for i, name in enumerate(self.classes)}
        n, c = self.calib_clips.shape[:2]
        X = torch.from_numpy(self.calib_clips).reshape(n * c, 1, *self.calib_clips.shape[2:])
        y = torch.tensor([index[t.class_name] for t in self.calib_takes]).repeat_interleave(c)
        return X, y.long()

    def samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every crop as a training sample: (n_fit * n_crops, 1, bins, frames) and labels."""
        n, c = self.fit_clips.shape[:2]
        X = torch.from_numpy(self.fit_clips).reshape(n * c, 1, *self.fit_clips.shape[2:])
        y = torch.from_numpy(np.repeat(self.fit_labels, c)).long()
        return X, y


def split_calibration(takes: list[Take], *, fraction: float, seed: int
                      ) -> tuple[list[Take], list[Take]]:
    """Hold out ``fraction`` of each normal class's takes (at least one when it has 4 or more)."""
    rng = np.random.default_rng([seed, 1009])
    fit, calib = [], []
    by_class: dict[str, list[Take]] = {}
    for t in takes:
        by_class.setdefault(t.class_name, []).append(t)
    for name in sorted(by_class):
        group = by_class[name]
        n_out = 0
        if group[0].label == "normal" and len(group) >= 4 and fraction > 0:
            # never all of them: the class's reference would be empty (calib_fraction 0.99)
            n_out = min(len(group) - 1, max(1, int(round(fraction * len(group)))))
        held = set(rng.choice(len(group), size=n_out, replace=False).tolist()) if n_out else set()
        for i, t in enumerate(group):
            (calib if i in held else fit).append(t)
    return fit, calib


def prepare_data(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None,
                 progress: bool = False) -> TrainingData:
    """Load the training split's crops and split off the calibration takes."""
    takes = dataset.select(split="train")
    if not takes:
        raise DatasetError("has no takes in the training split", path=dataset.root / "manifest.csv",
                           fix="mark some takes split=train (tapcheck import/record --split train)")
    if not any(t.label == "normal" for t in takes):
        raise DatasetError(
            "has no normal takes in the training split; the threshold is learned from normal "
            "boards only", path=dataset.root / "manifest.csv",
            fix="record or import normal boards with --split train")
    cache = cache or FeatureCache(audio=config.audio, features=config.features)
    fit, calib = split_calibration(takes, fraction=config.train.calib_fraction,
                                   seed=config.train.seed)
    classes = sorted({t.class_name for t in takes})
    label_of = {t.class_name: t.label for t in takes}
    index = {name: i for i, name in enumerate(classes)}
    clips = dataset_crops(dataset, fit + calib, cache=cache, progress=progress)
    fit_clips, calib_clips = clips[:len(fit)], clips[len(fit):]
    return TrainingData(
        fit_clips=fit_clips, fit_labels=np.array([index[t.class_name] for t in fit]),
        fit_normal=np.array([t.label == "normal" for t in fit]), calib_clips=calib_clips,
        classes=classes, class_labels=[label_of[c] for c in classes], fit_takes=fit,
        calib_takes=calib)


def dataset_crops(dataset: Dataset, takes: list[Take], *, cache: FeatureCache,
                  progress: bool = False, split: str = "training") -> np.ndarray:
    """Crops of every take, shape (n_takes, n_crops, bins, frames).

    Every missing or unusable take is listed at once (one line each), so a user fixes them all
    in one go; then nothing is trained.
    """
    missing = [t for t in takes if not dataset.path_of(t).exists()]
    if missing:
        raise DatasetError(
            f"lists {len(missing)} {split} take(s) whose file is missing, e.g. {missing[0].path}",
            path=dataset.root / "manifest.csv",
            fix="restore the files or delete their rows (tapcheck doctor lists them)",
            details=[f"{dataset.path_of(t)}: file not found — restore it or delete its row"
                     for t in missing])
    try:
        return cache.get_many([dataset.path_of(t) for t in takes], progress=progress)
    except AudioError as e:
        raise DatasetError(
            f"{len(e.details)} of {len(takes)} {split} takes cannot be used (listed above); "
            "nothing was trained", path=dataset.root / "manifest.csv",
            fix="re-record or replace those files, or delete their rows", details=e.details
        ) from None


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


def fit_model(model: TapModel, X: torch.Tensor, y: torch.Tensor, *, config: Config,
              validation: tuple[torch.Tensor, torch.Tensor] | None = None,
              progress: bool | None = None, log: Callable[[str], None] | None = None,
              resume: dict[str, Any] | None = None,
              on_epoch: Callable[[dict[str, Any]], None] | None = None) -> list[dict]:
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
        Receives the state after each epoch (see :func:`training_state`).

    Returns the history: one dict per epoch (loss, learning rate, seconds, model extras).
    """
    from tqdm.auto import tqdm

    train = config.train
    configure_threads()
    device = pick_device()
    amp = autocast_dtype(device, bf16=train.bf16)
    torch.manual_seed(train.seed)
    model.to(device).train()
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if train.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                                    weight_decay=train.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    batch = min(train.batch_size, len(X))
    steps = max(1, len(X) // batch)  # drop the ragged last batch: BatchNorm needs > 1 sample
    sampler = None
    if model.balanced_batches:  # triplet mining: P classes x K crops in every batch
        k = max(2, min(train.triplet_k, batch))
        sampler = BalancedBatchSampler(y.numpy(), p=max(2, batch // k), k=k, seed=train.seed)
        steps = len(sampler)
    # Warm-up then cosine decay: converges in tens of epochs where the study ran a hundred.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=train.lr, total_steps=steps * train.epochs, pct_start=0.15)
    generator = torch.Generator().manual_seed(train.seed)
    show = sys.stderr.isatty() if progress is None else progress
    history = []
    best = None  # (validation loss, epoch, weights)
    if resume is not None:
        history = restore_training_state(resume, model=model, optimizer=optimizer,
                                         scheduler=scheduler, generator=generator)
        best = resume.get("best")
    for epoch in range(len(history) + 1, train.epochs + 1):
        start = time.perf_counter()
        if sampler is not None:
            plan = [torch.from_numpy(b) for b in sampler.batches(epoch)]
        else:
            order = torch.randperm(len(X), generator=generator)
            plan = [order[i * batch:(i + 1) * batch] for i in range(steps)]
        total, count, correct = 0.0, 0, None
        bar = tqdm(plan, desc=f"epoch {epoch}/{train.epochs}", unit="batch",
                   leave=False, disable=not show)
        for idx in bar:
            xb = X[idx]
            if train.freq_stretch > 0:
                spread = torch.rand(len(idx), generator=generator) * 2 - 1
                factors = 1 + spread * train.freq_stretch
                xb = stretch_frequencies(xb, factors)
            xb = xb.to(device, non_blocking=True)
            if device.type == "cpu":
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y[idx].to(device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss, n_correct = model.loss(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if n_correct is not None:
                correct = (correct or 0) + n_correct
            bar.set_postfix(loss=f"{total / count:.4f}")
        entry = {"epoch": epoch, "loss": total / max(count, 1),
                 "lr": optimizer.param_groups[0]["lr"],
                 "seconds": time.perf_counter() - start, **model.train_logs()}
        if correct is not None:
            entry["accuracy"] = correct / max(count, 1)
        if validation is not None and len(validation[0]):
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                entry["val_loss"] = validation_loss(model, *(v.to(device) for v in validation))
            if best is None or entry["val_loss"] < best[0]:
                best = (entry["val_loss"], epoch, copy.deepcopy(model.state_dict()))
        history.append(entry)
        if log:
            extra = f"  accuracy {entry['accuracy']:.3f}" if "accuracy" in entry else ""
            if "val_loss" in entry:
                extra += f"  val {entry['val_loss']:.4f}"
            log(f"epoch {epoch}/{train.epochs}  loss {entry['loss']:.4f}{extra}  "
                f"{entry['seconds']:.1f} s")
        if on_epoch is not None:
            on_epoch(training_state(model=model, optimizer=optimizer, scheduler=scheduler,
                                    generator=generator, history=history,
                                    best=best if train.patience > 0 else None))
        if train.patience > 0 and best is not None and epoch - best[1] >= train.patience:
            if log:
                log(f"early stop: validation loss best at epoch {best[1]}")
            break
    if train.patience > 0 and best is not None:
        model.load_state_dict(best[2])
    model.to("cpu").eval()
    model.to(memory_format=torch.contiguous_format)
    return history


def add_pseudo_anomalies(data: TrainingData) -> TrainingData:
    """One normal class only: add self-made defect classes made from its crops.

    Metric-learning and classification objectives need at least two classes. With a single
    normal (board, side) there is nothing to tell apart, so, as the survey source did with
    synthetic defects, each transform of :data:`tapcheck.augment.PSEUDO_ANOMALIES` (modes moved
    up or down, a silenced band, a faster decay) turns the normal clips into one pseudo-anomaly
    class. Pseudo clips are trained on but never become references or calibration clips.
    """
    normal = data.fit_clips[data.fit_normal]
    clips, labels = [data.fit_clips], [data.fit_labels]
    names = list(data.classes)
    for name, transform in PSEUDO_ANOMALIES.items():
        clips.append(transform(normal))
        labels.append(np.full(len(normal), len(names)))
        names.append(name)
    n_extra = len(names) - len(data.classes)
    return dataclasses.replace(
        data, fit_clips=np.concatenate(clips), fit_labels=np.concatenate(labels),
        fit_normal=np.concatenate([data.fit_normal, np.zeros(n_extra * len(normal), bool)]),
        classes=names, class_labels=data.class_labels + ["pseudo"] * n_extra,
        fit_takes=data.fit_takes)


def training_state(*, model: TapModel, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                   history: list[dict], best: tuple | None = None) -> dict[str, Any]:
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
            for k, v in best[2].items()})}


def restore_training_state(state: dict[str, Any], *, model: TapModel,
                           optimizer: torch.optim.Optimizer,
                           scheduler: torch.optim.lr_scheduler.LRScheduler,
                           generator: torch.Generator) -> list[dict]:
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
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ModelFileError(
            f"the interrupted run's progress (.partial) does not fit this model "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]})",
            fix="delete the .partial file beside the model to start over") from None
    return [dict(h) for h in state["history"]]


def _progress(partial: Path | None, *, resume: bool, config: Config, data: TrainingData,
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
        if state.get("config") != run["config"]:
            was = state.get("config") or {}
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


def make_detector(config: Config, data: TrainingData) -> ThresholdDetector:
    """The configured scorer, not yet fitted."""
    train = config.train
    if train.scorer == "knn":
        return SCORERS["knn"](k=train.knn_k, metric=train.knn_metric, exp=train.knn_exp,
                              far=train.far)
    if train.scorer == "prob":
        normal = [i for i, label in enumerate(data.class_labels) if label == "normal"]
        return SCORERS["prob"](normal_classes=normal, far=train.far)
    return SCORERS[train.scorer](far=train.far)


def _warn_if_collapsed(reference: np.ndarray, *, name: str) -> None:
    """Warn when every normal clip got the same representation: the scores would be constant.

    A metric-learning loss can sit at its trivial point (all embeddings equal, loss = margin);
    such a model calls every clip normal or every clip anomalous and must not pass silently.
    """
    if len(reference) > 1 and float(np.ptp(reference, axis=0).max()) < 1e-6:
        warnings.warn(f"{name}: training collapsed — every clip maps to the same embedding, so "
                      "its scores cannot tell boards apart; retrain with another --seed, a lower "
                      "train.lr, or another model", TapcheckWarning, stacklevel=3)


def train_model(dataset: Dataset, *, config: Config, cache: FeatureCache | None = None,
                progress: bool | None = None, log: Callable[[str], None] | None = None,
                partial: str | Path | None = None, resume: bool = False) -> dict:
    """Train the configured model on ``dataset`` and return its checkpoint (not yet saved).

    Parameters
    ----------
    dataset : Dataset
    config : Config
        ``config.train.model`` names the model; ``None`` fields take the model's defaults.
    cache : FeatureCache, optional
    progress : bool, optional
        Progress bars; default: when stderr is a terminal.
    log : callable, optional
        Receives one line per epoch.
    partial : str or Path, optional
        Save progress here after every epoch (see :func:`tapcheck.modelfile.partial_path`); the
        caller removes it once the model file is written.
    resume : bool
        Continue the interrupted run saved in ``partial`` (same dataset and settings), giving
        the model an uninterrupted run would have given.

    Returns
    -------
    dict
        The checkpoint, see :mod:`tapcheck.modelfile`.
    """
    spec = get_spec(config.train.model)
    config = dataclasses.replace(config, train=spec.resolve(config.train))
    partial = None if partial is None else Path(partial)
    check_partial(partial, resume=resume)
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    data = prepare_data(dataset, config=config, cache=cache, progress=show)
    if spec.family.needs_classes and len(data.classes) == 1:
        data = add_pseudo_anomalies(data)
        # not a problem, but the user should know what the model was taught
        warnings.warn(f"{dataset.root}: the training split holds one class ({data.classes[0]}); "
                      f"{spec.name} learns it against {len(data.classes) - 1} pseudo-anomaly "
                      "classes made from its crops (modes shifted, a notch, extra damping) — "
                      "record more boards or sides for a stronger model", TapcheckWarning,
                      stacklevel=2)
    f = config.features
    torch.manual_seed(config.train.seed)
    model = spec.build(n_classes=len(data.classes), train=config.train,
                       input_shape=(f.n_bins, f.n_frames))
    X, y = data.samples()
    state, on_epoch = _progress(partial, resume=resume, config=config, data=data, dataset=dataset)
    history = fit_model(model, X, y, config=config, validation=data.validation_samples(),
                        progress=progress, log=log, resume=state, on_epoch=on_epoch)

    detector = make_detector(config, data)
    scorer = config.train.scorer
    net = model.for_inference(bf16=bf16_inference(bf16=config.train.bf16))  # as judge does
    reference = represent_clips(net, data.fit_clips[data.fit_normal], scorer).numpy()
    calib = represent_clips(net, data.calib_clips, scorer).numpy() if len(
        data.calib_clips) else None
    # fit_takes are the real takes; pseudo-anomaly clips, appended after them, are never normal
    boards = np.array([t.board for t in data.fit_takes if t.label == "normal"])
    _warn_if_collapsed(reference, name=spec.name)
    detector.fit(reference, X_calib=calib, groups=boards)
    resumed = state["history"] if state else []  # epochs an interrupted run had done
    seconds = time.perf_counter() - started + sum(h["seconds"] for h in resumed)
    return new_checkpoint(
        name=spec.name, model_args=model.model_args, config=config.to_dict(),
        classes=data.classes, class_labels=data.class_labels,
        state_dict=model.state_dict(), detector=detector.get_state(), history=history,
        dataset={"name": dataset.name, "path": str(dataset.root),
                 "fit_clips": len(data.fit_takes), "calibration_clips": len(data.calib_takes),
                 "takes": [t.path for t in data.fit_takes],
                 "calibration_takes": [t.path for t in data.calib_takes]},
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        train_seconds=seconds)
