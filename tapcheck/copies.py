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
    import numpy as np

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
#: any other tap does. A copy is told by its cosine distance (on unit embeddings, whatever the
#: scorer's metric) to a reference or an earlier clip, under the lesser of COPY_COSINE and
#: COPY_SPACING x the reference's spacing (the median distance from a reference to its nearest
#: other): the first keeps a reference of few, spread taps (4 rows, spacing 0.74) from calling
#: distinct taps copies (review: 60 of 80), the second a network that embeds every tap alike
#: from doing so. scripts/near_copies.py on the demo's 540 takes: the nearest distinct two 1.4e-3
#: apart (29x the limit), copies at 48 and 22.05 kHz and as 16-bit WAV 0-8e-6 (6x under it)
COPY_COSINE = 5e-5
COPY_SPACING = 0.05


def reference_spacing(detector, *, max_rows: int = 500) -> float:
    """The median cosine distance from a reference row to its nearest other: how far apart
    distinct taps lie in the model's space (of up to ``max_rows`` rows, evenly spaced, against
    every row, so a reference of thousands costs 500 rows' distances); nan under 2 rows."""
    import numpy as np

    unit = detector.unit_embeddings()
    n = len(unit)
    if n < 2:
        return float("nan")
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).round().astype(int))
    D = 1.0 - unit[rows] @ unit.T
    D[np.arange(len(rows)), rows] = np.inf  # not itself
    return float(np.median(D.min(axis=1)))


def copy_limit(detector, *, spacing: float | None = None) -> float:
    """The cosine distance under which a clip is a copy of another tap (:data:`COPY_COSINE`,
    :data:`COPY_SPACING`); 0 (nothing a copy) when the spacing is 0 or unknown."""
    spacing = reference_spacing(detector) if spacing is None else spacing
    return min(COPY_COSINE, COPY_SPACING * spacing) if spacing > 0 else 0.0


def copy_reference(detector) -> tuple[float, float, np.ndarray] | None:
    """What a clip is told a copy against, once per model: (:func:`copy_limit`, the
    reference's spacing, its unit rows of shape (n_ref, D)); None where nothing can be told a
    copy (a scorer without references, or a spacing of 0 or unknown)."""
    from .detectors import KNNDetector

    if not isinstance(detector, KNNDetector):
        return None
    spacing = reference_spacing(detector)
    limit = copy_limit(detector, spacing=spacing)
    return (limit, spacing, detector.unit_embeddings()) if limit > 0 else None


def nearest_reference(unit: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's nearest reference row and its cosine distance: shapes (n,) and (n,),
    of ``unit`` (n, D) and ``reference`` (n_ref, D), both of unit length."""
    import numpy as np

    near = 1.0 - unit @ reference.T
    rows = np.argmin(near, axis=1)
    return rows, near[np.arange(len(unit)), rows]


def embedding_copies(detector, emb, *, block: int = 1024
                     ) -> list[tuple[int, str, int, float, float]]:
    """Clips that are a reference's tap, or an earlier clip's, again: the same tap resampled or
    requantised has other bytes and other crops, so neither digest tells it (:func:`copy_limit`).

    Parameters
    ----------
    detector : KNNDetector
        Fitted; its reference.
    emb : np.ndarray, shape (n, D)
        The clips' rows as the detector scores them.
    block : int
        Clips compared with the earlier ones at a time: memory of ``block`` x n, not n x n.

    Returns
    -------
    list of (clip, "reference" or "clip", row or earlier clip, distance, spacing)
        One per clip found, in the clips' order, with the reference's spacing
        (:func:`reference_spacing`); nothing when that is 0 or unknown.
    """
    import numpy as np

    told = copy_reference(detector) if len(emb) else None
    if told is None:
        return []
    limit, spacing, reference = told
    unit = detector.unit_embeddings(emb)
    found = []
    for a in range(0, len(unit), block):
        rows, near = nearest_reference(unit[a:a + block], reference)
        earlier = 1.0 - unit[a:a + block] @ unit[:a + block].T
        # only clips before each one: the first of two is the original
        earlier[np.arange(earlier.shape[0])[:, None] + a <= np.arange(earlier.shape[1])] = np.inf
        for i in range(earlier.shape[0]):
            j = int(np.argmin(earlier[i]))
            if earlier[i, j] < limit:
                found.append((a + i, "clip", j, float(earlier[i, j]), spacing))
            elif near[i] < limit:
                found.append((a + i, "reference", int(rows[i]), float(near[i]), spacing))
    return found


def left_out_copies(detector, emb, takes: list[Take], *, manifest: str | os.PathLike):
    """Which test ``takes`` (rows ``emb``, as the detector scores them) are a reference's tap
    again, resampled or requantised (:func:`embedding_copies`): scored against itself, such a
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
            f"resampled or requantised (their embeddings lie {distance:.2g} apart, where distinct "
            f"taps lie {spacing:.2g} apart typically){more}; it would count twice",
            path=manifest, fix="delete the copy's row")
    for i, *_ in found:
        out[i] = True
    if found:
        i, _, _, distance, spacing = found[0]
        many = len(found) > 1
        more = f" and {len(found) - 1} more" if many else ""
        warnings.warn(
            f"{os.fspath(manifest)}: test take {takes[i].path}{more} "
            f"{'are the same taps as ones' if many else 'is the same tap as one'} the model "
            "holds as references (trained on or enrolled), resampled or requantised: "
            f"{'the first one' if many else 'its'} embedding lies {distance:.2g} from that "
            f"tap's, where distinct taps lie {spacing:.2g} apart typically; left out, as "
            f"{'their scores' if many else 'its score'} would be against "
            f"{'themselves' if many else 'itself'}", TapcheckWarning, stacklevel=3)
    return out
