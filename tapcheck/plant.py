"""A plant-like synthetic set: enough boards to measure false-alarm rates on *unseen* boards.

``tapcheck synth --preset plant``. Where the study's demo has four training boards and three
unseen healthy ones, a plant judges every board new, in lots of more than one wood:

- boards 1-8: normal, training, two woods (a softwood lot and a denser, stiffer one), four
  sizes; the last takes of each are held out for the test split (*known* boards);
- boards 21-32: normal, unseen: four boards each of the two training woods' next lots and four
  of a third wood not in training (*unseen* boards);
- boards 41-44: defective training boards (two cracks), struck at both ends;
- boards 51-56, 61 and 62: defective, unseen, graded: cracks short/medium/long and
  shallow/deep (51-56), a saw cut (61), a crack in the third wood (62), each struck near the
  defect (``right`` end) and far from it (``left``), so recall can be read per severity.

Board-to-board scatter is drawn as for the study (:func:`tapcheck.synth.study_boards`); the
same seed gives the same set.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .plate import BoardSpec, Defect, Wood, draw_specimen

#: (board, crack depth across the width, stiffness loss, friction, group name) of the graded
#: unseen defects; the crack sits near the right end, where ``right`` strikes are near it
SEVERITIES = [
    (51, 0.20, 0.6, 4.0, "crack-short-shallow"), (52, 0.20, 0.9, 8.0, "crack-short-deep"),
    (53, 0.45, 0.6, 4.0, "crack-medium-shallow"), (54, 0.45, 0.9, 8.0, "crack-medium-deep"),
    (55, 0.75, 0.6, 4.0, "crack-long-shallow"), (56, 0.75, 0.9, 12.0, "crack-long-deep"),
]


def plant_boards(*, seed: int = 0) -> list[BoardSpec]:
    """The plant preset's boards (see the module docstring)."""
    rng = np.random.default_rng([seed, 104729])
    soft = Wood()
    dense = dataclasses.replace(soft, density=560.0, e_long=12.5e9, e_cross=0.95e9,
                                g_shear=0.75e9, loss_factor=0.010)
    other = dataclasses.replace(soft, density=430.0, e_long=8.8e9, e_cross=0.70e9,
                                g_shear=0.55e9, loss_factor=0.013)

    def lot(wood: Wood) -> Wood:  # the next delivery of a wood: a few % off
        return dataclasses.replace(wood, density=wood.density * rng.lognormal(0, 0.03),
                                   e_long=wood.e_long * rng.lognormal(0, 0.03))

    specimen = functools.partial(draw_specimen, rng)

    both = ("left", "right")
    sizes = (19.0, 20.0, 20.5, 21.5)
    specs = [BoardSpec(1 + i, specimen(sizes[i % 4], (soft, dense)[i // 4]), both, "normal",
                       "reference", "train") for i in range(8)]
    unseen_woods = [(lot(soft), "next-lot"), (lot(dense), "next-lot"), (other, "new-wood")]
    specs += [BoardSpec(21 + 4 * w + i, specimen(sizes[i], wood), both, "normal", group, "test")
              for w, (wood, group) in enumerate(unseen_woods) for i in range(4)]
    for n, x, wood in ((41, 0.40, soft), (42, 0.60, soft), (43, 0.40, dense), (44, 0.60, dense)):
        specs.append(BoardSpec(n, specimen(20.0, wood, Defect(x=x, y_from=0.0, y_to=0.55,
                                                              stiffness_loss=0.9, friction=10.0)),
                               both, "defect", "defect", "train"))
    for n, depth, loss, friction, group in SEVERITIES:
        specs.append(BoardSpec(n, specimen(20.0, lot(soft), Defect(
            x=0.8, y_from=0.0, y_to=depth, stiffness_loss=loss, friction=friction)),
            both, "defect", group, "test"))
    specs.append(BoardSpec(61, specimen(20.0, lot(soft), Defect(
        x=0.84, y_from=1.0, y_to=0.5, stiffness_loss=0.95, friction=6.0, clatter=0.5)),
        both, "defect", "saw-cut", "test"))
    specs.append(BoardSpec(62, specimen(20.0, other, Defect(
        x=0.8, y_from=0.0, y_to=0.6, stiffness_loss=0.9, friction=8.0)),
        both, "defect", "crack-new-wood", "test"))
    return specs
