"""Model files describe themselves (nanoGPT-style checkpoints).

One file ``models/<name>.pt`` holds everything needed to judge a clip and to know how the model
came about: registry name, model arguments, the resolved configuration (features included),
class names, weights, the fitted detector (reference embeddings and threshold), training history,
tapcheck and format versions. It contains only tensors and plain data, so it loads with
``torch.load(weights_only=True)``: a model file can never run code.

While a run trains, its progress lives beside the model file in ``<model>.pt.partial`` (same
rules: atomic, tensors and plain data only); see :mod:`tapcheck.resume`.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import Config
from .detectors import ThresholdDetector, detector_from_state
from .errors import ConfigError, ModelFileError, ParameterError
from .features import FEATURES_VERSION
from .files import atomic_write, check_path, stopped_writes
from .file_kinds import check_stored_crcs, refuse_special, sniff
from .fingerprint import TOLERANCE as FINGERPRINT_TOLERANCE
from .fingerprint import difference
from .locks import holding, lock_path
from .modelcheck import check_contents, check_trained, inflated_tensor

FORMAT = "tapcheck-model"
# 2: cosine heads keep their class centres as the model's W; 3: the same, written by a tapcheck
# whose settings an older one does not know (train.board_rule, stream.board_gap_s, …): tapcheck
# 0.1.0 called such a file "damaged — retrain it" (upgrade QA), and now names the newer format
FORMAT_VERSION = 3
READ_FORMATS = (2, 3)  # format 2 files load as they are: nothing in them changed meaning
PARTIAL_FORMAT = "tapcheck-partial"
PARTIAL_SUFFIX = ".partial"  # a run's progress: <model file>.partial
RETRAIN = "retrain it with `tapcheck train`"
# the fix for a .partial that cannot be resumed, as `train --resume` meets it
RESUME_FIX = "delete it and train without --resume (the run starts over)"


@dataclass
class LoadedModel:
    """A model file, loaded: module in eval mode, detector, config and the raw checkpoint."""

    path: Path
    name: str
    module: torch.nn.Module
    detector: ThresholdDetector
    config: Config
    classes: list[str]
    checkpoint: dict[str, Any]

    @property
    def scorer(self) -> str:
        return self.config.train.scorer


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a crash leaves the previous model file intact."""
    path = Path(path)
    # serialise in memory, then write the bytes: torch.save straight to the file turns a full
    # disk into "RuntimeError: [enforce fail at inline_container.cc]"; a plain write gives the
    # OSError that atomic_write turns into a one-line StorageError (the old file kept)
    buffer = io.BytesIO()
    torch.save(_canonical(checkpoint), buffer)
    if holding(lock_path(path)):
        # no other tapcheck writes this file now: a temporary file beside it is a killed
        # writer's, and stayed for good (100 MB for arcface-resnet18, after each SIGKILL; QA)
        for stale in stopped_writes(path):
            stale.unlink(missing_ok=True)
    with atomic_write(path) as f:
        f.write(buffer.getbuffer())
    return path


def _canonical(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``value`` with every string interned, in new dicts, lists and tuples: pickle writes a
    string seen before as a reference to it, so the same values gave other bytes when their
    strings came from other places (a file trained, then enrolled into and taken back by
    ``enroll --undo``, held the same values and another md5; QA). A container met twice (a
    list holding itself) is made once, as pickle keeps it (review)."""
    memo = {} if memo is None else memo
    if type(value) is str:  # not a subclass: sys.intern takes str itself only
        return sys.intern(value)
    if id(value) in memo:
        return memo[id(value)]
    if type(value) in (dict, OrderedDict):
        new = memo[id(value)] = type(value)()
        for k, v in value.items():
            new[_canonical(k, memo)] = _canonical(v, memo)
        for name, attribute in getattr(value, "__dict__", {}).items():
            setattr(new, name, _canonical(attribute, memo))  # a state dict's _metadata
        return new
    if type(value) is list:
        new = memo[id(value)] = []
        new.extend(_canonical(v, memo) for v in value)
        return new
    if type(value) is tuple:
        new = memo[id(value)] = tuple(_canonical(v, memo) for v in value)
        return new
    return value


def save_trained(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write a finished run's model file and drop the run's progress (``<path>.partial``).

    A model that cannot judge (a threshold that is not a number) is not written, and its
    progress goes too: resuming a finished run would give the same model again.
    """
    partial = partial_path(path)
    try:
        check_trained(checkpoint, path)
    except ModelFileError:
        partial.unlink(missing_ok=True)
        raise
    save_checkpoint(path, checkpoint)
    partial.unlink(missing_ok=True)  # only now: the finished model is safely on disk
    return Path(path)


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Load and check a model file.

    Raises
    ------
    ModelFileError
        Missing, not a tapcheck model (or carrying pickled code), another format or feature
        version, or inconsistent contents.
    """
    from .models import rebuild

    path = Path(path)
    checkpoint = read_checkpoint(path)
    check_contents(checkpoint, path)  # keys, types, sizes, finite weights and threshold
    try:
        config = Config.from_dict(checkpoint["config"], source=str(path))
    except ConfigError as e:
        raise ModelFileError(f"is damaged: its settings are invalid ({e.problem})", path=path,
                             fix=RETRAIN) from None
    crop = (config.features.n_bins, config.features.n_frames)
    network = tuple(checkpoint["model_args"]["input_shape"])
    if crop != network:
        # judge computes crops from the stored feature settings; they must be what the network
        # was built for, or every verdict would be of the wrong picture
        raise ModelFileError(
            f"stores feature settings for {crop[0]}x{crop[1]} crops but its network takes "
            f"{network[0]}x{network[1]}", path=path, fix=RETRAIN)
    # the same shape from other settings (n_fft 2048) is told by the settings' digest
    stored = checkpoint.get("settings_digest")  # model files from before 2026-12-05 have none
    if stored is not None and stored != settings_digest(checkpoint["config"]):
        raise ModelFileError(
            "is damaged: its [audio] or [features] settings are not the ones its network was "
            "trained with (changed after training?)", path=path,
            fix="use the model file as train wrote it, or train a model with the new settings")
    try:
        module = rebuild(checkpoint["name"], checkpoint["model_args"],
                         members=config.train.members)
        module.load_state_dict(checkpoint["state_dict"])
        detector = detector_from_state(checkpoint["detector"])
    except (KeyError, TypeError, RuntimeError, ValueError, ParameterError) as e:
        # torch's text spans lines and tabs, printed as "\n\t" in the one line (QA)
        said = " ".join(str(e).split())
        raise ModelFileError(f"is damaged or inconsistent ({type(e).__name__}: {said})",
                             path=path, fix=RETRAIN) from None
    module.eval()
    stored = checkpoint.get("fingerprint")  # model files from before 2026-12-06 have none
    if stored is not None and not difference(module, stored,
                                             input_shape=network) <= FINGERPRINT_TOLERANCE:
        # weights rewritten whole keep valid checksums: a file scaled up by hand judged every
        # clip ANOMALOUS without a word (QA)
        raise ModelFileError("is damaged: its network no longer gives the output it gave when "
                             "it was trained (its weights were changed after training)",
                             path=path, fix=f"copy it again from where it came from, or {RETRAIN}")
    return LoadedModel(path=path, name=checkpoint["name"], module=module, detector=detector,
                       config=config, classes=list(checkpoint["classes"]), checkpoint=checkpoint)


def _torch_file(path: Path) -> bool:
    """Whether ``path`` is a regular file starting as torch.save writes (a zip archive)."""
    return sniff(path, size=4) == b"PK\x03\x04"


def _whole_torch_file(path: Path) -> bool:
    """:func:`_torch_file`, and whole: a copy cut short starts like one too, and the hint for a
    missing model named such a file (``pass --model bad/ro.pt (or bad/trunc.pt)``). A zip
    archive's directory is at its end; ``zipfile.is_zipfile`` looks for it there."""
    import zipfile

    return _torch_file(path) and zipfile.is_zipfile(path)  # a fifo never reaches is_zipfile


def _model_file(path: Path) -> bool:
    """Whether ``path`` is a tapcheck model file as far as its header tells: a whole PyTorch
    file holding the format and versions :func:`read_checkpoint` insists on.

    The hint for a missing model named any whole PyTorch file (``pass --model models/ab-rand.pt``
    for a saved tensor), and following it gave "is not a tapcheck model file". The weights are
    memory-mapped, not read, so a 200 MB model costs a look at its pickled header only.
    """
    if path.is_symlink() or not _whole_torch_file(path):
        return False
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - anything the unpickler raises means "not a model file"
        return False
    return isinstance(checkpoint, dict) and all(
        _same(checkpoint.get(key), wanted) for key, wanted in
        (("format", FORMAT), ("format_version", FORMAT_VERSION),
         ("features_version", FEATURES_VERSION)))


def _model_files_beside(path: Path, most: int = 3) -> list[Path]:
    """Up to ``most`` tapcheck model files in ``path``'s folder (and in ``models/`` beside a bare
    name), the names closest to ``path``'s first (see :func:`_model_file`; it stops at
    ``most``: each look loads a header). In name order alone, ``--model models/so.pt`` was
    offered ``models/ae-knn.pt`` and ``--model s0.pt`` a backup beside it, not ``models/s0.pt``."""
    import difflib

    folders = [path.parent] + ([path.parent / "models"] if path.parent == Path(".") or
                               not path.parent.name else [])
    candidates = sorted(c for folder in folders if folder.is_dir() for c in folder.glob("*.pt"))
    wanted = path.name if path.suffix == ".pt" else path.name + ".pt"  # `--model models/s0`

    def closeness(candidate: Path) -> tuple:
        return (candidate.name != wanted,
                -difflib.SequenceMatcher(None, candidate.name, wanted).ratio())

    found: list[Path] = []
    for candidate in sorted(candidates, key=closeness):
        if len(found) == most:
            break
        if _model_file(candidate):
            found.append(candidate)
    return found


def read_checkpoint(path: Path, *, expect: str = FORMAT) -> dict[str, Any]:
    """The raw checkpoint dict, after the checks that need no model code.

    ``expect`` is the format header to insist on: a model file, or a run's partial progress.
    """
    check_path(path, ModelFileError)  # a link loop is not "not found"
    if not path.exists() and path.is_symlink():
        # "not found" of a name `ls` lists sent users to the files beside it
        raise ModelFileError(f"is a link to {os.readlink(path)}, which does not exist",
                             path=path, fix="point the link at the model file, or pass "
                                            "--model with the file itself")
    if not path.exists():
        # the default name is arcface-resnet18's; a recipe that trains another model (e.g.
        # configs/new-boards.toml's arcface-lite) leaves its file beside it: name it
        # (tapcheck model files as far as their header tells: not links, folders, text, files
        # cut short, or PyTorch files of something else)
        others = _model_files_beside(path)
        raise ModelFileError("model file not found", path=path, fix=(
            f"pass --model {others[0]}" + (f" (or {', '.join(map(str, others[1:]))})"
                                            if others[1:] else "")
            if others else "train one with `tapcheck train` or pass --model PATH"))
    # a model file can be replaced by another one; a run's progress (.partial) can only be
    # given up: no other file takes its place, and "use a model file" sent users looking for one
    partial = expect == PARTIAL_FORMAT
    what = "training checkpoint" if partial else "model file"
    fix = RESUME_FIX if partial else "use a model file written by `tapcheck train`"
    if path.is_dir():
        inside = [] if partial else _model_files_beside(path / "model.pt", most=1)
        example = inside[0] if inside else "models/arcface-resnet18.pt"
        raise ModelFileError(f"is a folder, not a {what}", path=path, fix=fix if partial
                             else f"pass the .pt file, e.g. {example}")
    refuse_special(path, ModelFileError, fix=fix if partial
                   else "pass a model file written by `tapcheck train`")
    try:
        # a bad sector or a damaged copy was judged without a word, with wrong scores (QA)
        check_stored_crcs(path, ModelFileError, what=what, fix=fix if partial else
                          f"copy it again from where it came from, or {RETRAIN}")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except ModelFileError:
        raise
    except pickle.UnpicklingError:
        if not _torch_file(path):  # the unpickler read a CSV or a text file as pickle opcodes
            raise ModelFileError(f"is not a tapcheck {what} (not a PyTorch file)", path=path,
                                 fix=fix) from None
        raise ModelFileError(
            f"is not a tapcheck {what} (it holds Python objects or code that tapcheck refuses "
            "to load)", path=path, fix=fix) from None
    except PermissionError:
        raise ModelFileError("cannot be read (permission denied)", path=path,
                             fix="check the file's permissions") from None
    except Exception:  # noqa: BLE001 - the unpickler raises anything on a garbage file
        # the exception's name (KeyError, OSError...) says nothing to a user; what happened does
        raise ModelFileError(f"is not a tapcheck {what} (not a PyTorch file, or one cut "
                             "short or damaged)", path=path, fix=fix) from None
    if not isinstance(checkpoint, dict) or not _same(checkpoint.get("format"), expect):
        raise ModelFileError(f"is not a tapcheck {what}", path=path, fix=fix)
    inflated = inflated_tensor(checkpoint)
    if inflated is not None:
        # a tensor repeating one stored row (a stride of 0) 10**8 times: a 5 MB file asked
        # judge for 51 GB and ended in a traceback, exit status 1 — "anomalous" (QA)
        raise ModelFileError(f"is damaged: its {inflated}", path=path,
                             fix=fix if partial else RETRAIN)
    made_by = checkpoint.get("tapcheck_version", "an unknown version")
    stored = checkpoint.get("format_version")
    if not any(_same(stored, version) for version in READ_FORMATS):
        if not isinstance(stored, int) or isinstance(stored, bool):  # a tensor(2) printed as
            # "format 2; this tapcheck reads format 2"
            raise ModelFileError(f"is damaged: its format version is {_kind(stored)}, not a "
                                 "number", path=path, fix=fix if partial else RETRAIN)
        newer = stored > FORMAT_VERSION
        raise ModelFileError(
            f"was written by tapcheck {made_by} in model format {stored}; this tapcheck "
            f"({__version__}) reads formats {READ_FORMATS[0]}-{READ_FORMATS[-1]}", path=path,
            fix=("upgrade tapcheck to read it (pip install -U the tapcheck it was written by), "
                 "or retrain it with this one" if newer and not partial else
                 fix if partial else RETRAIN))
    if not _same(checkpoint.get("features_version"), FEATURES_VERSION):
        raise ModelFileError(
            f"was trained on features of version {checkpoint.get('features_version')} (tapcheck "
            f"{made_by}); this tapcheck computes version {FEATURES_VERSION}", path=path,
            fix=fix if partial else RETRAIN)
    return checkpoint


def _kind(value: Any) -> str:
    """What a stored value is, for a message: its type, and a short repr."""
    shown = repr(value)
    return f"a {type(value).__name__} ({shown if len(shown) <= 30 else shown[:30] + '...'})"


def _same(value: Any, wanted: Any) -> bool:
    """``value == wanted`` of the same type: a tensor in a header has no truth value."""
    return type(value) is type(wanted) and value == wanted


def new_checkpoint(**fields: Any) -> dict[str, Any]:
    """A checkpoint dict with the format header filled in, and the digest of its ``config``'s
    ``[audio]`` and ``[features]`` settings (:func:`settings_digest`)."""
    digest = {"settings_digest": settings_digest(fields["config"])} if "config" in fields else {}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "tapcheck_version": __version__,
            "features_version": FEATURES_VERSION, **fields, **digest}


def settings_digest(config: Any) -> str | None:
    """SHA-256 of a stored config's ``audio`` and ``features`` sections, as stored.

    A model's crops are computed from them; its network learned from crops of those settings.
    An edit that keeps the crop's shape (``n_fft`` 2048, ``sr`` 22050, set to suit other clips)
    loaded without a word and flagged 98 % of healthy taps. The sections as stored, not as
    read: settings a later tapcheck adds, filled in by default on reading, change nothing.
    """
    import hashlib
    import json

    if not isinstance(config, dict):
        return None
    sections = {key: config.get(key) for key in ("audio", "features")}
    try:
        text = json.dumps(sections, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def provenance(checkpoint: dict[str, Any], key: str) -> list[str]:
    """A list of text from the model file's ``dataset`` record (``takes``,
    ``calibration_takes``, ``digests``: see :func:`tapcheck.training.train_model`); [] when
    absent or not such a list — a file edited by hand must not stop a command that can do
    without it."""
    source = checkpoint.get("dataset")
    value = source.get(key, []) if isinstance(source, dict) else []
    return value if isinstance(value, list) and all(isinstance(x, str) for x in value) else []


def enrolled_digests(checkpoint: dict[str, Any], key: str) -> set[str]:
    """The ``key`` digests of every tap enrolled into the model (``"digests"``: their bytes,
    ``"crop_digests"``: their crops); records are checked on load
    (:func:`tapcheck.modelcheck.check_enrolled`)."""
    return {d for e in checkpoint.get("enrolled", []) for d in e.get(key, [])}


def partial_path(model_path: str | os.PathLike) -> Path:
    """Where a run training ``model_path`` keeps its progress: ``<model_path>.partial``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + PARTIAL_SUFFIX)
