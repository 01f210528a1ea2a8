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


#: the same tap resampled or requantised lies far nearer its original in the model's space than
#: any other tap does (scripts/near_copies.py, copies of 24 takes at 48 and 22.05 kHz and as
#: 16-bit WAV): the demo's arcface-resnet18 put them 0-8e-6 (cosine) from their takes, the
#: nearest two distinct takes 0.0104 apart, and its reference's spacing (median distance to the
#: nearest other reference) was 0.012; an arcface-lite of 4 epochs on a small set, 0-2e-6,
#: 3.7e-4 and 4.9e-4. A twentieth of the spacing keeps over ten times from either. Lossy copies
#: (OGG Vorbis: 0.0027 and 1.2e-4, as far as taps of a board lie) are not told
COPY_SPACING = 0.05


def embedding_copies(detector, emb) -> list[tuple[int, str, int, float, float]]:
    """Clips that are a reference's tap, or an earlier clip's, again: the same tap resampled or
    re-encoded has other bytes and other crops, so neither digest tells it (:data:`COPY_SPACING`).

    Parameters
    ----------
    detector : KNNDetector
        Fitted; its reference and metric.
    emb : np.ndarray, shape (n, D)
        The clips' rows as the detector scores them.

    Returns
    -------
    list of (clip, "reference" or "clip", row or earlier clip, distance, spacing)
        One per clip found, in the clips' order, with the reference's median spacing
        (:meth:`~tapcheck.detectors.KNNDetector.reference_spacing`); nothing when that is 0 or
        unknown (a model whose taps all embed alike tells no copy from a sibling).
    """
    import numpy as np

    spacing = detector.reference_spacing()
    if not spacing > 0:
        return []
    limit = COPY_SPACING * spacing
    distance, row = detector.nearest_reference(emb)
    mutual = detector.mutual_distances(emb)
    found = []
    for i in range(len(emb)):
        earlier = mutual[i, :i]
        if len(earlier) and earlier.min() < limit:
            j = int(np.argmin(earlier))
            found.append((i, "clip", j, float(earlier[j]), spacing))
        elif distance[i] < limit:
            found.append((i, "reference", int(row[i]), float(distance[i]), spacing))
    return found


def left_out_copies(detector, emb, takes: list[Take], *, manifest: str | os.PathLike):
    """Which test ``takes`` (rows ``emb``, as the detector scores them) are a reference's tap
    again, resampled or re-encoded (:func:`embedding_copies`): scored against itself, such a
    take reads near 0 and lowers the rates. Warns of them once; refuses two test takes of one
    tap (they would count twice, as :func:`refuse_copies` refuses the same bytes or samples).

    Returns
    -------
    np.ndarray of bool, shape (n_takes,)
        True for the takes to leave out; all False for a scorer without references.
    """
    import warnings

    import numpy as np

    from .detectors import KNNDetector
    from .errors import TapcheckWarning

    out = np.zeros(len(takes), dtype=bool)
    if not isinstance(detector, KNNDetector) or not len(takes):
        return out
    found = embedding_copies(detector, emb)
    twice = [f for f in found if f[1] == "clip"]
    if twice:
        i, _, j, distance, spacing = twice[0]
        more = f" (and {len(twice) - 1} more)" if len(twice) > 1 else ""
        raise DatasetError(
            f"lists one tap twice among the test takes: {takes[i].path} is {takes[j].path} "
            f"resampled or re-encoded (their embeddings lie {distance:.2g} apart, where distinct "
            f"taps lie {spacing:.2g} apart typically){more}; it would count twice",
            path=manifest, fix="delete the copy's row")
    for i, *_ in found:
        out[i] = True
    if found:
        i, _, _, distance, spacing = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        warnings.warn(
            f"{os.fspath(manifest)}: test take {takes[i].path}{more} is the same tap as one "
            "the model holds (trained, calibrated or enrolled on), resampled or re-encoded: "
            f"its embedding lies {distance:.2g} from that tap's, where distinct taps lie "
            f"{spacing:.2g} apart typically; left out, as its score would be against itself",
            TapcheckWarning, stacklevel=3)
    return out
