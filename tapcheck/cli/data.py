"""Commands about data: ``synth``, ``import``, ``datasets``, ``info``, ``doctor``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .app import cli, debugging, echo_err, one_line, parse_config, say, table, warn
from .params import BOARD, FILE, Whole, config_option, dataset_option


@cli.command()
@dataset_option("Dataset to write (it must not hold takes yet)", default="demo",
                show_default=True)
@click.option("--takes", default=30, show_default=True, type=Whole(),
              help="Takes per board and side.")
@click.option("--test-takes", type=Whole(), default=None,
              help="Held-out test takes of each normal training board side (default: a fifth of "
                   "--takes, rounded down).")
@click.option("--seed", default=0, show_default=True, type=Whole(), help="Same seed, same dataset.")
@click.option("--preset", type=click.Choice(["study", "plant"]), default="study",
              show_default=True, help="study: the study's boards; plant: 8 training boards of "
              "two woods, 12 unseen healthy boards of three, graded defects.")
def synth(dataset: str, takes: int, test_takes: int | None, seed: int, preset: str) -> None:
    """Synthesise boards (physics-based) into a new dataset: the study's, or a plant-like set."""
    from ..datasets import class_counts
    from ..synth_dataset import make_study_dataset

    ds = make_study_dataset(dataset, takes=takes, test_takes=test_takes, seed=seed,
                            progress=sys.stderr.isatty(), preset=preset)
    say(f"wrote {len(ds)} takes of {len(class_counts(ds.takes))} board sides to {ds.root}")


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=FILE)
@dataset_option("Dataset to add the takes to, created if needed", required=True)
@click.option("--board", required=True, type=BOARD, help="Board number.")
@click.option("--side", required=True, help="Side or end struck, e.g. left.")
@click.option("--label", required=True, type=click.Choice(["normal", "defect"]),
              help="Whether the board side is healthy or cracked.")
@click.option("--group", help="Free text, e.g. similar-material [the group of the board's other "
              "takes of this label, if they share one].")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "test"]),
              help="train: learned from (and calibrated on); test: judged by evaluate only.")
@config_option("Settings whose [audio] and [features] the clips must suit (e.g. short crops).")
def import_(files: tuple[Path, ...], dataset: str, board: int, side: str, label: str,
            group: str | None, split: str, config_path: Path | None) -> int:
    """Bring existing audio files (WAV or FLAC, any rate, mono or stereo) into a dataset.

    Each file is converted to mono at the config's rate (44.1 kHz) and stored as the next take of
    the board side; a file that cannot be read, holds no strike, or holds the samples of a take
    the dataset has already, is listed at the end and not imported. A clip named twice (or a copy
    of it) imports nothing.
    """
    from ..dataset_folders import dataset_path
    from ..importing import import_clips

    root = dataset_path(dataset)
    result = import_clips(files, dataset, board=board, side=side, label=label, group=group,
                          split=split, config=parse_config(config_path),
                          on_take=lambda path, take: say(f"{path} -> {root / take.path}"))
    for message, trace in zip(result.errors, result.traces, strict=True):
        if debugging():  # --debug: the traceback each refused file's one line stands for
            echo_err(trace.rstrip("\n"))
        echo_err(f"tapcheck: error: {one_line(message)}")  # a name with a newline (QA)
    not_tried = f"; {result.stopped} not tried" if result.stopped else ""
    if result.removed is not None:  # an empty folder no command knows as a dataset: taken back
        say(f"imported 0 of {len(files)} file(s){not_tried}; nothing was imported, so no "
            f"dataset was made at {root}")
    else:
        say(f"imported {len(result.imported)} of {len(files)} file(s) into {root}{not_tried}")
    return 2 if result.errors else 0


@cli.command()
def datasets() -> int:
    """List the datasets under ./recordings (or $TAPCHECK_RECORDINGS).

    A dataset whose manifest cannot be read is left out of the table and named on stderr, one
    line each with the reason and the fix; the others are listed all the same, and the exit
    status is then 2 (0 when every dataset could be read).
    """
    from ..dataset_folders import list_datasets, unenterable_folders
    from ..datasets import Dataset
    from ..errors import TapcheckError
    from ..dataset_folders import recordings_folder
    from ..paths import recordings_home

    recordings_folder()  # a file or a dataset there: said, not "no datasets"
    rows, broken = [], []
    for name in list_datasets():
        root = recordings_home() / name
        try:
            rows.append(Dataset.open(root).stats())
        except TapcheckError as e:  # one broken manifest hid every other dataset
            broken.append(str(TapcheckError(f"dataset {name} cannot be read: {e.problem}",
                                            path=e.path or root, fix=e.fix)))
    if rows:  # a folder named with a line break forged a row of the table (QA)
        rows = [{**r, "dataset": one_line(r["dataset"])} for r in rows]
        click.echo(table(rows, ["dataset", "takes", "boards", "normal", "defect", "train",
                                "test"]))
    elif not broken:
        home = recordings_home()
        if os.environ.get("TAPCHECK_RECORDINGS") and not os.path.lexists(home):
            # a typo read as an empty folder of datasets (QA); not an error: the folder is
            # made with the first dataset, as ./recordings is
            say(f"no datasets: $TAPCHECK_RECORDINGS names {home}, which does not exist — "
                "check its spelling, or make the first dataset there (tapcheck synth --dataset "
                "demo)")
        else:
            # "no datasets in //" for the root folder (QA)
            say(f"no datasets in {os.path.join(home, '')} — try `tapcheck synth --dataset "
                "demo`")
    for folder in unenterable_folders():  # a dataset or not: said, not passed over
        warn(f"{folder}: cannot be entered (permission denied), so whether it holds a dataset "
             "is not known — give your account access to it (chmod u+rx, or ask its owner)")
    for line in broken:
        echo_err(f"tapcheck: error: {one_line(line)}")
    return 2 if broken else 0


@cli.command()
@click.argument("name")
def info(name: str) -> None:
    """Boards, sides, labels and takes of one dataset.

    NAME is a dataset under ./recordings (or $TAPCHECK_RECORDINGS), or a path with a slash to a
    dataset folder (./bench, ../data/bench).
    """
    from ..datasets import Dataset
    from ..datasetcheck import unlisted_audio
    from ..misfiled import misfiled

    ds = Dataset.open(name)
    say(f"{ds.root}: {len(ds)} takes")
    click.echo(table(ds.summary(), ["board", "side", "label", "group", "train", "test"]))
    missing = ds.missing_files()
    if missing:
        warn(f"{len(missing)} take(s) in the manifest have no file, e.g. {missing[0].path}")
    unlisted = unlisted_audio(ds)
    if unlisted:  # a synth killed with -9 read "0 takes" and nothing more (QA)
        warn(f"{len(unlisted)} audio file(s) in {ds.root} no manifest row lists, e.g. "
             f"{unlisted[0]} (copied in by hand, or a run killed before it could clean up?): no "
             "command uses them — bring them in with `tapcheck import`, or delete them")
    for problem, _, _ in misfiled(ds.takes):  # the table counts them as their rows say
        warn(f"{ds.root / 'manifest.csv'}: {problem} — the table counts them as their rows say; "
             "train and compare refuse them, and evaluate refuses test takes so (tapcheck doctor "
             "--dataset says how to fix)")


@cli.command()
@dataset_option("Also check this dataset, loading every take")
@config_option("Settings whose [audio] and [features] the dataset's takes must suit.")
def doctor(dataset: str | None, config_path: Path | None) -> int:
    """Check the installation (and a dataset) and say what to fix.

    Exit status 0 when nothing needs fixing, 1 when something does (the lines marked PROBLEM).
    """
    from ..datasetcheck import check_dataset
    from ..doctor import PROBLEM, check_installation

    config = parse_config(config_path)
    sections = [("installation", check_installation)]
    if dataset:
        sections.append((None, lambda: check_dataset(dataset, config=config,
                                                     progress=sys.stderr.isatty())))
    problems = 0
    for title, check in sections:
        found = check()
        if title is None:
            title, found = found
        say(title)
        for finding in found:
            say(f"  {finding}")
        problems += sum(f.level == PROBLEM for f in found)
    click.echo(f"{problems} problem(s) to fix" if problems else "nothing to fix")
    return 1 if problems else 0
