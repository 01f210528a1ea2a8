"""What a new take of a dataset takes from the takes already there: the board's group, and a word
when it is stored at another sample rate than theirs (``import`` and ``record``)."""

from __future__ import annotations

import warnings

from .datasets import Dataset
from .errors import TapcheckWarning


def inherited_group(dataset: Dataset, *, board: int, label: str) -> str:
    """The group the board's takes of ``label`` share, or "" when they share none.

    A take imported or recorded without ``--group`` joined a board whose other takes were all
    ``reference`` with an empty group, and its row read ``reference/`` in ``evaluate`` (QA).
    """
    groups = {t.group for t in dataset.takes if t.board == board and t.label == label}
    return groups.pop() if len(groups) == 1 else ""


def warn_of_other_rate(dataset: Dataset, *, sr: int, setting: str = "[audio] sr") -> None:
    """Warn when the dataset's takes are all at one sample rate and new ones are stored at
    another: ``--config`` of another ``[audio] sr`` wrote them without a word (QA). The takes
    stay usable (every reader resamples to its own rate), so this is a warning, not a refusal.
    """
    rates = {t.sample_rate for t in dataset.takes}
    if len(rates) == 1 and (old := rates.pop()) != sr:
        warnings.warn(
            f"{dataset.root}: its {len(dataset.takes)} take(s) are stored at {old} Hz and these "
            f"at {sr} Hz ({setting}); every command resamples to its own rate, but a rate under "
            f"{old} Hz keeps less of each tap — use a config with sr = {old} for this dataset",
            TapcheckWarning, stacklevel=2)
