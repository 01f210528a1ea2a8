"""``compare --ray``: a grid's cells as Ray tasks, on a local Ray instance or a cluster.

Ray is an optional extra (``pip install "tapcheck[cluster]"``). The driver — the process running
``tapcheck compare`` — computes every take's crops once, puts them into Ray's object store once
(``ray.put``), and submits one task per cell that still has to run. A task is
:func:`tapcheck.grid.run_cell`: it gets the crops from the object store (one copy per machine,
shared by its workers), trains, scores and returns its metrics and, for the plotted cell, the
model file's bytes. The driver writes each cell file as its result arrives, so a grid killed
half-way on a cluster resumes like a serial one. Workers read no dataset file and write nothing:
they need tapcheck (the same version) and its dependencies, nothing else.

Each task reserves ``cpus_per_cell`` CPUs and trains on as many torch threads, so Ray never puts
more cells on a machine than it has cores and no cell's threads fight another's.

Ray 2.60 clusters may want a token: ``ray start --head`` turns token authentication on when
``~/.ray/auth_token`` exists (any local ``ray.init()`` writes that file), while a driver given an
explicit address sends a token only with ``RAY_AUTH_MODE=token``. Ray retries a refused driver
for 20 s and then reports a failed connection; :func:`_connect` says what happened instead.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Callable, Iterator

from .errors import ClusterError

# a wheel's user has no checkout to give -e "." (QA)
FIX = ('install the cluster extra: pip install "tapcheck[cluster]" (in a checkout: pip install '
       '-e ".[cluster]")')
START = ("start it with `ray start --head` and pass the address it prints, or leave the address "
         "out for a local Ray instance")
TOKEN = ("run tapcheck with RAY_AUTH_MODE=token and the cluster's token: in RAY_AUTH_TOKEN, or in "
         "~/.ray/auth_token (on the head's machine `ray start --head` used that file)")


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray, which is not installed", fix=FIX) from None
    return ray


def _worker_env() -> dict[str, str]:
    """What a worker must see of the driver's environment: where tapcheck is imported from
    (a source checkout on PYTHONPATH) and its thread settings."""
    return {k: os.environ[k] for k in ("PYTHONPATH", "TAPCHECK_DEBUG") if k in os.environ}


def _check_reachable(address: str) -> None:
    """Fail in seconds when nothing listens at ``host:port``: ray.init would retry for minutes.
    An address of no form Ray takes is one line: "a:b:c" or "host:notaport" was a traceback
    (ValueError: Invalid address format)."""
    if address == "auto":
        return
    if address.startswith("ray://"):  # a traceback: "Ray Client requires pip package ray[client]"
        raise ClusterError(f"--ray address '{address}' is a Ray Client address, which compare "
                           "does not use: it joins the cluster as a driver on one of its "
                           "machines", fix=("pass the address `ray start --head` printed (e.g. "
                                            "127.0.0.1:6379), or auto, from a cluster machine"))
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or ":" in host.strip("[]") and not host.startswith("["):
        raise ClusterError(f"--ray address '{address}' is not host:port", fix=(
            "pass the address `ray start --head` printed (e.g. 127.0.0.1:6379), auto, or "
            "leave it out for a local Ray instance"))
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})",
                           fix=START) from None


def _token_refused(error: BaseException | None) -> bool:
    """Whether a failed ``ray.init`` was the cluster refusing a missing or wrong token.

    Ray 2.60 reports it as a ConnectionError caused by a RuntimeError that quotes the last
    gRPC error ("InvalidAuthToken") as text, after 20 one-second retries."""
    while error is not None:
        if "InvalidAuthToken" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _connect(ray, address: str | None, *, object_bytes: int) -> None:
    env = {"env_vars": _worker_env()}
    if address:
        _check_reachable(address)
    # ray.init puts its own SIGTERM handler over tapcheck's (kill = Ctrl-C): `kill` then ended
    # compare --ray with a stack dump and exit 1, not "interrupted" and 130 (QA). Put back after
    term = signal.getsignal(signal.SIGTERM)
    try:
        _init(ray, address, env=env, object_bytes=object_bytes)
    finally:
        if callable(term) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, term)


def _init(ray, address: str | None, *, env: dict, object_bytes: int) -> None:
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False,
                     logging_level="ERROR")
        else:
            # a local instance sized for the crops, not Ray's default of 30 % of the memory
            ray.init(runtime_env=env, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR",
                     object_store_memory=max(100 * 2**20, 3 * object_bytes))
    except ray.exceptions.AuthenticationError as e:
        # RAY_AUTH_MODE=token, but this machine has no token
        raise ClusterError(f"the Ray cluster at {address or 'local'} wants a token this driver "
                           f"does not have ({str(e.message).split('. ')[0]})", fix=TOKEN) from None
    except ConnectionError as e:
        if _token_refused(e):
            # Ray sends no token to an explicit address unless RAY_AUTH_MODE=token: a head started
            # with token authentication (the default once ~/.ray/auth_token exists) refuses us
            raise ClusterError(f"the Ray cluster at {address} refused this driver: it uses token "
                               "authentication and the token was missing or wrong",
                               fix=TOKEN) from None
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({e})",
                           fix=START) from None


def ray_runner(*, address: str | None, cpus_per_cell: int = 1) -> Callable[..., Iterator]:
    """A runner for :func:`tapcheck.grid.run_grid` that runs the cells as Ray tasks.

    Results are yielded as the tasks finish (not in submission order); Ray is shut down when
    the runner is done, interrupted or fails.
    """
    ray = require_ray()

    def run(tasks: list, crops: dict, *, log: Callable[[str], None] = print) -> Iterator:
        if not tasks:
            return
        from .grid import run_cell

        _connect(ray, address, object_bytes=sum(c.nbytes for c in crops.values()))
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if cpus_per_cell > cpus:  # no cell could ever start: it waited forever (QA)
                raise ClusterError(
                    f"--cpus-per-cell {cpus_per_cell} is more than the {cpus} CPUs of the Ray "
                    f"cluster at {address or 'local'}: no cell could ever start",
                    fix=f"use --cpus-per-cell {max(cpus, 1)} or fewer, or add machines")
            cell = ray.remote(num_cpus=cpus_per_cell, max_retries=0)(run_cell)
            shared = ray.put(crops)  # once: every task reads the same object-store copy
            pending = {cell.remote(task, shared, threads=cpus_per_cell): task for task in tasks}
            log(f"{len(tasks)} cell{'s' * (len(tasks) != 1)} submitted to Ray "
                f"({address or 'local'}, {cpus} CPUs, {cpus_per_cell} per cell)")
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayTaskError as e:
                    # a TapcheckError in a cell reads as it would have serially
                    raise e.as_instanceof_cause() from None
                yield task, result
        finally:
            ray.shutdown()

    return run
