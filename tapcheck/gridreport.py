"""The report of a grid of cells: per model mean ± sd and a 95 % interval, paired tests, tables.

- **Interval**: a t-interval over a model's cells, mean ± t(0.975, n-1) · sd / √n, clipped to
  [0, 1]. Cells are few (3-25), where a bootstrap's percentile interval is too narrow; the
  t-interval's assumption (roughly normal cell values) is the weaker one here.
- **Paired test**: the Wilcoxon signed-rank test (two-sided, ``scipy.stats.wilcoxon``) on the
  per-cell differences of two models, cells paired by (seed, fold): the same seed and the same
  held-out boards. It assumes nothing about the differences' distribution. With n non-zero
  differences its smallest attainable p is 2 / 2^n (exact test): 0.25 for 3 cells, 0.0625 for 5,
  0.031 for 6. Below 6 cells no difference can reach p < 0.05, whatever its size; the report
  says so rather than leave a reader to read "p = 0.25" as "no difference".
- **Paired t-test** beside it (``scipy.stats.ttest_rel`` on the same differences): it assumes the
  differences roughly normal, and in exchange can speak with 3 cells — the grid a user can
  afford with the study's ResNet18s. Its p is also given Holm-adjusted over every pair of the
  grid (28 pairs for the study's eight models), so that "p < 0.05" in a big table is not luck.
"""

from __future__ import annotations

import html
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from .evaluation import json_safe
from .files import atomic_write

# the last is what a plant meets: taps of normal boards training never heard (None in a cell
# whose test split has none)
METRICS = (("auc", "AUC"), ("pauc", "pAUC"), ("false_alarms", "false alarms @ threshold"),
           ("false_alarms_unseen", "false alarms, unseen boards"))
TESTED = ("auc", "pauc")  # the paired test is made of these
TEST_NAME = ("Wilcoxon signed-rank and paired t-test (Holm-adjusted over the pairs), two-sided, "
             "cells paired by (seed, fold)")
INTERVAL_NAME = "t-interval over cells, 95 %, clipped to [0, 1]"


def summarize(values: list[float]) -> dict[str, Any]:
    """n, mean, sd (n-1) and a 95 % t-interval; None where the cells do not define them."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci_low": None, "ci_high": None}
    mean = float(v.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "ci_low": None, "ci_high": None}
    from scipy import stats

    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    # every metric here is a rate: an interval past 0 or 1 says only that the cells are few
    return {"n": n, "mean": mean, "sd": sd, "ci_low": max(0.0, mean - half),
            "ci_high": min(1.0, mean + half)}


def model_summaries(names: list[str], cells: dict) -> list[dict]:
    """One row per model: each metric summarised over its cells, mean training time."""
    rows = []
    for name in names:
        mine = [c for cell, c in cells.items() if cell.model == name]
        row: dict[str, Any] = {"model": name, "cells": len(mine),
                               "scorer": mine[0]["row"]["scorer"]}
        for key, _ in METRICS:
            row[key] = summarize([c["row"].get(key) for c in mine])  # older cells lack some
        row["train_seconds_mean"] = float(np.mean([c["row"]["train_seconds"] for c in mine]))
        rows.append(row)
    return rows


def best_first(rows: list[dict]) -> list[dict]:
    """Model rows by mean AUC, best first (a row without one last), as the docs' tables are:
    the report listed them in --models order, so the first row read as the winner (QA). A
    grid's row holds a summary (``auc["mean"]``), a one-seed row the AUC itself."""
    def auc(row: dict) -> float:
        value = row.get("auc")
        value = value.get("mean") if isinstance(value, dict) else value
        return -math.inf if value is None or math.isnan(value) else value

    return sorted(rows, key=auc, reverse=True)  # stable: ties keep the --models order


def paired_tests(names: list[str], cells: dict) -> list[dict]:
    """For each pair of models: mean difference, how often A beats B, and the test's p."""
    from scipy import stats

    by_model = {name: {(c.seed, c.fold): r["row"] for c, r in cells.items() if c.model == name}
                for name in names}
    pairs = []
    for a, b in itertools.combinations(names, 2):
        common = sorted(set(by_model[a]) & set(by_model[b]), key=str)
        entry: dict[str, Any] = {"a": a, "b": b, "cells": len(common), "test": TEST_NAME,
                                 "folds": len({fold for _, fold in common} - {None})}
        for key in TESTED:
            d = np.array([by_model[a][k][key] - by_model[b][k][key] for k in common], float)
            d = d[~np.isnan(d)]
            nonzero = int((d != 0).sum())
            result = {"mean_diff": float(d.mean()) if len(d) else None,
                      "a_better": int((d > 0).sum()), "b_better": int((d < 0).sum()),
                      "p": None, "min_p": 2.0 / 2 ** nonzero if nonzero else None}
            if nonzero == 0 and len(d):
                result["p"] = 1.0  # identical in every cell: nothing to test
            elif nonzero:
                result["p"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
            result["p_t"] = _paired_t(d)
            entry[key] = result
        pairs.append(entry)
    for key in TESTED:
        for entry, adjusted in zip(pairs, holm([e[key]["p_t"] for e in pairs]), strict=True):
            entry[key]["p_t_holm"] = adjusted
    return pairs


def supported_rankings(pairs: list[dict]) -> str:
    """Which AUC rankings the paired tests support, in words: the report listed every p and
    left the reader to find the orderings that hold (compare QA).

    With folds, the cells of one seed share most of their training boards, so they are not
    independent and every p is optimistic (a corrected resampled t-test, Nadeau and Bengio
    2003, would be wider): the sentence says so.

    Parameters
    ----------
    pairs : list of dict
        :func:`paired_tests`' entries (or a results file's ``pairs``).

    Returns
    -------
    str
        One paragraph, for the report, the terminal and the docs' tables.
    """
    def below(p: float | None) -> bool:  # not `p or 1`: a t-test's p is 0.0 when every cell
        return p is not None and p < 0.05  # shows the same difference, the clearest ranking

    held = [(p["a"], p["b"]) if p["auc"]["mean_diff"] > 0 else (p["b"], p["a"])
            for p in pairs if below(p["auc"].get("p_t_holm"))]
    cells = pairs[0]["cells"] if pairs else 0
    wil = [p for p in pairs if below(p["auc"]["p"])]
    n = len(pairs)
    text = (f"Rankings the paired t-test supports (AUC, Holm-adjusted p < 0.05 over "
            f"{n} pair{'s' if n != 1 else ''}): "
            + ("; ".join(f"{a} > {b}" for a, b in held) if held else "none") + ". ")
    text += (f"The Wilcoxon test supports {len(wil)}" + (
        f" (with {cells} cells its smallest possible p is {2 / 2 ** cells:.3g})"
        if cells < 6 else "") + "; no other ordering is established by these cells.")
    if any(p.get("folds") for p in pairs):
        text += (" The folds of one seed share most of their training boards, so these cells "
                 "are not independent and both tests' p are optimistic.")
    return text


def _paired_t(d: np.ndarray) -> float | None:
    """Two-sided p of the one-sample t-test of the differences against 0 (= ``ttest_rel``)."""
    from scipy import stats

    if len(d) < 2:
        return None
    if not d.any():
        return 1.0
    if d.std(ddof=1) == 0:
        return 0.0  # the same non-zero difference in every cell
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(p: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None stays None).

    Sorted ascending, the i-th smallest (0-based) of m becomes max over j <= i of
    min(1, (m - j) p_(j)): it controls the chance of any false "p < 0.05" in the family.
    """
    known = sorted((v, i) for i, v in enumerate(p) if v is not None)
    m, out, running = len(known), list(p), 0.0
    for rank, (v, i) in enumerate(known):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def _mean_sd(s: dict) -> str:
    if s["mean"] is None:
        return "–"
    return f"{s['mean']:.3f}" + ("" if s["sd"] is None else f" ± {s['sd']:.3f}")


def _interval(s: dict) -> str:
    return "–" if s["ci_low"] is None else f"{s['ci_low']:.3f}–{s['ci_high']:.3f}"


def summary_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "cells"]
    for _, label in METRICS:
        headers += [f"{label} mean ± sd", "95% CI"]
    headers.append("training (s, mean)")
    body = []
    for r in rows:
        line = [r["model"], str(r["cells"])]
        for key, _ in METRICS:
            line += [_mean_sd(r[key]), _interval(r[key])]
        body.append(line + [f"{r['train_seconds_mean']:.0f}"])
    return headers, body


def pair_rows(pairs: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["A", "B", "cells", "mean ΔAUC (A−B)", "A/B better", "p (AUC)",
               "smallest possible p", "t-test p (AUC, Holm)", "mean ΔpAUC", "p (pAUC)",
               "t-test p (pAUC, Holm)"]

    def num(v, fmt="{:+.3f}"):
        return "–" if v is None else fmt.format(v)

    body = [[p["a"], p["b"], str(p["cells"]), num(p["auc"]["mean_diff"]),
             f"{p['auc']['a_better']}/{p['auc']['b_better']}", num(p["auc"]["p"], "{:.3g}"),
             num(p["auc"]["min_p"], "{:.3g}"), num(p["auc"].get("p_t_holm"), "{:.3g}"),
             num(p["pauc"]["mean_diff"]), num(p["pauc"]["p"], "{:.3g}"),
             num(p["pauc"].get("p_t_holm"), "{:.3g}")] for p in pairs]
    return headers, body


def text_table(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(line.rstrip() for line in lines)


def grid_text(rows: list[dict]) -> str:
    """The terminal's view: the per-model table, then the paired tests (each row's ``pairs``)."""
    pairs = list({(p["a"], p["b"]): p for r in rows for p in r.get("pairs", [])}.values())
    text = f"per model over cells ({INTERVAL_NAME}):\n" + text_table(*summary_rows(rows))
    if pairs:
        text += f"\n\npaired comparison ({TEST_NAME}):\n" + text_table(*pair_rows(pairs))
        if pairs[0]["cells"] < 6:
            text += (f"\nwith {pairs[0]['cells']} cells no difference can reach Wilcoxon's "
                     "p < 0.05 (smallest possible p above); the t-test can, assuming roughly "
                     "normal differences; more seeds or folds test rankings without it")
        text += "\n" + supported_rankings(pairs)
    return text


def _html_table(headers: list[str], body: list[list[str]]) -> str:
    e = html.escape
    return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in b) + "</tr>" for b in body)
            + "</table>")


def write_grid_index(out: Path, *, rows: list[dict], pairs: list[dict], meta: dict,
                     figures: dict, shown: str, cell_rows: list[dict]) -> Path:
    """``index.html`` of a grid: both tables, then the plots of the representative cell."""
    from .report import page

    e = html.escape
    few = pairs and pairs[0]["cells"] < 6
    body = (f"<h2>Per model, over {rows[0]['cells']} cells</h2><p>Mean ± sd over cells and a "
            f"95 % interval ({e(INTERVAL_NAME)}); false alarms at each model's own threshold, "
            "learned from normal clips only.</p>" + _html_table(*summary_rows(rows)))
    if pairs:
        body += (f"<h2>Paired comparison</h2><p>{e(TEST_NAME)}. "
                 + ("With fewer than 6 cells no difference can reach Wilcoxon's p &lt; 0.05 "
                    "(the smallest p these cells allow is shown); the paired t-test can, "
                    "assuming roughly normal differences. " if few else "")
                 + "</p>" + _html_table(*pair_rows(pairs))
                 + f"<p>{e(supported_rankings(pairs))}</p>")
    body += f"<h2>Plots of one cell: {e(shown)}</h2>"
    return page(out, title="tapcheck comparison over seeds and folds", meta=meta,
                tables=body, figures=figures, rows=cell_rows)


def write_grid_metrics(out: Path, *, rows: list[dict], pairs: list[dict], cells: dict,
                       meta: dict) -> None:
    """``metrics.json`` (summaries, pairs, every cell) and ``metrics.csv`` (one row per cell)."""
    import csv
    import io
    import json

    flat = [{"model": c.model, "seed": c.seed, "fold": c.fold,
             **{k: v for k, v in r["row"].items()
                if k != "model" and not isinstance(v, (dict, list))}} for c, r in cells.items()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    with atomic_write(out / "metrics.csv", "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
    document = {"meta": {**meta, "interval": INTERVAL_NAME, "test": TEST_NAME},
                "models": rows, "pairs": pairs,
                "cells": [{"model": c.model, "seed": c.seed, "fold": c.fold, "key": r["key"],
                           **r["row"]} for c, r in cells.items()]}
    with atomic_write(out / "metrics.json", "w", encoding="utf-8") as f:
        json.dump(json_safe(document), f, indent=2, default=float, allow_nan=False)
