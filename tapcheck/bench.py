"""``tapcheck bench``: speed figures and their ratios to naive baselines, measured in one run.

Everything is measured on this machine in this run, so a ratio compares like with like:

- **CPU peak**: a plain 2048² matrix product in float32 and bfloat16 (what the hardware can do);
- **features**: clips per second computed from audio (cold) and read back from the cache;
- **training throughput** per family (samples/s): a naive loop — float32, NCHW, a ``DataLoader``
  over the crops, as a first PyTorch script would do — against tapcheck's loop (tensors in
  memory, channels-last, bfloat16 autocast where the CPU has it);
- **judging**: warm latency of one 3 s clip from its file (load, STFT, crops, network, kNN), the
  throughput of a batch of clips, and the cold time of ``tapcheck judge`` from the shell — for
  the study's ``arcface-resnet18`` and, beside it, the fast model (``models.FAST_MODEL``);
- **peak memory** (max RSS) of a training run and of a judge run, each in its own process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import TapcheckWarning
from .files import atomic_write


def _timed(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def matmul_peak(*, n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an n x n matrix product in float32 and bfloat16."""
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        best = min(_timed(lambda a=a, b=b: a @ b, repeats=repeats, warmup=2))
        out[name] = 2 * n ** 3 / best / 1e9
    return out


def feature_speed(paths: list[Path], cache_dir: Path) -> dict[str, float]:
    """Clips per second: computed from audio, and read back from a warm cache."""
    from .featurecache import FeatureCache
    from .features import clip_features

    t0 = time.perf_counter()
    for p in paths:
        clip_features(p)
    cold = len(paths) / (time.perf_counter() - t0)
    cache = FeatureCache(cache_dir)
    cache.get_many(paths)  # fill
    warm = min(_timed(lambda: cache.get_many(paths), repeats=3, warmup=1))
    return {"cold_clips_per_s": cold, "cached_clips_per_s": len(paths) / warm}


def _naive_loop(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, steps: int,
                batch: int) -> float:
    """A first PyTorch script: fp32, NCHW, DataLoader over a TensorDataset. Samples/s."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=batch,
                                         shuffle=True, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    done, t0 = 0, None
    for i, (xb, yb) in enumerate(loader):
        if i == 1:  # the first step pays one-off allocation
            t0, done = time.perf_counter(), 0
        loss, _ = model.loss(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += len(xb)
        if i == steps:
            break
    return done / (time.perf_counter() - t0)


def _tapcheck_loop(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, steps: int,
                   batch: int) -> float:
    """tapcheck's training step (see fitting.fit_model): channels-last, bf16 autocast."""
    from .runtime import autocast_dtype

    amp = autocast_dtype(torch.device("cpu"), bf16=True)
    model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    X = X.contiguous(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    done, t0 = 0, None
    for i in range(steps + 1):
        if i == 1:
            t0, done = time.perf_counter(), 0
        idx = torch.randint(len(X), (batch,), generator=g)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            loss, _ = model.loss(X[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done += batch
    return done / (time.perf_counter() - t0)


def step_flops(model: torch.nn.Module, *, batch: int = 8) -> float:
    """Floating-point operations of one training step (forward + backward) per sample."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 1, 100, 120)
    y = torch.randint(0, 2, (batch,))
    with FlopCounterMode(display=False) as counter:
        loss, _ = model.loss(x, y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def training_speed(*, steps: int = 6, batch: int = 32, models: tuple[str, ...] | None = None
                   ) -> list[dict]:
    """Samples/s of the naive loop and tapcheck's loop for each backbone family (or ``models``),
    with the arithmetic rate each reaches (to set against the matrix-product peaks)."""
    from .config import TrainConfig
    from .models import FAST_MODEL, get_spec

    rows = []
    X = torch.randn(batch * (steps + 2), 1, 100, 120)
    y = torch.randint(0, 10, (len(X),))
    for name in models or ("arcface-resnet18", FAST_MODEL, "arcface-shallow", "ae"):
        spec = get_spec(name)
        train = spec.resolve(TrainConfig(model=name))
        torch.manual_seed(0)
        naive = _naive_loop(spec.build(n_classes=10, train=train, input_shape=(100, 120)), X, y,
                            steps=steps, batch=batch)
        torch.manual_seed(0)
        model = spec.build(n_classes=10, train=train, input_shape=(100, 120))
        flops = step_flops(model)
        ours = _tapcheck_loop(model, X, y, steps=steps, batch=batch)
        rows.append({"model": name, "naive_samples_per_s": naive, "tapcheck_samples_per_s": ours,
                     "speedup": ours / naive, "gflop_per_sample": flops / 1e9,
                     "naive_gflops": naive * flops / 1e9, "tapcheck_gflops": ours * flops / 1e9})
    return rows


def judge_speed(model_path: Path, clips: list[Path]) -> dict[str, float]:
    """Warm latency of one clip, batch throughput, and the cold `tapcheck judge` from the shell."""
    from torch.utils.flop_counter import FlopCounterMode

    from .features import load_clip, strike_crops
    from .judge import Judge
    from .models.base import represent_clips

    judge = Judge(model_path)
    crops = np.zeros((1, judge.config.features.n_crops, judge.config.features.n_bins,
                      judge.config.features.n_frames), np.float32)
    with FlopCounterMode(display=False) as counter:
        represent_clips(judge.net, crops, judge.model.scorer)
    one = _timed(lambda: judge.judge_files(clips[:1]), repeats=30, warmup=3)
    network = min(_timed(lambda: represent_clips(judge.net, crops, judge.model.scorer),
                         repeats=30, warmup=3))
    # where a warm judgment's time goes: the same clip, each step alone (medians)
    f = judge.config
    y = load_clip(clips[0], audio=f.audio, features=f.features)
    real = strike_crops(y, sr=f.audio.sr, features=f.features)[None]
    rep = represent_clips(judge.net, real, judge.model.scorer).numpy()
    steps = {"read": lambda: load_clip(clips[0], audio=f.audio, features=f.features),
             "features": lambda: strike_crops(y, sr=f.audio.sr, features=f.features),
             "network": lambda: represent_clips(judge.net, real, judge.model.scorer),
             "score": lambda: judge.model.detector.anomaly_score(rep)}
    parts = {k: 1000 * float(np.median(_timed(fn, repeats=30, warmup=3)))
             for k, fn in steps.items()}
    batch = min(_timed(lambda: judge.judge_files(clips), repeats=3, warmup=1))
    cold = _timed(lambda: _judge_from_shell(model_path, clips[0]), repeats=3, warmup=1)
    return {"name": judge.name, "warm_ms_median": 1000 * float(np.median(one)),
            "warm_ms_p95": 1000 * float(np.percentile(one, 95)),
            "batch_clips_per_s": len(clips) / batch, "batch_size": len(clips),
            "cold_cli_s_median": float(np.median(cold)),
            "network_gflop_per_clip": counter.get_total_flops() / 1e9,
            "network_ms_best": 1000 * network, "steps_ms_median": parts,
            "real_time_factor": 3.0 / float(np.median(one))}


def _judge_from_shell(model_path: Path, clip: Path) -> None:
    """``tapcheck judge clip --model m`` in a new process; a failed run is no timing."""
    done = subprocess.run(
        [sys.executable, "-m", "tapcheck", "judge", str(clip), "--model", str(model_path)],
        capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 0 normal, 1 anomalous; anything else failed
        raise RuntimeError(f"tapcheck judge failed ({done.returncode}): {done.stderr.strip()}")


def peak_memory_mb(code: str) -> float:
    """Max resident memory of a fresh Python process running ``code``, MB.

    The process reports its own high-water mark, ``VmHWM`` (``ru_maxrss`` would not do: Linux
    carries it over fork and exec from this process, which is big after training).
    """
    report = ("\nprint([l.split()[1] for l in open('/proc/self/status') "
              "if l.startswith('VmHWM')][0])")
    result = subprocess.run([sys.executable, "-c", code + report], check=True,
                            capture_output=True, text=True)
    return int(result.stdout.split()[-1]) / 1024.0  # kB


def run_bench(*, model: Path | None = None, out: Path | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Run every measurement; write JSON to ``out`` and return it."""
    from .config import Config
    from .modelfile import load_model, save_checkpoint
    from .models import FAST_MODEL
    from .runtime import configure_threads, cpu_has_bf16
    from .synth_dataset import make_study_dataset
    from .training import train_model

    if model is not None:
        # read as judge reads it, now: a file that is no tapcheck model was refused only when
        # the judging began, after seven minutes of the other measurements; a folder, a
        # dangling link or a fifo each said as what it is, not "not found"
        load_model(model)
    threads = configure_threads()
    results: dict = {"machine": {
        "cpu": _cpu_name(), "cpus": os.cpu_count(), "torch_threads": threads,
        "bf16_native": cpu_has_bf16(), "torch": torch.__version__,
        "python": platform.python_version(), "load_average_start": os.getloadavg()[0]}}
    log("CPU peak (matrix product) ...")
    results["matmul_gflops"] = matmul_peak()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log("synthesising clips ...")
        ds = make_study_dataset(tmp / "bench", takes=4, test_takes=1, seed=11)
        paths = [ds.path_of(t) for t in ds.takes]
        log("features ...")
        results["features"] = feature_speed(paths, tmp / "cache")
        log("training throughput ...")
        results["training"] = training_speed()
        with warnings.catch_warnings():
            # the throwaway models' own warnings ("the threshold rests on 24 normal clips …
            # record more normal takes …") read as about the user's data (QA)
            warnings.simplefilter("ignore", TapcheckWarning)
            if model is None:
                log("training a small arcface-resnet18 to judge with ...")
                config = Config().replace("train", epochs=1)
                model = save_checkpoint(tmp / "arcface-resnet18.pt",
                                        train_model(ds, config=config, progress=False))
            log(f"training a small {FAST_MODEL} to judge with ...")
            fast = save_checkpoint(tmp / f"{FAST_MODEL}.pt", train_model(
                ds, config=Config().replace("train", model=FAST_MODEL, epochs=1),
                progress=False))
        log("judging ...")
        for key, path in (("judge", Path(model)), ("judge_fast", fast)):  # back to back
            results[key] = judge_speed(path, paths[:32])
            results[key]["model"] = str(path)
        log("peak memory ...")
        results["memory_mb"] = {
            key: peak_memory_mb(
                "from tapcheck.judge import Judge; "
                f"Judge({str(path)!r}).judge_files({[str(p) for p in paths[:32]]!r})")
            for key, path in (("judge", model), ("judge_fast", fast))}
        results["memory_mb"].update({
            "train": peak_memory_mb(
                "from tapcheck.config import Config; from tapcheck.datasets import Dataset; "
                "from tapcheck.training import train_model; "
                f"train_model(Dataset({str(ds.root)!r}), "
                "config=Config().replace('train', epochs=1), progress=False)")})
    results["machine"]["load_average_end"] = os.getloadavg()[0]  # others' work on the CPUs
    if out is not None:
        with atomic_write(out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return results


def format_results(r: dict) -> str:
    """The figures as a Markdown table (as pasted into the README)."""
    m, f, j = r["matmul_gflops"], r["features"], r["judge"]
    lines = [
        f"Machine: {r['machine']['cpu']}, {r['machine']['cpus']} CPUs, torch "
        f"{r['machine']['torch']} with {r['machine']['torch_threads']} threads, native bf16: "
        f"{'yes' if r['machine']['bf16_native'] else 'no'}"
        # the figures are this machine's at this load: at 6.7 on 2 CPUs they read as its speed
        + (f"; load average {r['machine']['load_average_start']:.1f} at the start, "
           f"{r['machine']['load_average_end']:.1f} at the end."
           if "load_average_end" in r["machine"] else "."),
        "",
        "| measure | tapcheck | baseline | ratio |",
        "| --- | --- | --- | --- |",
        f"| matrix product 2048², GFLOP/s | {m['bfloat16']:.0f} (bf16) | {m['float32']:.0f} "
        f"(fp32) | {m['bfloat16'] / m['float32']:.2f}x |",
        f"| features, clips/s | {f['cached_clips_per_s']:.0f} (from cache) | "
        f"{f['cold_clips_per_s']:.0f} (computed) | "
        f"{f['cached_clips_per_s'] / f['cold_clips_per_s']:.0f}x |",
    ]
    for t in r["training"]:
        lines.append(f"| training {t['model']}, samples/s | {t['tapcheck_samples_per_s']:.1f} | "
                     f"{t['naive_samples_per_s']:.1f} (naive fp32 NCHW) | {t['speedup']:.2f}x |")
    for t in r["training"]:
        lines.append(
            f"| training {t['model']}, GFLOP/s ({t['gflop_per_sample']:.2f} GFLOP a sample) | "
            f"{t['tapcheck_gflops']:.0f} = {_share(t['tapcheck_gflops'], m['bfloat16'])} of the "
            f"bf16 peak | {t['naive_gflops']:.0f} = {_share(t['naive_gflops'], m['float32'])} of "
            "the fp32 peak | |")
    lines += [
        f"| judge one 3 s clip, warm (median / p95) | {j['warm_ms_median']:.1f} / "
        f"{j['warm_ms_p95']:.1f} ms | 3000 ms (real time) | {j['real_time_factor']:.0f}x |",
        f"| judge: the network alone ({j['network_gflop_per_clip']:.1f} GFLOP a clip), best | "
        f"{j['network_ms_best']:.1f} ms | {1000 * j['network_gflop_per_clip'] / m['bfloat16']:.1f}"
        f" ms at the bf16 peak | |",
        f"| judge a batch of {j['batch_size']} clips, clips/s | {j['batch_clips_per_s']:.0f} | | |",
        f"| `tapcheck judge clip.wav` from the shell (cold) | {j['cold_cli_s_median']:.2f} s | | |",
        f"| peak memory: training / judging | {r['memory_mb']['train']:.0f} / "
        f"{r['memory_mb']['judge']:.0f} MB | | |",
    ]
    return "\n".join(lines + _fast_rows(r))


def _share(gflops: float, peak: float) -> str:
    """``gflops`` as a share of the matrix-product ``peak`` of the same run; over 100 % says
    the peak was measured low (the machine's load varied), where 108 % stood unremarked (QA)."""
    share = f"{gflops / peak:.0%}"
    return share + " (over the peak measured: the load varied)" if gflops > peak else share


def _fast_rows(r: dict) -> list[str]:
    """The fast model against the study's arcface-resnet18, both measured in this run (and,
    with ``bench --model``, the judging figures against that model's)."""
    if "judge_fast" not in r:  # a result file from before the fast model
        return []
    study = next(t for t in r["training"] if t["model"] == "arcface-resnet18")
    fast = next(t for t in r["training"] if t["model"] == r["judge_fast"]["name"])
    j, jf = r["judge"], r["judge_fast"]
    name = fast["model"]
    judged = j.get("name", "arcface-resnet18")
    # `bench --model ae.pt`: the column said arcface-resnet18 over ae's judging figures (QA)
    other = ("arcface-resnet18" if judged == "arcface-resnet18" else
             f"arcface-resnet18 (training), {judged} (judging)")
    training = [
        f"| training, samples/s (tapcheck's loop) | {fast['tapcheck_samples_per_s']:.1f} | "
        f"{study['tapcheck_samples_per_s']:.1f} | "
        f"{fast['tapcheck_samples_per_s'] / study['tapcheck_samples_per_s']:.2f}x |",
        f"| training, GFLOP a sample | {fast['gflop_per_sample']:.2f} | "
        f"{study['gflop_per_sample']:.2f} | "
        f"{study['gflop_per_sample'] / fast['gflop_per_sample']:.1f}x less |"]
    if judged == name:  # `bench --model lite.pt`: one network judged twice, its noise a "0.3x"
        return ["", f"| {name} against arcface-resnet18 (same run; --model is {name} itself: "
                    f"its judging is in the table above) | {name} | arcface-resnet18 | ratio |",
                "| --- | --- | --- | --- |", *training]
    return [
        "",
        f"| {name} against {other} (same run) | {name} | {other} | ratio |",
        "| --- | --- | --- | --- |",
        *training,
        f"| judge one 3 s clip, warm (median / p95) | {jf['warm_ms_median']:.1f} / "
        f"{jf['warm_ms_p95']:.1f} ms | {j['warm_ms_median']:.1f} / {j['warm_ms_p95']:.1f} ms | "
        f"{j['warm_ms_median'] / jf['warm_ms_median']:.1f}x |",
        f"| judge: the network alone, best ({jf['network_gflop_per_clip']:.2f} / "
        f"{j['network_gflop_per_clip']:.1f} GFLOP a clip) | {jf['network_ms_best']:.1f} ms | "
        f"{j['network_ms_best']:.1f} ms | {j['network_ms_best'] / jf['network_ms_best']:.1f}x |",
    ] + ([
        "| judge, each step alone (median): read / features / network / score | "
        + " | ".join(" / ".join(f"{x['steps_ms_median'][k]:.1f}" for k in
                                ("read", "features", "network", "score")) + " ms"
                     for x in (jf, j)) + " | |"] if "steps_ms_median" in jf else []) + [
        f"| judge a batch of {jf['batch_size']} clips, clips/s | "
        f"{jf['batch_clips_per_s']:.0f} | {j['batch_clips_per_s']:.0f} | "
        f"{jf['batch_clips_per_s'] / j['batch_clips_per_s']:.1f}x |",
    ] + ([f"| peak memory of judging | {r['memory_mb']['judge_fast']:.0f} MB | "
          f"{r['memory_mb']['judge']:.0f} MB | |"] if "memory_mb" in r else [])



def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
