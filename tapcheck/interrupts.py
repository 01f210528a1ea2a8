"""Stopping cleanly: Ctrl-C and ``kill`` end a bench session between saves, never inside one.

A take or an inspection is saved in two steps (the audio file, then its manifest row or log row),
each atomic. :func:`deferred` holds Ctrl-C (SIGINT), ``kill`` (SIGTERM) and a closed terminal
(SIGHUP) back until both steps are done, so a stopped session never leaves a file without its
row. :func:`terminate_as_interrupt` makes SIGTERM and SIGHUP stop a session the way Ctrl-C does.
A signal the process ignores (a script's background job ignores Ctrl-C, ``nohup`` the hang-up)
stays ignored: :func:`held`. SIGKILL cannot be caught; the atomic writes
bound what it can do to a stray temporary file or an audio file without a row, which readers
ignore and numbering skips.

A command that rewrites a model file says, when stopped, what it kept: :func:`training_stops`
(``train``) and :func:`enrolment_stops` (``enroll``) turn Ctrl-C and ``kill`` into
:class:`Interrupted`, whose sentence the CLI prints as ``tapcheck: interrupted; <kept>`` with
exit status 130. After the command, :func:`quiet_exit` keeps a stray Ctrl-C from Python's exit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def held() -> tuple[int, ...]:
    """The signals that stop a command here: Ctrl-C, ``kill`` and a closed terminal (SIGHUP:
    an SSH session dropped mid-``synth`` left 40 take files and its lock, QA), less those this
    process ignores. A script's ``tapcheck train … &`` inherits an ignored Ctrl-C, and was
    stopped by the Ctrl-C meant for the script's foreground job; ``nohup`` ignores SIGHUP (QA)."""
    return tuple(sig for sig in _HELD if signal.getsignal(sig) is not signal.SIG_IGN)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run a block to its end even if a :func:`held` signal arrives; act on it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in held()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt, so ``kill`` and a closed
    terminal stop like Ctrl-C (signals the process ignores stay ignored: :func:`held`); and
    none is lost when it arrives in a finalizer (:func:`_resend_if_dropped`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in held()}
    hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_resend_if_dropped, hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # the block ended with a signal dropped in a finalizer and not yet sent again (in its last
    # 10 ms): it stops here, or the handler put back (quiet_exit's, after a command) would let
    # it go and the command end with 0 (review)
    if _cancel_resends():
        raise KeyboardInterrupt


def _interrupt(signum: int, frame) -> None:
    if _IN_HOOK:  # the re-send came while _resend_if_dropped still ran (a loaded machine):
        # raised here it would be the hook's own exception, dropped for good (CI); sent again
        _LATE.append(signum)
        return
    stop = KeyboardInterrupt()
    stop.tapcheck_signal = signum  # told apart from others by _resend_if_dropped
    raise stop


def _resend_if_dropped(hook: Callable, unraisable) -> None:
    """``sys.unraisablehook`` within :func:`terminate_as_interrupt`: the KeyboardInterrupt of a
    signal that arrived in a finalizer (a ``__del__``, a weak reference's callback), where
    Python prints "Exception ignored in …" and drops it, is sent again once the finalizer has
    returned. A SIGTERM to ``compare`` while it wrote its report was lost so in a WeakSet's
    callback, and the comparison finished with exit status 0 (QA). Anything else goes to
    ``hook``."""
    signum = getattr(unraisable.exc_value, "tapcheck_signal", None)
    if signum is None:
        hook(unraisable)
        return
    # in a moment, from another thread: the handler then runs in the main thread at its next
    # bytecode, past the finalizer (raised here, it would be this hook's exception). On a
    # loaded machine the moment can pass before start() returns: the handler then leaves the
    # signal in _LATE, and it is sent again
    global _IN_HOOK
    _IN_HOOK = True
    delay_s = 0.01
    try:
        while True:
            timer = threading.Timer(delay_s, os.kill, (os.getpid(), signum))
            timer.daemon = True
            _RESENDS.append(timer)
            timer.start()
            if not _LATE:  # no handler runs from here to the hook's return: no call is left
                break
            signum = _LATE.pop()
            _LATE.clear()
            delay_s = min(10 * delay_s, 1.0)  # the machine is slow: give start() longer
    finally:
        _IN_HOOK = False


_RESENDS: list[threading.Timer] = []  # signals to send again, from _resend_if_dropped
_IN_HOOK = False  # _resend_if_dropped is running (in the main thread)
_LATE: list[int] = []  # signals the handler met while it ran


def _cancel_resends() -> bool:
    """Cancel the re-sends not yet made; whether there was one."""
    pending = False
    while _RESENDS:
        timer = _RESENDS.pop()
        pending |= not timer.finished.is_set()  # set once it has sent, or been cancelled
        timer.cancel()
    return pending


def quiet_exit(status: int | None = None) -> None:
    """From here to the process's end, a first Ctrl-C or ``kill`` is let go and a second one
    ends the process at once, with the command's ``status`` (without one, 130 or 143).

    Called once a command has finished, before Python's exit runs its ``atexit`` callbacks
    (torch's among them): a Ctrl-C just after a save printed "Exception ignored in atexit
    callback … KeyboardInterrupt" under a command's last line (QA). Its files were whole and
    its exit status stood; the first signal then changes nothing, and a second still stops an
    exit that hangs — with the status of the command, which finished: 130 read as "stopped",
    and ``timeout -s INT``, which signals the command and then its process group (twice, at
    once), turned an import that had printed its summary into exit 130 without a word (QA).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for stream in (sys.stdout, sys.stderr):  # the command's lines, before any os._exit
        with contextlib.suppress(Exception):
            stream.flush()
    seen: list[int] = []

    def on_signal(signum, frame):
        if seen:
            os._exit(128 + signum if status is None else status)
        seen.append(signum)

    for sig in held():
        signal.signal(sig, on_signal)
    if status is not None:
        _EXIT_STATUS[:] = [status]


_EXIT_STATUS: list[int] = []  # the finished command's, for exit_now


def exit_now() -> None:
    """The process's last ``atexit`` callback (``tapcheck.entry`` registers it first): end it
    with the finished command's status, once the other callbacks (torch's, logging's) have run.

    Python's teardown after them puts the default handlers back before it frees the modules,
    which takes a moment with torch loaded; a Ctrl-C or ``kill`` there ended the process by the
    signal, status 130 without a word, after ``enroll`` had printed that it enrolled (QA: 2 of
    12 signals sent 2.4-3 s into the run). Nothing is left for that teardown to write: the
    commands close their files, and the standard streams are flushed here. A callback
    registered before ``tapcheck.entry`` ran (none is; a coverage tool's subprocess hook
    would be) would be skipped."""
    if not _EXIT_STATUS:  # no command finished (an error escaped): Python's own exit
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(_EXIT_STATUS[0])


class Interrupted(BaseException):
    """Ctrl-C or ``kill`` stopped a command, which says what it kept.

    A BaseException as KeyboardInterrupt is, so that no ``except Exception`` swallows it, but not
    a KeyboardInterrupt: click answers one of those with an empty line before its own Abort, and
    the line this one carries is the command's last word.

    Parameters
    ----------
    kept : str
        What is left on disk, e.g. "models/m.pt is unchanged, nothing was enrolled".
    """

    exit_code = 130

    def __init__(self, kept: str):
        self.kept = kept
        super().__init__(kept)


@contextlib.contextmanager
def reporting(kept: Callable[[], str]) -> Iterator[None]:
    """Within the block, SIGTERM stops like Ctrl-C, and either one leaves it as
    :class:`Interrupted` carrying ``kept()``, asked once the block has unwound (its locks gone,
    its files closed), so the sentence tells what is on disk then."""
    try:
        with terminate_as_interrupt():
            yield
    except KeyboardInterrupt:
        raise Interrupted(kept()) from None


def file_identity(path: str | os.PathLike) -> tuple | None:
    """What tells a file replaced by an atomic write (a new inode) from the one seen before;
    None for no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def training_stops() -> Iterator[Callable[[Path, Path], None]]:
    """``train`` stopped by Ctrl-C or ``kill``: :class:`Interrupted`, saying what it kept.

    Yields ``watch(out, partial, resume_with=None)``, to be called once the model file and its
    progress file are known (before training): until then the run has written nothing.
    ``resume_with``: the command that continues the run (default: "`tapcheck train --resume`
    and the same options").
    """
    target: list[tuple[Path, Path, tuple | None, str | None]] = []

    def watch(out: Path, partial: Path, *, resume_with: str | None = None) -> None:
        target[:] = [(out, partial, file_identity(out), resume_with)]

    with reporting(lambda: training_kept(*target[0][:3], resume_with=target[0][3])
                   if target else "nothing was written"):
        yield watch


def training_kept(out: Path, partial: Path, before: tuple | None, *,
                  resume_with: str | None = None) -> str:
    """What an interrupted ``train`` leaves: the finished model, the run's progress (a .partial
    found now is this run's, or an earlier interrupted run's: ``--resume`` continues either), or
    nothing new. ``before`` is :func:`file_identity` of ``out`` when the run began;
    ``resume_with`` the command that continues the run (a user told "the same options" ran
    `tapcheck train --resume`, which looked for the default model's run)."""
    if file_identity(out) != before:
        return f"the model was already saved to {out}"
    if partial.exists():
        how = (f"`{resume_with}`" if resume_with else
               "`tapcheck train --resume` and the same options")
        return f"the finished epochs are saved in {partial} — continue with {how}"
    kept = f"{out} is unchanged" if before is not None else f"{out} was not written"
    return f"stopped before the first epoch was saved; {kept}"


@contextlib.contextmanager
def enrolment_stops(model: Path, *, undo: bool, clips: int) -> Iterator[None]:
    """``enroll`` (``undo``: ``enroll --undo``) of ``clips`` clips into ``model``, stopped by
    Ctrl-C or ``kill``: :class:`Interrupted`, saying whether the model file changed (its rewrite
    is atomic: it holds the enrolment entirely or not at all)."""
    before = file_identity(model)
    with reporting(lambda: enrolment_kept(model, before, undo=undo, clips=clips)):
        yield


def enrolment_kept(model: Path, before: tuple | None, *, undo: bool, clips: int) -> str:
    """What an interrupted ``enroll`` leaves; ``before`` is :func:`file_identity` of ``model``
    when it began."""
    from .paths import model_command

    if file_identity(model) == before:
        return f"{model} is unchanged" + ("" if undo else ", nothing was enrolled")
    if undo:
        return f"the last enrolment was already removed from {model}"
    return (f"the enrolment was already saved: {clips} clip(s) enrolled into {model} — "
            f"`{model_command(model, 'enroll', '--list')}` shows it, "
            f"`{model_command(model, 'enroll', '--undo')}` takes it back")
