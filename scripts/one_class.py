"""One-class training, measured for docs/results/one-class.json (``results.py run one-class``).

arcface-lite trained on board 1 left of the demo alone, tested on the demo's whole test split,
with pseudo-anomalies drawn per batch and materialised in full, over seeds. (``synthesise``
makes a bigger one-class set of the same board, for timing.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def _one_class_set(root: Path, demo, *, synthesise: int = 0):
    """A one-class dataset: board 1 left for training (the demo's takes, or ``synthesise`` new
    takes of it), the demo's whole test split for testing."""
    import shutil

    from tapcheck.datasets import Dataset
    from tapcheck.synth import study_boards, synthesize_tap, take_rng
    from tapcheck.synth_dataset import write_take

    ds = Dataset.create(root)
    train = [] if synthesise else demo.select(board=1, side="left", split="train")
    for t in train + demo.select(split="test"):
        (ds.root / t.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo.path_of(t), ds.root / t.path)
        ds.takes.append(t)
    spec = study_boards(seed=0)[0]  # board 1, normal
    for k in range(1, synthesise + 1):  # take numbers beyond the demo's 30: new takes
        y = synthesize_tap(spec.board, "left", rng=take_rng(0, 1, "left", 100 + k))
        y16 = np.round(np.clip(y, -1, 1) * 32767) / 32767
        take = write_take(ds, y16, spec, "left", 100 + k, split="train", sr=44100)
        ds.takes.append(take)
    ds.write_manifest()
    return Dataset.open(root)


def _one_class_auc(ds, *, seed: int, per_batch: bool, model: str) -> dict:
    from tapcheck.config import Config
    from tapcheck.evaluation import evaluate_scores
    from tapcheck.featurecache import FeatureCache
    from tapcheck.judge import Judge
    from tapcheck.modelfile import load_model, save_checkpoint
    from tapcheck.training import train_model
    from tapcheck.training_data import dataset_crops

    cache = FeatureCache()
    test = ds.select(split="test")
    clips = dataset_crops(ds, test, cache=cache, split="test")
    dataset_crops(ds, ds.select(split="train"), cache=cache)  # features first: time training
    config = Config().replace("train", model=model, seed=seed, pseudo_per_batch=per_batch)
    checkpoint = train_model(ds, config=config, cache=cache, progress=False)
    path = save_checkpoint(ds.root.parent / f"{model}-{seed}-{per_batch}.pt", checkpoint)
    judge = Judge(load_model(path))
    scores = judge.scores(clips)
    row = evaluate_scores(test, scores, threshold=judge.threshold)
    # the same object only: board 1 left's held-out takes against the cracked boards 7 and 8
    own = np.array([t.label == "defect" or (t.board, t.side) == (1, "left") for t in test])
    row_own = evaluate_scores([t for t, k in zip(test, own, strict=True) if k], scores[own],
                              threshold=judge.threshold)
    return {"auc": row["auc"], "auc_same_board": row_own["auc"],
            "train_s": checkpoint["train_seconds"]}


def measure(seeds=range(2)) -> dict:
    """arcface-lite on one class (board 1 left of the demo): pseudo-anomalies per batch against
    materialised, over seeds."""
    import torch

    from tapcheck.datasets import Dataset
    from tapcheck.models import FAST_MODEL

    work = Path(tempfile.mkdtemp(prefix="tapcheck-one-class-"))
    demo = Dataset.open("demo")  # tapcheck synth --dataset demo
    small = _one_class_set(work / "board01-left", demo)
    load = os.getloadavg()[0]
    rows = [{"seed": s, **{kind: _one_class_auc(small, seed=s, per_batch=kind == "per_batch",
                                                model=FAST_MODEL)
                           for kind in ("per_batch", "materialised")}} for s in seeds]
    return {"model": FAST_MODEL, "seeds": rows, "threads": torch.get_num_threads(),
            "load_average": f"{load:.1f} to {os.getloadavg()[0]:.1f}"}


def measure_600(*, takes: int = 600) -> dict:
    """Wall time of ``train_model`` (features included) on ``takes`` synthetic takes of board 1
    left alone, arcface-lite, pseudo-anomalies per batch and materialised, this machine's
    threads (issue 15: 600 one-class clips in 3 minutes)."""
    import time

    import torch

    from tapcheck.config import Config
    from tapcheck.datasets import Dataset
    from tapcheck.featurecache import FeatureCache
    from tapcheck.models import FAST_MODEL
    from tapcheck.training import train_model

    work = Path(tempfile.mkdtemp(prefix="tapcheck-one-class-600-"))
    big = _one_class_set(work / "board01-left", Dataset.open("demo"), synthesise=takes)
    load, out = os.getloadavg()[0], {}
    for kind in ("per_batch", "materialised"):
        config = Config().replace("train", model=FAST_MODEL, seed=0,
                                  pseudo_per_batch=kind == "per_batch")
        cache = FeatureCache(work / f"cache-{kind}", audio=config.audio,
                             features=config.features)  # every run computes its features
        started = time.perf_counter()
        checkpoint = train_model(big, config=config, cache=cache, progress=False)
        out[kind] = {"wall_s": round(time.perf_counter() - started, 1),
                     "train_s": round(checkpoint["train_seconds"], 1)}
    return {"model": FAST_MODEL, "takes": takes, "threads": torch.get_num_threads(),
            "load_average": f"{load:.1f} to {os.getloadavg()[0]:.1f}", "runs": out}
