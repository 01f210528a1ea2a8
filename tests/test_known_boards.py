"""Which boards and takes of a dataset a model has heard (tapcheck/known_boards.py)."""

from __future__ import annotations

import numpy as np

from tapcheck.known_boards import boards_trained_on_defects, own_takes, trained_defect_boards


def test_a_board_trained_on_with_a_cracked_end_is_a_known_defect():
    """A board whose left end was trained on as defect and right end as normal: its defect row
    is no new defect's (trial 34: it read `known`), though enroll's refusal of --board N is for
    boards with no healthy end only."""
    checkpoint = {"classes": ["board03/left", "board03/right", "board05/left", "board01/left",
                              "pseudo/0"],
                  "class_labels": ["defect", "normal", "defect", "normal", "defect"]}
    assert boards_trained_on_defects(checkpoint) == [3, 5]
    assert trained_defect_boards(checkpoint) == [5]


def test_own_takes_by_digest_or_for_older_files_by_folder_name_and_paths(tiny_dataset):
    from tapcheck.enrolled import fingerprint

    test = tiny_dataset.select(split="test")
    prints = [fingerprint(tiny_dataset.path_of(t)) for t in test]
    trained = [t.path for t in tiny_dataset.select(split="train", board=[1, 2])]
    digests = [fingerprint(tiny_dataset.path_of(t)) for t in
               tiny_dataset.select(split="train", board=[1, 2])]
    # by content: the takes at the training paths are boards 1 and 2; and two test takes of
    # board 11 are recordings the model trained on, so board 11 is known too
    unseen = [i for i, t in enumerate(test) if t.board == 11][:2]
    known, own = own_takes({"dataset": {"digests": digests + [prints[i] for i in unseen],
                                        "takes": trained}}, tiny_dataset, test, prints)
    assert known == [1, 2, 11] and np.flatnonzero(own).tolist() == unseen
    # the same paths holding other recordings (another draw, a renumbered copy): no board
    known, own = own_takes({"dataset": {"digests": ["0" * 40], "takes": trained}},
                           tiny_dataset, test, prints)
    assert known == [] and not own.any()
    # by crops: a take whose crops the model trained on (its samples as FLAC, other bytes)
    taps = [f"tap{i}" for i in range(len(test))]
    known, own = own_takes({"dataset": {"digests": ["0" * 40], "crop_digests": [taps[unseen[0]]],
                                        "takes": trained}}, tiny_dataset, test, prints, taps=taps)
    assert known == [11] and np.flatnonzero(own).tolist() == unseen[:1]
    # a file from before digests: the same name listing every training take is its dataset,
    # where its training classes' boards are known
    old = {"name": tiny_dataset.name, "path": "elsewhere/tiny", "takes": trained,
           "calibration_takes": [test[0].path]}
    classes = ["board01/left", "board02/left"]
    known, own = own_takes({"dataset": old, "classes": classes}, tiny_dataset, test, prints)
    assert known == [1, 2] and own.tolist() == [True] + [False] * (len(test) - 1)
    assert own_takes({"dataset": {**old, "name": "other"}, "classes": classes}, tiny_dataset,
                     test, prints)[0] == []
    # before any provenance: its classes' boards, no take known to be its own
    known, own = own_takes({"classes": classes}, tiny_dataset, test, prints)
    assert known == [1, 2] and not own.any()
    # a hand-edited file's nonsense is ignored, not a traceback
    assert own_takes({"dataset": {"path": 3, "takes": "x"}, "classes": classes}, tiny_dataset,
                     test, prints)[0] == [1, 2]
