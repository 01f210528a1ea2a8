"""What a new take of a dataset takes from the takes already there: the board's group, and a word
when it is stored at another sample rate than theirs (``import`` and ``record``)."""

from __future__ import annotations

import warnings
from collections import Counter

from .datasets import Dataset
from .errors import TapcheckWarning


def inherited_group(dataset: Dataset, *, board: int, label: str) -> str:
    """The group the board's takes of ``label`` share, or "" when they share none.

    A take imported or recorded without ``--group`` joined a board whose other takes were all
    ``reference`` with an empty group, and its row read ``reference/`` in ``evaluate`` (QA).
    """
    # takes imported with no group before this (""), beside `reference` ones, leave it
    groups = {t.group for t in dataset.takes if t.board == board and t.label == label} - {""}
    return groups.pop() if len(groups) == 1 else ""


def warn_of_other_rate(dataset: Dataset, *, sr: int, setting: str = "[audio] sr") -> None:
    """Warn when new takes are stored at another sample rate than most of the dataset's takes:
    ``--config`` of another ``[audio] sr`` wrote them without a word (QA). The takes stay usable
    (every reader resamples to its own rate): a warning."""
    rates = Counter(t.sample_rate for t in dataset.takes)
    if not rates:
        return
    (old, n), = rates.most_common(1)  # one stray take of another rate silenced it for good (QA)
    if old != sr:
        warnings.warn(
            f"{dataset.root}: {n} of its {len(dataset.takes)} take(s) are stored at {old} Hz and "
            f"these at {sr} Hz ({setting}); every command resamples to its own rate, but a rate "
            f"under {old} Hz keeps less of each tap — use a config with sr = {old} for this "
            "dataset", TapcheckWarning, stacklevel=2)
