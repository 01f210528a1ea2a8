"""The new-boards scripts name the threshold fit their results were measured with. The
detectors' default became log-normal on 2026-12-03; the scripts used the default, so re-run they
no longer gave the gamma figures docs/new-boards.md quotes, and their output moved with the fit
a model file happened to be trained with."""

import numpy as np

from tapcheck.detectors import KNNDetector

from .conftest import script_module


def test_every_row_is_fitted_with_the_fit_it_was_measured_with():
    new_boards, decay_fusion = script_module("new_boards"), script_module("decay_fusion")
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(64, 8)).astype(np.float32)
    groups = np.repeat(np.arange(4), 16)
    gamma = KNNDetector(k=5, threshold_fit="gamma").fit(X, groups=groups)
    lognormal = KNNDetector(k=5).fit(X, groups=groups)  # a model file trained today
    assert lognormal.threshold_fit == "lognormal" and lognormal.threshold_ != gamma.threshold_
    refitted = new_boards.with_measured_fit(lognormal)
    assert new_boards.MEASURED_FIT == "gamma"
    assert refitted.threshold_ == gamma.threshold_
    assert refitted.calibration_["board_fit"] == gamma.calibration_["board_fit"]
    assert lognormal.threshold_fit == "lognormal"  # the model's own detector is left as it was
    for name in decay_fusion.SCORER_ROWS:
        assert decay_fusion.FUSION_ROWS[name](k=5).threshold_fit == "gamma"
    recipe = decay_fusion.FUSION_ROWS["knn-decay-lognormal"](k=5)
    assert recipe.threshold_fit == "lognormal" and recipe.reads_decay
