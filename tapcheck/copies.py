"""One recording twice, told by its bytes (or by its crops' samples): a clip given twice to
``import``, ``enroll`` or ``judge --per-board``, or a take listed twice in a dataset's manifest.

A copy would count twice in a rate, a board's verdict or the reference: those commands refuse a
clip given twice (``judge`` without board verdicts judges it twice and explains it once),
training and ``evaluate`` refuse a manifest's copy, ``doctor`` lists every copy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Hashable, Iterator, Sequence, TypeVar

from .errors import DatasetError
from .manifest import MANIFEST

if TYPE_CHECKING:
    from .datasets import Dataset, Take

T = TypeVar("T")


def content_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes, hex: the same recording under any name. A content key, not a
    seal (twice as fast as BLAKE2 on a 3 s take). The caller refuses fifos first
    (:func:`tapcheck.file_kinds.refuse_special`): reading one would block forever."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def repeats(items: Sequence[T], digests: Sequence[Hashable | None]) -> Iterator[tuple[T, T]]:
    """(item, the first item with its digest) for each item whose digest an earlier one has;
    ``None`` digests (files that could not be read) repeat nothing."""
    first: dict[Hashable, T] = {}
    for item, digest in zip(items, digests, strict=True):
        if digest is None:
            continue
        if digest in first:
            yield item, first[digest]
        else:
            first[digest] = item


def first_repeat(paths: Sequence[str | os.PathLike], digests: Sequence[str | None]
                 ) -> tuple[str, str] | None:
    """(a path, the earlier path) of the first recording given twice by content, else None."""
    return next(repeats([os.fspath(p) for p in paths], digests), None)


def repeat_problem(path: str | os.PathLike, earlier: str | os.PathLike) -> str:
    """How :func:`first_repeat`'s find reads: one file named twice, or a copy of another."""
    if os.path.realpath(path) == os.path.realpath(earlier):
        return "is given twice"
    return f"is the same recording as {os.fspath(earlier)}"


def take_digests(dataset: Dataset, takes: list[Take]) -> list[str | None]:
    """Content digests of the takes' files (:func:`content_digest`: the same recording under
    any name); None for a file that is missing, not regular or linked from outside the dataset,
    which is not read: the callers' own checks name it."""
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
    would count twice in a rate, a verdict or the reference (``import``, ``enroll`` and
    ``judge --per-board`` refuse a clip given twice)."""
    return list(repeats(takes, digests))


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
