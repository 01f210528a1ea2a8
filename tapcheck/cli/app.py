"""The ``tapcheck`` command group, its entry point and what every command shares.

Every command imports what it needs when it runs, so ``tapcheck judge`` does not pay for
matplotlib or scikit-learn. Errors a user can cause are :class:`~tapcheck.errors.TapcheckError`
and become one line and exit status 2 in :func:`main`, the one place that handles them
(``--debug`` shows the traceback instead). Ctrl-C and ``kill`` end there too, as one line and
exit status 130: ``tapcheck: interrupted``, and what was kept when the command says it
(:class:`~tapcheck.interrupts.Interrupted`).

Options that are settings default to ``None``, so the order is always: the option, then the
``--config`` file, then the dataclass default (:mod:`tapcheck.config`).
"""

from __future__ import annotations

import codecs
import os
import re
import sys
import warnings

import click

from .. import __version__
from ..console import RepeatedWarnings, one_line, table  # noqa: F401 - table: commands use it
from ..errors import TapcheckError, TapcheckWarning, debug_asked
from ..interrupts import Interrupted, quiet_exit, terminate_as_interrupt

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: what click 8.2 on raises for a group called without a command (8.1 prints the help itself)
_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _joined(message: str) -> str:
    """click's message on one line: it lists a choice's values one per line."""
    return re.sub(r"\s*\n\s*", " ", message)


def debugging() -> bool:
    """Whether ``--debug`` (or ``$TAPCHECK_DEBUG``) asked for tracebacks: :func:`main` takes the
    flag out of the arguments wherever it was typed and says it here."""
    return debug_asked()


def echo_err(text: str) -> None:
    click.echo(text, err=True)


def say(text: str) -> None:
    """A line of a command's report on stdout, one line however the paths in it are named."""
    click.echo(one_line(text))


def warn(text: str) -> None:
    echo_err(f"tapcheck: warning: {one_line(text)}")


_REPEATED = RepeatedWarnings()
_NAME_BYTES = "tapcheck-name-bytes"


def _name_bytes(error: UnicodeError):
    """Encoding error handler: a file name's undecodable bytes (surrogate escapes) as those
    bytes, anything else backslash-escaped."""
    if isinstance(error, UnicodeEncodeError):
        part = error.object[error.start:error.end]
        if all("\udc80" <= c <= "\udcff" for c in part):
            return bytes(ord(c) - 0xDC00 for c in part), error.end
    return codecs.backslashreplace_errors(error)


codecs.register_error(_NAME_BYTES, _name_bytes)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, TapcheckWarning):
        if _REPEATED.admit(str(message), category):
            warn(str(message))
    elif debug_asked():
        echo_err(warnings.formatwarning(message, category, filename, lineno, line).rstrip())


def _writing_stdout(e: OSError) -> bool:
    """Whether ``e`` was raised writing standard output: in ``click.echo`` to it, which every
    command's lines go through and which flushes each (a write names no file, so the traceback
    is what tells)."""
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if (frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils"
                and not frame.f_locals.get("err")):
            return True
        tb = tb.tb_next
    return False


def _dashed_file(args: list[str], error: click.UsageError) -> str | None:
    """The argument click took for an unknown option that names an existing file (``-x.wav``),
    else None."""
    if not isinstance(error, click.NoSuchOption):
        return None
    end = args.index("--") if "--" in args else len(args)
    option = error.option_name
    for arg in args[:end]:
        if (arg.startswith("-") and arg != "-" and arg.split("=", 1)[0].startswith(option)
                and os.path.lexists(arg)):
            return arg
    return None


def _thread_counts_readable(value: str) -> bool:
    """Whether libgomp reads ``value`` as OMP_NUM_THREADS: comma-separated positive integers,
    each as strtoul reads it (spaces, a ``+``, leading zeros; under 2**64 - 1)."""
    items = value.split(",")
    return all(re.fullmatch(r"\s*\+?[0-9]+\s*", x) and 0 < int(x) < 2**64 - 1 for x in items)


def _drop_bad_thread_count() -> None:
    """Before torch (and its libgomp) is loaded: an OMP_NUM_THREADS libgomp cannot read
    (``abc``, ``0``, empty) printed libgomp's own ``Invalid value for environment variable``
    line, unlike any other line of tapcheck's, and left torch's default; it is taken out of
    this run's environment with one warning, so every core is used as when it is unset."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is None or _thread_counts_readable(value) or "torch" in sys.modules:
        return
    del os.environ["OMP_NUM_THREADS"]
    shown = value if len(value) <= 20 else value[:20] + "..."
    warn(f"OMP_NUM_THREADS={shown!r} is not a number of threads: ignored, every core used — "
         "unset it, or set a positive number such as OMP_NUM_THREADS=1")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line, turn input errors into one clean line. Without
    ``argv`` (the process's own command line: the ``tapcheck`` script, ``python -m tapcheck``)
    a stray Ctrl-C after the command is kept from Python's exit (:func:`quiet_exit`)."""
    code = None  # an exception escaping _main has no status of the command's
    try:
        code = _main(argv)
        return code
    finally:
        if argv is None:
            quiet_exit(code)


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    # --debug anywhere before "--" (users put flags last: `tapcheck judge clip.wav --debug`),
    # taken out here: after a command, click knew no such option and debug mode turned its
    # usage error into a traceback
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end] or debug_asked()
    args = [a for a in args[:end] if a != "--debug"] + args[end:]
    if debug:
        os.environ["TAPCHECK_DEBUG"] = "1"
    warnings.showwarning = _show_warning
    _drop_bad_thread_count()
    for stream in (sys.stdout, sys.stderr):
        # a file name that is not UTF-8 (copied from an old Windows share) prints as its bytes
        # instead of ending the command with a UnicodeEncodeError; on stderr, whose default is
        # backslashreplace, instead of as "\udce4", unlike the same name on stdout. Any other
        # character the terminal's encoding lacks ("—" in Latin-1) is escaped, as stderr did
        if (getattr(stream, "errors", None) in ("strict", "backslashreplace")
                and hasattr(stream, "reconfigure")):
            stream.reconfigure(errors=_NAME_BYTES)
    try:
        # `kill` stops every command as Ctrl-C does: one line and status 130, and whatever
        # cleans up after Ctrl-C runs. Commands that say what they kept hold their own block;
        # outside them (loading torch, reading clips) SIGTERM ended a command silently, 143
        with terminate_as_interrupt():
            try:
                try:
                    code = cli.main(args=args, prog_name="tapcheck", standalone_mode=False)
                    if sys.stdout is not None:  # None: started with standard output closed
                        sys.stdout.flush()  # here, where a reader gone away is told apart
                except SystemExit:
                    from click.utils import PacifyFlushWrapper

                    if isinstance(sys.stdout, PacifyFlushWrapper):  # click's exit 1 on EPIPE
                        raise BrokenPipeError from None
                    raise
            finally:  # before an error's line, which stays the last
                for text in _REPEATED.summary():
                    warn(text)
    except TapcheckError as e:
        if debug:  # the traceback, then the line and the status a script reads as without it
            _print_traceback()
        for line in e.details:  # a path with a line break must not split a line in two
            echo_err(f"tapcheck: error: {one_line(line)}")
        echo_err(f"tapcheck: error: {one_line(str(e))}")
        return e.exit_code
    except BrokenPipeError:
        return _reader_gone()
    except OSError as e:
        found = _os_error(e)
        if found is None:
            raise
        if debug:
            _print_traceback()
        echo_err(f"tapcheck: error: {one_line(str(found))}")
        return found.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:  # a wrong option or argument: one line, as every input error
        if debug and not isinstance(e, _NO_ARGS):
            _print_traceback()
        return _usage_error(e, args)
    except click.ClickException as e:
        if debug:
            _print_traceback()
        echo_err(f"tapcheck: error: {one_line(_joined(e.format_message()))}")
        return 2
    except Interrupted as e:  # stopped by Ctrl-C or kill, and it says what it kept
        echo_err(f"tapcheck: interrupted; {e.kept}")
        return e.exit_code
    except (click.Abort, KeyboardInterrupt, _Stopped):
        echo_err("tapcheck: interrupted")
        return 130
    return code if isinstance(code, int) else 0


def _reader_gone() -> int:
    """The reader went away (`tapcheck doctor | head -1`): nothing is wrong with the input,
    and exit status 1 is doctor's "problems found" and judge's "anomalous" (QA). 141 is what a
    shell reports of a command SIGPIPE ended; nothing more is written."""
    from click.utils import PacifyFlushWrapper

    for name in ("stdout", "stderr"):  # click's wrappers: a later exit in this process
        stream = getattr(sys, name)    # would be read as another broken pipe
        if isinstance(stream, PacifyFlushWrapper):
            setattr(sys, name, stream.wrapped)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
    return 141


def _os_error(e: OSError) -> TapcheckError | None:
    """The one line for an OSError no command caught, or None (then it is a bug: raised).

    A path no file can have (a 300-character name, a loop of links) fails wherever a command
    first touches it, often inside Path.exists(): caught once here, as the one line every input
    error is, not a traceback whose exit status 1 `judge` means otherwise."""
    from ..files import path_error

    found = path_error(e)
    if found is None and isinstance(e, PermissionError) and e.filename is not None:
        # a file read or written where no command looked for the problem first: one
        # line still, not a traceback (data QA)
        said = (e.strerror or "permission denied")  # EPERM: an immutable file
        found = TapcheckError(said[:1].lower() + said[1:], path=e.filename,
                              fix="check its permissions (ls -l), or choose a file or "
                                  "folder of your own")
    if found is None and _writing_stdout(e):
        # `judge … > /dev/full`, or a file on a full disk: a traceback and status 1, which
        # judge means "anomalous" — a script read a full disk as a verdict (QA)
        from ..files import write_fix

        found = TapcheckError(f"cannot be written ({e.strerror})", path="standard output",
                              fix=write_fix(e.errno) + " (or send the output elsewhere)")
    return found


def _usage_error(e: click.UsageError, args: list[str]) -> int:
    """A wrong option or argument: one line naming where its help is, status 2; `tapcheck`
    alone, the help as --help prints it (it came as one 1,777-character error line, the first
    thing a new user sees)."""
    if isinstance(e, _NO_ARGS):
        click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
        return 2
    where = e.ctx.command_path if e.ctx is not None else "tapcheck"
    dashed = _dashed_file(args, e)
    if dashed is not None:  # `judge -dash.wav`: "No such option '-d'" named no file
        echo_err(f"tapcheck: error: {one_line(dashed)}: is a file whose name starts with "
                 f"'-', read as an option — pass it as ./{one_line(dashed)}, or after --")
        return 2
    # click lists a choice's values one per line ("Choose from:\n\tnormal,\n\tdefect")
    message = _joined(e.format_message()).rstrip(".")
    at = next((i for i, a in enumerate(args) if a in cli.commands), None)
    option = getattr(e, "option_name", None)
    if where == "tapcheck" and at is not None and option is not None:
        command = args[at]
        before = [a.split("=", 1)[0] for a in args[:at]]  # `--model=m.pt` too
        own = {o for param in cli.commands[command].params for o in param.opts}
        if isinstance(e, click.NoSuchOption) and option in before:
            if option in own:  # `tapcheck --model m.pt judge clip.wav`: click offered --help
                echo_err(f"tapcheck: error: tapcheck: No such option '{option}' before the "
                         f"command — options go after the command's name: `tapcheck "
                         f"{command} {option} …`; `tapcheck {command} --help` lists what "
                         "it takes")
                return 2
        else:
            where = f"tapcheck {command}"  # `judge x.wav --model`: the command's own help
    echo_err(f"tapcheck: error: {where}: {one_line(message)} — `{where} --help` lists what "
             "it takes")
    return 2


def _print_traceback() -> None:
    """--debug: the traceback of the error being handled, on stderr. The one line and exit
    status 2 still follow: with a re-raise Python exited 1, which for `judge` means "a clip is
    anomalous", so a script run with --debug read a missing model as a cracked board."""
    import traceback

    traceback.print_exc(file=sys.stderr)


def parse_config(path: str | os.PathLike | None):
    """The settings of a ``--config`` file over the defaults (the defaults without one)."""
    from ..configfile import load_config

    return load_config(path)


def train_with_progress(ds, *, config, config_path: str | os.PathLike | None = None,
                        **kwargs) -> dict:
    """:func:`tapcheck.training.train_model` with a progress bar on a terminal, log lines else;
    a setting found wrong only against the data (``calib_fraction = 0`` where ``auto`` chose a
    hold-out) is named with ``config_path``, the file it came from."""
    from ..errors import ConfigError
    from ..training import train_model

    interactive = sys.stderr.isatty()
    log = None if interactive else echo_err
    try:
        return train_model(ds, config=config, progress=interactive, log=log, **kwargs)
    except ConfigError as e:
        if e.path is not None or config_path is None:
            raise
        raise ConfigError(e.problem, path=config_path, fix=e.fix) from None


class _Stopped(BaseException):
    """Ctrl-C or ``kill`` inside a command, past click: click answers a KeyboardInterrupt
    with an empty line on stderr before its Abort, and the command's last word read
    "\ntapcheck: interrupted" (QA)."""


class _Commands(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Stopped from None


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="tapcheck")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Acoustic tap-testing of wooden boards: record taps, learn healthy boards, judge new taps.

    Start with `tapcheck demo`: it synthesises the study's boards, trains the study's best model
    (ArcFace on ResNet18) and judges the held-out boards.
    """
