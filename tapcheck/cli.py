"""The ``tapcheck`` command.

Every command imports what it needs when it runs, so ``tapcheck judge`` does not pay for
matplotlib or scikit-learn. Errors a user can cause are :class:`~tapcheck.errors.TapcheckError`
and become one line and exit status 2 in :func:`main`, the one place that handles them
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from . import __version__
from .errors import TapcheckError, TapcheckWarning

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# click would refuse an unreadable file before the command runs, in its own words and for the
# whole batch; tapcheck names each bad file in one line and carries on with the good ones
FILE = click.Path(path_type=Path, readable=False)


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, TapcheckWarning):
        _echo_err(f"tapcheck: warning: {message}")
    elif os.environ.get("TAPCHECK_DEBUG"):
        _echo_err(warnings.formatwarning(message, category, filename, lineno, line).rstrip())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line, turn input errors into one clean line."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or bool(os.environ.get("TAPCHECK_DEBUG"))
    if debug:
        os.environ["TAPCHECK_DEBUG"] = "1"
    warnings.showwarning = _show_warning
    for stream in (sys.stdout, sys.stderr):
        # a file name that is not UTF-8 (copied from an old Windows share) prints as its bytes
        # instead of ending the command with a UnicodeEncodeError
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        code = cli.main(args=args, prog_name="tapcheck", standalone_mode=False)
    except TapcheckError as e:
        if debug:
            raise
        for line in e.details:
            _echo_err(f"tapcheck: error: {line}")
        _echo_err(f"tapcheck: error: {e}")
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 2
    except (click.Abort, KeyboardInterrupt):
        _echo_err("tapcheck: interrupted")
        return 130
    return code if isinstance(code, int) else 0


def _parse_config(path: str | None):
    from .config import load_config

    return load_config(path)


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="tapcheck")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Acoustic tap-testing of wooden boards: record taps, learn healthy boards, judge new taps.

    Start with `tapcheck demo`: it synthesises the study's boards, trains the study's best model
    (ArcFace on ResNet18) and judges the held-out boards.
    """


# -- data ---------------------------------------------------------------------------------------

@cli.command()
@click.option("--dataset", default="demo", show_default=True, help="Dataset name or folder.")
@click.option("--takes", default=30, show_default=True, help="Takes per board and side.")
@click.option("--test-takes", type=int, default=None,
              help="Held-out test takes of each normal training board (default: a fifth).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same dataset.")
def synth(dataset: str, takes: int, test_takes: int | None, seed: int) -> None:
    """Synthesise the study's boards (physics-based) into a new dataset."""
    from .synth import make_study_dataset

    ds = make_study_dataset(dataset, takes=takes, test_takes=test_takes, seed=seed,
                            progress=sys.stderr.isatty())
    click.echo(f"wrote {len(ds)} takes of {len(ds.summary())} board sides to {ds.root}")


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=FILE)
@click.option("--dataset", required=True, help="Dataset name or folder (created if needed).")
@click.option("--board", required=True, type=click.IntRange(min=0), help="Board number.")
@click.option("--side", required=True, help="Side or end struck, e.g. left.")
@click.option("--label", required=True, type=click.Choice(["normal", "defect"]))
@click.option("--group", default="", help="Free text, e.g. similar-material.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "test"]))
def import_(files: tuple[Path, ...], dataset: str, board: int, side: str, label: str, group: str,
            split: str) -> int:
    """Bring existing audio files (WAV/FLAC/OGG, any rate, mono or stereo) into a dataset.

    Each file is converted to mono 44.1 kHz and stored as the next take of the board side; a
    file that cannot be read, or holds no strike, is listed at the end and not imported.
    """
    from .config import AudioConfig, FeatureConfig
    from .datasets import Dataset, check_slug
    from .features import load_clip, strike_crops

    check_slug(side, "side")
    if group:
        check_slug(group, "group")
    ds = Dataset.create(dataset)
    sr = AudioConfig().sr
    bad = []
    for path in files:
        try:
            y = load_clip(path)
            strike_crops(y, features=FeatureConfig(), path=path)  # refuse clips without a tap
        except TapcheckError as e:
            bad.append(str(e))
            continue
        take = ds.add_take(y, sr=sr, board=board, side=side, label=label, group=group,
                           split=split, source="import")
        click.echo(f"{path} -> {ds.root / take.path}")
    for message in bad:
        _echo_err(f"tapcheck: error: {message}")
    click.echo(f"imported {len(files) - len(bad)} of {len(files)} file(s) into {ds.root}")
    return 2 if bad else 0


@cli.command()
def datasets() -> None:
    """List the datasets under ./recordings (or $TAPCHECK_RECORDINGS)."""
    from .datasets import Dataset, list_datasets, recordings_home

    rows = []
    for name in list_datasets():
        ds = Dataset.open(recordings_home() / name)
        rows.append({"dataset": name, "takes": len(ds), "boards": len({t.board for t in ds.takes}),
                     "normal": len(ds.select(label="normal")),
                     "defect": len(ds.select(label="defect")),
                     "train": len(ds.select(split="train")), "test": len(ds.select(split="test"))})
    if not rows:
        click.echo(f"no datasets in {recordings_home()}/ — try `tapcheck synth --dataset demo`")
        return
    click.echo(_table(rows, ["dataset", "takes", "boards", "normal", "defect", "train", "test"]))


@cli.command()
@click.argument("name")
def info(name: str) -> None:
    """Boards, sides, labels and takes of one dataset."""
    from .datasets import Dataset

    ds = Dataset.open(name)
    click.echo(f"{ds.root}: {len(ds)} takes")
    click.echo(_table(ds.summary(), ["board", "side", "label", "group", "train", "test"]))
    missing = ds.missing_files()
    if missing:
        _echo_err(f"tapcheck: warning: {len(missing)} take(s) in the manifest have no file, "
                  f"e.g. {missing[0].path}")


# -- models -------------------------------------------------------------------------------------

@cli.command()
def models() -> None:
    """The models `tapcheck train --model` knows, one line each."""
    from .models import MODELS

    rows = [{"model": s.name, "scorer": s.defaults.get("scorer"),
             "optimiser": f"{s.defaults.get('optimizer')} lr {s.defaults.get('lr')}",
             "epochs": s.defaults.get("epochs"), "about": s.summary} for s in MODELS.values()]
    click.echo(_table(rows, ["model", "scorer", "optimiser", "epochs", "about"]))


def _train_options(f):
    options = [
        click.option("--dataset", default="demo", show_default=True, help="Dataset to train on."),
        click.option("--config", "config_path", type=FILE,
                     help="TOML config (see configs/default.toml); options override it."),
        click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the model's)."),
        click.option("--seed", type=int, help="Random seed."),
        click.option("--scorer", type=click.Choice(["knn", "prob", "recon"]),
                     help="Anomaly scorer (default: the model's)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command()
@click.option("--model", "model_name", default="arcface-resnet18", show_default=True,
              help="Model to train; `tapcheck models` lists them.")
@_train_options
@click.option("--out", type=FILE, help="Model file [models/<model>.pt].")
@click.option("--resume", is_flag=True,
              help="Continue the run that was interrupted (same options): its progress is in "
                   "<out>.partial, saved after every epoch.")
def train(model_name: str, dataset: str, config_path: Path | None, epochs: int | None,
          seed: int | None, scorer: str | None, out: Path | None, resume: bool) -> None:
    """Train a model on a dataset's training split and save it as one self-describing file.

    The model file is written only when training is done; until then progress is saved beside it
    (<out>.partial) after every epoch, so an interrupted run keeps the previous model and can be
    continued with --resume.
    """
    from .datasets import Dataset
    from .files import check_writable
    from .modelfile import check_partial, partial_path, save_checkpoint
    from .models import get_spec

    get_spec(model_name)  # an unknown name fails before any work
    config = _parse_config(config_path).replace("train", model=model_name, epochs=epochs,
                                                seed=seed, scorer=scorer)
    ds = Dataset.open(dataset)
    out = out or Path(os.environ.get("TAPCHECK_MODELS", "models")) / f"{model_name}.pt"
    partial = partial_path(out)
    check_partial(partial, resume=resume)
    check_writable(out.parent)  # now, not after an hour of training
    checkpoint = _train(ds, config, partial=partial, resume=resume)
    save_checkpoint(out, checkpoint)
    partial.unlink(missing_ok=True)  # only now: the finished model is safely on disk
    det = checkpoint["detector"]
    click.echo(f"saved {out}  ({checkpoint['train_seconds']:.0f} s, threshold "
               f"{-det['offset']:.4g} at {checkpoint['config']['train']['far']:.0%} false alarms)")


def _train(ds, config, **kwargs) -> dict:
    from .training import train_model

    interactive = sys.stderr.isatty()
    log = None if interactive else (lambda line: _echo_err(line))
    return train_model(ds, config=config, progress=interactive, log=log, **kwargs)


@cli.command()
@click.argument("clips", nargs=-1, required=True, type=FILE)
@click.option("--model", "model_path", type=FILE,
              help="Model file [models/arcface-resnet18.pt].")
@click.option("--config", "config_path", type=FILE,
              help="TOML config whose feature settings the model must have been trained with.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per clip.")
def judge(clips: tuple[Path, ...], model_path: Path | None, config_path: Path | None,
          as_json: bool) -> int:
    """Judge clips: NORMAL or ANOMALOUS, with the score and the threshold.

    The model computes crops with the feature settings it was trained with; a --config with
    other ones is an error, never a verdict on other crops. Exit status: 0 all normal, 1 any
    anomalous, 2 if any clip could not be judged (the others are judged all the same and the bad
    ones listed at the end).
    """
    from .judge import Judge, default_model_path

    config = _parse_config(config_path) if config_path else None
    judge_ = Judge(model_path or default_model_path(), config=config)
    verdicts = judge_.judge_files(list(clips))
    bad = [v for v in verdicts if v.error]
    for v in verdicts:
        if as_json:
            click.echo(json.dumps(v.to_dict()))
        elif not v.error:
            for w in v.warnings:
                _echo_err(f"tapcheck: warning: {w}")
            click.echo(f"{v.verdict:<9}  score {v.score:.4f}  threshold {v.threshold:.4f}  "
                       f"{v.model}  {v.path}")
    for v in bad:
        _echo_err(f"tapcheck: error: {v.error}")
    if bad:
        if len(bad) > 1 or len(verdicts) > 1:
            _echo_err(f"tapcheck: {len(bad)} of {len(verdicts)} clip(s) could not be judged")
        return 2
    return 1 if any(v.anomalous for v in verdicts) else 0


# -- comparing and measuring --------------------------------------------------------------------

@cli.command()
@click.option("--models", "selection", default="study", show_default=True,
              help="all, study (the study's eight), or names: arcface-resnet18,triplet-shallow")
@_train_options
@click.option("--out", type=click.Path(path_type=Path), help="Report folder [reports/<dataset>].")
def compare(selection: str, dataset: str, config_path: Path | None, epochs: int | None,
            seed: int | None, scorer: str | None, out: Path | None) -> None:
    """Train several models on one dataset and compare them: metrics, t-SNE maps, score charts.

    Writes <out>/index.html (opens offline), metrics.csv, metrics.json and the trained models
    under <out>/models/. Same seed, same numbers.
    """
    from .compare import compare_models, default_out, resolve_models
    from .datasets import Dataset
    from .report import summary_table

    names = resolve_models(selection)
    if scorer is not None:
        raise click.UsageError("--scorer is per model; compare uses each model's default")
    config = _parse_config(config_path).replace("train", epochs=epochs, seed=seed)
    ds = Dataset.open(dataset)
    out = out or default_out(ds)
    rows = compare_models(ds, names, config=config, out=out, log=_echo_err,
                          progress=sys.stderr.isatty())
    click.echo(summary_table(rows))
    click.echo(f"report: {out / 'index.html'}")


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Model to judge with [a 1-epoch arcface-resnet18 trained here].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/bench.json"),
              show_default=True, help="Where to write the figures as JSON.")
def bench(model_path: Path | None, out: Path) -> None:
    """Measure speed: features, training (vs a naive loop), judging, memory — in one run."""
    from .bench import format_results, run_bench

    if model_path is not None and not model_path.is_file():
        from .errors import ModelFileError

        raise ModelFileError("model file not found", path=model_path, fix="pass a .pt file")
    results = run_bench(model=model_path, out=out, log=_echo_err)
    click.echo(format_results(results))
    click.echo(f"written to {out}")


# -- health: doctor -----------------------------------------------------------------------------

@cli.command()
@click.option("--dataset", help="Also check this dataset (name or folder): every take is loaded.")
def doctor(dataset: str | None) -> int:
    """Check the installation (and a dataset) and say what to fix.

    Exit status 0 when nothing needs fixing, 1 when something does (the lines marked PROBLEM).
    """
    from .doctor import PROBLEM, check_dataset, check_installation

    sections = [("installation", check_installation)]
    if dataset:
        sections.append((None, lambda: check_dataset(dataset, progress=sys.stderr.isatty())))
    problems = 0
    for title, check in sections:
        found = check()
        if title is None:
            title, found = found
        click.echo(title)
        for finding in found:
            click.echo(f"  {finding}")
        problems += sum(f.level == PROBLEM for f in found)
    click.echo(f"{problems} problem(s) to fix" if problems else "nothing to fix")
    return 1 if problems else 0


# -- bench: devices, record, listen, log --------------------------------------------------------

class _BenchConsole:
    """The person at the bench: lines, questions on stdin, and a level meter on a terminal."""

    METER_DB = 60.0  # the meter spans -60..0 dBFS
    METER_EVERY_S = 0.05

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._shown = False
        self._peak = 0.0
        self._last = 0.0

    def say(self, line: str) -> None:
        self.clear()
        click.echo(line)

    def ask(self, prompt: str) -> str | None:
        self.clear()
        click.echo(f"{prompt} ", nl=False)
        line = sys.stdin.readline()
        if not sys.stdin.isatty():
            click.echo("")  # a terminal echoes the Enter; a pipe does not
        return None if line == "" else line  # "" is end of input

    def meter(self, samples) -> None:
        import time

        import numpy as np

        if not self.tty:
            return
        self._peak = max(self._peak, float(np.max(np.abs(samples))) if len(samples) else 0.0)
        now = time.monotonic()
        if now - self._last < self.METER_EVERY_S:
            return
        db = 20.0 * np.log10(self._peak) if self._peak > 0 else -np.inf
        filled = int(round(30 * min(1.0, max(0.0, (db + self.METER_DB) / self.METER_DB))))
        level = f"{db:6.1f}" if np.isfinite(db) else "  -inf"
        click.echo(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {level} dBFS", nl=False)
        self._shown, self._peak, self._last = True, 0.0, now

    def clear(self) -> None:
        if self._shown:
            click.echo("\r\033[K", nl=False)
            self._shown = False


def _open_input(device: str | None, config):
    """The chosen input device and the rate to record it at."""
    from .devices import choose_samplerate, find_input_device

    device_ = find_input_device(device)
    rate = choose_samplerate(device_, sr=config.audio.sr, device_sr=config.stream.device_sr)
    return device_, rate


@cli.command()
def devices() -> None:
    """Audio inputs PortAudio sees: index, name, channels, default rate; * marks the default.

    `--device` of record and listen takes the index or part of the name.
    """
    from .devices import NO_INPUT_FIX, input_devices
    from .errors import DeviceError

    rows = [{"": "*" if d.is_default else "", "index": d.index, "name": d.name,
             "channels": d.channels, "default rate": f"{d.default_sr:.0f} Hz",
             "host API": d.hostapi} for d in input_devices()]
    if not rows:
        raise DeviceError("no audio input device found", fix=NO_INPUT_FIX)
    click.echo(_table(rows, ["", "index", "name", "channels", "default rate", "host API"]))


@cli.command()
@click.option("--board", required=True, type=click.IntRange(min=0), help="Board number.")
@click.option("--side", required=True, help="Side or end struck, e.g. left.")
@click.option("--label", default="normal", show_default=True,
              type=click.Choice(["normal", "defect"]))
@click.option("--group", default="", help="Free text, e.g. similar-material.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--takes", default=30, show_default=True, type=click.IntRange(min=1),
              help="Good takes to record.")
@click.option("--duration", type=float, help="Seconds per take [audio.duration_s: 3].")
@click.option("--dataset", default="bench", show_default=True, help="Dataset name or folder.")
@click.option("--device", help="Input device: index or part of its name (`tapcheck devices`).")
@click.option("--trigger", is_flag=True,
              help="Listen continuously and save one take per strike heard (hands-free).")
@click.option("--keep-bad", is_flag=True,
              help="Save takes that fail a check (no strike, clipped, too quiet) too.")
@click.option("--yes", "-y", is_flag=True,
              help="Ask nothing: take after take, bad takes retaken at once (for scripts).")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="TOML config (see configs/default.toml): [record] checks, [stream] input.")
def record(board: int, side: str, label: str, group: str, split: str, takes: int,
           duration: float | None, dataset: str, device: str | None, trigger: bool,
           keep_bad: bool, yes: bool, config_path: Path | None) -> int:
    """Record takes of one board side from a microphone into a dataset.

    Each take is checked at once — no strike heard, clipped, too quiet, strike cut off — and a
    bad take is retaken (or kept with --keep-bad). Takes are numbered after the last one on disk
    or in the manifest and never overwritten; Ctrl-C keeps every finished take.
    """
    from .datasets import Dataset, check_slug
    from .devices import Microphone
    from .interrupts import terminate_as_interrupt
    from .recording import Recorder, TakeLabels

    check_slug(side, "side")
    if group:
        check_slug(group, "group")
    config = _parse_config(config_path)
    device_, rate = _open_input(device, config)  # no microphone: fail before touching the data
    ds = Dataset.create(dataset)
    console = _BenchConsole()
    sr = config.audio.sr
    converted = "" if rate == sr else f", resampled to {sr} Hz"
    mic = Microphone(device_, sr=rate, block_s=config.stream.block_s)
    recorder = Recorder(ds, TakeLabels(board, side, label, group, split), mic=mic, config=config,
                        say=console.say, ask=None if (yes or trigger) else console.ask,
                        meter=console.meter, keep_bad=keep_bad, source=device_.name)
    interrupted = False
    try:
        with terminate_as_interrupt(), mic:
            click.echo(f"recording board {board} {side} ({label}, {split}) into {ds.root} "
                       f"from '{device_.name}' at {rate} Hz{converted}")
            if trigger:
                recorder.record_triggered(takes, duration_s=duration)
            else:
                recorder.record(takes, duration_s=duration)
    except KeyboardInterrupt:
        interrupted = True
    finally:  # also when the device fails: say what was saved before the error
        console.clear()
        session = recorder.session
        saved = session.saved
        numbers = f" (take {saved[0].take}-{saved[-1].take})" if saved else ""
        refused = session.bad - session.kept_bad
        bad = f"; {refused} bad take(s) not kept" if refused else ""
        click.echo(f"saved {len(saved)} take(s) of board {board} {side} in {ds.root}"
                   f"{numbers}{bad}")
        if mic.overflows:
            _echo_err(f"tapcheck: warning: {mic.overflows} audio block(s) were lost (the "
                      "computer fell behind); check those takes or close other programs")
    if interrupted:
        _echo_err("tapcheck: stopped; every finished take is saved, the take in progress is not")
        return 130
    return 0


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Model file [models/arcface-resnet18.pt].")
@click.option("--device", help="Input device: index or part of its name (`tapcheck devices`).")
@click.option("--board", type=click.IntRange(min=0), help="Board under test, for the log.")
@click.option("--taps", type=click.IntRange(min=1),
              help="Stop after judging this many taps (default: until Ctrl-C).")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="TOML config (see configs/default.toml): [stream] strike detection.")
def listen(model_path: Path | None, device: str | None, board: int | None, taps: int | None,
           config_path: Path | None) -> None:
    """Judge every tap as it happens: verdict, score and threshold, one line per tap.

    Each judgment and its clip go to the inspection log (inspections/, or
    $TAPCHECK_INSPECTIONS); `tapcheck log` shows it. Stop with Ctrl-C.
    """
    from .devices import Microphone
    from .inspections import InspectionLog
    from .interrupts import terminate_as_interrupt
    from .judge import Judge, default_model_path
    from .listen import Listener

    config = _parse_config(config_path)
    if config.stream.judge_threads > 0:
        import torch

        # One small batch per tap: more threads barely speed it up, and on a busy machine a
        # descheduled worker thread stalls the whole forward pass (slow 95th percentile).
        torch.set_num_threads(config.stream.judge_threads)
    judge_ = Judge(model_path or default_model_path())
    config = config.replace("audio", sr=judge_.config.audio.sr)  # record at the model's rate
    device_, rate = _open_input(device, config)
    mic = Microphone(device_, sr=rate, block_s=config.stream.block_s)
    with InspectionLog(create=True) as log:
        listener = Listener(judge_, mic=mic, log=log, stream=config.stream, board=board,
                            show=click.echo,
                            warn=lambda text: _echo_err(f"tapcheck: warning: {text}"))
        try:
            with terminate_as_interrupt(), mic:
                listener.warm_up()
                mic.wait_ready()
                listener.run(max_taps=taps, on_ready=lambda: _echo_err(
                    f"listening on '{device_.name}' at {rate} Hz (input latency "
                    f"{mic.latency_s * 1000:.0f} ms) with {judge_.name} ({judge_.model.path}, "
                    f"threshold {judge_.threshold:.4f}); log {log.path}; Ctrl-C to stop"))
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a shift ends
        finally:  # also when the device fails: every judgment so far is in the log
            _echo_err(f"tapcheck: {listener.summary()}")
            if mic.overflows:
                _echo_err(f"tapcheck: warning: {mic.overflows} audio block(s) were lost (the "
                          "computer fell behind)")


@cli.command("log")
@click.option("--since", help="From when: 30m, 8h, 2d, today, 2025-05-01 or '2025-05-01 06:00'.")
@click.option("--board", type=click.IntRange(min=0), help="One board only.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per judgment.")
def log_(since: str | None, board: int | None, as_json: bool) -> None:
    """The inspection log `tapcheck listen` keeps: time, board, verdict, score, model, clip."""
    from .inspections import InspectionLog, parse_since

    start = parse_since(since) if since else None
    with InspectionLog() as log:
        rows = log.query(since=start, board=board)
        if as_json:
            for r in rows:
                click.echo(json.dumps(r.to_dict()))
            return
        if not rows:
            click.echo(f"no inspections in {log.path}" + (" for that selection" if (
                since or board is not None) and log.path.exists() else ""))
            return
        table = [{"time": r.local_time, "board": r.board, "verdict": r.verdict,
                  "score": f"{r.score:.4f}", "threshold": f"{r.threshold:.4f}", "model": r.model,
                  "clip": (log.root / r.clip).as_posix()} for r in rows]
        click.echo(_table(table, ["time", "board", "verdict", "score", "threshold", "model",
                                  "clip"]))
        bad = sum(r.verdict == "ANOMALOUS" for r in rows)
        click.echo(f"{len(rows)} inspection(s), {bad} anomalous")


# -- demo ---------------------------------------------------------------------------------------

@cli.command()
@click.option("--dataset", default="demo", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the model's).")
@click.option("--seed", default=0, show_default=True)
def demo(dataset: str, epochs: int | None, seed: int) -> None:
    """Synthesise the study's boards (if missing), train arcface-resnet18, judge the test split."""
    import time

    import numpy as np

    from .config import Config
    from .datasets import Dataset, dataset_path
    from .judge import Judge, default_model_path
    from .metrics import auc, pauc
    from .modelfile import load_model, save_checkpoint
    from .synth import make_study_dataset

    started = time.perf_counter()
    if not (dataset_path(dataset) / "manifest.csv").exists():
        click.echo(f"1/3 synthesising the study's boards into {dataset_path(dataset)} ...")
        make_study_dataset(dataset, seed=seed, progress=sys.stderr.isatty())
    else:
        click.echo(f"1/3 using the existing dataset {dataset_path(dataset)}")
    ds = Dataset.open(dataset)
    config = Config().replace("train", model="arcface-resnet18", epochs=epochs, seed=seed)
    click.echo("2/3 training arcface-resnet18 (the study's best model) ...")
    out = default_model_path()
    save_checkpoint(out, _train(ds, config))
    click.echo(f"    saved {out}")
    click.echo("3/3 judging the test split ...")
    test = ds.select(split="test")
    verdicts = Judge(load_model(out)).judge_files([ds.path_of(t) for t in test])
    ok = [(t, v) for t, v in zip(test, verdicts, strict=True) if not v.error]
    scores = np.array([v.score for _, v in ok])
    labels = np.array([t.label == "defect" for t, _ in ok])
    threshold = verdicts[0].threshold if verdicts else float("nan")
    rows = []
    for board in sorted({t.board for t, _ in ok}):
        mine = np.array([t.board == board for t, _ in ok])
        first = next(t for t, _ in ok if t.board == board)
        rows.append({"board": board, "label": first.label, "group": first.group,
                     "clips": int(mine.sum()), "mean score": float(scores[mine].mean()),
                     "flagged": f"{int((scores[mine] > threshold).sum())}/{int(mine.sum())}"})
    click.echo(_table(rows, ["board", "label", "group", "clips", "mean score", "flagged"]))
    click.echo(f"threshold {threshold:.4f}   AUC {auc(labels, scores):.3f}   "
               f"pAUC(FPR<=0.1) {pauc(labels, scores):.3f}   "
               f"({time.perf_counter() - started:.0f} s in all)")
    means = {r["board"]: r["mean score"] for r in rows}
    if 7 in means and 8 in means:
        if means[8] > means[7]:
            click.echo(f"board 8 (struck on the cut side) scores higher than board 7 "
                       f"({means[8]:.4f} vs {means[7]:.4f}), as in the study")
        else:
            click.echo(f"board 8 (struck on the cut side) does not score higher than board 7 "
                       f"({means[8]:.4f} vs {means[7]:.4f}); in the study it did")
    for v in verdicts:
        if v.error:
            _echo_err(f"tapcheck: error: {v.error}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
