"""Commands about models: ``models``, ``train``, ``judge``, ``compare``, ``bench``
(``evaluate`` and ``enroll``, for boards the model never heard, are :mod:`.plant`'s)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..console import percent

from .app import (cli, debugging, echo_err, parse_config, say, table, train_with_progress,
                  warn)
from .params import (FILE, MODEL_FILE, BoardName, Whole, check_default_dataset, config_option,
                     dataset_option)


@cli.command()
def models() -> None:
    """The models `tapcheck train --model` knows, one line each."""
    from ..models import MODELS

    rows = [{"model": s.name, "scorer": s.defaults.get("scorer"),
             "optimiser": f"{s.defaults.get('optimizer')} lr {s.defaults.get('lr')}",
             "epochs": s.defaults.get("epochs"), "about": s.summary} for s in MODELS.values()]
    click.echo(table(rows, ["model", "scorer", "optimiser", "epochs", "about"]))


SCORER_NAMES = ["knn", "knn-decay", "knn-ldn", "mahalanobis", "prob", "recon"]


def _train_options(f):
    options = [
        dataset_option("Dataset to train on", default="demo", show_default=True),
        config_option(),
        click.option("--epochs", type=Whole(min=1), help="Epochs (default: the model's)."),
        click.option("--seed", type=Whole(), help="Random seed."),
        # tapcheck.detectors.SCORERS, spelled out: importing it would load torch for --help
        click.option("--scorer", type=click.Choice(SCORER_NAMES),
            help="Anomaly scorer (default: the model's)."),
        click.option("--members", type=Whole(1, 16),
                     help="Networks trained from different seeds and judged as one [the config's "
                          "train.members: 1]; N times the training (docs/new-boards.md)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _command(name: str, **options) -> str:
    """``tapcheck NAME --option value ...`` of the options given (None: left out), quoted for
    the shell."""
    import shlex

    words = ["tapcheck", name]
    for key, value in options.items():
        if value is not None:
            words += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(words)


@cli.command()
@click.option("--model", "model_name",
              help="Model to train [the config's train.model: arcface-resnet18]; `tapcheck "
                   "models` lists them.")
@_train_options
@click.option("--calibration", type=click.Choice(
    ["auto", "cross-fit", "hold-out", "leave-one-board-out"]),
              help="Where the threshold comes from [the config's train.calibration: auto, "
                   "i.e. cross-fit from 8 normal boards at a frequency stretch up to ±6 %, "
                   "else hold-out, or leave-one-board-out where no normal board side has 4 "
                   "training takes to hold one out]; cross-fit trains train.crossfit_folds "
                   "more networks (docs/new-boards.md).")
@click.option("--out", type=MODEL_FILE, help="Model file [models/<model>.pt].")
@click.option("--resume", is_flag=True,
              help="Continue the run that was interrupted (same options): its progress is in "
                   "<out>.partial, saved after every epoch.")
def train(model_name: str | None, dataset: str, config_path: Path | None, epochs: int | None,
          seed: int | None, scorer: str | None, members: int | None, calibration: str | None,
          out: Path | None, resume: bool) -> int:
    """Train a model on a dataset's training split and save it as one self-describing file.

    The model file is written only when training is done; until then progress is saved beside it
    (<out>.partial) after every epoch, so an interrupted run keeps the previous model and can be
    continued with --resume.
    """
    from ..datasets import Dataset
    from ..files import check_writable
    from ..errors import ModelFileError, StorageError
    from ..calibration import unfitted
    from ..interrupts import training_stops
    from ..locks import exclusive, lock_path
    from ..model_target import check_model_target, check_out_name
    from ..buildable import check_buildable
    from ..modelfile import partial_path, save_trained
    from ..resume import check_partial
    from ..paths import model_path
    from ..scorers import scorer_label

    # `kill` stops like Ctrl-C: the lock file goes, and one line says what was kept
    with training_stops() as watch:
        config = parse_config(config_path).replace(
            "train", model=model_name, epochs=epochs, seed=seed, scorer=scorer,
            members=members, calibration=calibration)
        # an unknown name, or crops the network cannot take: now
        check_buildable(config, path=config_path)
        check_default_dataset(dataset)
        ds = Dataset.open(dataset)
        out = out or model_path(config.train.model)
        check_out_name(out)  # before its .partial is named
        partial = partial_path(out)
        # this run's own options: "the same options" sent a user to the default model's run
        again = _command("train", dataset=dataset, config=config_path, model=model_name,
                         epochs=epochs, seed=seed, scorer=scorer, members=members,
                         calibration=calibration, out=out) + " --resume"
        # no run to resume, or an interrupted one not resumed, says so first: "replacing
        # models/lite.pt … when this run ends" came before the refusal over its .partial (QA)
        check_partial(partial, resume=resume, resume_with=again)
        # never overwrite what tapcheck did not make, nor another dataset's model
        replacing = check_model_target(out, dataset=ds)
        check_writable(out.parent)  # now, not after an hour of training
        if replacing:
            say(replacing)
        watch(out, partial, resume_with=again)  # from here on, a stop says what is kept
        # one run per model file: a second one is told "in use by PID N", not "interrupted"
        with exclusive(lock_path(out), what=out, error=ModelFileError, remove=True):
            check_partial(partial, resume=resume, resume_with=again)
            checkpoint = train_with_progress(ds, config=config, config_path=config_path,
                                             partial=partial, resume=resume)
            try:
                save_trained(out, checkpoint)
            except StorageError as e:
                if not partial.exists():
                    raise
                # "free some space and try again": the rerun was refused over the .partial,
                # the training that needs no repeating (QA)
                # the cross-fit networks' scores are kept with it, fold by fold
                raise StorageError(e.problem, path=e.path, fix=(
                    f"{e.fix}; the training is kept in {partial}: then `{again}` saves it "
                    "without training again")) from None
        det = checkpoint["detector"]
        info = det.get("calibration", {})
        method = info.get("method", "")
        # from too few clips to fit, the threshold is their highest, not a stated rate: judge
        # says so, and this line had said "at 5% false alarms" of it (QA)
        rate = (f"the highest of {info['clips']} calibration clip(s), too few for a rate"
                if info and unfitted(info) else
                f"at {percent(checkpoint['config']['train']['far'])} false alarms")
        # its seed: another seed trains another model (an AUC moves by 0.03), and the file kept
        # it where nothing showed it (QA)
        say(f"saved {out}  ({checkpoint['train_seconds']:.0f} s, seed "
            f"{checkpoint['config']['train']['seed']}, {scorer_label(det)}, "
            f"{method + ' ' if method else ''}threshold {-det['offset']:.4g} {rate})")
    return 0


@cli.command()
@click.argument("clips", nargs=-1, required=True, type=FILE)
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model file [models/arcface-resnet18.pt].")
@config_option("Settings whose features the model must have been trained with "
               "(its [train] settings are the model's own; others are warned of, not used).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per clip.")
@click.option("--per-board", is_flag=True,
              help="Also one verdict per board, by the model's board rule: anomalous when "
                   "most of its taps are (train.board_rule 'vote'), or when their median is over "
                   "the board threshold ('median'). Boards from the clips' boardNN/ folders, or "
                   "--board.")
@click.option("--board", type=BoardName(),
              help="All clips are taps of this one board (implies --per-board): its number "
                   "(0 to 999999) or serial.")
@click.option("--explain", is_flag=True,
              help="Say where each anomalous clip differs from healthy boards (band, time).")
@click.option("--explain-dir", type=click.Path(readable=False),  # "" kept, to be refused
              help="Also write a PNG per anomalous clip here (implies --explain).")
@dataset_option("Dataset whose normal takes explanations compare with [the model's training "
                "dataset, when the recordings folder holds it; no other folder is read]",
                name="--references")
def judge(clips: tuple[Path, ...], model_path: Path | None, config_path: Path | None,
          as_json: bool, per_board: bool, board: str | None, explain: bool,
          explain_dir: str | None, references: str | None) -> int:
    """Judge clips: NORMAL or ANOMALOUS, with the score and the threshold.

    The model computes crops with the feature settings it was trained with; a --config with
    other ones is an error, never a verdict on other crops. Exit status: 0 all normal, 1 any
    anomalous (with --per-board: any board), 2 if any clip could not be judged (the others are
    judged all the same and the bad ones listed at the end).
    """
    from .. import paths
    from ..judgment import show_judgment

    config = parse_config(config_path) if config_path else None
    return show_judgment(clips, echo=click.echo, echo_err=echo_err, as_json=as_json,
                         debug=debugging(), model=model_path or paths.model_path(),
                         config=config, explain=explain, picture_dir=explain_dir,
                         references=references, per_board=per_board, board=board)


@cli.command()
@click.option("--models", "selection", default="study", show_default=True,
              help="all, study (the study's eight), or names: arcface-resnet18,triplet-shallow")
@_train_options
@click.option("--out", type=click.Path(), help="Report folder [reports/<dataset>].")
@click.option("--seeds", help="Train each model with each of these seeds: 0-4, or 0,2,5.")
@click.option("--folds", type=Whole(min=2), default=None,
              help="Deal the normal training boards into K folds; each fold's boards are left "
                   "out of training and judged as unseen normal boards.")
@click.option("--keep-models", is_flag=True,
              help="Save every cell's model file (default: the plotted cell's only).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="Run the cells as Ray tasks: a local Ray instance, or the cluster at ADDRESS "
                   "(auto, or host:port of `ray start --head`).")
@click.option("--cpus-per-cell", type=Whole(min=1), default=None,
              help="With --ray: CPUs reserved for each cell, and its torch threads [1].")
def compare(selection: str, dataset: str, config_path: Path | None, epochs: int | None,
            seed: int | None, scorer: str | None, members: int | None, out: str | None,
            seeds: str | None,
            folds: int | None, keep_models: bool, ray_address: str | None,
            cpus_per_cell: int | None) -> None:
    """Train several models on one dataset and compare them: metrics, t-SNE maps, score charts.

    Writes <out>/index.html (opens offline), metrics.csv, metrics.json and the trained models
    under <out>/models/. Same seed, same numbers. With --seeds or --folds each (model, seed,
    fold) is a cell, and the report gives each model's mean ± sd and 95 % interval over its
    cells and a paired test for each pair of models. Finished cells are kept under <out>/cells/
    (the plotted cell's model file there too, every cell's with --keep-models; no
    <out>/models/): a rerun (after a crash, or with more seeds) computes only the missing ones.
    """
    from ..compare import compare_models, default_out, resolve_models
    from ..report_folder import check_report_folder
    from ..grid import GridConfig
    from ..datasets import Dataset
    from ..errors import ParameterError
    from ..files import check_writable
    from ..grid import parse_seeds
    from ..gridreport import grid_text
    from ..buildable import check_buildable
    from ..config import TrainConfig
    from ..report import summary_table

    names = resolve_models(selection)
    if seed is not None and seeds is not None:
        raise click.UsageError("--seed and --seeds together: give one (--seeds 0-4)")
    # --scorer is every model's, as train.scorer of a config is (it was refused, the key taken)
    config = parse_config(config_path).replace("train", epochs=epochs, seed=seed,
                                                members=members, scorer=scorer)
    given = config.train.model
    if config_path and given != TrainConfig().model and given not in names:
        # train and demo take it; compare trained the study's eight without a word (QA)
        warn(f"{config_path}: its [train] model = {given!r} is not used: compare trains the "
             f"models --models names ({selection}) — give --models {given} to compare it")
    if config.train.members > 1:  # ae/vae's errors cannot be averaged over networks
        from ..detectors import representation_of
        from ..models import get_spec

        one = config.replace("train", members=1).train
        alone = [n for n in names
                 if representation_of(get_spec(n).resolve(one).scorer) != "knn"]
        if alone:
            raise click.UsageError(f"train.members = {config.train.members}: {', '.join(alone)} "
                                   "score without embeddings; leave them out of --models")
    if cpus_per_cell is not None and ray_address is None:  # it was ignored without a word (QA)
        raise click.UsageError("--cpus-per-cell applies to --ray cells; without --ray each cell "
                               "trains on this process's threads (OMP_NUM_THREADS)")
    # "" is given, not left out: parse_seeds refuses it (it was taken as the config's seed)
    grid = GridConfig(seeds=parse_seeds(seeds) if seeds is not None else (config.train.seed,),
                      folds=folds or 0, keep_models=keep_models, ray=ray_address is not None,
                      ray_address=ray_address or None, cpus_per_cell=cpus_per_cell or 1)
    if grid.ray:
        from ..cluster import require_ray

        require_ray()  # before the features are computed, not after
    if out == "":  # an unset shell variable: Path("") is the working folder
        raise ParameterError("--out is empty", fix="name the report folder, e.g. "
                                                   "--out reports/<dataset>, or leave it out")
    check_default_dataset(dataset)
    ds = Dataset.open(dataset)
    out = Path(out) if out is not None else default_out(ds)
    for name in names:  # settings no network takes: now
        check_buildable(config.replace("train", model=name), path=config_path)
    check_report_folder(out, names)  # and its model files: only over tapcheck's own
    check_writable(out, create=False)  # the folder itself appears only with the results
    rows = compare_models(ds, names, config=config, out=out, grid=grid, log=echo_err,
                          progress=sys.stderr.isatty())
    click.echo(summary_table(rows) if grid.single else grid_text(rows))
    if grid.single and len(rows) > 1:
        from ..report import ONE_SEED

        warn(ONE_SEED)
    say(f"report: {out / 'index.html'}")


@cli.command()
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model to judge with [a 1-epoch arcface-resnet18 trained here].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/bench.json"),
              show_default=True, help="Where to write the figures as JSON.")
def bench(model_path: Path | None, out: Path) -> None:
    """Measure speed: features, training (vs a naive loop), judging, memory — in one run."""
    from ..bench import format_results, run_bench
    from ..dataset_folders import refuse_dataset_folder
    from ..files import check_writable
    from ..file_kinds import check_replaceable

    # as compare --out: bench wrote its report beside a dataset's manifest.csv after minutes
    refuse_dataset_folder(out.parent, why="a report would mix its files with the takes",
                          home_why="a report would mix its files with the datasets' folders",
                          fix="choose another --out, e.g. reports/bench.json")
    check_replaceable(out, ours=_is_bench_json, what="benchmark report")  # before the runs
    check_writable(out.parent, create=False)  # and its folder: not after minutes of runs
    # run_bench reads --model as judge reads it before any measurement
    results = run_bench(model=model_path, out=out, log=echo_err)
    click.echo(format_results(results))
    say(f"written to {out}")


def _is_bench_json(path) -> bool:
    from ..file_kinds import sniff

    try:
        return "matmul_gflops" in json.loads(sniff(path) or b"null")
    except (ValueError, TypeError):
        return False
