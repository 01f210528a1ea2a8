"""A model file's fitted detector, checked before it judges: its kind and parameters, a threshold
fitted to the calibration scores stored with it, the statement ``judge`` prints of it, and its
reference (:func:`tapcheck.modelcheck.check_contents` calls :func:`check_detector`).

A hand-edited detector judged without a word: a NaN threshold every clip NORMAL, a threshold of
1e6 every tap NORMAL, references scaled by 1000 every tap NORMAL with a negative score.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .modelcheck import MAX_UNITS, SCORE_FLOOR, damaged, finite_tensor, one_of
from .validate import is_int, is_real

#: how far a cosine reference's length may stray from 1 (float32 normalisation: 1e-6)
UNIT_TOLERANCE = 1e-3


def check_detector(state: Any, *, n_classes: int, path, embedding_dim: Any = None) -> None:
    """The fitted detector: kind, parameters, a finite threshold of the right sign, tensors."""
    from .detectors import SCORERS

    if not one_of(state.get("kind"), SCORERS):
        raise damaged(f"detector kind {state.get('kind')!r} is not one of {', '.join(SCORERS)}",
                    path)
    params = state.get("params")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise damaged("detector params are missing", path)
    far = params.get("far")
    if not is_real(far) or not 0.0 < far < 1.0:
        raise damaged(f"detector false-alarm rate {far!r} is not in (0, 1)", path)
    offset = state.get("offset")
    if not is_real(offset) or not math.isfinite(offset):
        raise damaged(f"threshold {offset!r} is not a finite number", path)
    if -offset < SCORE_FLOOR:
        # scores are >= 0, so a negative threshold would call every clip ANOMALOUS
        raise damaged(f"threshold {-offset:.4g} is negative; anomaly scores never are", path)
    calibration = finite_tensor(state.get("calibration_scores"), "calibration scores", path,
                                 ndim=1)
    if not len(calibration):  # every fit keeps its scores: without them no threshold is
        # checked, and a threshold of 1e6 passed every tap, exit 0 (QA)
        raise damaged("it holds no calibration scores, so its threshold cannot be checked", path)
    if not calibration.is_floating_point():
        raise damaged(f"its calibration scores are {str(calibration.dtype).removeprefix('torch.')}"
                    ", not real numbers", path)
    if len(calibration) and float(calibration.min()) < SCORE_FLOOR:
        # a recalibration (enroll) on them set a threshold that flagged nothing
        raise damaged(f"calibration score {float(calibration.min()):.4g} is negative; anomaly "
                    "scores never are", path)
    _check_threshold_against_scores(-offset, calibration, params=params, path=path)
    check_calibration(state, path)
    _check_groups(state.get("calibration_groups"), len(calibration), "calibration score", path)
    for check in KIND_CHECKS[state["kind"]]:
        check(state, params, n_classes=n_classes, embedding_dim=embedding_dim, path=path)


def _check_decays(state: dict, params: dict, *, n_classes: int, embedding_dim: Any,
                  path) -> None:
    """knn-decay: a decay per reference, and two scales (the network's, the decay's)."""
    reference = state.get("reference")
    decay = finite_tensor(state.get("reference_decay"), "knn-decay reference decays", path,
                          ndim=1)
    if isinstance(reference, torch.Tensor) and reference.ndim == 2 and len(decay) != len(
            reference):
        raise damaged(f"knn-decay holds {len(decay)} reference decays for {len(reference)} "
                      "references", path)
    for name in ("network_scale", "decay_scale"):
        scale = state.get(name)
        if (not isinstance(scale, (list, tuple)) or len(scale) != 2
                or not all(is_real(v) for v in scale) or not math.isfinite(scale[0])
                or math.isnan(scale[1]) or not scale[1] > 0):
            raise damaged(f"knn-decay {name.replace('_', ' ')} {scale!r} is not a location "
                          "and a positive scale", path)  # an infinite one: decay unused


def _check_knn_reference(state: dict, params: dict, *, n_classes: int, embedding_dim: Any,
                         path) -> None:
    """A kNN reference, each kind scoring it its own way: embeddings of the network's size,
    of unit length for cosine, groups, and k and the metric."""
    reference = finite_tensor(state.get("reference"), "knn reference", path, ndim=2)
    if len(reference) == 0:
        raise damaged("knn reference holds no embeddings", path)
    if not reference.is_floating_point():
        raise damaged(f"knn reference embeddings are "
                      f"{str(reference.dtype).removeprefix('torch.')}, not real numbers", path)
    if params.get("metric") == "cosine":
        # stored unit length (KNNDetector._prepare): scaled by 1000 they scored -991 and
        # judged every tap NORMAL, exit 0; zeros flagged every tap (QA)
        norms = reference.double().norm(dim=1)
        if float((norms - 1.0).abs().max()) > UNIT_TOLERANCE:
            raise damaged(f"knn reference embeddings are not of unit length (lengths "
                          f"{float(norms.min()):.4g}-{float(norms.max()):.4g}), as cosine "
                          "scoring stores them", path)
    if is_int(embedding_dim) and reference.shape[1] != embedding_dim:
        raise damaged(f"knn reference embeddings have {reference.shape[1]} dimensions, the "
                      f"network gives {embedding_dim}", path)
    _check_groups(state.get("reference_groups"), len(reference), "reference", path)
    k = params.get("k")
    if not is_int(k) or k < 1 or not one_of(params.get("metric"), ("cosine", "euclidean")) \
            or not isinstance(params.get("exp", False), bool):
        raise damaged(f"knn parameters {params!r} are not valid", path)


def _check_prob(state: dict, params: dict, *, n_classes: int, embedding_dim: Any,
                path) -> None:
    """prob: its normal classes are the network's class indices."""
    normal = params.get("normal_classes")
    if (not isinstance(normal, list) or not normal
            or not all(is_int(i) and 0 <= i < n_classes for i in normal)):
        raise damaged("prob detector's normal classes are not class indices", path)


#: each detector kind's own checks, in order (a knn-decay's decays before its reference, as
#: their count names the reference's); one per kind of detectors.SCORERS
KIND_CHECKS = {
    "knn": (_check_knn_reference,),
    "knn-ldn": (_check_knn_reference,),
    "knn-decay": (_check_decays, _check_knn_reference),
    "prob": (_check_prob,),
    "recon": (),  # a reconstruction error: no reference, nothing of its own
    "mahalanobis": (),  # its mean and precision: not checked (a scorer to measure, no default)
}


#: the span around its calibration scores within which a threshold is taken as fitted to them
#: without fitting again: at least half the lowest, at most this many times the highest (a
#: log-normal fit to 3 clips for far 1e-4 lies 10**8 times above them, which is then refitted)
THRESHOLD_SPAN = 1e3


def _check_threshold_against_scores(threshold: float, scores: torch.Tensor, *,
                                    params: dict[str, Any], path) -> None:
    """A threshold fitted to the calibration scores stored with it. One far outside their span
    (:data:`THRESHOLD_SPAN`) is fitted again from them, with the model's rate and fit, and must
    come within a factor of 2 of that (older tapchecks' fits moved it by a few per cent): a
    hand-edited threshold of 0 flagged every tap and one of 1e6 passed every tap, exit 0."""
    if not len(scores) or float(scores.max()) <= 0:
        return
    low, high = float(scores.min()), float(scores.max())
    if (low <= 0 or threshold >= 0.5 * low) and threshold <= THRESHOLD_SPAN * high:
        return  # the common case, decided without scipy (judge starts without it)
    from .calibration import THRESHOLD_FITS, robust_threshold

    fit = params.get("threshold_fit", "gamma")  # files without one were fitted with gamma
    if fit not in THRESHOLD_FITS:
        return  # check_calibration names it
    refit = robust_threshold(scores.double().numpy(), far=params["far"], fit=fit)
    if not 0.5 * refit <= threshold <= 2.0 * refit:
        raise damaged(f"threshold {threshold:.4g} is not fitted to its calibration scores "
                    f"({low:.4g}-{high:.4g}: {refit:.4g} with its {fit} fit)", path)


def _check_groups(groups: Any, n: int, what: str, path) -> None:
    """A board group per row (absent in older files): integers, one for each of the ``n``
    rows. Three for 16 references loaded, and ``enroll`` then ended in an IndexError."""
    if groups is None:
        return
    if not isinstance(groups, torch.Tensor) or groups.ndim != 1 or groups.dtype not in (
            torch.int32, torch.int64) or len(groups) != n:
        shown = (f"{len(groups)} {str(groups.dtype).removeprefix('torch.')}"
                 if isinstance(groups, torch.Tensor) and groups.ndim == 1 else repr(type(groups)))
        raise damaged(f"its {what} board groups ({shown}) are not one integer per {what} "
                    f"({n})", path)


def check_calibration(state: dict[str, Any], path) -> None:
    """The detector's board settings and its calibration statement (what ``judge`` says of the
    threshold, what ``enroll`` recalibrates by). A hand-edited ``method``, ``far`` or ``fit``
    was printed as the model's promise ("for 200% false alarms"), and a threshold of the wrong
    type or a missing key ended ``judge`` in a traceback after its verdicts."""
    from .boards import BOARD_RULES
    from .calibration import METHODS, THRESHOLD_FITS

    def number(v: Any) -> bool:
        return is_real(v) and math.isfinite(v) and v >= SCORE_FLOOR

    params = state["params"]
    taps = (lambda v: is_int(v) and 1 <= v <= MAX_UNITS, "a number of taps")
    rate = (lambda v: is_real(v) and 0.0 < v < 1.0, "in (0, 1)")
    rule = (lambda v: one_of(v, BOARD_RULES), f"one of {', '.join(BOARD_RULES)}")
    fit = (lambda v: one_of(v, THRESHOLD_FITS), f"one of {', '.join(THRESHOLD_FITS)}")
    score = (number, "a finite score")
    count = (lambda v: is_int(v) and v >= 0, "a count")
    text = (lambda v: isinstance(v, str), "a sentence")
    for key, (ok, what) in (("board_taps", taps), ("board_far", rate), ("board_rule", rule),
                            ("threshold_fit", fit)):
        if key in params and not ok(params[key]):  # files from before a setting lack it
            raise damaged(f"detector {key} {params[key]!r} is not {what}", path)
    info = state.get("calibration")
    if info is None:  # a file from before calibration statements: one is made on load
        return
    if not isinstance(info, dict):
        raise damaged(f"its calibration is not a record ({type(info).__name__})", path)
    required = {"threshold": score, "board_threshold": score, "board_taps": taps,
                "board_far": rate, "clips": count, "holds_for": text,
                "threshold_ci": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                                 and all(number(x) for x in v), "two finite scores"),
                "far": (lambda v: is_real(v) and v == params.get("far"),
                        f"the detector's rate {params.get('far')!r}"),
                "method": (lambda v: one_of(v, METHODS), f"one of {', '.join(METHODS)}")}
    optional = {"board_rule": rule, "board_fit": score, "fit": fit, "boards": count,
                "odd_clips": count, "warning": text}  # files from before them lack them
    for key, (ok, what) in {**required, **optional}.items():
        if key not in info and key in optional:
            continue
        if key not in info:
            raise damaged(f"its calibration has no '{key}'", path)
        if not ok(info[key]):
            raise damaged(f"its calibration's {key} {info[key]!r} is not {what}", path)
    scores = state.get("calibration_scores")
    if isinstance(scores, torch.Tensor) and info["clips"] != len(scores):
        # every fit states the clips it fitted on (calibration.calibrate): scores taken away
        # left "from 8 clips" said of none (QA)
        raise damaged(f"its calibration states {info['clips']} clips but holds {len(scores)} "
                    "calibration scores", path)
    if not math.isclose(info["threshold"], -state["offset"], rel_tol=1e-9, abs_tol=1e-12):
        # judge compares against the offset and prints the statement: they must agree
        raise damaged(f"its calibration states threshold {info['threshold']:.6g} but the detector "
                    f"judges at {-state['offset']:.6g}", path)
