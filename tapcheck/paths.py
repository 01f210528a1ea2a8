"""Where tapcheck keeps things: the one place the ``TAPCHECK_*`` folders are resolved.

Each folder is relative to the working directory unless its environment variable says otherwise:

============================  ==========================  ========================================
folder                        default                     environment variable
============================  ==========================  ========================================
datasets                      ``./recordings``            ``TAPCHECK_RECORDINGS``
model files                   ``./models``                ``TAPCHECK_MODELS``
inspection log and its clips  ``./inspections``           ``TAPCHECK_INSPECTIONS``
feature cache                 ``~/.cache/tapcheck``       ``TAPCHECK_CACHE``
============================  ==========================  ========================================

A leading ``~`` in a variable is the home folder, as a shell expands it unquoted: quoted, in a
systemd unit's ``Environment=`` or a ``.env`` file, it reached tapcheck literally and made a
folder named ``~`` in the working directory.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .config import TrainConfig

#: the model ``train``, ``judge`` and ``listen`` use when none is named (the study's best)
DEFAULT_MODEL = TrainConfig().model


def _folder(variable: str, default: str | os.PathLike) -> Path:
    """``$variable`` (a leading ``~`` expanded), or ``default`` when unset or empty."""
    value = os.environ.get(variable)
    if not value:
        return Path(default)
    try:
        return Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser/rec": no such user's home (a traceback; review)
        from .errors import ParameterError

        raise ParameterError(f"${variable} is {value}, whose ~ names no home folder here",
                             fix=f"set {variable} to a folder's path") from None


def recordings_home() -> Path:
    """Folder that holds the datasets: ``$TAPCHECK_RECORDINGS`` or ``./recordings``."""
    return _folder("TAPCHECK_RECORDINGS", "recordings")


def models_home() -> Path:
    """Folder of model files: ``$TAPCHECK_MODELS`` or ``./models``."""
    return _folder("TAPCHECK_MODELS", "models")


def inspections_home() -> Path:
    """Folder of the inspection log and clips: ``$TAPCHECK_INSPECTIONS`` or ``./inspections``."""
    return _folder("TAPCHECK_INSPECTIONS", "inspections")


def check_folder(path: Path, what: str, variable: str) -> Path:
    """``path``, one of the folders above, unless it is a file (or another non-folder).

    A file there was read as an empty folder ("no inspections in afile/inspections.sqlite",
    exit 0), or advice was given that then failed with "Not a directory".

    Raises
    ------
    StorageError
        ``path`` exists and is not a folder.
    """
    from .errors import StorageError

    if path.exists() and not path.is_dir():
        raise StorageError(f"is a file, not a folder; {what} are kept in a folder", path=path,
                           fix=f"set ${variable} to a folder, or move the file aside")
    return path


def home_folder() -> Path | None:
    """The user's home folder, or None where none is known: no ``$HOME`` and no user entry for
    this process's uid (a container run under an arbitrary uid), where ``Path.home`` raises
    "Could not determine home directory" (a traceback from synth, train and doctor; review)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return None


#: the default feature cache, unexpanded, where no home folder is known: it is not written
#: (:func:`cache_problem` says why and the commands compute the crops each time)
UNKNOWN_HOME_CACHE = Path("~") / ".cache" / "tapcheck"


def cache_home() -> Path:
    """Feature cache: ``$TAPCHECK_CACHE`` or ``~/.cache/tapcheck``."""
    home = home_folder()
    return _folder("TAPCHECK_CACHE",
                   home / ".cache" / "tapcheck" if home is not None else UNKNOWN_HOME_CACHE)


def cache_problem(root: str | os.PathLike | None = None) -> str | None:
    """Why the cache folder ``root`` (default :func:`cache_home`) must not be written, or None.

    Not in a home folder that does not exist (``HOME=/nonexistent``: it was made, as
    ``mkdir -p``), and not in a dataset's folder or anywhere in the recordings folder (a
    ``TAPCHECK_CACHE`` there put a tree of ``.npy`` files among the takes, where the inspection
    log is refused).
    """
    from .dataset_folders import dataset_holding

    root = Path(root) if root is not None else cache_home()
    home = home_folder()
    if home is None:
        if root == UNKNOWN_HOME_CACHE:
            return ("is the default in the home folder, and no home folder is known here (no "
                    "$HOME, no user entry for this user)")
        home = Path("/nonexistent")  # nothing lies in it
    if not home.is_dir() and Path(os.path.abspath(root)).is_relative_to(home):
        return f"lies in the home folder {home}, which does not exist (tapcheck does not make it)"
    dataset = dataset_holding(root)
    if dataset is not None:
        return f"lies in dataset {dataset}, among its takes"
    recordings = recordings_home().resolve()
    if root.resolve() == recordings:
        return "is the recordings folder, which holds the datasets"
    if root.resolve().is_relative_to(recordings):  # `tapcheck datasets` would list it as one
        return "lies in the recordings folder, where every folder is a dataset"
    return None


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where ``tapcheck train --model NAME`` saves by default: ``models/NAME.pt``; the file every
    command reads or writes when no model file is named.

    Raises
    ------
    StorageError
        The models folder (``$TAPCHECK_MODELS``) is a file: judge said
        ``afile/arcface-resnet18.pt: model file not found — train one``, and train then failed.
    """
    return check_folder(models_home(), "model files", "TAPCHECK_MODELS") / f"{name}.pt"


def model_command(model: str | os.PathLike | None, command: str, args: str = "") -> str:
    """Advice to run as written about the model file ``model``: ``tapcheck COMMAND ARGS``, with
    ``--model MODEL`` after the command unless ``model`` is the default file (:func:`model_path`,
    which the command finds alone) or None (meaning that file).

    Advice such as "`tapcheck enroll --undo` takes the last back", printed after an enrolment
    into ``models/enr.pt``, undid nothing when run as written: it opened the default model file.

    Parameters
    ----------
    model : str or PathLike, optional
        The model file the advice is about, as the user named it.
    command : str
        The subcommand, e.g. ``"enroll"``.
    args : str
        What follows, e.g. ``"--undo"``; already quoted for a shell.

    Returns
    -------
    str
        E.g. ``"tapcheck enroll --model models/enr.pt --undo"``.
    """
    # only compared, never opened: advice about a model named by path must not fail because
    # the default folder is unusable
    default = models_home() / f"{DEFAULT_MODEL}.pt"
    named = model is not None and (os.path.abspath(model) != os.path.abspath(default))
    return " ".join(["tapcheck", command]
                    + (["--model", shlex.quote(os.fspath(model))] if named else [])
                    + ([args] if args else []))
