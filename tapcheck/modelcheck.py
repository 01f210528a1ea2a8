"""The one place a model file's contents are checked, before any of them is used.

``torch.load(weights_only=True)`` guarantees a model file runs no code, not that what it holds
makes sense: a damaged or hand-edited file could miss its ``classes``, hold ``classes = 5``, NaN
weights, a NaN or negative threshold, or ask for a network of a billion units. Each of those
used to end in a traceback, an out-of-memory kill, or — worse — a verdict with exit status 0
(a NaN threshold judges every clip NORMAL). :func:`check_contents` refuses them all with one
:class:`~tapcheck.errors.ModelFileError` naming what is wrong; ``train`` runs the same check on
a checkpoint before writing it, so a diverged run never saves a model that cannot judge.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from .errors import ModelFileError
from .validate import is_int, is_real

RETRAIN = "retrain it with `tapcheck train`"
MAX_UNITS = 65536  # no stored size (classes, embedding width, crop side) may exceed this
# anomaly scores are never negative (1 - cos, a distance, 1 - P, an error); a little rounding
SCORE_FLOOR = -1e-3
#: a model file's plain data nests a few levels (config, its sections, a value; enrolments, their
#: clips); deeper, a value cannot be printed in an error line (repr recurses)
MAX_NESTING = 32
#: how far a cosine reference's length may stray from 1 (float32 normalisation: 1e-6)
UNIT_TOLERANCE = 1e-3


def _fail(problem: str, path: str | os.PathLike | None) -> ModelFileError:
    return ModelFileError(f"is damaged: {problem}", path=path, fix=RETRAIN)


def _one_of(value: Any, allowed) -> bool:
    """``value in allowed`` for names only: a tensor compared with a name has no truth value."""
    return isinstance(value, str) and value in allowed


def all_finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in ``t``. Its sum is finite whenever every element is (and a finite
    sum clears it in one pass, with no bool tensor the size of ResNet18's 25 M weights: 5x faster
    on every `tapcheck judge`); only a non-finite sum needs the exact element-wise look."""
    if not t.is_floating_point():
        return True
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def inflated_tensor(value: Any) -> str | None:
    """What is wrong with the tensors of a loaded checkpoint, if anything: one presenting more
    values than its storage holds (an expanded view, a stride of 0: a 5 MB file asked for
    51 GB), one that is not a plain strided tensor (sparse: its storage cannot be measured),
    or values nested deeper than :data:`MAX_NESTING` (no error line can print them).
    A model file's tensors are then never larger than the file itself. The walk is iterative
    and visits each container once: a list holding itself gave a RecursionError (review); extra
    contents a command does not read are otherwise let be.

    Parameters
    ----------
    value : object
        The checkpoint as ``torch.load(weights_only=True)`` gives it: dicts, lists, tuples,
        tensors and plain values.

    Returns
    -------
    str or None
        The problem, naming the tensor by its keys (``detector.reference claims more values
        than the file stores``), or None.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    seen: set[int] = set()
    while stack:
        item, name, depth = stack.pop()
        if depth > MAX_NESTING:
            # printing such a value in an error line recursed past Python's limit: a
            # traceback, exit status 1 (QA)
            parts = name.split(".")  # named by its keys, up to the first list's index
            head = ".".join(parts[:next((i for i, k in enumerate(parts) if k.isdigit()),
                                        len(parts))]) or "checkpoint"
            return f"{head} nests lists or dicts over {MAX_NESTING} levels deep"
        if isinstance(item, torch.Tensor):
            if item.layout != torch.strided:
                return f"{name or 'tensor'} is a {item.layout} tensor, which model files never hold"
            if item.numel() * item.element_size() > item.untyped_storage().nbytes():
                return f"{name or 'tensor'} claims more values than the file stores"
            continue
        if not isinstance(item, (dict, list, tuple)):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((v, f"{name}.{k}" if name else str(k), depth + 1)
                     for k, v in reversed(list(pairs)))
    return None


def _finite_tensor(value: Any, what: str, path, *, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise _fail(f"{what} is not a tensor", path)
    if ndim is not None and value.ndim != ndim:
        raise _fail(f"{what} has {value.ndim} dimensions, not {ndim}", path)
    if not all_finite(value):
        raise _fail(f"{what} holds NaN or infinite values", path)
    return value


def check_header(checkpoint: dict[str, Any], path) -> None:
    """Keys and plain types: name, classes, class_labels, model_args, config, weights."""
    for key, kind in (("name", str), ("classes", list), ("model_args", dict), ("config", dict),
                      ("state_dict", dict), ("detector", dict)):
        if key not in checkpoint:
            raise _fail(f"no '{key}'", path)
        if not isinstance(checkpoint[key], kind):
            raise _fail(f"'{key}' is a {type(checkpoint[key]).__name__}, not a {kind.__name__}",
                        path)
    classes = checkpoint["classes"]
    if not classes or len(classes) > MAX_UNITS or not all(isinstance(c, str) for c in classes):
        raise _fail("'classes' is not a list of class names", path)
    labels = checkpoint.get("class_labels", ["normal"] * len(classes))
    if (not isinstance(labels, list) or len(labels) != len(classes)
            or not all(isinstance(c, str) for c in labels)):
        raise _fail("'class_labels' does not name a label per class", path)
    for key, value in checkpoint["state_dict"].items():
        if not isinstance(key, str):  # torch's load_state_dict ended in an AttributeError
            raise _fail(f"its weights hold an entry named {key!r}, not a layer's name", path)
        _finite_tensor(value, f"weight {key!r}", path)
    _check_model_args(checkpoint["model_args"], n_classes=len(classes), path=path)


def _check_model_args(args: dict[str, Any], *, n_classes: int, path) -> None:
    """Sizes bounded before a module is built from them (an absurd one would exhaust memory)."""
    shape = args.get("input_shape")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 2
            or not all(is_int(s) and 1 <= s <= MAX_UNITS for s in shape)):
        raise _fail(f"model_args.input_shape {shape!r} is not two crop sizes", path)
    for key, value in args.items():
        if not isinstance(key, str):
            raise _fail("model_args has a key that is not a name", path)
        if is_int(value) and not 0 <= value <= MAX_UNITS:
            raise _fail(f"model_args.{key} = {value} is out of range", path)
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f"model_args.{key} is not a finite number", path)
    if "n_classes" in args and (not is_int(args["n_classes"]) or args["n_classes"] != n_classes):
        raise _fail(f"model_args.n_classes is {args['n_classes']} but {n_classes} classes "
                    "are named", path)


def check_detector(state: Any, *, n_classes: int, path, embedding_dim: Any = None) -> None:
    """The fitted detector: kind, parameters, a finite threshold of the right sign, tensors."""
    from .detectors import SCORERS

    if not _one_of(state.get("kind"), SCORERS):
        raise _fail(f"detector kind {state.get('kind')!r} is not one of {', '.join(SCORERS)}",
                    path)
    params = state.get("params")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _fail("detector params are missing", path)
    far = params.get("far")
    if not is_real(far) or not 0.0 < far < 1.0:
        raise _fail(f"detector false-alarm rate {far!r} is not in (0, 1)", path)
    offset = state.get("offset")
    if not is_real(offset) or not math.isfinite(offset):
        raise _fail(f"threshold {offset!r} is not a finite number", path)
    if -offset < SCORE_FLOOR:
        # scores are >= 0, so a negative threshold would call every clip ANOMALOUS
        raise _fail(f"threshold {-offset:.4g} is negative; anomaly scores never are", path)
    calibration = _finite_tensor(state.get("calibration_scores"), "calibration scores", path,
                                 ndim=1)
    if not len(calibration):  # every fit keeps its scores: without them no threshold is
        # checked, and a threshold of 1e6 passed every tap, exit 0 (QA)
        raise _fail("it holds no calibration scores, so its threshold cannot be checked", path)
    if not calibration.is_floating_point():
        raise _fail(f"its calibration scores are {str(calibration.dtype).removeprefix('torch.')}"
                    ", not real numbers", path)
    if len(calibration) and float(calibration.min()) < SCORE_FLOOR:
        # a recalibration (enroll) on them set a threshold that flagged nothing
        raise _fail(f"calibration score {float(calibration.min()):.4g} is negative; anomaly "
                    "scores never are", path)
    _check_threshold_against_scores(-offset, calibration, params=params, path=path)
    check_calibration(state, path)
    _check_groups(state.get("calibration_groups"), len(calibration), "calibration score", path)
    kind = state["kind"]
    if kind == "knn-decay":  # a knn reference, and a decay and two scales beside it
        reference = state.get("reference")
        decay = _finite_tensor(state.get("reference_decay"), "knn-decay reference decays", path,
                               ndim=1)
        if isinstance(reference, torch.Tensor) and reference.ndim == 2 and len(decay) != len(
                reference):
            raise _fail(f"knn-decay holds {len(decay)} reference decays for {len(reference)} "
                        "references", path)
        for name in ("network_scale", "decay_scale"):
            scale = state.get(name)
            if (not isinstance(scale, (list, tuple)) or len(scale) != 2
                    or not all(is_real(v) for v in scale) or not math.isfinite(scale[0])
                    or math.isnan(scale[1]) or not scale[1] > 0):
                raise _fail(f"knn-decay {name.replace('_', ' ')} {scale!r} is not a location "
                            "and a positive scale", path)  # an infinite one: decay unused
    if kind in ("knn", "knn-decay", "knn-ldn"):  # a kNN reference, each scored its own way
        reference = _finite_tensor(state.get("reference"), "knn reference", path, ndim=2)
        if len(reference) == 0:
            raise _fail("knn reference holds no embeddings", path)
        if not reference.is_floating_point():
            raise _fail(f"knn reference embeddings are "
                        f"{str(reference.dtype).removeprefix('torch.')}, not real numbers", path)
        if params.get("metric") == "cosine":
            # stored unit length (KNNDetector._prepare): scaled by 1000 they scored -991 and
            # judged every tap NORMAL, exit 0; zeros flagged every tap (QA)
            norms = reference.double().norm(dim=1)
            if float((norms - 1.0).abs().max()) > UNIT_TOLERANCE:
                raise _fail(f"knn reference embeddings are not of unit length (lengths "
                            f"{float(norms.min()):.4g}-{float(norms.max()):.4g}), as cosine "
                            "scoring stores them", path)
        if is_int(embedding_dim) and reference.shape[1] != embedding_dim:
            raise _fail(f"knn reference embeddings have {reference.shape[1]} dimensions, the "
                        f"network gives {embedding_dim}", path)
        _check_groups(state.get("reference_groups"), len(reference), "reference", path)
        k = params.get("k")
        if not is_int(k) or k < 1 or not _one_of(params.get("metric"), ("cosine", "euclidean")) \
                or not isinstance(params.get("exp", False), bool):
            raise _fail(f"knn parameters {params!r} are not valid", path)
    if kind == "prob":
        normal = params.get("normal_classes")
        if (not isinstance(normal, list) or not normal
                or not all(is_int(i) and 0 <= i < n_classes for i in normal)):
            raise _fail("prob detector's normal classes are not class indices", path)


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
        raise _fail(f"threshold {threshold:.4g} is not fitted to its calibration scores "
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
        raise _fail(f"its {what} board groups ({shown}) are not one integer per {what} "
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
    rule = (lambda v: _one_of(v, BOARD_RULES), f"one of {', '.join(BOARD_RULES)}")
    fit = (lambda v: _one_of(v, THRESHOLD_FITS), f"one of {', '.join(THRESHOLD_FITS)}")
    score = (number, "a finite score")
    count = (lambda v: is_int(v) and v >= 0, "a count")
    text = (lambda v: isinstance(v, str), "a sentence")
    for key, (ok, what) in (("board_taps", taps), ("board_far", rate), ("board_rule", rule),
                            ("threshold_fit", fit)):
        if key in params and not ok(params[key]):  # files from before a setting lack it
            raise _fail(f"detector {key} {params[key]!r} is not {what}", path)
    info = state.get("calibration")
    if info is None:  # a file from before calibration statements: one is made on load
        return
    if not isinstance(info, dict):
        raise _fail(f"its calibration is not a record ({type(info).__name__})", path)
    required = {"threshold": score, "board_threshold": score, "board_taps": taps,
                "board_far": rate, "clips": count, "holds_for": text,
                "threshold_ci": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                                 and all(number(x) for x in v), "two finite scores"),
                "far": (lambda v: is_real(v) and v == params.get("far"),
                        f"the detector's rate {params.get('far')!r}"),
                "method": (lambda v: _one_of(v, METHODS), f"one of {', '.join(METHODS)}")}
    optional = {"board_rule": rule, "board_fit": score, "fit": fit, "boards": count,
                "odd_clips": count, "warning": text}  # files from before them lack them
    for key, (ok, what) in {**required, **optional}.items():
        if key not in info and key in optional:
            continue
        if key not in info:
            raise _fail(f"its calibration has no '{key}'", path)
        if not ok(info[key]):
            raise _fail(f"its calibration's {key} {info[key]!r} is not {what}", path)
    scores = state.get("calibration_scores")
    if isinstance(scores, torch.Tensor) and info["clips"] != len(scores):
        # every fit states the clips it fitted on (calibration.calibrate): scores taken away
        # left "from 8 clips" said of none (QA)
        raise _fail(f"its calibration states {info['clips']} clips but holds {len(scores)} "
                    "calibration scores", path)
    if not math.isclose(info["threshold"], -state["offset"], rel_tol=1e-9, abs_tol=1e-12):
        # judge compares against the offset and prints the statement: they must agree
        raise _fail(f"its calibration states threshold {info['threshold']:.6g} but the detector "
                    f"judges at {-state['offset']:.6g}", path)


def check_enrolled(checkpoint: dict[str, Any], path) -> None:
    """The enrolments ``enroll`` recorded (``--list`` shows them, ``--undo`` restores the state
    before the last): a list of records whose reference rows follow each other up to the end
    of the reference. A record edited by hand gave tracebacks (``enrolled = 'oops'``), and
    ``--undo`` of one whose ``first_row`` was wrong wrote a model every command then refused."""
    if "enrolled" not in checkpoint:
        return
    enrolled = checkpoint["enrolled"]
    if not isinstance(enrolled, list):
        raise _fail(f"its enrolment list is a {type(enrolled).__name__}, not a list", path)
    reference = checkpoint["detector"].get("reference")
    end = len(reference) if isinstance(reference, torch.Tensor) else None
    for i, entry in enumerate(enrolled, 1):
        what = f"enrolment {i} of {len(enrolled)}"
        if not isinstance(entry, dict):
            raise _fail(f"{what} is a {type(entry).__name__}, not a record", path)
        clips, rows, first = entry.get("clips"), entry.get("rows"), entry.get("first_row")
        if not (isinstance(clips, list) and clips and all(isinstance(c, str) for c in clips)):
            raise _fail(f"{what} names no clips", path)
        if not (is_int(rows) and rows >= 1 and is_int(first) and first >= 1):
            raise _fail(f"{what} has no valid reference rows (first_row {first!r}, rows "
                        f"{rows!r})", path)
        following = enrolled[i]["first_row"] if i < len(enrolled) and isinstance(
            enrolled[i], dict) else end
        if following is not None and first + rows != following:
            where = (f"where the next ones begin ({following})" if i < len(enrolled) else
                     f"at the reference's end ({following} rows)")
            raise _fail(f"{what}'s reference rows {first}-{first + rows - 1} do not end "
                        f"{where}", path)
        if not is_int(entry.get("board", -1)) or not all(
                isinstance(entry.get(key, []), list) for key in ("digests", "crop_digests")):
            raise _fail(f"{what} has a board or digests of the wrong type", path)
        previous = entry.get("previous_detector")
        if not isinstance(previous, dict):
            raise _fail(f"{what} keeps no state to undo to", path)


def check_contents(checkpoint: dict[str, Any], path: str | os.PathLike | None) -> None:
    """Everything :func:`tapcheck.modelfile.load_model` relies on, checked in one go.

    Raises
    ------
    ModelFileError
        Naming the first thing that is missing, of the wrong type or size, or not finite.
    """
    check_header(checkpoint, path)
    members = checkpoint["config"].get("train", {})
    members = members.get("members", 1) if isinstance(members, dict) else 1
    dim = checkpoint["model_args"].get("embedding_dim")
    check_detector(checkpoint["detector"], n_classes=len(checkpoint["classes"]), path=path,
                   embedding_dim=dim * members if is_int(dim) and is_int(members) else dim)
    scorer = checkpoint["config"].get("train", {})
    scorer = scorer.get("scorer") if isinstance(scorer, dict) else None
    if not isinstance(scorer, str) or scorer != checkpoint["detector"]["kind"]:
        raise _fail(f"its detector is a {checkpoint['detector']['kind']} scorer but its "
                    f"settings name {scorer!r}", path)
    check_enrolled(checkpoint, path)
    _check_fingerprint(checkpoint.get("fingerprint"), path)


def _check_fingerprint(stored: Any, path) -> None:
    """The network's fingerprint (:mod:`tapcheck.fingerprint`), when the file has one (files
    from before 2026-12-06 have none): a representation's name and a finite (1, D) tensor."""
    if stored is None:
        return
    if not isinstance(stored, dict) or not _one_of(stored.get("representation"),
                                                   ("knn", "prob", "recon")):
        raise _fail("its network's fingerprint is not a record of a representation and an "
                    "output", path)
    output = _finite_tensor(stored.get("output"), "its network's fingerprint", path, ndim=2)
    if output.shape[0] != 1 or output.shape[1] > MAX_UNITS:
        raise _fail(f"its network's fingerprint has the shape {tuple(output.shape)}", path)
    if stored.get("input") is not None:  # the crop it was taken of: a crop's shape
        crop = _finite_tensor(stored["input"], "its network's fingerprint crop", path, ndim=4)
        if tuple(crop.shape[:2]) != (1, 1) or max(crop.shape) > MAX_UNITS:
            raise _fail(f"its network's fingerprint crop has the shape {tuple(crop.shape)}",
                        path)


def check_trained(checkpoint: dict[str, Any], out: str | os.PathLike) -> None:
    """A finished run's checkpoint, checked as a load would before it is written."""
    try:
        check_contents(checkpoint, out)
    except ModelFileError as e:
        config = checkpoint.get("config")
        train = config.get("train") if isinstance(config, dict) else None
        # bfloat16 keeps 8 bits of mantissa: arcface-lite on 100 x 8 crops grew a weight to
        # 1e34 with it at any train.lr down to 1e-5, and trained in float32 (QA)
        fp32 = (", or train in float32 (train.bf16 = false, as configs/fp32.toml sets)"
                if isinstance(train, dict) and train.get("bf16") is True else "")
        raise ModelFileError(
            f"not written: the trained model cannot judge ({e.problem.removeprefix('is damaged: ')}"
            ")", path=out, fix=f"training diverged; lower train.lr or try another --seed{fp32}"
        ) from None
