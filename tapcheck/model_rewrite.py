"""Rewriting a model file in place (``enroll`` and its ``--undo``): what is refused before any
work, and never writing over a file another program changed meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelFileError
from .file_kinds import refuse_read_only
from .interrupts import file_identity
from .modelcheck import check_contents
from .modelfile import load_model, save_checkpoint


def check_rewritable(path: Path) -> None:
    """Refuse, before any work, a model file enroll must not rewrite: a missing one (named as
    such, not as its lock file), a link (the rename would put a file in the link's place and
    leave its target unchanged) or a read-only one (protected by its owner; the rename would
    replace it all the same, as renames ignore the file's own permissions).

    Raises
    ------
    ModelFileError
    """
    if os.path.islink(path):
        target = os.path.realpath(path)
        # a loop or a link to nothing has no file to name: "name the file it points to:" named
        # the loop itself, or a path that does not exist (QA)
        fix = (f"name the file it points to: {target}" if os.path.isfile(target) else
               "it leads to no model file (a loop, or a link to nothing); name the model file "
               "itself")
        raise ModelFileError("is a symbolic link; enroll rewrites a model file and does not "
                             "write through links", path=path, fix=fix)
    if not path.exists():
        load_model(path)  # its one line: not found, with the model files beside it
    refuse_read_only(path, ModelFileError, what="enroll", fix="make it writable (chmod u+w) "
                     "if it is meant to change, or enrol into a copy",
                     disk_fix="copy it to a folder you may write to and enrol into the copy "
                              "(--model)")


def refuse_changed(path: Path, seen: tuple[int, ...] | None) -> None:
    """Refuse to write over a model file another program replaced or changed since it was
    read: the lock keeps tapcheck's writers out only, and a model copied over it mid-enrolment
    (with an enrolment of its own) was overwritten by the old one plus these clips."""
    if file_identity(path) != seen:
        raise ModelFileError("was replaced or changed by another program while tapcheck "
                             "rewrote it; it was not written over, nothing was enrolled or "
                             "undone", path=path, fix="run the command again on the file as it "
                                                      "is now")


def write_if_loadable(path: Path, checkpoint: dict[str, Any], seen, *, refused: str) -> None:
    """Write ``checkpoint`` over ``path`` if it would load (:func:`check_contents`) and no other
    program replaced the file since ``seen`` (:func:`refuse_changed`); else raise a
    ModelFileError whose problem is ``refused`` with the check's ``{problem}``."""
    try:
        check_contents(checkpoint, path)
    except ModelFileError as e:
        raise ModelFileError(refused.format(problem=e.problem), path=path,
                             fix="retrain it with `tapcheck train`") from None
    refuse_changed(path, seen)
    save_checkpoint(path, checkpoint)
