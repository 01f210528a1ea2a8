"""What an explanation of one anomalous clip holds (:class:`Explanation`), as
:class:`tapcheck.explain.Explainer` makes it and ``judge --json``, the station and the pictures
read it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Explanation:
    """Where and how one clip differs from its nearest normal references.

    ``deviation`` has shape (n_bands, n_windows): the anomaly-score drop when that cell is
    replaced by normal content; ``crop`` and ``reference`` (bins, frames) are the clip's first
    crop and the mean of its nearest normal crops, in dB about each tap's mean power
    (:func:`tapcheck.explain_difference.tap_relative`), as the sentence reads them
    (:func:`tapcheck.explain_difference.describe_difference`);
    ``compared_with`` names those normal clips' files.
    """

    path: str
    sentence: str
    band_hz: tuple[float, float]
    time_ms: tuple[float, float]
    kind: str  # "faster-decay", "slower-decay", "shifted-resonance", "weaker", "stronger",
    # "quieter-at", "louder-at", "different"
    ratio: float | None  # decay rate of the clip over the references' (decay kinds)
    score: float
    relief: float  # the region's share of the score: sqrt(band drop x window drop) / score
    deviation: np.ndarray = field(repr=False)
    crop: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)
    band_edges_hz: np.ndarray = field(repr=False)  # (n_bands + 1,)
    window_edges_ms: np.ndarray = field(repr=False)  # (n_windows + 1,)
    compared_with: list[str] = field(default_factory=list)  # the nearest references' files
    # what each kind of difference had to reach here to be claimed (Limits, as a dict)
    limits: dict = field(default_factory=dict)
    picture: str | None = None  # the PNG, once saved
    decay_z: float | None = None  # knn-decay only: the decay's z-score against its neighbours'
    # share of the crop's cells after the strike beyond the nearest healthy taps' range
    # (UNLIKE_MARGIN_DB), and whether that makes it unlike a recording of a board (UNLIKE_SHARE;
    # None: too few healthy taps to tell, under NORMALS)
    outside: float = 0.0
    unlike: bool | None = False

    def to_dict(self) -> dict:
        return {"sentence": self.sentence, "band_hz": list(self.band_hz),
                "time_ms": list(self.time_ms), "kind": self.kind, "ratio": self.ratio,
                "relief": self.relief, "compared_with": self.compared_with,
                "limits": self.limits,
                "picture": self.picture, "decay_z": self.decay_z, "outside": self.outside,
                "unlike": self.unlike}
