"""What a model file holds enrolled, read without changing it.

Each enrolment (:mod:`tapcheck.enroll`) keeps its clips' paths as given and their content
digests, so a recording enrolled under any name is known by its bytes: ``evaluate`` leaves
enrolled takes out of its rates and counts their boards as known, and ``enroll`` refuses a clip
enrolled before. Enrolments from before digests (2026-12-02) are matched by path.
"""

from __future__ import annotations

import os
from typing import Any, Collection, Sequence

import numpy as np

from .modelfile import enrolled_digests
from .paths import model_command


def fingerprint(path: str | os.PathLike) -> str:
    """A clip's content digest (:func:`tapcheck.copies.content_digest`), fifos refused."""
    from .errors import AudioError
    from .file_kinds import refuse_special
    from .copies import content_digest

    refuse_special(path, AudioError, fix="name a recording")  # reading a fifo would block
    return content_digest(path)


def undo_advice(model: str | os.PathLike, *, index: int, count: int,
                holding: Collection[int] = (), flagged: Collection[int] = ()) -> str:
    """How to take back enrolment ``index`` (0-based) of the ``count`` in a model file, and the
    later enrolments in ``holding`` (0-based; they hold the same clips or boards): ``--undo``
    removes the last one only, and advice to run it once took back another enrolment (a good
    board's) than the one it named. Only later enrolments outside ``holding`` are to be enrolled
    again: advice to enrol again "the 1 later enrolment" enrolled a defect take again when that
    one held some too (QA). Nor are those in ``flagged`` (0-based; taken back for another
    reason, e.g. another defective board's taps: evaluate's line for board 56 said to enrol
    board 52's again, the line above it a defective board too; QA)."""
    undo = f"`{model_command(model, 'enroll', '--undo')}`"
    later = count - 1 - index
    if later == 0:
        return undo
    held = sorted({index, *holding})
    again = [i for i in range(index + 1, count) if i not in held]
    left_out = [i for i in again if i in flagged]
    again = [i for i in again if i not in flagged]
    where = (f"it is enrolment {index + 1} of {count}" if len(held) == 1 else
             f"they are in enrolments {', '.join(str(i + 1) for i in held[:-1])} and "
             f"{held[-1] + 1} of {count}")
    advice = (f"{where} (`{model_command(model, 'enroll', '--list')}`), and {undo} takes back "
              f"the last one only: run it {later + 1} times")
    if left_out:  # why these are not to be enrolled again (review)
        several = len(left_out) > 1
        advice += (f" (enrolment{'s' if several else ''} "
                   f"{', '.join(str(i + 1) for i in left_out)} hold{'' if several else 's'} "
                   f"another defective board's takes: do not enrol {'them' if several else 'it'} "
                   "again)")
    if not again:
        return advice
    which = ("" if len(held) == 1 and not left_out else
             f" that hold{'s' if len(again) == 1 else ''} none of them "
             f"({', '.join(str(i + 1) for i in again)})")
    return (f"{advice}, then enrol the clips of the {len(again)} later "
            f"enrolment{'s' if len(again) > 1 else ''}{which} again, each with its own --board")


def those(holding: Collection[int]) -> str:
    """The enrolments :func:`undo_advice` takes back, named as a sentence names them."""
    return "those enrolments" if len(set(holding)) > 1 else "that enrolment"


def enrolment_of(entries: Sequence[dict[str, Any]], path: str | os.PathLike,
                 digest: str | None) -> int | None:
    """The index of the first enrolment that holds the recording at ``path`` (by its content
    ``digest``; enrolments from before digests by path), or None."""
    for index, entry in enumerate(entries):
        if "digests" in entry:
            if digest is not None and digest in entry["digests"]:
                return index
        elif os.path.abspath(path) in {os.path.abspath(c) for c in entry["clips"]}:
            return index
    return None


def enrolled_takes(checkpoint: dict[str, Any], dataset, *,
                   prints: dict[str, str | None] | None = None) -> list:
    """The takes of ``dataset`` (any split) that are recordings enrolled into the model: their
    boards are the dataset's boards the model holds references of, whatever number ``--board``
    gave the enrolment.

    A board number names a board only within one dataset: ``enroll --board 13`` of a clip from
    elsewhere (another lot, a resampled copy) says nothing about the demo's board 13, and
    counting that board known by its number put its false alarms under the rate the model
    states for boards it holds. The stored paths cannot tell either (typed relative to a folder
    nobody recorded), but each enrolment keeps its clips' content digests: a take with those
    bytes is an enrolled recording, under any name. Enrolments from before digests are matched
    by path.

    Parameters
    ----------
    dataset : Dataset
    prints : dict, optional
        Content digests (:func:`fingerprint`) already read, by take path (None: no file).
    """
    from .copies import content_digest

    entries = checkpoint.get("enrolled", [])
    enrolled = enrolled_digests(checkpoint, "digests")
    old = {os.path.abspath(c) for e in entries if "digests" not in e for c in e["clips"]}
    if not enrolled and not old:
        return []
    prints = prints or {}
    found = []
    for take in dataset.takes:
        path = dataset.path_of(take)
        if not os.path.isfile(path):  # missing takes are reported by the caller's own checks
            continue
        if os.path.abspath(path) in old:
            found.append(take)
        elif enrolled and (prints.get(take.path) or content_digest(path)) in enrolled:
            found.append(take)
    return found


def enrolled_mask(checkpoint: dict[str, Any], paths: Sequence[str | os.PathLike], *,
                  prints: Sequence[str | None] | None = None) -> np.ndarray:
    """True for each of ``paths`` that is an enrolled recording (by its bytes; enrolments from
    before fingerprints by path), shape (n,): the model's own references, which score near 0.
    A path that is not a regular file is not enrolled here: the caller's own checks report it.
    ``prints``: the paths' :func:`fingerprint` if the caller has them (None: no file)."""
    entries = checkpoint.get("enrolled", [])
    enrolled = enrolled_digests(checkpoint, "digests")
    old = {os.path.abspath(c) for e in entries if "digests" not in e for c in e["clips"]}
    if not enrolled and not old:
        return np.zeros(len(paths), dtype=bool)
    if prints is None:
        prints = [fingerprint(p) if enrolled and os.path.isfile(p) else None for p in paths]
    return np.array([os.path.isfile(p) and (os.path.abspath(p) in old or d in enrolled)
                     for p, d in zip(paths, prints, strict=True)], dtype=bool)


def enrolled_summary(checkpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's enrolments, oldest first, without the stored previous states."""
    return [{k: v for k, v in e.items() if k != "previous_detector"}
            for e in checkpoint.get("enrolled", [])]
