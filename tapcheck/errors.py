"""Errors a user can cause, and how they read.

Every problem tapcheck can blame on its input derives from :class:`TapcheckError`. The CLI turns
them into one line, ``tapcheck: error: <file>: <problem> — <fix>``, and exit status 2, in one place
(:func:`tapcheck.cli.main`). An error about many files at once (a training split with three broken
takes) carries one such line per file in :attr:`TapcheckError.details`, printed before its own.
Programming errors stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

import os
from typing import Sequence


class TapcheckError(Exception):
    """Base of every error caused by input: a file, a setting, a device, a dataset.

    Parameters
    ----------
    problem : str
        What is wrong, in a few words.
    path : str or os.PathLike, optional
        The file or folder the problem is in; named first in the message.
    fix : str, optional
        What the user can do about it.
    details : sequence of str, optional
        One line per file when the error sums up several (each naming its file, problem, fix).
    """

    exit_code = 2

    def __init__(self, problem: str, *, path: str | os.PathLike | None = None,
                 fix: str | None = None, details: Sequence[str] = ()):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.fix = fix
        self.details = tuple(details)
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.problem if self.path is None else f"{self.path}: {self.problem}"
        return text if not self.fix else f"{text} — {self.fix}"


class ParameterError(TapcheckError, ValueError):
    """A setting or argument has a value tapcheck cannot use."""


class ConfigError(ParameterError):
    """A configuration file is malformed or has keys tapcheck does not know."""


class AudioError(TapcheckError):
    """An audio file cannot be read, or holds something that is not a usable tap."""


class NoStrikeError(AudioError):
    """No strike stands out of the noise floor in the clip."""


class DatasetError(TapcheckError):
    """A dataset folder or its manifest is missing, inconsistent or unusable."""


class ModelFileError(TapcheckError):
    """A model file is missing, not a tapcheck model, or made for other settings."""


class DeviceError(TapcheckError):
    """No audio I/O: PortAudio missing, no input device, or the device failed."""


class StorageError(TapcheckError):
    """A file cannot be written: no permission, a read-only or full disk."""


class InspectionLogError(TapcheckError):
    """The inspection log (SQLite) cannot be opened, read or written."""


class ClusterError(TapcheckError):
    """``compare --ray``: Ray is not installed, or the cluster cannot be reached."""


#: what a warning about a clip's sound (clipped, padded, a second knock, 8-bit) says of its
#: verdict; import says it otherwise of a take (:func:`tapcheck.importing._as_take`)
VERDICT_OFF = "the verdict may be off"


class TapcheckWarning(UserWarning):
    """Something was fixed on the way in (stereo downmixed, resampled); worth telling the user."""


class FormatWarning(TapcheckWarning):
    """A fact of a file's format that tapcheck converted (resampled, channels averaged, 8-bit):
    said alike of every file of a batch, so the command line shows it for a few files and counts
    the rest (:class:`tapcheck.console.RepeatedWarnings`). What a clip's sound holds (another
    knock, clipping) is a plain :class:`TapcheckWarning`, said of every clip."""


class CacheWarning(TapcheckWarning):
    """The feature cache cannot be used (computing goes on): about the run, not a file, so said
    even where files' warnings are not (reading an explanation's references)."""


def debug_asked() -> bool:
    """``$TAPCHECK_DEBUG`` set to anything but empty, 0, false, no or off (``=0`` turned
    tracebacks on); ``--debug`` sets it, so that what a command does below the command line
    (PortAudio's own lines, :mod:`tapcheck.devices`) is shown as its tracebacks are."""
    return os.environ.get("TAPCHECK_DEBUG", "").strip().lower() not in ("", "0", "false", "no",
                                                                         "off")
