"""scripts/recipe_select.py (and crops_select.py on it): the configs it compares are the
new-boards recipe with only the one setting changed (docs/results/recipe-*.json and
crops-*.json rest on them)."""

import tomllib

import pytest

from tapcheck.configfile import load_config

from .conftest import ROOT, script_module


@pytest.mark.parametrize("setting, value", [
    ("train.ema_decay", 0.99), ("train.ema_decay", 0), ("features.n_crops", 4),
    ("train.freq_stretch", 0.06), ("train.scorer", "knn")])
def test_configs_are_the_recipe_with_only_the_setting_changed(tmp_path, setting, value):
    select = script_module("recipe_select")
    path = select.recipe_with(setting, value, tmp_path)
    recipe = load_config(ROOT / "configs" / "new-boards.toml")
    section, key = setting.split(".")
    assert load_config(path) == recipe.replace(section, **{key: value})
    assert (load_config(path) == recipe) == (getattr(getattr(recipe, section), key) == value)


def test_values_are_read_as_toml_reads_them():
    select = script_module("recipe_select")
    assert select.parse_values('0, 0.99,"knn", true') == [0, 0.99, "knn", True]
    with pytest.raises(tomllib.TOMLDecodeError):
        select.parse_values("0.99.1")


@pytest.mark.parametrize("n_crops", [2, 4, 6])
def test_crop_configs_are_the_recipe_with_only_the_crop_count_changed(tmp_path, n_crops):
    crops = script_module("crops_select")
    path = crops.recipe_with_crops(n_crops, tmp_path)
    recipe = load_config(ROOT / "configs" / "new-boards.toml")
    assert load_config(path) == recipe.replace("features", n_crops=n_crops)
    assert (load_config(path) == recipe) == (recipe.features.n_crops == n_crops)


def test_cell_figures_keep_what_the_tables_show():
    select = script_module("recipe_select")
    cell = {"seed": 3, "auc": 0.9, "pauc": 0.8, "threshold": 0.1, "false_alarms_unseen": 0.05,
            "false_alarms_known": None, "recall_per_board": {"7": 0.5, "8": 1.0},
            "board_verdicts": {"vote_healthy_flagged": 0.0, "vote_defective_found": 0.95},
            "train_seconds": 12.0}
    figures = select.cell_figures(cell)
    assert figures["defect_recall"] == 0.75 and figures["false_alarms_known"] is None
    assert figures["vote_defective_found"] == 0.95 and figures["seed"] == 3
