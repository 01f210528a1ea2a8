"""Comparison reports: ``metrics.csv``, ``metrics.json`` and an ``index.html`` that opens offline.

The HTML has no external resources: its images are PNG files next to it, its style is inline.
A small inline script counts the images the browser could decode and writes the count into the
page (``data-images-loaded``), so a headless browser can check the report is whole.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from .console import score_pair
from .evaluation import json_safe
from .files import atomic_write

COLUMNS = [  # (key, header, format)
    ("model", "model", "{}"),
    ("scorer", "scorer", "{}"),
    ("auc", "AUC", "{:.3f}"),
    ("auc_ci", "AUC 95% CI", "{}"),  # over clips
    ("auc_boards_ci", "over boards", "{}"),
    ("pauc", "pAUC (FPR≤0.1)", "{:.3f}"),
    ("tpr_at_5fpr", "TPR @ 5% FPR", "{:.3f}"),
    ("f1", "F1 @ threshold", "{:.3f}"),
    ("false_alarms", "false alarms @ threshold", "{:.3f}"),
    ("best_f1", "best F1 (oracle)", "{:.3f}"),
    ("board8_over_board7", "board 8 > 7", "{}"),
    ("train_seconds", "training (s)", "{:.0f}"),
    ("judge_ms", "judge (ms/clip)", "{:.1f}"),
]


def cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if key.endswith("_ci"):  # an interval's two ends
        lo, hi = row.get(f"{key}_low"), row.get(f"{key}_high")
        return "–" if lo is None or lo != lo else f"{lo:.3f}–{hi:.3f}"
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def write_metrics(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """``metrics.csv`` (one row per model, flat) and ``metrics.json`` (rows + run details)."""
    keys = [k for k in rows[0] if not isinstance(rows[0][k], (dict, list))] if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(out / "metrics.csv", "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
    with atomic_write(out / "metrics.json", "w", encoding="utf-8") as f:
        # a figure one board cannot give (an AUC without defects) is null, not a bare NaN
        json.dump(json_safe({"meta": meta, "models": rows}), f, indent=2, default=float,
                  allow_nan=False)


#: said of a comparison of several models at one seed each, on the terminal and its page: the
#: table ranks them, and a reseed can reorder it (docs/compare-grids.md); it was not said (QA).
#: The span is the README's: five seeds of `compare` on the demo (docs/new-boards.md, Measured)
ONE_SEED = ("one seed per model: another seed can reorder them (arcface-resnet18's AUC spanned "
            "0.854-0.960 over five seeds on the demo) — rank them with --seeds 0-4 "
            "(docs/compare-grids.md)")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The metrics table as aligned text, for the terminal."""
    headers = [h for _, h, _ in COLUMNS]
    body = [[cell(r, k, f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(line.rstrip() for line in lines)


def write_index(out: Path, *, rows: list[dict[str, Any]], meta: dict[str, Any],
                figures: dict[str, Any]) -> Path:
    """Write ``index.html``.

    Parameters
    ----------
    figures : dict
        ``roc``, ``training``: file names; ``models``: {model: {"tsne": name, "scores": name}}.
    """
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for _, h, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(cell(r, k, f))}</td>" for k, _, f in COLUMNS)
                   + "</tr>" for r in rows)
    tables = ("<p>Anomaly scores of the test split's clips: defective clips are positives. AUC "
              f"""with 95 %
bootstrap intervals over clips and over boards (whole boards resampled: a board's clips score
alike, so a new set of boards spreads wider; rough with few boards); pAUC for false-alarm rates
up to 0.1 (DCASE definition); F1 and false alarms at each model's own threshold, learned from
normal clips only; "best F1 (oracle)" uses the test labels to place the threshold and only says
how good a threshold could be.</p>
<table><tr>{head}</tr>{body}</table>""")
    if len(rows) > 1:  # the page is only written for a single seed (a grid has its own)
        tables += f"<p><b>{e(ONE_SEED[0].upper() + ONE_SEED[1:])}.</b></p>"
    return page(out, title="tapcheck comparison", meta=meta, tables=tables, figures=figures,
                rows=rows)


def page(out: Path, *, title: str, meta: dict[str, Any], tables: str, figures: dict[str, Any],
         rows: list[dict[str, Any]]) -> Path:
    """Write ``index.html``: details, ``tables`` (HTML), ROC and training curves, then a section
    per row of ``rows`` (one trained model each) with its t-SNE map and score chart."""
    e = html.escape
    sections = []
    for r in rows:
        figs = figures["models"].get(r["model"], {})
        boards = r.get("board_means", {})
        # as many digits as it takes to read on the right side of the threshold: at 3 figures
        # means of 1.00453 and 1.00457 over a threshold of 1.004 read "1" (QA)
        pairs = {b: score_pair(v, r["threshold"], kind="g") for b, v in boards.items()}
        board_text = ", ".join(f"{b}: {mean}" for b, (mean, _) in pairs.items())
        # the threshold with as many digits as any board needed to be told from it
        threshold = max([f"{r['threshold']:.4g}"] + [t for _, t in pairs.values()], key=len)
        sections.append(
            f'<section id="{e(r["model"])}"><h2>{e(r["model"])}</h2>'
            f'<p>{e(r.get("summary", ""))}. Scorer <b>{e(r["scorer"])}</b>, threshold '
            f'{threshold} (normal clips only). Mean score per test board: '
            f'{e(board_text)}.</p>'
            + "".join(f'<figure><img src="{e(figs[k])}" alt="{e(k)} of {e(r["model"])}">'
                      f'<figcaption>{e(cap)}</figcaption></figure>'
                      for k, cap in (("tsne", "t-SNE of the embeddings: one map, test clips "
                                      "placed into it (openTSNE transform)"),
                                     ("scores", "anomaly score per take, test split; dotted: "
                                      "threshold")) if k in figs)
            + "</section>")
    details = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in meta.items())
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(title)} — {e(str(meta.get("dataset", "")))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1500px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; }} figure {{ margin: 1em 0; }}
figcaption {{ font-size: 12px; color: #555; }}
section {{ border-top: 1px solid #ddd; margin-top: 2em; }}
</style></head>
<body data-images-loaded="pending">
<h1>{e(title)}</h1>
<ul>{details}</ul>
{tables}
<h2>ROC curves</h2><figure><img src="{e(figures["roc"])}" alt="ROC curves"></figure>
<h2>Training curves</h2><figure><img src="{e(figures["training"])}" alt="training curves">
</figure>
{"".join(sections)}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
}});
</script>
</body></html>
"""
    # a path with bytes no encoding decodes (an old Windows share) shows as \xe4, not a crash
    with atomic_write(out / "index.html", "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(text)
    return out / "index.html"
