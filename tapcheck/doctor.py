"""``tapcheck doctor``: is this machine ready, and is a dataset fit to train on?

Each check returns :class:`Finding` s — ``ok``, a ``note`` worth knowing, or a ``problem`` that
needs fixing — each one line with the fix. The checks are registries (:data:`INSTALLATION_CHECKS`,
:data:`tapcheck.datasetcheck.DATASET_CHECKS`): a new check is one function added to a list.

Installation: versions; PortAudio (``sounddevice`` imported here, lazily, so a machine without it
still runs every other command) and input devices; torch's threads and device; bfloat16 support;
whether the recordings, models, inspections and cache folders can be written; the
inspection log. The dataset's checks are :mod:`tapcheck.datasetcheck`'s.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import TapcheckError

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    level: str  # OK, NOTE or PROBLEM
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        tag = self.level.upper() if self.level == PROBLEM else self.level
        text = f"{tag:<8} {self.message}"
        return f"{text} — {self.fix}" if self.fix else text


# -- installation --------------------------------------------------------------------------------

def check_versions() -> list[Finding]:
    import soundfile
    import torch

    from . import __version__

    return [Finding(OK, f"tapcheck {__version__}, Python {platform.python_version()}, torch "
                        f"{torch.__version__}, libsndfile {soundfile.__libsndfile_version__}")]


#: the commands that need PortAudio and a microphone (the others work without them)
_LIVE = "`tapcheck record`, `listen` and `station`"


def check_audio_devices() -> list[Finding]:
    """PortAudio present, and at least one input device (``record`` needs both).

    Asks :mod:`tapcheck.devices`, as record and listen do, so doctor's advice is theirs. Either
    missing is a note, not a problem: every other command works without them, and a user who
    only imports and judges recordings was told "1 problem(s) to fix", exit 1.
    """
    from .devices import NO_INPUT_FIX, input_devices, sounddevice
    from .errors import DeviceError

    try:
        sd = sounddevice()
    except DeviceError as e:
        return [Finding(NOTE, f"{e.problem}; {_LIVE} need it", fix=e.fix)]
    findings = [Finding(OK, f"PortAudio: {sd.get_portaudio_version()[1]}")]
    try:
        inputs = input_devices()
    except DeviceError as e:
        return findings + [Finding(PROBLEM, e.problem, fix=e.fix)]
    if not inputs:
        findings.append(Finding(
            NOTE, f"no input device (microphone) found; {_LIVE} need one", fix=NO_INPUT_FIX))
    else:
        names = ", ".join(d.name for d in inputs[:4]) + (" ..." if len(inputs) > 4 else "")
        findings.append(Finding(OK, f"{len(inputs)} input device(s): {names}"))
    return findings


def check_compute() -> list[Finding]:
    """Threads, device and bfloat16: what training will run on."""
    from .runtime import configure_threads, cpu_has_bf16, pick_device

    threads = configure_threads()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = pick_device()
    findings = [Finding(OK, f"torch computes on {device.type} with {threads} thread(s); "
                            f"{cpus} CPU(s) available")]
    if threads < (cpus or 1):
        # e.g. OMP_NUM_THREADS=1 left in the environment by another tool
        findings[0] = Finding(
            NOTE, f"torch uses {threads} of {cpus} CPUs, so training is slower than it could be "
                  f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})",
            fix="unset OMP_NUM_THREADS to train on every core")
    if device.type == "cpu":
        if cpu_has_bf16():
            findings.append(Finding(OK, "bfloat16: native on this CPU (AVX-512 BF16 or AMX); "
                                        "training uses bfloat16 autocast"))
        else:
            findings.append(Finding(NOTE, "bfloat16: not native on this CPU, so training runs "
                                          "in float32 (slower; a model trained here differs "
                                          "slightly from one trained on a bfloat16 CPU)"))
    return findings


def check_folders() -> list[Finding]:
    """Recordings, models and the feature cache must take new files."""
    from functools import partial

    from .files import check_writable
    from .inspections import check_log_folder
    from .errors import StorageError
    from .paths import (cache_home, cache_problem, check_folder, inspections_home, models_home,
                        recordings_home)

    # (folder, its check as the commands check it): a file there is told as they tell it, and
    # a log folder inside a dataset as listen and station refuse it
    folders = {
        "recordings": (recordings_home(), partial(check_folder, what="datasets",
                                                  variable="TAPCHECK_RECORDINGS")),
        "models": (models_home(), partial(check_folder, what="model files",
                                          variable="TAPCHECK_MODELS")),
        "inspections": (inspections_home(), check_log_folder),
        "feature cache": (cache_home(), partial(check_folder, what="cached features",
                                                variable="TAPCHECK_CACHE"))}
    findings, fine = [], []
    for what, (folder, check) in folders.items():
        try:
            check(folder)
            problem = cache_problem(folder) if what == "feature cache" else None
            if problem:
                raise StorageError(problem, path=folder)
            check_writable(folder, create=False)
            # the full path: "writable: recordings recordings, models models" read as a typo
            fine.append(f"{what} ({Path(folder).absolute()})")
        except TapcheckError as e:
            if what == "feature cache":  # the commands go on without it, with one warning
                where = "" if Path(e.path or folder) == Path(folder) else f" ({e.path})"
                findings.append(Finding(
                    NOTE, f"feature cache folder {folder}: {e.problem}{where}; the commands "
                          "compute the crops each time", fix="set TAPCHECK_CACHE to a folder "
                                                             "you may write to"))
                continue
            findings.append(Finding(PROBLEM, f"{what} folder {e.path}: {e.problem}", fix=e.fix))
    if fine:
        findings.insert(0, Finding(OK, f"writable: {', '.join(fine)}"))
    return findings


def check_inspections() -> list[Finding]:
    """The inspection log ``listen`` and ``station`` keep: of this tapcheck's format, every row
    readable (as ``tapcheck log`` and the station's log page read them); only read."""
    from .inspections import InspectionLog, check_log_folder

    try:
        check_log_folder()
    except TapcheckError:  # check_folders names it; "none yet (listen starts it)" would not hold
        return []
    try:
        with InspectionLog() as log:
            rows = log.query()
    except TapcheckError as e:
        return [Finding(PROBLEM, f"inspection log {e.path}: {e.problem}", fix=e.fix)]
    # the folder may be written, and the log itself not: another operator's log, made 0644
    # by an older tapcheck (SQLite's mode), refused this account's listen (QA)
    theirs = [f for f in (log.path, log.path.with_name(log.path.name + "-wal"),
                          log.path.with_name(log.path.name + "-shm"))
              if f.exists() and not os.access(f, os.R_OK | os.W_OK)]
    if theirs:
        st = theirs[0].stat()
        return [Finding(PROBLEM, f"inspection log {theirs[0].absolute()}: this account may not "
                                 f"write it (user {_owner(st.st_uid)}, mode "
                                 f"{st.st_mode & 0o777:o}), so listen and station would be "
                                 "refused", fix="its owner can make it the group's: chmod g+rw "
                                                "(and chgrp to a group you share)")]
    from .log_room import room_warning

    room = room_warning(log.root)  # a full disk stops a session mid-shift
    notes = [Finding(NOTE, room)] if room else []
    if not rows:
        return [Finding(OK, f"inspection log {log.path.absolute()}: none yet (`tapcheck "
                            "listen` and `station` start it)"), *notes]
    return [Finding(OK, f"inspection log {log.path.absolute()}: {len(rows)} judgment(s), the "
                        f"last {rows[-1].local_time}"), *notes]


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


INSTALLATION_CHECKS: list[Callable[[], list[Finding]]] = [
    check_versions, check_audio_devices, check_compute, check_folders, check_inspections]


def check_installation() -> list[Finding]:
    """Every installation check, in order."""
    return [f for check in INSTALLATION_CHECKS for f in check()]
