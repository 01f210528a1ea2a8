"""The plant preset: many unseen boards, graded defects; the study preset unchanged."""

from __future__ import annotations

import hashlib

from tapcheck.plant import plant_boards
from tapcheck.synth_dataset import make_study_dataset


def test_plant_boards_have_unseen_woods_and_graded_defects():
    specs = plant_boards(seed=0)
    train_normal = [s for s in specs if s.label == "normal" and s.split == "train"]
    unseen = [s for s in specs if s.label == "normal" and s.split == "test"]
    assert len(train_normal) == 8 and len(unseen) == 12
    assert {s.group for s in unseen} == {"next-lot", "new-wood"}
    train_woods = {s.board.wood.e_long for s in train_normal}
    assert not {s.board.wood.e_long for s in unseen if s.group == "new-wood"} & train_woods
    graded = [s for s in specs if s.label == "defect" and s.split == "test"]
    assert len({s.group for s in graded}) == len(graded) >= 8
    assert all(s.sides == ("left", "right") for s in graded)  # near and far from the defect
    assert plant_boards(seed=0) == plant_boards(seed=0) != plant_boards(seed=1)


def test_the_study_preset_is_byte_identical_to_the_demo(tmp_path):
    # md5 of `tapcheck synth --dataset demo` (seed 0) takes before the plant preset existed
    ds = make_study_dataset(tmp_path / "d", takes=1, test_takes=0, seed=0)
    digest = {t.path: hashlib.md5(ds.path_of(t).read_bytes()).hexdigest() for t in ds.takes}
    assert digest["board01/left/take001.wav"] == "7d036633168bc52ee5456b5b34b763ff"
    assert digest["board08/right/take001.wav"] == "f22c4dd3a80b835c9843658d62600434"
    assert digest["board13/right/take001.wav"] == "b906d628d07064317f7e11784bbeb176"


def test_synth_plant_writes_the_plant_set(tmp_path, run_cli):
    code, out, err = run_cli("synth", "--preset", "plant", "--dataset", tmp_path / "p",
                             "--takes", 1, "--test-takes", 0)
    assert code == 0, err
    assert "of 64 board sides" in out
