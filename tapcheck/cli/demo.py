"""``tapcheck demo``: the study end to end, for a first look."""

from __future__ import annotations

import click

from ..paths import DEFAULT_MODEL
from .app import cli, echo_err, train_with_progress


@cli.command()
@click.option("--dataset", default="demo", show_default=True)
@click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
              help="Model to train (`tapcheck models` lists them); the fast one trains about "
                   "7x faster but holds its stated false-alarm rate less well on unseen boards "
                   "(docs/fast-model.md).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the model's).")
@click.option("--seed", default=0, show_default=True)
def demo(dataset: str, model_name: str, epochs: int | None, seed: int) -> None:
    """Synthesise the study's boards (if missing), train arcface-resnet18 (or --model), judge
    the test split."""
    from ..demo import demo_lines, run_demo

    result, verdicts, seconds = run_demo(dataset, model=model_name, epochs=epochs, seed=seed,
                                         say=click.echo, train=train_with_progress)
    for line in demo_lines(result, seconds=seconds):
        click.echo(line)
    for v in verdicts:
        if v.error:
            echo_err(f"tapcheck: error: {v.error}")
