"""The measured figures of the docs: result files in docs/results/, rendered into the Markdown.

Every figure the README and docs/ quote from a measurement lives in a JSON file under
``docs/results/`` and reaches the Markdown only through this script, between markers::

    <!-- result: NAME -->
    (rendered from docs/results/NAME.json; do not edit by hand)
    <!-- /result -->

    python3 scripts/results.py render           # rewrite every block from its result file
    python3 scripts/results.py render --check   # exit 1 if a block differs (the tests run this)
    python3 scripts/results.py run NAME         # measure again: rewrite docs/results/NAME.json
    python3 scripts/results.py list             # the result files and how each is measured

``run`` does the measurement the file records (``demo``: ``tapcheck demo`` in a fresh folder;
``compare-demo``: the 14 models on the demo; ``seeds-bf16-fp32``: arcface-resnet18 over seeds in
bfloat16 and float32; ``bench``: ``tapcheck bench``; ``listen-latency``: a new row from
``tests/listen_latency.py``; ``compare-grid-demo``: the study's eight over three seeds,
serially and on a local Ray (``compare-grid-small``: two models, two epochs);
``fast-model``: arcface-lite over five seeds on the demo; ``bench-fast``: ``tapcheck bench`` on
one thread; ``one-class``: ``one_class.py``; ``onnx``: the networks through torch and through
onnxruntime, which needs ``pip install onnxruntime onnxscript``) and then renders. They take
minutes to hours on a 2-core machine. ``run`` measures with the code and defaults of the day it
runs: a file measured before a default changed (``list`` gives each file's date; the log-normal
threshold fit replaced the gamma fit on 2026-12-03) comes back with today's figures, and the
prose around its block, written for the old ones, must be read again.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
BLOCK = re.compile(r"(<!-- result: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /result -->)",
                   re.S)


# -- rendering ----------------------------------------------------------------------------------

def render_demo(r: dict) -> str:
    from tapcheck.demo import demo_lines

    from tapcheck.paths import DEFAULT_MODEL

    # what the demo printed: the evaluate it points at names a model file other than the default
    model = None if r.get("model", DEFAULT_MODEL) == DEFAULT_MODEL else f"models/{r['model']}.pt"
    lines = demo_lines(r["evaluation"], seconds=r["seconds_in_all"], model=model)
    return "```\n" + "\n".join(lines) + "\n```\n"


def render_demo_lite(r: dict) -> str:
    """`tapcheck demo --model arcface-lite`: its printed table and where the time went."""
    if not r:
        return "(not measured yet: `python3 scripts/results.py run demo-lite`)\n"
    return (f"`tapcheck demo --model {r['model']}` in fresh folders, {r['measured']}: training "
            f"{r['train_s']} s, {r['wall_s']} s for the whole command (synthesis, features and "
            "judging included; the table's own clock starts once Python and torch are loaded)"
            "\n\n" + render_demo(r))


def render_demo_new_boards(r: dict) -> str:
    """`tapcheck demo --config configs/new-boards.toml`: the recipe for boards never heard."""
    if not r:
        return "(not measured yet: `python3 scripts/results.py run demo-new-boards`)\n"
    return (f"`tapcheck demo --config {r['config']}` in fresh folders, {r['measured']}: "
            f"training {r['train_s']} s, {r['wall_s']} s for the whole command (the table's own "
            "clock starts once Python and torch are loaded)\n\n" + render_demo(r))


def render_compare(r: dict) -> str:
    rows = r["models"]
    best = {k: max(m[k] for m in rows) for k in ("auc", "pauc", "tpr_at_5fpr")}

    def num(m, k):  # the best of each column in bold
        text = f"{m[k]:.3f}"
        return f"**{text}**" if m[k] == best[k] else text

    lines = ["| model | AUC (95 % CI) | pAUC | TPR @ 5 % FPR | false alarms @ threshold | "
             "board 8 > 7 | training |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in rows:
        lines.append(f"| {m['model']} | {num(m, 'auc')} ({m['auc_ci_low']:.3f}–"
                     f"{m['auc_ci_high']:.3f}) | {num(m, 'pauc')} | {num(m, 'tpr_at_5fpr')} | "
                     f"{m['false_alarms']:.3f} | {'yes' if m['board8_over_board7'] else 'no'} | "
                     f"{m['train_seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def render_seeds(r: dict) -> str:
    def auc(v):
        return "—" if v is None else f"{v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f})"

    def yes(v):
        return "—" if v is None else ("yes" if v else "no")

    def secs(t):
        bf, fp = t["bf16"], t["fp32"]
        return f"{bf:.0f} / {fp:.0f} s" if fp is not None else f"{bf:.0f} s / —"

    lines = ["| seed | bfloat16 AUC (95 % CI) | float32 AUC (95 % CI) | board 8 > 7 (bf16 / fp32) "
             "| training (bf16 / fp32) |", "| --- | --- | --- | --- | --- |"]
    for s in r["seeds"]:
        label = f"{s['seed']} (the demo)" if s["seed"] == 0 else str(s["seed"])
        lines.append(f"| {label} | {auc(s['bf16'])} | {auc(s['fp32'])} | "
                     f"{yes(s['board8_over_7']['bf16'])} / {yes(s['board8_over_7']['fp32'])} | "
                     f"{secs(s['train_s'])} |")
    stats = []
    for kind in ("bf16", "fp32"):
        values = [s[kind][0] for s in r["seeds"] if s[kind] is not None]
        stats.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} "
                     f"({len(values)} seeds)")
    lines.append(f"| mean ± sd | {stats[0]} | {stats[1]} | | |")
    return "\n".join(lines) + "\n"


def render_grid(r: dict) -> str:
    """compare over seeds, serially and with --ray: times, memory, load; models and pairs."""
    if not r:
        return "(not measured yet: `python3 scripts/results.py run compare-grid-demo`)\n"
    lines = [f"`{r['grid']}` on the demo ({r['cells']} cells), {r['measured']}:", "",
             "| run | wall time | driver peak memory | load average (1 min) before → after |",
             "| --- | --- | --- | --- |"]
    for kind, run in r["runs"].items():
        lines.append(f"| {kind} ({run['how']}) | {_mmss(run['wall_s'])} | "
                     f"{run['driver_peak_mb']} MB | {run['load_before']:.1f} → "
                     f"{run['load_after']:.1f} |")
    lines += ["", _grid_models(r), "| A | B | cells | mean ΔAUC (A − B) | A ahead in | "
              "Wilcoxon p (smallest possible) | paired t-test p, Holm-adjusted |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in r["pairs"]:
        a = p["auc"]
        t = "–" if a.get("p_t_holm") is None else f"{a['p_t_holm']:.3g}"
        lines.append(f"| {p['a']} | {p['b']} | {p['cells']} | {a['mean_diff']:+.3f} | "
                     f"{a['a_better']} of {p['cells']} | {a['p']:.3g} ({a['min_p']:.3g}) | {t} |")
    lines.append("\n" + _grid_supported(r))
    if "max_abs_diff" in r:
        d = r["max_abs_diff"]
        lines.append(f"\nSerial and Ray cells identical: {'yes' if r['cells_equal'] else 'no'} "
                     f"({r['cells_note']}): identical in {len(r['identical_cells'])} of "
                     f"{r['cells']} cells; largest difference AUC {d['auc']:.2g}, pAUC "
                     f"{d['pauc']:.2g}, threshold {d['threshold']:.2g}"
                     + (f"; mean |ΔAUC| over the cells {r['mean_abs_auc_diff']:.3f}."
                        if "mean_abs_auc_diff" in r else "."))
        if "ray_auc" in r:
            lines.append("\nAUC per model in the Ray run (the same seeds, trained on one thread), "
                         "mean ± sd: " + "; ".join(
                             f"{m} {a['mean']:.3f} ± {a['sd']:.3f}" for m, a in sorted(
                                 r["ray_auc"].items(), key=lambda kv: -kv[1]["mean"])) + ".")
    if r.get("note"):
        lines.append("\n" + r["note"])
    return "\n".join(lines) + "\n"


def _grid_models(r: dict) -> str:
    """The per-model table of a grid, best mean AUC first."""
    unseen = any((m.get("false_alarms_unseen") or {}).get("n") for m in r["models"])
    lines = ["| model | cells | AUC mean ± sd (95 % t-interval) | pAUC mean ± sd | "
             "false alarms at threshold, mean ± sd |"
             + (" ... on unseen healthy boards |" if unseen else ""),
             "| --- | --- | --- | --- | --- |" + (" --- |" if unseen else "")]

    def ms(s):
        if s["mean"] is None:
            return "–"
        return f"{s['mean']:.3f}" + ("" if s["sd"] is None else f" ± {s['sd']:.3f}")

    for m in sorted(r["models"], key=lambda m: -m["auc"]["mean"]):
        a = m["auc"]
        lines.append(f"| {m['model']} | {m['cells']} | {ms(a)} ({a['ci_low']:.3f}–"
                     f"{a['ci_high']:.3f}) | {ms(m['pauc'])} | {ms(m['false_alarms'])} |"
                     + (f" {ms(m['false_alarms_unseen'])} |" if unseen else ""))
    return "\n".join(lines) + "\n"


def _grid_supported(r: dict) -> str:
    """Which AUC rankings the paired tests support, in words."""
    from tapcheck.gridreport import supported_rankings

    if not any("p_t_holm" in p["auc"] for p in r["pairs"]):
        wil = sum(p["auc"]["p"] < 0.05 for p in r["pairs"])
        return ("This grid was measured before the report had the paired t-test; the Wilcoxon "
                f"test supports {wil} ordering{'s' if wil != 1 else ''}.")
    return supported_rankings(r["pairs"])  # the report's own sentence


def render_grid_table(_: dict) -> str:
    """The seed grid's per-model table and supported rankings, for docs/models.md."""
    file = RESULTS / "compare-grid-demo.json"
    r = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    if not r or not r["grid"].endswith("--models study --seeds 0-2"):
        return "(not measured yet: `python3 scripts/results.py run compare-grid-demo`)\n"
    return (f"`{r['grid']}`, {r['measured']}:\n\n" + _grid_models(r) + "\n"
            + _grid_supported(r) + "\n")


#: the grids of the seed table: (result name, networks per model file, frequency stretch)
MEMBER_GRIDS = (("compare-grid-fast", 1, 0.06), ("compare-grid-members-lite", 3, 0.06),
                ("compare-grid-members-r18", 2, 0.06), ("compare-grid-stretch", 1, 0.2))


def render_members(_: dict) -> str:
    """Seed by seed on the demo, the same five seeds: one network per model file against
    several (``train.members``; member 0 of each ensemble is the single network of its seed),
    and the default ±6 % frequency stretch against ±20 % (configs/wide-stretch.toml)."""
    rows = []
    for name, members, stretch in MEMBER_GRIDS:
        file = RESULTS / f"{name}.json"
        r = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
        for model in {c["model"] for c in r.get("per_cell", [])}:
            cells = sorted((c for c in r["per_cell"] if c["model"] == model),
                           key=lambda c: c["seed"])
            rows.append((model, members, stretch, cells, r["grid"]))
    if not rows:
        return "(not measured yet: `python3 scripts/results.py run compare-grid-members-lite`)\n"
    lines = ["| model | networks | freq_stretch | seeds | AUC mean ± sd | AUC per seed | unseen "
             "healthy taps flagged, mean ± sd | training per seed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, members, stretch, cells, _ in sorted(rows, key=lambda r: (r[0], r[2], r[1])):
        auc = [c["auc"] for c in cells]
        unseen = [c["false_alarms_unseen"] for c in cells]
        lines.append(
            f"| {model} | {members} | ±{100 * stretch:.0f} % | "
            f"{', '.join(str(c['seed']) for c in cells)} | "
            f"{statistics.mean(auc):.3f} ± {_sd(auc):.3f} | "
            f"{', '.join(f'{a:.3f}' for a in auc)} | "
            f"{100 * statistics.mean(unseen):.1f} ± {100 * _sd(unseen):.1f} % | "
            f"{statistics.mean(c['train_seconds'] for c in cells):.0f} s |")
    grids = sorted({f"`{grid}`" for *_, grid in rows})
    return ("\n".join(lines) + "\n\nFrom " + "; ".join(grids) + " (`python3 scripts/results.py "
            "run NAME`, NAME one of " + ", ".join(n for n, *_ in MEMBER_GRIDS) + ").\n")


def render_members_judge(r: dict) -> str:
    """Warm judge time per model file, one network against several (scripts/members_judge.py)."""
    if not r:
        return ("(not measured yet: `PYTHONPATH=$PWD python3 scripts/members_judge.py "
                "MODEL.pt ...`)\n")
    lines = ["| model | networks | warm verdict, median | network alone, best | reading + "
             "features | network GFLOP per clip |", "| --- | --- | --- | --- | --- | --- |"]
    for m in r["models"]:
        steps = m["steps_ms_median"]
        lines.append(f"| {m['model']} | {m['members']} | {m['warm_ms_median']:.1f} ms | "
                     f"{m['network_ms_best']:.1f} ms | "
                     f"{steps['read'] + steps['features']:.1f} ms | "
                     f"{m['network_gflop_per_clip']:.2f} |")
    return "\n".join(lines) + f"\n\n`{r['command']}`, {r['measured']}.\n"


def _pct_mean_sd(values: list[float]) -> str:
    """Percentages as the new-boards tables print them: "4.4 % ± 3.1" (no sd for one)."""
    return f"{statistics.mean(values):.1f} %" + (
        f" ± {_sd(values):.1f}" if len(values) > 1 else "")


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def render_bench(r: dict) -> str:
    from tapcheck.bench import format_results

    return format_results(r) + "\n"


def render_latency(r: dict) -> str:
    lines = ["| run | median | 95th percentile | slowest |", "| --- | --- | --- | --- |"]
    for run in r["runs"]:
        note = f" ({run['note']})" if run.get("note") else ""
        lines.append(f"| {run['run']}{note} | {run['median_ms']} ms | {run['p95_ms']} ms | "
                     f"{run['max_ms']} ms |")
    return "\n".join(lines) + "\n"


def render_targets(_: dict) -> str:
    """The speed targets against bench.json, demo.json and compare-demo.json."""
    def load(name):
        return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))

    bench, demo, comp = load("bench"), load("demo"), load("compare-demo")
    resnet = next(t for t in bench["training"] if t["model"] == "arcface-resnet18")
    j, f = bench["judge"], bench["features"]
    rows = [
        ("ResNet18 training ≥ 2.5x the naive fp32 loop", f"{resnet['speedup']:.2f}x",
         resnet["speedup"] >= 2.5),
        ("`arcface-resnet18` on the demo trained to its AUC ≤ 5 min",
         f"{_mmss(demo['train_s'])} (features included); the whole `tapcheck demo` "
         f"{_mmss(demo['wall_s'])}", demo["train_s"] <= 300),
        ("the study's eight via `compare` ≤ 25 min", f"{_mmss(comp['wall_s_study'])} "
         f"({comp['measured'].split(',')[0]}){_grid_per_seed()}", comp["wall_s_study"] <= 1500),
        ("warm judge of a 3 s clip ≤ 25 ms", f"{j['warm_ms_median']:.1f} ms median, "
         f"{j['warm_ms_p95']:.1f} ms p95", j["warm_ms_median"] <= 25),
        ("cold `tapcheck judge clip.wav` ≤ 3 s", f"{j['cold_cli_s_median']:.2f} s",
         j["cold_cli_s_median"] <= 3),
        ("features from cache ≥ 2000 clips/s", f"{f['cached_clips_per_s']:.0f} clips/s",
         f["cached_clips_per_s"] >= 2000)]
    lines = ["| target (2-core machine) | measured | |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {'met' if ok else 'missed — bound below'} |" for t, m, ok in rows]
    return "\n".join(lines) + "\n"


def _grid_per_seed() -> str:
    """The serial seed grid's time per seed, a later measurement of the same eight models."""
    file = RESULTS / "compare-grid-demo.json"
    r = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    if "serial" not in r.get("runs", {}):
        return ""
    seeds = r["cells"] // len(r["models"])
    return (f"; the serial {seeds}-seed grid of {r['measured'].split(',')[0]}: "
            f"{_mmss(r['runs']['serial']['wall_s'] / seeds)} a seed (docs/compare-grids.md)")


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60))} s"


def _unseen_false_alarms(boards: list[dict]) -> float:
    """Share of the clips of unseen healthy boards (11-13, "similar-material") flagged."""
    flagged = clips = 0
    for b in boards:
        if b["label"] == "normal" and b["group"] == "similar-material":
            flagged += int(b["flagged"].split("/")[0])
            clips += b["clips"]
    return flagged / clips


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def render_fast_model(r: dict) -> str:
    """The fast model over seeds on the demo, against arcface-resnet18's eight seeds."""
    if not r:
        return "(not measured yet: python3 scripts/results.py run fast-model)\n"
    study = json.loads((RESULTS / "seeds-bf16-fp32.json").read_text(encoding="utf-8"))
    study_auc = [s["bf16"][0] for s in study["seeds"]]
    demo = json.loads((RESULTS / "demo.json").read_text(encoding="utf-8"))["evaluation"]
    lines = [f"| seed | {r['model']} AUC (95 % CI) | pAUC | false alarms, all healthy test clips "
             "| false alarms, unseen boards 11-13 | board 8 > 7 | training (wall, loaded) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in r["seeds"]:
        lines.append(f"| {s['seed']} | {s['auc']:.3f} ({s['auc_ci_low']:.3f}–"
                     f"{s['auc_ci_high']:.3f}) | {s['pauc']:.3f} | {s['false_alarms']:.3f} | "
                     f"{s['unseen_false_alarms']:.3f} | {'yes' if s['board8_over_7'] else 'no'} | "
                     f"{s['train_seconds']:.0f} s |")
    aucs = [s["auc"] for s in r["seeds"]]
    lines.append(f"| mean ± sd ({len(aucs)} seeds) | {_mean_sd(aucs)} | "
                 f"{_mean_sd([s['pauc'] for s in r['seeds']])} | "
                 f"{_mean_sd([s['false_alarms'] for s in r['seeds']])} | "
                 f"{_mean_sd([s['unseen_false_alarms'] for s in r['seeds']])} | | |")
    gap = statistics.mean(aucs) - statistics.mean(study_auc)
    verdict = "met" if gap >= -0.01 else "missed"
    nb = json.loads((RESULTS / "new-boards.json").read_text(encoding="utf-8"))["models"]
    unseen = [m["rows"]["hold-out, robust (auto below 8 boards)"]["far_unseen"]
              for m in nb.values()]
    lines += ["", f"arcface-resnet18 (bfloat16, [{len(study_auc)} seeds]"
              f"(results/seeds-bf16-fp32.md), code of 2026-11-29): AUC {_mean_sd(study_auc)}. "
              f"Difference of the means: {gap:+.3f} — target (within 0.01 or better) {verdict}. "
              f"arcface-resnet18's false alarms on the unseen boards 11-13 with its hold-out "
              f"threshold: "
              f"{_mean_sd(unseen)} over {len(unseen)} seeds with the gamma fit "
              f"([new-boards.md](new-boards.md)); "
              f"the demo's seed 0 (`docs/results/demo.json`, today's log-normal fit): "
              f"{_unseen_false_alarms(demo['boards']):.3f}. "
              f"Training wall time was measured while up to {r['parallel']} runs shared the 2 "
              f"CPUs with other work (load average {r['load_average']})."]
    return "\n".join(lines) + "\n"


def render_one_class(r: dict) -> str:
    """Per-batch against materialised pseudo-anomalies on a one-class set; the time 600 clips
    take, from the fast model's samples/s of bench-fast.json."""
    if not r:
        return "(not measured yet: python3 scripts/results.py run one-class)\n"
    def auc(run: dict, key: str) -> str:
        return f"{run[key]:.3f}" if key in run else "—"

    lines = ["| seed | AUC per batch / materialised: board 1 left against boards 7, 8 | "
             "... against the whole test split | training per batch / materialised |",
             "| --- | --- | --- | --- |"]
    for s in r["seeds"]:
        pb, mat = s["per_batch"], s["materialised"]
        lines.append(f"| {s['seed']} | {auc(pb, 'auc_same_board')} / "
                     f"{auc(mat, 'auc_same_board')} | {pb['auc']:.3f} / {mat['auc']:.3f} | "
                     f"{pb['train_s']:.0f} / {mat['train_s']:.0f} s |")
    if not (RESULTS / "bench-fast.json").exists():
        return "\n".join(lines) + "\n"
    bench = json.loads((RESULTS / "bench-fast.json").read_text(encoding="utf-8"))
    rate = next(t["tapcheck_samples_per_s"] for t in bench["training"] if t["model"] == r["model"])
    samples = round(600 * 0.85) * 2 * 15  # fit clips (15 % calibrate) x 2 crops x 15 epochs
    lines += ["", f"{r['model']}, {r['threads']} torch thread(s), load average "
              f"{r['load_average']}. **600 one-class clips** (not measured: computed) are "
              f"{samples} training samples with pseudo-anomalies drawn per batch (5x that "
              f"materialised): {_mmss(samples / rate)} at the {rate:.0f} samples/s of the "
              f"bench run above ({_mmss(5 * samples / rate)} materialised), feature "
              "extraction and the reference embeddings not included."]
    return "\n".join(lines) + "\n"


def _onnx_row(model, clip, onnx_file: Path) -> dict:
    """One model's network through torch (as judged, and float32) and through onnxruntime."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from tapcheck.bench import _timed
    from tapcheck.models.base import represent_clips
    from tapcheck.runtime import bf16_inference

    ours = model.module.for_inference(bf16=bf16_inference(bf16=model.config.train.bf16))
    fp32 = model.module.for_inference(bf16=False)

    class Embed(torch.nn.Module):  # what represent_clips asks of the net, crops in
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.represent(x, "knn")

    crops = torch.from_numpy(clip[0][:, None])  # (2, 1, bins, frames)
    torch.onnx.export(Embed(fp32).eval(), (crops,), str(onnx_file), dynamo=True,
                      input_names=["crops"], output_names=["embedding"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        want = Embed(fp32)(crops).numpy()
    feed = {"crops": crops.numpy()}

    def ms(fn):
        return round(1000 * float(np.median(_timed(fn, repeats=100, warmup=10))), 2)

    return {"torch_as_judged_ms": ms(lambda: represent_clips(ours, clip, "knn")),
            "judged_in": str(next(ours.parameters()).dtype).removeprefix("torch."),
            "torch_fp32_ms": ms(lambda: represent_clips(fp32, clip, "knn")),
            "onnxruntime_fp32_ms": ms(lambda: session.run(None, feed)),
            "onnx_max_abs_diff": float(np.abs(session.run(None, feed)[0] - want).max())}


def render_one_class_600(r: dict) -> str:
    if not r:
        return "(not measured yet: `python3 scripts/results.py run one-class-600`)\n"
    runs = r["runs"]
    return (f"`train` of {r['model']} on {r['takes']} one-class takes (features computed, "
            f"reference and threshold included), {r['threads']} torch threads, load average "
            f"{r['load_average']}, {r['measured']}: **{_mmss(runs['per_batch']['wall_s'])}** "
            f"with pseudo-anomalies drawn per batch, {_mmss(runs['materialised']['wall_s'])} "
            "materialised.\n")


def render_onnx(r: dict) -> str:
    if not r:
        return "(not measured yet: `python3 scripts/results.py run onnx`)\n"
    lines = [f"The network of one judgment (a clip's two crops), median of 100, one thread, "
             f"{r['measured']}, torch {r['torch']}, onnxruntime {r['onnxruntime']}, load "
             f"average {r['load_average']:.1f}:", "",
             "| model | torch, as tapcheck judges | torch, float32 | onnxruntime, float32 | "
             "ONNX vs torch float32, largest difference |", "| --- | --- | --- | --- | --- |"]
    for name, m in r["models"].items():
        lines.append(f"| {name} | {m['torch_as_judged_ms']:.1f} ms ({m['judged_in']}) | "
                     f"{m['torch_fp32_ms']:.1f} ms | {m['onnxruntime_fp32_ms']:.1f} ms | "
                     f"{m['onnx_max_abs_diff']:.1g} |")
    return "\n".join(lines) + "\n"


#: docs/results/decay-fusion-NAME.json (scripts/decay_fusion.py): NAME, the set, the model
DECAY_FUSIONS = (("demo-lite-st20", "demo", "arcface-lite, ±20 %"),
                 ("demo-lite-st20-m2", "demo", "arcface-lite ×2 networks, ±20 %"),
                 ("demo-r18", "demo", "arcface-resnet18, ±6 %"),
                 ("demo-r18-st20", "demo", "arcface-resnet18, ±20 %"),
                 ("demo-r18-st20-m2", "demo", "arcface-resnet18 ×2 networks, ±20 %"),
                 ("demo-s1-lite-st20", "demo, second draw (`synth --seed 1`)",
                  "arcface-lite, ±20 %"),
                 ("demo-s2-lite-st20", "demo, third draw (`synth --seed 2`)",
                  "arcface-lite, ±20 %"),
                 ("plant-lite-st20", "plant", "arcface-lite, ±20 %"),
                 ("plant-r18-st20", "plant", "arcface-resnet18, ±20 %"),
                 ("plant-val-lite-st20", "plant-val (chose the decay's settings)",
                  "arcface-lite, ±20 %"))


def _result_sets(prefix: str, sets, commands: list[str]):
    """``(result, set name, model)`` for each of ``sets`` ((name, set, model) rows) whose
    ``docs/results/PREFIX-NAME.json`` exists; appends each file's command to ``commands``."""
    for name, dataset, model in sets:
        file = RESULTS / f"{prefix}-{name}.json"
        if file.exists():
            r = json.loads(file.read_text(encoding="utf-8"))
            commands.append(f"`{r['command']}`")
            yield r, dataset, model


def render_decay_fusions(_: dict) -> str:
    """The knn-decay scorer against knn on the same networks, every measured set and model."""
    def mean_sd(cells: list[dict], key: str, *, pct: bool) -> str:
        v = [c[key] for c in cells]
        k = 100 if pct else 1
        sd = f" ± {k * _sd(v):.{1 if pct else 3}f}" if len(v) > 1 else ""
        return f"{k * statistics.mean(v):.{1 if pct else 3}f}{sd}{' %' if pct else ''}"

    lines = ["| set | model, stretch | seeds | scorer | AUC mean ± sd | unseen healthy taps "
             "flagged (stated 5 %) | known boards' test taps | defective taps found | 3 taps, "
             "vote (judge's rule): healthy boards flagged / defective found | 3 taps, median "
             "over its own fit (stated 2 %) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    commands: list[str] = []
    for r, dataset, model in _result_sets("decay-fusion", DECAY_FUSIONS, commands):
        seeds = ", ".join(str(m["seed"]) for m in r["models"])
        for scorer in [s for s in ("knn", "knn-decay", "knn-decay-lognormal")
                       if s in r["models"][0]]:
            cells = [m[scorer] for m in r["models"]]
            board = " | ".join(f"{mean_sd(cells, f'board_{rule}_healthy', pct=True)} / "
                               f"{mean_sd(cells, f'board_{rule}_defect', pct=True)}"
                               for rule in ("vote", "median"))
            lines.append(f"| {dataset} | {model} | {seeds} | {scorer} "
                         f"| {mean_sd(cells, 'auc', pct=False)} "
                         f"| {mean_sd(cells, 'far_unseen', pct=True)} "
                         f"| {mean_sd(cells, 'far_known', pct=True)} "
                         f"| {mean_sd(cells, 'recall', pct=True)} | {board} |")
    if not commands:
        return "(not measured yet: scripts/decay_fusion.py)\n"
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


THRESHOLD_FITS = (("demo-lite-st20", "demo", "arcface-lite, ±20 %"),
                  ("demo-s1-lite-st20", "demo, second draw", "arcface-lite, ±20 %"),
                  ("demo-s2-lite-st20", "demo, third draw", "arcface-lite, ±20 %"),
                  ("plant-lite-st20", "plant", "arcface-lite, ±20 %"),
                  ("plant-val-lite-st20", "plant-val", "arcface-lite, ±20 %"),
                  ("demo-r18-st20", "demo", "arcface-resnet18, ±20 %"))


def render_threshold_fits(_: dict) -> str:
    """Gamma or log-normal: per set, how many (model, scorer) fits favour log-normal."""
    lines = ["| set | model, stretch | (model file, scorer) fits | log-normal better on the "
             "calibration clips | median log-likelihood gain | log-normal better on the normal "
             "test takes | median gain |", "| --- | --- | --- | --- | --- | --- | --- |"]
    commands: list[str] = []
    total = [0, 0, 0]
    for r, dataset, model in _result_sets("threshold-fit", THRESHOLD_FITS, commands):
        fits = [m[s] for m in r["models"] for s in ("knn", "knn-decay")]
        calib = [f["calibration"] for f in fits]
        test = [f["normal_test"] for f in fits]
        total = [total[0] + len(fits), total[1] + sum(c > 0 for c in calib),
                 total[2] + sum(t > 0 for t in test)]
        lines.append(f"| {dataset} | {model} | {len(fits)} | {sum(c > 0 for c in calib)} | "
                     f"{statistics.median(calib):+.1f} | {sum(t > 0 for t in test)} | "
                     f"{statistics.median(test):+.1f} |")
    if not commands:
        return "(not measured yet: scripts/threshold_fit.py)\n"
    lines.append(f"| all | | {total[0]} | {total[1]} | | {total[2]} | |")
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


#: scripts/default_fit.py's sets: model files trained with the defaults
DEFAULT_FITS = (("demo-r18", "demo", "arcface-resnet18, ±6 %"),
                ("plant-lite", "plant", "arcface-lite, ±6 %"))


def render_default_fits(_: dict) -> str:
    """Gamma or log-normal threshold on the default model files: rates against the stated 5 %."""
    def cell(models: list[dict], fit: str, key: str, *, each: bool = True) -> str:
        v = [100 * m[fit][key] for m in models]
        each_seed = f" ({', '.join(f'{x:.1f}' for x in v)})" if each and len(v) > 1 else ""
        return _pct_mean_sd(v) + each_seed

    lines = ["| set | model, stretch, calibration | fit | unseen healthy taps flagged (per seed) "
             "| known boards' test taps flagged (per seed) | defective taps found | 3 taps, vote: "
             "healthy boards flagged / defective found |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    commands: list[str] = []
    for r, dataset, model in _result_sets("default-fit", DEFAULT_FITS, commands):
        ms = r["models"]
        how = f"{model}, {ms[0]['method']}, seeds {', '.join(str(m['seed']) for m in ms)}"
        for fit in ("gamma", "lognormal"):
            lines.append(
                f"| {dataset} | {how} | {fit} | {cell(ms, fit, 'far_unseen')} "
                f"| {cell(ms, fit, 'far_known')} | {cell(ms, fit, 'recall', each=False)} "
                f"| {cell(ms, fit, 'board_vote_healthy', each=False)} / "
                f"{cell(ms, fit, 'board_vote_defect', each=False)} |")
    if not commands:
        return "(not measured yet: scripts/default_fit.py)\n"
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


#: the arcface-lite ±20 % sets: the recipe's model files, which board_bound and rate_intervals read
LITE_SETS = tuple(row for row in THRESHOLD_FITS if "lite" in row[0])


def render_board_bounds(_: dict) -> str:
    """The 3-tap vote at the calibrated threshold against the best a threshold could do."""
    from board_bound import ROWS  # beside this script

    lines = ["| set | seeds | " + " | ".join(f"{row}: healthy boards flagged / defective found"
                                            for row in ROWS) + " |",
             "| --- | --- |" + " --- |" * len(ROWS)]
    commands: list[str] = []
    for r, dataset, _ in _result_sets("board-bound", LITE_SETS, commands):
        cells = []
        for row in ROWS:
            healthy = [100 * m[row]["healthy_flagged"] for m in r["models"]]
            found = [100 * m[row]["defective_found"] for m in r["models"]]
            cells.append(f"{statistics.mean(healthy):.1f} % / {statistics.mean(found):.1f} %")
        seeds = ", ".join(str(m["seed"]) for m in r["models"])
        lines.append(f"| {dataset} | {seeds} | " + " | ".join(cells) + " |")
    if not commands:
        return "(not measured yet: scripts/board_bound.py)\n"
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


def render_rate_intervals(_: dict) -> str:
    """Per set: the recipe's observed rates, and how many model files' intervals over boards
    lie above, around or below the stated rate."""
    from rate_intervals import KINDS  # beside this script

    lines = ["| set | model files | " + " | ".join(
        f"{kind} healthy taps flagged: mean, files above / within / below the stated rate"
        for kind in KINDS) + " |", "| --- | --- |" + " --- |" * len(KINDS)]
    commands: list[str] = []
    total = {kind: {"above": 0, "within": 0, "below": 0} for kind in KINDS}
    for r, dataset, _ in _result_sets("rate-intervals", LITE_SETS, commands):
        cells = []
        for kind in KINDS:
            sides = [m[kind]["side"] for m in r["models"]]
            for side in total[kind]:
                total[kind][side] += sides.count(side)
            mean = statistics.mean(100 * m[kind]["rate"] for m in r["models"])
            cells.append(f"{mean:.1f} %: {sides.count('above')} / {sides.count('within')} / "
                         f"{sides.count('below')}")
        lines.append(f"| {dataset} | {len(r['models'])} | " + " | ".join(cells) + " |")
    if not commands:
        return "(not measured yet: scripts/rate_intervals.py)\n"
    lines.append(f"| all | {sum(total[KINDS[0]].values())} | " + " | ".join(
        f"{t['above']} / {t['within']} / {t['below']}" for t in total.values()) + " |")
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


#: the crop-count comparisons (scripts/crops_select.py): (result name, set shown, model shown)
CROPS = (("demo-lite", "demo", "arcface-lite"),
         ("demo-s1-lite", "demo, second draw", "arcface-lite"),
         ("demo-s2-lite", "demo, third draw", "arcface-lite"),
         ("plant-lite", "plant", "arcface-lite"), ("demo-r18", "demo", "arcface-resnet18"))


#: weight averaging (scripts/recipe_select.py --setting train.ema_decay)
EMA = (("ema-demo-lite", "demo", "arcface-lite"), ("ema-demo-r18", "demo", "arcface-resnet18"),
       ("ema-demo-s2-r18", "demo, third draw", "arcface-resnet18"),
       ("ema-plant-r18", "plant", "arcface-resnet18"))


def _recipe_variants(prefix: str, sets: tuple, *, label: str, value: Callable[[dict], Any],
                     script: str) -> str:
    """The new-boards recipe with one setting at several values, seed by seed: one row per
    (set, value), from the result files ``<prefix>-<name>.json`` of ``sets``."""
    def pct(cells: list[dict], key: str) -> str:
        return _pct_mean_sd([100 * c[key] for c in cells if c[key] is not None])

    lines = [f"| set | model | {label} | seeds | AUC mean ± sd (per seed) | unseen healthy "
             "taps flagged (stated 5 %) | known boards' test taps flagged | defective taps found "
             "| 3 taps, vote: healthy boards flagged / defective found | training per seed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    commands: list[str] = []
    for r, dataset, model in _result_sets(prefix, sets, commands):
        for row in sorted(r["rows"], key=value):
            cells = row["cells"]
            auc = [c["auc"] for c in cells]
            lines.append(
                f"| {dataset} | {model} | {value(row)} | "
                f"{', '.join(str(c['seed']) for c in cells)} | "
                f"{statistics.mean(auc):.3f} ± {_sd(auc):.3f} "
                f"({', '.join(f'{a:.3f}' for a in auc)}) | {pct(cells, 'false_alarms_unseen')} | "
                f"{pct(cells, 'false_alarms_known')} | {pct(cells, 'defect_recall')} | "
                f"{pct(cells, 'vote_healthy_flagged')} / {pct(cells, 'vote_defective_found')} | "
                f"{statistics.mean(c['train_seconds'] for c in cells):.0f} s |")
    if not commands:
        return f"(not measured yet: scripts/{script})\n"
    return "\n".join(lines) + "\n\nFrom " + "; ".join(commands) + ".\n"


def render_crops(_: dict) -> str:
    """The new-boards recipe with 2 crops per tap (the study's) against more, seed by seed."""
    return _recipe_variants("crops", CROPS, label="crops per tap",
                            value=lambda row: row["n_crops"], script="crops_select.py")


def render_ema(_: dict) -> str:
    """The new-boards recipe keeping its last weights (0) against a moving average of them."""
    return _recipe_variants("recipe", EMA, label="ema_decay", value=lambda row: row["value"],
                            script="recipe_select.py")


def render_lot_enrol(r: dict) -> str:
    """A new wood batch fixed by enrolling one or two of its boards (scripts/lot_enrol.py)."""
    if not r:
        return "(not measured yet: scripts/lot_enrol.py)\n"
    from lot_enrol import table  # beside this script

    return table(r["models"]) + f"\nFrom `{r['command']}`.\n"


RENDERERS = {"demo": render_demo, "decay-fusion-table": render_decay_fusions,
             "threshold-fit-table": render_threshold_fits,
             "default-fit-table": render_default_fits,
             "board-bound-table": render_board_bounds,
             "rate-intervals-table": render_rate_intervals,
             "lot-enrol-plant-lite-st20": render_lot_enrol,
             "lot-enrol-plant-lite-st20-thinned": render_lot_enrol, "crops-table": render_crops,
             "ema-table": render_ema,
             "demo-lite": render_demo_lite, "demo-new-boards": render_demo_new_boards,
             "compare-demo": render_compare,
             "seeds-bf16-fp32": render_seeds, "bench": render_bench,
             "listen-latency": render_latency, "speed-targets": render_targets,
             "compare-grid-demo": render_grid, "compare-grid-table": render_grid_table,
             "compare-grid-small": render_grid, "compare-grid-fast": render_grid,
             "compare-grid-members-lite": render_grid, "compare-grid-members-r18": render_grid,
             "members-table": render_members, "members-judge": render_members_judge,
             "onnx": render_onnx, "one-class-600": render_one_class_600,
             "fast-model": render_fast_model, "one-class": render_one_class,
             "bench-fast": lambda r: _fast_bench(r)}


def _fast_bench(r: dict) -> str:
    from tapcheck.bench import _fast_rows

    if not r:
        return "(not measured yet: python3 scripts/results.py run bench-fast)\n"
    m = r["machine"]
    return ("\n".join(_fast_rows(r)[1:]) + f"\n\n{m['cpu']}, {m['torch_threads']} torch "
            f"thread(s); load average {m['load_average_start']:.1f} at the start, "
            f"{m['load_average_end']:.1f} at the end.\n")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def render(*, check: bool = False) -> list[Path]:
    """Rewrite every result block; the files that changed (or would change, with ``check``)."""
    changed = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")

        def fill(m: re.Match, path: Path = path) -> str:
            name = m["name"]
            if name not in RENDERERS:
                raise SystemExit(f"{path}: unknown result block '{name}' "
                                 f"(known: {', '.join(RENDERERS)})")
            file = RESULTS / f"{name}.json"
            data = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
            return m.group(1) + RENDERERS[name](data) + m.group(4)

        new = BLOCK.sub(fill, text)
        if new != text:
            changed.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed


# -- measuring ----------------------------------------------------------------------------------

def _save(name: str, data: dict) -> None:
    old = json.loads((RESULTS / f"{name}.json").read_text()) if (
        RESULTS / f"{name}.json").exists() else {}
    data = {"command": old.get("command", f"python3 scripts/results.py run {name}"),
            "measured": f"{date.today().isoformat()}, {os.cpu_count()} CPUs", **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _fresh_folders(work: Path) -> None:
    for var, sub in (("TAPCHECK_RECORDINGS", "recordings"), ("TAPCHECK_MODELS", "models"),
                     ("TAPCHECK_CACHE", "cache"), ("TAPCHECK_INSPECTIONS", "inspections")):
        os.environ[var] = str(work / sub)


def run_demo(model: str | None = None, *, name: str = "demo", config: str | None = None) -> None:
    """``tapcheck demo`` (``--model model``, ``--config config``) in fresh folders: synthesis,
    training, judging."""
    import torch

    from tapcheck.configfile import load_config
    from tapcheck.demo import run_demo as demo
    from tapcheck.paths import model_path

    settings = load_config(ROOT / config if config else None).replace("train", model=model)
    model = settings.train.model
    _fresh_folders(Path(tempfile.mkdtemp(prefix="tapcheck-results-")))
    started = time.perf_counter()
    evaluation, _, seconds = demo("demo", config=settings, seed=0, say=print)
    trained = torch.load(model_path(model), weights_only=True)["train_seconds"]
    _save(name, {"model": model, "config": config, "wall_s": round(time.perf_counter() - started),
                 "seconds_in_all": seconds, "train_s": round(trained),
                 "evaluation": {k: evaluation.get(k) for k in (
                     "threshold", "auc", "pauc", "boards", "stated_far", "false_alarms_known",
                     "false_alarms_unseen")}})


def _compare(names: list[str], *, seed: int, config_path: str | None = None) -> list[dict]:
    from tapcheck.compare import compare_models
    from tapcheck.configfile import load_config
    from tapcheck.datasets import Dataset
    from tapcheck.synth_dataset import make_study_dataset

    work = Path(tempfile.mkdtemp(prefix="tapcheck-results-"))
    _fresh_folders(work)
    make_study_dataset("demo", seed=0)
    config = load_config(config_path).replace("train", seed=seed)
    return compare_models(Dataset.open("demo"), names, config=config, out=work / "report")


def run_compare_demo() -> None:
    from tapcheck.models import MODELS

    started = time.perf_counter()
    rows = _compare(list(MODELS), seed=0)
    keys = ("model", "auc", "auc_ci_low", "auc_ci_high", "pauc", "tpr_at_5fpr", "false_alarms",
            "board8_over_board7", "train_seconds")
    _save("compare-demo", {"wall_s_all": round(time.perf_counter() - started),
                           "models": [{k: r[k] for k in keys} for r in rows]})


def run_seeds(seeds=range(8)) -> None:
    out = []
    for seed in seeds:
        entry = {"seed": seed, "board8_over_7": {}, "train_s": {}}
        for kind, config in (("bf16", None), ("fp32", str(ROOT / "configs" / "fp32.toml"))):
            row = _compare(["arcface-resnet18"], seed=seed, config_path=config)[0]
            entry[kind] = [row["auc"], row["auc_ci_low"], row["auc_ci_high"]]
            entry["board8_over_7"][kind] = row["board8_over_board7"]
            entry["train_s"][kind] = row["train_seconds"]
        out.append(entry)
    _save("seeds-bf16-fp32", {"seeds": out})


# issue 16's target: the study's eight, three seeds, each model's own epochs (24 cells); and the
# small grid measured first on the shared machine (two epochs: one 15-epoch arcface-shallow cell
# took over 10 minutes there at load 12-18)
GRIDS = {"compare-grid-demo": ["--models", "study", "--seeds", "0-2"],
         "compare-grid-small": ["--models", "arcface-shallow,ae", "--seeds", "0-2",
                                "--epochs", "2"],
         # issue 15's accuracy target, five seeds paired: the fast model against the default
         "compare-grid-fast": ["--models", "arcface-resnet18,arcface-lite", "--seeds", "0-4"],
         # issue 12's five-seed AUC target: the same seeds with several networks per model file
         # (member 0 of each is the network of compare-grid-fast's cell of that seed)
         "compare-grid-members-lite": ["--models", "arcface-lite", "--members", "3",
                                       "--seeds", "0-4"],
         "compare-grid-members-r18": ["--models", "arcface-resnet18", "--members", "2",
                                      "--seeds", "0-4"],
         # the same five seeds with a ±20 % frequency stretch (docs/new-boards.md "Board size")
         "compare-grid-stretch": ["--models", "arcface-resnet18,arcface-lite", "--seeds", "0-4",
                                  "--config", "configs/wide-stretch.toml"]}


GRID_RUNS = {"serial": ([], "one cell at a time, torch on every core"),
             "ray": (["--ray"], "local Ray, 1 CPU and 1 thread per cell")}


def run_compare_grid(work: Path | None = None, *, runs: tuple[str, ...] = ("serial", "ray"),
                     name: str = "compare-grid-demo") -> None:
    """The grid on the demo, serially then with a local --ray, the features cached beforehand.

    ``work``: a folder of an earlier run holding the demo and its feature cache (synthesis and
    features take 10 minutes on a loaded machine); default a new one. ``runs``: which of
    :data:`GRID_RUNS` to time (a session short of time may measure one). ``name``: which of
    :data:`GRIDS`, and the result file.
    """
    from tapcheck.compare import _all_crops
    from tapcheck.config import Config
    from tapcheck.datasets import Dataset
    from tapcheck.synth_dataset import make_study_dataset

    fresh = work is None
    work = Path(tempfile.mkdtemp(prefix="tapcheck-results-")) if fresh else Path(work)
    _fresh_folders(work)
    if fresh:
        make_study_dataset("demo", seed=0)
    _all_crops(Dataset.open("demo"), config=Config(), progress=False, log=print)  # warm cache
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    timed = {}
    for kind in runs:
        extra, how = GRID_RUNS[kind]
        before = os.getloadavg()[0]
        started = time.perf_counter()
        shutil.rmtree(work / kind, ignore_errors=True)  # no cell of an earlier run is reused
        subprocess.run([sys.executable, "-m", "tapcheck", "compare", "--dataset", "demo",
                        *GRIDS[name], "--out", str(work / kind), *extra], check=True, env=env,
                       cwd=ROOT)  # GRIDS name configs/ files relative to the checkout
        timed[kind] = {"how": how, "wall_s": round(time.perf_counter() - started),
                       "load_before": before, "load_after": os.getloadavg()[0]}
    save_grid(work, timed, name=name)


def save_grid(work: Path, timed: dict[str, dict], *, name: str = "compare-grid-demo",
              note: str | None = None) -> None:
    """Write compare-grid-demo.json from the runs' folders under ``work`` and their timings
    (``how``, ``wall_s``, ``load_before``, ``load_after`` per run); the models and pairs come
    from the first run, the cell-by-cell comparison when there are two."""
    runs = {}
    for kind, t in timed.items():
        doc = json.loads((work / kind / "metrics.json").read_text())
        runs[kind] = {**t, "driver_peak_mb": doc["meta"]["driver peak memory (MB)"]}
    first = json.loads((work / next(iter(timed)) / "metrics.json").read_text())
    _save(name, {
        "grid": "tapcheck compare --dataset demo " + " ".join(GRIDS[name]),
        "cells": len(first["cells"]), "runs": runs, "models": _summaries(first),
        "pairs": first["pairs"], "per_cell": per_cell(first), **({"note": note} if note else {}),
        **(grid_differences(work) if {"serial", "ray"} <= set(timed) else {})})


CELL_FIELDS = ("model", "seed", "fold", "auc", "pauc", "false_alarms", "false_alarms_unseen",
               "train_seconds")


def per_cell(doc: dict) -> list[dict]:
    """A grid report's cells, the figures the result pages compare seed by seed."""
    return [{k: c.get(k) for k in CELL_FIELDS} for c in doc["cells"]]


def _summaries(doc: dict) -> list[dict]:
    """A grid report's per-model rows, with any metric its (older) report lacks summarised from
    its cells as the report does now."""
    from tapcheck.gridreport import METRICS, summarize

    rows = []
    for row in doc["models"]:
        mine = [c for c in doc["cells"] if c["model"] == row["model"]]
        rows.append({**row, **{key: summarize([c.get(key) for c in mine])
                               for key, _ in METRICS if key not in row}})
    return rows


def grid_differences(work: Path) -> dict:
    """How far the Ray run's cells are from the serial run's (other torch thread counts)."""
    def cells(kind):
        doc = json.loads((work / kind / "metrics.json").read_text())
        return {(c["model"], c["seed"]): c for c in doc["cells"]}

    serial, ray = cells("serial"), cells("ray")
    keys = ("auc", "pauc", "threshold")
    diffs = {k: max(abs(serial[c][k] - ray[c][k]) for c in serial) for k in keys}
    same = [f"{m} seed {s}" for (m, s) in serial if all(serial[m, s][k] == ray[m, s][k]
                                                        for k in keys)]
    ray_models = _summaries(json.loads((work / "ray" / "metrics.json").read_text()))
    return {"cells_equal": not any(diffs.values()), "max_abs_diff": diffs,
            "mean_abs_auc_diff": statistics.mean(abs(serial[c]["auc"] - ray[c]["auc"])
                                                 for c in serial),
            "ray_auc": {m["model"]: m["auc"] for m in ray_models},
            "identical_cells": same,
            "cells_note": "serial on 2 torch threads, Ray on 1 thread per cell"}


def run_bench() -> None:
    from tapcheck.bench import run_bench as bench

    _save("bench", bench(model=None, out=Path(tempfile.mkdtemp()) / "bench.json", log=print))


def run_latency() -> None:
    model = ROOT / "models" / "arcface-resnet18.pt"
    text = subprocess.run([sys.executable, "-m", "tests.listen_latency", "--model", str(model),
                           "--taps", "60"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout
    m = re.search(r"median (\d+) ms, 95th percentile (\d+) ms, max (\d+) ms", text)
    data = json.loads((RESULTS / "listen-latency.json").read_text())
    data["runs"].append({"run": len(data["runs"]) + 1, "note": date.today().isoformat(),
                         "median_ms": int(m[1]), "p95_ms": int(m[2]), "max_ms": int(m[3])})
    (RESULTS / "listen-latency.json").write_text(json.dumps(data, indent=1) + "\n")


def run_fast_model(seeds=range(5), parallel: int = 4) -> None:
    """``tapcheck compare --models arcface-lite --dataset demo --seed S`` for each seed.

    Seeds whose ``reports/fast-model/sS/metrics.json`` exists are read, not run again (delete the
    folder to measure again). The demo must exist (``tapcheck synth --dataset demo``).
    """
    from tapcheck.models import FAST_MODEL

    out = ROOT / "reports" / "fast-model"
    todo = [s for s in seeds if not (out / f"s{s}" / "metrics.json").exists()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # see docs/fast-model.md
    load = os.getloadavg()[0]
    for i in range(0, len(todo), parallel):
        running = [subprocess.Popen(
            [sys.executable, "-m", "tapcheck", "compare", "--models", FAST_MODEL, "--dataset",
             "demo", "--seed", str(s), "--out", str(out / f"s{s}")], env=env)
            for s in todo[i:i + parallel]]
        if any(p.wait() for p in running):
            raise SystemExit("a compare run failed")
    rows = []
    for s in seeds:
        m = json.loads((out / f"s{s}" / "metrics.json").read_text())["models"][0]
        rows.append({"seed": s, **{k: m[k] for k in ("auc", "auc_ci_low", "auc_ci_high", "pauc",
                                                     "false_alarms", "train_seconds")},
                     "board8_over_7": m["board8_over_board7"],
                     "unseen_false_alarms": _unseen_false_alarms(m["boards"])})
    old = json.loads((RESULTS / "fast-model.json").read_text()) if (
        RESULTS / "fast-model.json").exists() else {}
    _save("fast-model", {"model": FAST_MODEL, "parallel": old.get("parallel", parallel),
                         "load_average": old.get("load_average", round(load, 1)), "seeds": rows})


def run_one_class() -> None:
    """Pseudo-anomalies per batch against materialised; 600 one-class clips (one_class.py)."""
    from one_class import measure

    _save("one-class", measure())


def run_one_class_600() -> None:
    """``train`` on 600 one-class takes, timed (one_class.measure_600)."""
    from one_class import measure_600

    _save("one-class-600", measure_600())


def run_bench_fast() -> None:
    """The fast model beside arcface-resnet18, back to back, with ``tapcheck bench``'s functions:
    the matrix peak, training samples/s, warm judging. Memory and the other families are left
    out, so it finishes on a loaded machine (run with ``OMP_NUM_THREADS=1`` there)."""
    import platform

    import torch

    from tapcheck import bench
    from tapcheck.config import Config
    from tapcheck.modelfile import save_checkpoint
    from tapcheck.models import FAST_MODEL
    from tapcheck.runtime import configure_threads, cpu_has_bf16
    from tapcheck.synth_dataset import make_study_dataset
    from tapcheck.training import train_model

    work = Path(tempfile.mkdtemp(prefix="tapcheck-bench-fast-"))
    _fresh_folders(work)
    r = {"machine": {"cpu": bench._cpu_name(), "cpus": os.cpu_count(),
                     "torch_threads": configure_threads(), "bf16_native": cpu_has_bf16(),
                     "torch": torch.__version__, "python": platform.python_version(),
                     "load_average_start": os.getloadavg()[0]}}
    r["matmul_gflops"] = bench.matmul_peak()
    ds = make_study_dataset(work / "bench", takes=4, test_takes=1, seed=11)
    paths = [ds.path_of(t) for t in ds.takes]
    r["features"] = bench.feature_speed(paths, work / "cache")
    r["training"] = bench.training_speed(models=("arcface-resnet18", FAST_MODEL))
    files = {name: save_checkpoint(work / f"{name}.pt", train_model(
        ds, config=Config().replace("train", model=name, epochs=1), progress=False))
        for name in ("arcface-resnet18", FAST_MODEL)}
    for key, name in (("judge", "arcface-resnet18"), ("judge_fast", FAST_MODEL)):
        r[key] = {**bench.judge_speed(files[name], paths[:32]), "model": f"{name}.pt"}
    r["machine"]["load_average_end"] = os.getloadavg()[0]
    _save("bench-fast", r)


def run_onnx() -> None:
    """The network of a judgment (a clip's two crops) through torch as tapcheck runs it, through
    torch in float32, and exported to ONNX through onnxruntime (issue 15: "only if it measures
    faster here"); both models trained one epoch on a small synthetic set, one thread each."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("onnxruntime is not installed: pip install onnxruntime onnxscript"
                         ) from None
    import torch

    from tapcheck.config import Config
    from tapcheck.features import load_clip, strike_crops
    from tapcheck.modelfile import load_model, save_checkpoint
    from tapcheck.models import FAST_MODEL
    from tapcheck.synth_dataset import make_study_dataset
    from tapcheck.training import train_model

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="tapcheck-onnx-"))
    _fresh_folders(work)
    ds = make_study_dataset(work / "onnx", takes=4, test_takes=1, seed=11)
    clip = strike_crops(load_clip(ds.path_of(ds.takes[0])))[None]
    rows = {}
    for name in (FAST_MODEL, "arcface-resnet18"):
        path = save_checkpoint(work / f"{name}.pt", train_model(
            ds, config=Config().replace("train", model=name, epochs=1), progress=False))
        rows[name] = _onnx_row(load_model(path), clip, work / f"{name}.onnx")
    _save("onnx", {"onnxruntime": ort.__version__, "torch": torch.__version__,
                   "threads": 1, "load_average": os.getloadavg()[0], "models": rows})


RUNNERS = {"demo": run_demo,
           "demo-lite": functools.partial(run_demo, "arcface-lite", name="demo-lite"),
           "demo-new-boards": functools.partial(run_demo, name="demo-new-boards",
                                                config="configs/new-boards.toml"),
           "compare-demo": run_compare_demo, "seeds-bf16-fp32": run_seeds,
           "bench": run_bench, "listen-latency": run_latency,
           "compare-grid-demo": run_compare_grid, "fast-model": run_fast_model,
           "compare-grid-small": functools.partial(run_compare_grid, name="compare-grid-small"),
           **{name: functools.partial(run_compare_grid, runs=("serial",), name=name)
              for name in ("compare-grid-fast", "compare-grid-members-lite",
                           "compare-grid-members-r18", "compare-grid-stretch")},
           "bench-fast": run_bench_fast, "one-class": run_one_class, "onnx": run_onnx,
           "one-class-600": run_one_class_600}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="rewrite the result blocks of README.md and docs/")
    r.add_argument("--check", action="store_true", help="only say whether a block is stale")
    sub.add_parser("run", help="measure again").add_argument("name", choices=RUNNERS)
    sub.add_parser("list", help="the result files and their commands")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.command == "list":
        for name in RUNNERS:
            file = RESULTS / f"{name}.json"
            if not file.exists():
                print(f"{name}: not measured yet (python3 scripts/results.py run {name})")
                continue
            data = json.loads(file.read_text())
            print(f"{name}: {data.get('command')}  [{data.get('measured')}]")
        return 0
    if args.command == "run":
        RUNNERS[args.name]()
    changed = render(check=getattr(args, "check", False))
    for path in changed:
        print(f"{path.relative_to(ROOT)}: " + ("stale result block(s); run `python3 "
              "scripts/results.py render`" if args.command == "render" and args.check
              else "rendered"))
    return 1 if changed and getattr(args, "check", False) else 0


if __name__ == "__main__":
    sys.exit(main())
