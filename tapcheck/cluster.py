"""``compare --ray``: a grid's cells as Ray tasks, on a local Ray instance or a cluster.

Ray is an optional extra (``pip install -e ".[cluster]"``). The driver — the process running
``tapcheck compare`` — computes every take's crops once, puts them into Ray's object store once
(``ray.put``), and submits one task per cell that still has to run. A task is
:func:`tapcheck.grid.run_cell`: it gets the crops from the object store (one copy per machine,
shared by its workers), trains, scores and returns its metrics and, for the plotted cell, the
model file's bytes. The driver writes each cell file as its result arrives, so a grid killed
half-way on a cluster resumes like a serial one. Workers read no dataset file and write nothing:
they need tapcheck (the same version) and its dependencies, nothing else.

Each task reserves ``cpus_per_cell`` CPUs and trains on as many torch threads, so Ray never puts
more cells on a machine than it has cores and no cell's threads fight another's.
"""

from __future__ import annotations

import os
import socket
from typing import Callable, Iterator

from .errors import ClusterError

FIX = 'install the cluster extra: pip install -e ".[cluster]"'
START = ("start it with `ray start --head` and pass the address it prints, or leave the address "
         "out for a local Ray instance")


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
    """Fail in seconds when nothing listens at ``host:port``: ray.init would retry for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a ray:// address: Ray itself says what is wrong
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({e.strerror or e})",
                           fix=START) from None


def _connect(ray, address: str | None, *, object_bytes: int) -> None:
    env = {"env_vars": _worker_env()}
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False,
                     logging_level="ERROR")
        else:
            # a local instance sized for the crops, not Ray's default of 30 % of the memory
            ray.init(runtime_env=env, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR",
                     object_store_memory=max(100 * 2**20, 3 * object_bytes))
    except ConnectionError as e:
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
            cell = ray.remote(num_cpus=cpus_per_cell, max_retries=0)(run_cell)
            shared = ray.put(crops)  # once: every task reads the same object-store copy
            pending = {cell.remote(task, shared, threads=cpus_per_cell): task for task in tasks}
            cpus = int(ray.cluster_resources().get("CPU", 0))
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
