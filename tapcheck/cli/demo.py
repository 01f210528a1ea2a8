"""``tapcheck demo``: the study end to end, for a first look."""

from __future__ import annotations

import functools

import click

from .app import cli, echo_err, one_line, parse_config, train_with_progress
from .params import Whole, config_option, dataset_option


@cli.command()
@dataset_option("Dataset to synthesise (if missing) and train on", default="demo",
                show_default=True)
@click.option("--model", "model_name",
              help="Model to train [the config's train.model: arcface-resnet18]; `tapcheck "
                   "models` lists them.")
@config_option("Settings to train with; new-boards is the recipe measured for boards the "
               "model never heard (docs/new-boards.md).")
@click.option("--epochs", type=Whole(min=1), help="Epochs (default: the model's).")
@click.option("--seed", default=0, show_default=True, type=Whole(),
              help="Random seed of the synthesised boards (when made) and of the training.")
def demo(dataset: str, model_name: str | None, config_path, epochs: int | None,
         seed: int) -> None:
    """Synthesise the study's boards (if missing), train arcface-resnet18 (or --model, or the
    --config's), judge the test split."""
    from ..demo import demo_lines, run_demo
    from ..interrupts import terminate_as_interrupt
    from ..paths import model_path

    config = parse_config(config_path)
    # `kill` stops demo like Ctrl-C ("tapcheck: interrupted", exit 130) as it stops train: it
    # died silently with status 143; its model file is written whole at the end or not at all
    with terminate_as_interrupt():
        result, verdicts, seconds = run_demo(dataset, model=model_name,
                                             config=config, epochs=epochs,
                                             seed=seed, say=click.echo,
                                             train=functools.partial(train_with_progress,
                                                                     config_path=config_path))
    # the file run_demo wrote: models/<model>.pt, the --model or the config's
    written = model_path(model_name or config.train.model)
    for line in demo_lines(result, seconds=seconds, model=written, dataset=dataset):
        click.echo(line)
    for v in verdicts:
        if v.error:
            echo_err(f"tapcheck: error: {one_line(str(v.error))}")
