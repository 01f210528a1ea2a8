"""The inspection station: ``listen`` with a web page for the person tapping.

:class:`Station` runs a :class:`~tapcheck.listen.Listener` in a thread and keeps what the live
page shows: the last verdict, the score against the threshold for the last 50 taps, counters since
start, and the explanation picture of the last anomalous tap (computed in a second thread after
the tap is logged, so it never delays the next verdict). Every change is pushed to the open pages
as a server-sent event. :func:`serve` binds the socket first (a port in use is one clear error),
then runs the Starlette app of :mod:`tapcheck.webapp` under uvicorn in the main thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from .errors import DeviceError, StorageError, TapcheckError
from .interrupts import terminate_as_interrupt
from .json_output import json_ready

HISTORY = 50  # taps shown in the score chart


class Events:
    """Fan-out of JSON events to every open page (one asyncio queue per subscriber)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: set[asyncio.Queue] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue:
        self.loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=200)
        self.queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.queues.discard(q)

    def publish(self, kind: str, data: dict) -> None:
        """Thread-safe: queue an event for every page (a page too slow to read loses none
        until 200 are waiting; then its stream is ended, and it reconnects for the full
        state)."""
        if self.loop is None:
            return
        message = f"event: {kind}\ndata: {json.dumps(json_ready(data))}\n\n"  # UTF-8 names
        try:
            self.loop.call_soon_threadsafe(self._put, message)
        except RuntimeError:  # the server has stopped: nobody is left to tell
            pass

    def close(self) -> None:
        """End every page's stream (a None in its queue), so a stopping server has no open
        response to cancel. Safe from a signal handler."""
        self.closed = True
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._put, None)
            except RuntimeError:
                pass

    def _put(self, message: str | None) -> None:
        for q in list(self.queues):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:
                # a page too slow to read: its stream ends (the None), so the browser
                # reconnects and the page reloads the state. Dropped without an end, the page
                # got keep-alives only, for good, and still read "live" (QA)
                self.queues.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)


def _stamp(when: datetime | None) -> str:
    """The page's time of a tap or a refusal: the strike's when given, in UTC to the ms."""
    when = when or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class Station:
    """The live state of one station, fed by a listener thread.

    Parameters
    ----------
    judge : Judge
    root : Path
        The inspection log's folder (the listener thread opens the log there: an SQLite
        connection belongs to the thread that made it).
    board : int, optional
        The board under test.
    explain : bool
        Explain anomalous taps (needs the model's training dataset in the recordings folder,
        :func:`tapcheck.explain_references.training_references`, or ``references``).
    references : tapcheck.explain_references.References, optional
        Normal clips to explain against instead of the model's training takes
        (``station --references``: :func:`tapcheck.explain_references.dataset_references`).
    """

    def __init__(self, judge, root: str | os.PathLike, *, board: int | None = None,
                 explain: bool = True, references=None):
        self.judge, self.root, self.board = judge, Path(root), board
        self.events = Events()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.history: deque[dict] = deque(maxlen=HISTORY)
        self.counts = {"taps": 0, "NORMAL": 0, "ANOMALOUS": 0}
        self._scores: list[float] = []  # every tap of the session: the board's verdict so far
        self.board_verdict: dict | None = None  # its verdict, set with each tap
        self.last_explained: dict | None = None
        self.refused: dict | None = None  # a tap heard and not judged since the last verdict
        self.explain_note: str | None = None  # why the station explains nothing
        self.unexplained: dict | None = None  # the last anomalous tap, if it was not explained
        self.explainer = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain",
                                        initializer=_lower_priority)
        self._lock = threading.Lock()
        if explain:
            from .explain import Explainer

            try:
                self.explainer = Explainer(judge, references=references)
            except TapcheckError as e:  # the station still judges; the page says why not
                self.explain_note = f"no explanations: {e}"
            else:  # matplotlib's first import takes seconds: not at the first anomalous tap
                self._pool.submit(_import_pyplot)
        self.pictures = self.root / "explanations"

    # -- called from the listener thread -----------------------------------------------------
    def on_verdict(self, verdict, *, when: datetime | None = None) -> None:
        """A tap judged; ``when``: its strike's time, as the log and the terminal give it (the
        page showed the verdict's, a second later at times: QA)."""
        item = {"time": _stamp(when), "verdict": verdict.verdict, "score": verdict.score,
                "threshold": verdict.threshold, "board": self.board, "id": None,
                "sent": time.time(),
                # what the verdict may be off by (a louder room, clipping, a second knock),
                # where the operator looks
                "warnings": list(verdict.warnings)}
        with self._lock:
            self.history.append(item)
            self.refused = None
            self.counts["taps"] += 1
            self.counts[verdict.verdict] += 1
            self._scores.append(float(verdict.score))
            self.board_verdict = board = self._board_so_far()
        self.events.publish("verdict", {**item, "counts": dict(self.counts),
                                        "board_verdict": board})

    def on_refused(self, text: str, *, when: datetime | None = None) -> None:
        """A sound heard and not judged (clipped, or no tap), at ``when``: the page said nothing
        and kept showing the tap before, so the operator was not told to tap again (QA)."""
        item = {"time": _stamp(when), "text": text}
        with self._lock:
            self.refused = item
        self.events.publish("refused", item)

    def on_joined(self, text: str) -> None:
        """A strike judged together with the last verdict's tap (inside its crops): said under
        that verdict, as its other warnings are (it was on the terminal only)."""
        with self._lock:
            if self.history:  # a reload shows it too; a new list, as a snapshot being
                last = self.history[-1]  # sent outside the lock may hold the old one
                last["warnings"] = [*last["warnings"], text]
        self.events.publish("joined", {"text": text})

    def _board_so_far(self) -> dict | None:
        """The board under test's verdict over the session's taps, by the model's board rule,
        as ``judge --board`` gives it for the same taps: the page called a board ANOMALOUS on
        any one anomalous tap, where most taps decide (QA)."""
        if self.board is None or not self._scores:
            return None
        from .boards import board_verdicts

        info = self.judge.model.detector.calibration_
        bv, = board_verdicts(["tap"] * len(self._scores), self._scores,
                             threshold=info["board_threshold"], expected_taps=info["board_taps"],
                             board=str(self.board), rule=info["board_rule"])
        return {"verdict": bv.verdict, "line": bv.line()}

    def on_judgment(self, judgment) -> None:
        row = judgment.inspection
        if row is None:
            return
        with self._lock:
            if self.history:
                self.history[-1]["id"] = row.id
        self.events.publish("logged", {"id": row.id, "latency_ms": judgment.latency_ms})
        if judgment.verdict.anomalous and self.explainer is not None:
            self._pool.submit(self._explain, row)

    def _explain(self, row) -> None:
        from .file_kinds import refuse_outside
        from .pictures import save_picture

        try:
            (e,) = self.explainer.explain_files([self.root / row.clip])
            path = self.picture_path(row.clip)
            # said, not dropped: the page says "explaining" until it hears
            if e is None:
                raise StorageError(f"{row.clip}: its crops cannot be computed again")
            if path is None:
                raise StorageError(f"{row.clip}: points out of the log's folder")
            refuse_outside(path, self.root, StorageError, what="explanation pictures")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_picture(e, path)
        except Exception as err:  # noqa: BLE001 - the verdict stands; say the picture is lost
            # by its time, which the page gives in its own clock as it gives the verdict's;
            # kept until a later tap is explained, so a reload says it too (review)
            self.unexplained = {"time": row.time, "text": str(err)}
            self.events.publish("unexplained", self.unexplained)
            return
        self.unexplained = None
        # the tap's time, as its verdict shows it: the card kept a tap's sentence beside a
        # later verdict, told by an id the verdict never showed (QA)
        self.last_explained = {"id": row.id, "time": row.time, "sentence": e.sentence,
                               "picture": f"/explanations/{row.id}.png"}
        self.events.publish("explained", self.last_explained)

    # -- read by the web app -----------------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            return {"started": self.started, "board": self.board, "model": self.judge.name,
                    "threshold": self.judge.threshold, "history": list(self.history),
                    "counts": dict(self.counts), "board_verdict": self.board_verdict,
                    "explained": self.last_explained, "refused": self.refused,
                    "explains": self.explainer is not None,
                    "note": self.explain_note, "unexplained": self.unexplained,
                    # the page's clock may be off the station's: it times its own notes by this
                    "now": time.time()}

    def picture_path(self, clip: str) -> Path | None:
        """Where the explanation picture of a logged clip goes: named after the clip (its date
        folder and time, ``explanations/2026-12-03/093015.120-board07.png``), not after the
        inspection id. Ids start again from 1 in a new log (the old one moved aside), while the
        clips and pictures stay in the folder: a picture named by id was served for another
        tap. None for a row whose clip points out of the folder (edited by hand)."""
        rel = PurePosixPath(clip)
        if rel.parts[:1] == ("clips",):
            rel = rel.relative_to("clips")
        try:
            path = self.pictures / rel.with_suffix(".png")
        except ValueError:  # no file name to take
            return None
        try:  # a name no file can have (a NUL byte, past the system's length): none
            inside = path.resolve().is_relative_to(self.pictures.resolve())
        except (OSError, ValueError):
            return None
        # an ``explanations`` linked out of the folder is still named here: the writer refuses
        # it with a note (refuse_outside), and the web app serves nothing through it (_served)
        return path if inside and path != self.pictures else None

    def _served(self, path: Path) -> bool:
        """Whether ``path`` is in the inspection folder once links are followed: an
        ``explanations`` linked elsewhere had any file there served as a picture (QA)."""
        try:
            return path.resolve().is_relative_to(self.root.resolve())
        except (OSError, ValueError):  # a name past the system's length, a NUL byte
            return False

    def picture(self, inspection: int, clip: str | None = None) -> Path | None:
        """The explanation picture of an inspection (its ``clip``, or looked up in the log),
        if there is one."""
        from .pictures import clip_key, picture_clip

        if clip is None:
            from .inspections import InspectionLog

            try:
                with InspectionLog(self.root) as log:
                    clip = log.clip_of(inspection)
            except TapcheckError:
                return None
            if clip is None:
                return None
        path = self.picture_path(clip)
        try:
            if path is not None and self._served(path) and path.is_file():
                return path
        except OSError:  # a name past the system's length (is_file raises ENAMETOOLONG)
            return None
        # a picture of an earlier tapcheck, named by id: shown only when it names this clip
        legacy = self.pictures / f"{int(inspection)}.png"
        if not self._served(legacy):
            return None
        try:
            return legacy if picture_clip(legacy) == clip_key(self.root / clip) else None
        except (OSError, ValueError):  # a clip name no file can have
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def _lower_priority() -> None:
    """Explanations yield the CPU to the verdicts: on a 2-core bench PC an explanation running
    beside the next tap's judgment would otherwise delay that verdict."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread
    except (AttributeError, OSError):
        pass


def _import_pyplot() -> None:
    from .plots import pyplot

    pyplot()


class StoppableMic:
    """A microphone whose :meth:`blocks` ends when :attr:`stop` is set, so the listener thread
    finishes the tap it is saving and returns instead of being killed."""

    def __init__(self, mic) -> None:
        self.mic, self.stop = mic, threading.Event()

    def __getattr__(self, name):
        return getattr(self.mic, name)

    def blocks(self):
        for block in self.mic.blocks():
            if self.stop.is_set():
                return
            yield block


def serve(station: Station, *, sock: socket.socket, token: str | None, mic, listener,
          on_ready=None) -> None:
    """Run the page server in this thread and the listener in another, until Ctrl-C/SIGTERM.

    ``mic`` must be open; ``listener`` is a Listener reading ``StoppableMic(mic)``; its log is
    opened in its own thread, in ``station.root``.
    """
    import uvicorn

    from .http_deadline import uvicorn_config
    from .inspections import InspectionLog
    from .marks import MarkBook
    from .webapp import make_app

    marks = MarkBook(station.root)
    app = make_app(station, marks, token=token, address=sock.getsockname()[:2])
    errors: list[BaseException] = []

    def listen() -> None:
        try:
            with InspectionLog(station.root, create=True) as log:
                listener.log = log
                listener.run()
        except Exception as e:  # noqa: BLE001 - the device failed, or a bug: stop and report
            # a listener that died while the page kept answering judged no more taps, and
            # Ctrl-C then said "no taps judged", exit 0 (an OSError of a thousand slow clients)
            errors.append(e)
            station.events.close()
            server.should_exit = True

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            station.events.close()  # SSE streams end by themselves, not by cancellation
            super().handle_exit(sig, frame)

    config = uvicorn_config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    server = Server(config)
    thread = threading.Thread(target=listen, name="listener", daemon=True)
    _raise_open_files_limit()
    listener.warm_up()
    mic.wait_ready()
    thread.start()
    if on_ready is not None:
        on_ready()
    try:
        # uvicorn re-raises the signal that stopped it: SIGTERM then ends like Ctrl-C, through
        # the finally below, instead of killing the process before the last tap is saved
        with terminate_as_interrupt():
            server.run(sockets=[sock])
    finally:
        listener.mic.stop.set()
        thread.join(timeout=10)  # the tap being saved is finished first
        station.close()
        marks.close()
    if errors:
        raise errors[0]
    if thread.is_alive():
        raise DeviceError("the listener did not stop within 10 s",
                          fix="check the audio device")


def _raise_open_files_limit() -> None:
    """Open files up to the hard limit: each page, and each half-sent request, holds one, and
    at the usual soft limit of 1024 a thousand slow clients left no descriptor for a tap's clip
    (what the hard limit allows is the system's to set)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: keep the limit
        pass
