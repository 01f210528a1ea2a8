"""scripts/one_class.py's dataset: one normal board side to train on, the demo's test split."""

from .conftest import script_module


def test_the_one_class_set_holds_one_training_side_and_new_synthetic_takes(tiny_dataset,
                                                                           tmp_path):
    one_class = script_module("one_class")
    ds = one_class._one_class_set(tmp_path / "one", tiny_dataset, synthesise=3)
    train = ds.select(split="train")
    assert {(t.board, t.side) for t in train} == {(1, "left")}
    assert sorted(t.take for t in train) == [101, 102, 103]
    assert all(ds.path_of(t).is_file() for t in train)
    assert len(ds.select(split="test")) == len(tiny_dataset.select(split="test"))
