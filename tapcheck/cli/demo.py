"""``tapcheck demo``: the study end to end, for a first look."""

from __future__ import annotations

import click

from .app import cli, echo_err, table, train_with_progress


@cli.command()
@click.option("--dataset", default="demo", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the model's).")
@click.option("--seed", default=0, show_default=True)
def demo(dataset: str, epochs: int | None, seed: int) -> None:
    """Synthesise the study's boards (if missing), train arcface-resnet18, judge the test split."""
    from ..demo import run_demo
    from ..evaluation import study_board_check

    result, verdicts, seconds = run_demo(dataset, epochs=epochs, seed=seed, say=click.echo,
                                         train=train_with_progress)
    click.echo(table(result["boards"], ["board", "label", "group", "clips", "mean score",
                                        "flagged"]))
    click.echo(f"threshold {result['threshold']:.4f}   AUC {result['auc']:.3f}   "
               f"pAUC(FPR<=0.1) {result['pauc']:.3f}   ({seconds:.0f} s in all)")
    if result.get("stated_far") is not None:
        known, unseen = result["false_alarms_known"], result["false_alarms_unseen"]
        click.echo(f"false alarms per tap: known boards "
                   f"{'-' if known is None else f'{known:.1%}'}, unseen boards "
                   f"{'-' if unseen is None else f'{unseen:.1%}'} (the model states "
                   f"{result['stated_far']:.0%}; see `tapcheck evaluate`)")
    _, sentence = study_board_check({r["board"]: r["mean score"] for r in result["boards"]})
    if sentence:
        click.echo(sentence)
    for v in verdicts:
        if v.error:
            echo_err(f"tapcheck: error: {v.error}")
