"""``tapcheck compare``: train several models on one dataset and compare them side by side.

Each model is trained on the training split (features from the cache, so the STFTs are computed
once for all models), saved to ``<out>/models/<name>.pt``, and scores the test split. The report
folder gets ``metrics.csv``, ``metrics.json`` and an offline ``index.html`` with the study's
figures: t-SNE maps in three panels, distance-score charts per board, ROC curves, training curves.
Training is deterministic per seed, so a re-run gives the same numbers (timings aside).
"""

from __future__ import annotations

import os
import platform
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .config import Config
from .datasets import Dataset, Take
from .errors import DatasetError, ParameterError
from .evaluation import evaluate_scores, known_boards_of
from .featurecache import FeatureCache
from .judge import Judge
from .modelfile import load_model, save_checkpoint
from .models import MODELS, STUDY_MODELS, get_spec
from .models.base import represent_clips
from .runtime import cpu_has_bf16
from .training import dataset_crops, train_model


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
        get_spec(name)  # an unknown name lists the valid ones
    return list(OrderedDict.fromkeys(names))


def compare_models(dataset: Dataset, names: list[str], *, config: Config, out: str | os.PathLike,
                   log: Callable[[str], None] = print, progress: bool | None = None
                   ) -> list[dict]:
    """Train and evaluate ``names`` on ``dataset``; write the report folder ``out``.

    Returns
    -------
    list of dict
        One metrics row per model (also in ``metrics.json``).
    """
    started = time.perf_counter()
    out = Path(out)
    train_takes, test_takes = dataset.select(split="train"), dataset.select(split="test")
    if not test_takes:
        raise DatasetError("has no takes in the test split: nothing to compare on",
                           path=dataset.root / "manifest.csv",
                           fix="mark held-out takes split=test (tapcheck import --split test)")
    labels = np.array([t.label == "defect" for t in test_takes])
    if labels.all() or not labels.any():
        log("tapcheck: warning: the test split holds only one label; AUC is undefined")
    cache = FeatureCache(audio=config.audio, features=config.features)
    train_clips = dataset_crops(dataset, train_takes, cache=cache, progress=bool(progress))
    test_clips = dataset_crops(dataset, test_takes, cache=cache, progress=bool(progress),
                               split="test")

    rows, runs = [], {}
    for i, name in enumerate(names, start=1):
        log(f"[{i}/{len(names)}] {name}: training ...")
        model_config = config.replace("train", model=name)
        checkpoint = train_model(dataset, config=model_config, cache=cache, progress=progress)
        path = save_checkpoint(out / "models" / f"{name}.pt", checkpoint)
        loaded = load_model(path)
        judge = Judge(loaded)
        scores = judge.scores(test_clips)
        info = loaded.detector.calibration_
        row = {"model": name, **evaluate_scores(
            test_takes, scores, threshold=judge.threshold, stated_far=info["far"],
            known_boards=known_boards_of(checkpoint), board_threshold=info["board_threshold"],
            board_taps=info["board_taps"])}
        row.update(summary=get_spec(name).summary, scorer=loaded.scorer,
                   epochs=loaded.config.train.epochs,
                   train_seconds=round(float(checkpoint["train_seconds"]), 1),
                   judge_ms=round(_judge_latency_ms(judge, dataset.path_of(test_takes[0])), 2),
                   model_file=str(path.relative_to(out)))
        rows.append(row)
        runs[name] = dict(scores=scores, history=checkpoint["history"],
                          train_emb=represent_clips(judge.net, train_clips, "knn").numpy(),
                          test_emb=represent_clips(judge.net, test_clips, "knn").numpy(),
                          threshold=judge.threshold)
        log(f"      AUC {row['auc']:.3f}  pAUC {row['pauc']:.3f}  "
            f"({row['train_seconds']:.0f} s)")

    figures = _figures(out, runs, train_takes, test_takes, labels, seed=config.train.seed)
    from .report import write_index, write_metrics

    meta = {"dataset": str(dataset.root), "models": ", ".join(names),
            "seed": config.train.seed, "train clips": len(train_takes),
            "test clips": len(test_takes), "tapcheck": __version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"bf16 {'yes' if cpu_has_bf16() else 'no'}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall time (s)": round(time.perf_counter() - started, 1)}
    write_metrics(out, rows, meta)
    write_index(out, rows=rows, meta=meta, figures=figures)
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

    perplexity = float(max(2.0, min(30.0, (len(train) - 1) / 3.0)))
    embedding = TSNE(n_components=2, perplexity=perplexity, metric="cosine", random_state=seed,
                     n_jobs=1, verbose=False).fit(np.ascontiguousarray(train, dtype=np.float64))
    placed = embedding.transform(np.ascontiguousarray(test, dtype=np.float64))
    return np.asarray(embedding), np.asarray(placed)


def default_out(dataset: Dataset) -> Path:
    return Path("reports") / dataset.name

