"""Commands for the boards a model never heard: ``evaluate`` (are the stated false-alarm rates
true on them?) and ``enroll`` (a new wood batch taught without retraining)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..json_output import json_line
from .app import cli, parse_config, say, warn
from .params import BOARD, FILE, MODEL_FILE, check_default_dataset, config_option, dataset_option


@cli.command()
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model file [models/arcface-resnet18.pt].")
@dataset_option("Dataset whose test split to judge", default="demo", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
def evaluate(model_path: Path | None, dataset: str, as_json: bool) -> None:
    """Judge a dataset's test split with a model file: false alarms on known and unseen boards
    against the rate the model states, recall per defect board, AUC/pAUC, board verdicts."""
    from .. import paths
    from ..datasets import Dataset
    from ..evaluation import evaluate_model
    from ..evaluation_report import format_evaluation

    check_default_dataset(dataset)
    result = evaluate_model(model_path or paths.model_path(), Dataset.open(dataset),
                            progress=sys.stderr.isatty())
    click.echo(json_line(result) if as_json else format_evaluation(result))


@cli.command()
@click.argument("clips", nargs=-1, type=FILE)
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model file [models/arcface-resnet18.pt].")
@click.option("--board", type=BOARD, help="Board number of the clips (default: none is "
              "stored, and the clips count as a board of their own).")
@click.option("--force", is_flag=True, help="Enrol a board you checked is sound all the same: "
              "clips the model scores as clearly defective, or of a board it judges ANOMALOUS "
              "(a false alarm's taps), or that their dataset labels defect, or under a --board "
              "it was trained on as defective.")
@click.option("--undo", is_flag=True, help="Remove the last enrolment instead.")
@click.option("--list", "list_them", is_flag=True, help="List the model's enrolments instead.")
@config_option("Settings whose features the model must have been trained with.")
def enroll(clips: tuple[Path, ...], model_path: Path | None, board: int | None, force: bool,
           undo: bool, list_them: bool, config_path: Path | None) -> int:
    """Add known-good taps (a new wood batch, a board that raised a false alarm) to the model's
    normal references and recalibrate, without retraining; --undo removes the last enrolment,
    --list lists them.

    The model file is rewritten atomically and lists what was enrolled; on any error it is left
    unchanged.
    """
    from .. import paths
    from ..calibration import describe
    from ..enroll import enroll as enroll_clips
    from ..enroll import undo_enrollment
    from ..enroll_checks import folder_board_warning, over_threshold_warning
    from ..interrupts import enrolment_stops
    from ..paths import model_command

    model_path = model_path or paths.model_path()
    if undo and list_them:
        raise click.UsageError("--undo and --list together: give one")
    if (undo or list_them) and (clips or board is not None or force or config_path):
        raise click.UsageError(f"{'--undo' if undo else '--list'} takes no clips, --board, "
                               "--force or --config")
    if list_them:
        from ..enrolled import enrolled_summary
        from ..modelfile import load_model
        from ..since import local_time

        rows = enrolled_summary(load_model(model_path).checkpoint)
        for e in rows:
            board_name = f"board {e['board']}" if e["board"] >= 0 else "no board number"
            # local, with its zone, as `log` shows times: UTC read as hours off (QA)
            say(f"{_when(e['at'], local_time)}  {board_name}  {len(e['clips'])} clip(s)"
                f"{'  forced' if e['forced'] else ''}  {', '.join(e['clips'])}")
        say(f"{len(rows)} enrolment(s) in {model_path}"
            + (f"; `{model_command(model_path, 'enroll', '--undo')}` takes the last back"
               if rows else ""))
        return 0
    # `kill` stops like Ctrl-C: the lock file goes, and one line says whether the model file
    # changed
    with enrolment_stops(model_path, undo=undo, clips=len(clips)):
        if undo:
            done = undo_enrollment(model_path)
            say(f"removed the enrolment of {len(done['clips'])} clip(s) from {model_path}: "
                f"{done['references']} references, threshold {done['threshold']:.4g}")
            return 0
        config = parse_config(config_path) if config_path else None
        done = enroll_clips(model_path, list(clips), board=board, force=force,
                            config=config)
        for line in done["unused_settings"]:  # as judge warns of them
            warn(line)
        if done["over_threshold"]:
            warn(over_threshold_warning(done, model=model_path))
        if done["other_board_folders"]:  # judge --board's warning, one line
            from ..boards import other_board_warning

            warn(other_board_warning(done["other_board_folders"], board, done="enrolled"))
        if done["other_dataset"] is not None:
            from ..dataset_folders import as_given

            warn(f"board {board} is a board the model was trained on, but these clips are in "
                 f"dataset {as_given(done['other_dataset'])}, another one: enrolled as that "
                 "board's taps — if they are of another board, "
                 f"`{model_command(model_path, 'enroll', '--undo')}`, then enrol them under a "
                 f"number the model does not know (--board {done['free_board']})")
        if done["folder_boards"]:
            warn(folder_board_warning(done["folder_boards"], model=model_path))
        if done["calibration"].get("warning"):
            warn(done["calibration"]["warning"])
        say(f"enrolled {done['clips']} clip(s) into {model_path} in {done['seconds']:.1f} "
            f"s: {done['references']} references, threshold "
            f"{done['threshold_before']:.4g} -> {done['threshold']:.4g}")
        click.echo(describe(done["calibration"]))
    return 0


def _when(at, local_time) -> str:
    """An enrolment's time as a reader's clock has it; as stored where it is no time (edited)."""
    try:
        return local_time(at)
    except (TypeError, ValueError):
        return str(at)
