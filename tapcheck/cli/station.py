"""Commands at the bench: ``devices``, ``record``, ``listen``, ``station``, ``log``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from ..manifest import MAX_TAKE
from .app import cli, echo_err, parse_config, say, table, warn
from .params import BOARD, MODEL_FILE, Count, Whole, config_option, dataset_option


def _open_input(device: str | None, config):
    """The chosen input device and the rate to record it at, one that fills the crops of
    ``config``'s features (a model's own, for listen and station)."""
    from ..devices import choose_samplerate, find_input_device
    from ..features import required_sample_rate

    device_ = find_input_device(device)
    rate = choose_samplerate(device_, sr=config.audio.sr, device_sr=config.stream.device_sr,
                             min_sr=required_sample_rate(config.features, sr=config.audio.sr))
    return device_, rate


@cli.command()
def devices() -> None:
    """Audio inputs PortAudio sees: index, name, channels, default rate; * marks the default.

    `--device` of record and listen takes the index or part of the name.
    """
    from ..devices import NO_INPUT_FIX, input_devices
    from ..errors import DeviceError

    rows = [{"": "*" if d.is_default else "", "index": d.index, "name": d.name,
             "channels": d.channels, "default rate": f"{d.default_sr:.0f} Hz",
             "host API": d.hostapi} for d in input_devices()]
    if not rows:
        raise DeviceError("no audio input device found", fix=NO_INPUT_FIX)
    click.echo(table(rows, ["", "index", "name", "channels", "default rate", "host API"]))


@cli.command()
@click.option("--board", required=True, type=BOARD, help="Board number.")
@click.option("--side", required=True, help="Side or end struck, e.g. left.")
@click.option("--label", default="normal", show_default=True,
              type=click.Choice(["normal", "defect"]),
              help="Whether the board side is healthy or cracked.")
@click.option("--group", help="Free text, e.g. similar-material [the group of the board's other "
              "takes of this label, if they share one].")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "test"]),
              help="train: learned from (and calibrated on); test: judged by evaluate only.")
@click.option("--takes", default=30, show_default=True, type=Whole(min=1, max=MAX_TAKE),
              help="Good takes to record.")
@click.option("--duration", type=float, help="Seconds per take [audio.duration_s: 3].")
@dataset_option("Dataset to record into, created if needed", default="bench",
                show_default=True)
@click.option("--device", help="Input device: index or part of its name (`tapcheck devices`).")
@click.option("--trigger", is_flag=True,
              help="Listen continuously and save one take per strike heard (hands-free).")
@click.option("--keep-bad", is_flag=True,
              help="Save takes that fail a check (no strike, clipped, too quiet) too.")
@click.option("--yes", "-y", is_flag=True,
              help="Ask nothing: take after take, bad takes retaken at once (for scripts).")
@config_option("Settings: [record] checks, [stream] input.")
def record(board: int, side: str, label: str, group: str | None, split: str, takes: int,
           duration: float | None, dataset: str, device: str | None, trigger: bool,
           keep_bad: bool, yes: bool, config_path: Path | None) -> int:
    """Record takes of one board side from a microphone into a dataset.

    Each take is checked at once — no strike heard, clipped, too quiet, strike cut off — and a
    bad take is retaken (or kept with --keep-bad). Takes are numbered after the last one on disk
    or in the manifest and never overwritten; Ctrl-C keeps every finished take.
    """
    from ..console import BenchConsole
    from ..new_datasets import creatable_path, missing_folders, remove_made_folders
    from ..datasets import Dataset
    from ..manifest import check_slug
    from ..devices import Microphone
    from ..interrupts import terminate_as_interrupt
    from ..recording import Recorder, TakeLabels, take_duration

    check_slug(side, "side")
    if group:
        check_slug(group, "group")
    config = parse_config(config_path)
    take_duration(duration, config=config, trigger=trigger)  # before the microphone and the
    # dataset's folder
    made = missing_folders(creatable_path(dataset))  # a file given for the dataset: before
    # the microphone opens
    device_, rate = _open_input(device, config)  # no microphone: fail before touching the data
    ds = Dataset.create(dataset)
    console = BenchConsole()
    sr = config.audio.sr
    converted = "" if rate == sr else f", resampled to {sr} Hz"
    mic = Microphone(device_, sr=rate, block_s=config.stream.block_s)
    recorder = Recorder(ds, TakeLabels(board, side, label, group, split), mic=mic, config=config,
                        say=console.say, ask=None if (yes or trigger) else console.ask,
                        meter=console.meter, keep_bad=keep_bad, source=device_.name)
    interrupted = started = False
    try:
        # the dataset's writer lock for the whole session: a second recorder is told at once
        with ds.locked(), terminate_as_interrupt():
            try:
                with mic:  # inside: a microphone that cannot be opened made a folder too (QA)
                    started = True
                    say(f"recording board {board} {side} ({label}, {split}) into {ds.root} "
                        f"from '{device_.name}' at {rate} Hz{converted}")
                    if trigger:
                        recorder.record_triggered(takes, duration_s=duration)
                    else:
                        recorder.record(takes, duration_s=duration)
            finally:  # a new dataset that got no take: its folder held a lock file alone,
                # which `datasets` and `info` did not know (QA); import takes it back too
                if made and not recorder.session.saved:
                    remove_made_folders(ds, made, board=board, side=side)
    except KeyboardInterrupt:
        interrupted = True
    finally:  # also when the device fails: say what was saved before the error
        console.clear()
        session = recorder.session
        saved = session.saved
        numbers = f" (take {saved[0].take}-{saved[-1].take})" if saved else ""
        refused = session.bad - session.kept_bad
        bad = f"; {refused} bad take(s) not kept" if refused else ""
        # not of a folder removed mid-session: its takes went with it (the error says so)
        if started and (ds.root.is_dir() or not saved) and (
                saved or sys.exc_info()[0] in (None, KeyboardInterrupt)):
            # not before a session refused (the dataset in use, its manifest unwritable, no
            # one to answer): "saved 0 take(s)" came before the error that said why (mic QA)
            say(f"saved {len(saved)} take(s) of board {board} {side} in {ds.root}"
                f"{numbers}{bad}")
        if mic.overflows:
            warn(f"{mic.overflows} audio block(s) were lost (the computer fell behind); "
                 "check those takes or close other programs")
    if interrupted:
        echo_err("tapcheck: stopped; every finished take is saved, the take in progress is not")
        return 130
    return 0


@cli.command()
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model file [models/arcface-resnet18.pt].")
@click.option("--device", help="Input device: index or part of its name (`tapcheck devices`).")
@click.option("--board", type=BOARD, help="Board under test, for the log.")
@click.option("--taps", type=Whole(min=1),
              help="Stop after judging this many taps (default: until Ctrl-C).")
@click.option("--taps-per-board", type=Count(
    "give how many times each board is tapped, e.g. --taps-per-board 3, or leave the option out "
    "to judge taps only", maximum=1000),  # as [train] board_taps
    help="Every N judged taps are one board: after the N-th, a board verdict by the rule "
    "judge --per-board applies (anomalous when most of the N taps are, unless the model's "
    "train.board_rule is 'median'). Default: off.")
@click.option("--board-gap-s", type=float,
              help="With --taps-per-board: a longer pause between two taps ends the board in "
              "progress without a verdict, so a missed tap shifts no later board; 0: never "
              "[stream.board_gap_s: 5].")
@config_option("Settings: [stream] strike detection.")
def listen(model_path: Path | None, device: str | None, board: int | None, taps: int | None,
           taps_per_board: int | None, board_gap_s: float | None,
           config_path: Path | None) -> None:
    """Judge every tap as it happens: verdict, score and threshold, one line per tap.

    With --taps-per-board N, every N taps also make one board line, as `judge --per-board` gives.
    Each judgment and its clip go to the inspection log (inspections/, or
    $TAPCHECK_INSPECTIONS), board verdicts too; `tapcheck log` shows it. Stop with Ctrl-C.
    """
    from ..devices import Microphone
    from .. import paths
    from ..inspections import InspectionLog, check_log_folder
    from ..interrupts import terminate_as_interrupt
    from ..judge import live_judge
    from ..listen import Listener, board_taps_warning

    if board_gap_s is not None and taps_per_board is None:  # ignored without a word (review)
        from ..errors import ParameterError

        raise ParameterError("--board-gap-s ends boards, and without --taps-per-board listen "
                             "judges taps only", fix="add --taps-per-board N (e.g. 3), or leave "
                                                     "--board-gap-s out")
    config = parse_config(config_path).replace("stream", board_gap_s=board_gap_s)
    _warn_of_room(check_log_folder())  # before the model loads and the microphone opens
    judge_, config, warned = live_judge(model_path or paths.model_path(), config)
    for line in warned:
        warn(line)  # [stream] is what --config sets
    if taps_per_board is not None:
        note = board_taps_warning(judge_.model.detector.calibration_, taps_per_board)
        if note:
            warn(note)
    device_, rate = _open_input(device, config)
    mic = Microphone(device_, sr=rate, block_s=config.stream.block_s)
    listening = False
    try:
        # a microphone listed but not openable (busy, its source gone) or that never delivers
        # audio fails before the log is made or opened: a session that never ran leaves none
        with terminate_as_interrupt(), mic:
            mic.wait_ready()
            with InspectionLog(create=True) as log:
                listening = True
                listener = Listener(judge_, mic=mic, log=log, stream=config.stream, board=board,
                                    show=click.echo, warn=warn, taps_per_board=taps_per_board)
                try:
                    listener.warm_up()
                    listener.run(max_taps=taps, on_ready=lambda: echo_err(
                        f"listening on '{device_.name}' at {rate} Hz (input latency "
                        f"{mic.latency_s * 1000:.0f} ms) with {judge_.name} "
                        f"({judge_.model.path}, threshold {judge_.threshold:.4f}); log "
                        f"{log.path}; Ctrl-C to stop"))
                finally:  # also when the device fails: every judgment so far is in the log
                    echo_err(f"tapcheck: {listener.summary()}")
                    if mic.overflows:
                        warn(f"{mic.overflows} audio block(s) were lost (the computer fell "
                             "behind)")
    except KeyboardInterrupt:  # Ctrl-C is how a shift ends, and its summary says so; while
        if not listening:  # the microphone was awaited it ended with exit 0 and no word (QA)
            raise


def _warn_of_room(log_folder: Path) -> None:
    """A warning when the log's disk cannot hold a shift's clips: a full disk stops a session
    mid-shift, and nothing deletes old clips (QA)."""
    from ..log_room import room_warning

    line = room_warning(log_folder)
    if line:
        warn(line)


@cli.command("log")
@click.option("--since", help="From when: 30m, 8h, 2d, today, yesterday, 2025-05-01 or "
                              "'2025-05-01 06:00'.")
@click.option("--board", type=BOARD, help="One board only.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per judgment.")
def log_(since: str | None, board: int | None, as_json: bool) -> None:
    """The inspection log `tapcheck listen` keeps: time, board, verdict, score, model, clip.

    Board verdicts of `listen --taps-per-board` follow the taps, in a table of their own (with
    --json, as {"board_verdict": {...}} lines).
    """
    from ..inspections import InspectionLog
    from ..log_report import log_lines
    from ..since import parse_since

    start = None if since is None else parse_since(since)
    with InspectionLog() as log:
        out, warned = log_lines(log, since=start, board=board, as_json=as_json,
                                selected=since is not None or board is not None)
    for line in warned:
        warn(line)
    for line in out:
        click.echo(line)


@cli.command()
@click.option("--model", "model_path", type=MODEL_FILE,
              help="Model file [models/arcface-resnet18.pt].")
@click.option("--device", help="Input device: index or part of its name (`tapcheck devices`).")
@click.option("--board", type=BOARD, help="Board under test, for the log.")
@click.option("--host", help="Address to serve on [station.host: 127.0.0.1]; another than "
                             "loopback requires a token on every request.")
@click.option("--port", type=Whole(0, 65535), help="Port [station.port: 8321].")
@click.option("--no-explain", is_flag=True, help="Do not explain anomalous taps.")
@dataset_option("Dataset whose normal takes explanations compare with [the model's own]",
                name="--references")
@config_option("Settings: [station] and [stream].")
def station(model_path: Path | None, device: str | None, board: int | None, host: str | None,
            port: int | None, no_explain: bool, references: str | None,
            config_path: Path | None) -> None:
    """`listen` with a web page: the last verdict in large, the last 50 scores, counters and
    why the last anomalous tap was anomalous, pushed live; and the inspection log to browse,
    play and mark ("false alarm", "confirmed defect"). Stop with Ctrl-C.
    """
    from .. import paths
    from ..devices import Microphone
    from ..inspections import InspectionLog, check_log_folder
    from ..judge import live_judge
    from ..listen import Listener
    from ..marks import MarkBook
    from ..station import Station, StoppableMic, serve
    from ..station_access import address as station_address
    from ..station_access import bind, check_host, default_token

    if host == "":  # an unset shell variable served on loopback only, without a word (QA)
        from ..errors import ParameterError

        raise ParameterError("--host is empty: it names no address", fix=(
            "give the address to serve on, e.g. --host 0.0.0.0 for every network, or leave it "
            "out for station.host"))
    config = parse_config(config_path)
    if references is not None and not (config.station.explain and not no_explain):
        # a misspelt reference dataset started the station without a word (QA)
        why = "--no-explain" if no_explain else "station.explain = false in the config"
        raise click.UsageError(f"--references are what anomalous taps are explained against, and "
                               f"{why} turns explanations off: give one or the other")
    _warn_of_room(check_log_folder())  # before the port, the model and the microphone
    host = config.station.host if host is None else host
    port = config.station.port if port is None else port
    token = check_host(host, default_token(config.station.token, config_path=config_path))
    sock = bind(host, port)  # a port in use fails before the model loads
    judge_, config, warned = live_judge(model_path or paths.model_path(), config)
    for line in warned:
        warn(line)  # [stream] is what --config sets
    with InspectionLog():  # read only: a log of another program is refused, and none is made
        pass
    explain = config.station.explain and not no_explain
    reference_takes = None
    if explain and references is not None:  # as judge --references; a bad one fails here,
        from ..explain_references import dataset_references  # before the microphone and the log

        reference_takes, unusable = dataset_references(references, judge_)
        for line in unusable:
            warn(line)
    # no microphone fails before the log is made: a station that never ran leaves no log behind
    device_, rate = _open_input(device, config)
    mic = Microphone(device_, sr=rate, block_s=config.stream.block_s)
    # nor does a microphone that is listed but cannot be opened (busy, its source gone) or never
    # delivers audio: it is opened and heard from first, so an earlier log is not even opened
    with contextlib.closing(sock), mic:
        mic.wait_ready()
        with InspectionLog(create=True) as log:  # made and checked here: a bad log fails now
            root, log_path = log.root, log.path
        MarkBook(root).close()  # a log of another schema: one clear line, before any tap
        station_ = Station(judge_, root, board=board, explain=explain,
                           references=reference_takes)
        if station_.explain_note:
            warn(station_.explain_note)
        url = station_address(host, sock.getsockname()[1], token=token)
        listener = Listener(judge_, mic=StoppableMic(mic), stream=config.stream, board=board,
                            show=click.echo, warn=warn, on_verdict=station_.on_verdict,
                            on_judgment=station_.on_judgment, on_refused=station_.on_refused,
                            on_joined=station_.on_joined)
        try:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a shift ends
                serve(station_, sock=sock, token=token, mic=mic, listener=listener,
                      on_ready=lambda: echo_err(
                          f"station at {url} — listening on '{device_.name}' at {rate} Hz "
                          f"with {judge_.name} (threshold {judge_.threshold:.4f}); log "
                          f"{log_path}; Ctrl-C to stop"))
        finally:
            echo_err(f"tapcheck: {listener.summary()}")
