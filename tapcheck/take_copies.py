"""One recording listed twice in a dataset's manifest, told by its bytes.

A copy of a take under another row (another name, board or split) would count twice in a rate,
a verdict or the reference: training and ``evaluate`` refuse it, ``doctor`` lists every copy.
"""

from __future__ import annotations

import os

from .datasets import Dataset, Take
from .errors import DatasetError
from .manifest import MANIFEST


def take_digests(dataset: Dataset, takes: list[Take]) -> list[str | None]:
    """Content digests of the takes' files (:func:`tapcheck.files.content_digest`: the same
    recording under any name); None for a file that is missing, not regular or linked from
    outside the dataset, which is not read: the callers' own checks name it."""
    from .files import content_digest

    digests: list[str | None] = []
    for take in takes:
        try:
            path = dataset.path_of(take)  # a link out of the dataset is never read
            digests.append(content_digest(path) if os.path.isfile(path) else None)
        except (DatasetError, OSError):
            digests.append(None)
    return digests


def copied_takes(takes: list[Take], digests: list[str | None]) -> list[tuple[Take, Take]]:
    """(copy, first) of each take whose file holds the same bytes (``digests``, from
    :func:`take_digests`) as an earlier one of ``takes``: one recording under two rows, which
    would count twice in a rate, a verdict or the reference (``judge``, ``import`` and
    ``enroll`` refuse a clip given twice)."""
    first: dict[str, Take] = {}
    copies = []
    for take, digest in zip(takes, digests, strict=True):
        if digest is None:
            continue
        if digest in first:
            copies.append((take, first[digest]))
        else:
            first[digest] = take
    return copies


def refuse_copies(dataset: Dataset, takes: list[Take], *, split: str,
                  digests: list[str | None] | None = None, same: str = "bytes") -> None:
    """Raise a :class:`DatasetError` naming the first copy among ``takes`` and their count;
    ``digests``: :func:`take_digests` of ``takes`` if the caller has them, or the digests of
    their crops (:func:`tapcheck.features.crop_digest`) with ``same="samples"``: a FLAC of a
    WAV has other bytes and the same samples."""
    copies = copied_takes(takes, take_digests(dataset, takes) if digests is None else digests)
    if copies:
        copy, original = copies[0]
        more = f" (and {len(copies) - 1} more)" if len(copies) > 1 else ""
        raise DatasetError(
            f"lists one recording twice among the {split} takes: {copy.path} holds the same "
            f"{same} as {original.path}{more}; it would count twice",
            path=dataset.root / MANIFEST,
            fix="delete the copy's row" + (" (tapcheck doctor lists every copy)"
                                          if same == "bytes" else ""))
