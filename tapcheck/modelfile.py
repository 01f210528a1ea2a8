"""Model files describe themselves (nanoGPT-style checkpoints).

One file ``models/<name>.pt`` holds everything needed to judge a clip and to know how the model
came about: registry name, model arguments, the resolved configuration (features included),
class names, weights, the fitted detector (reference embeddings and threshold), training history,
tapcheck and format versions. It contains only tensors and plain data, so it loads with
``torch.load(weights_only=True)``: a model file can never run code.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import Config
from .detectors import ThresholdDetector, detector_from_state
from .errors import ConfigError, ModelFileError, ParameterError
from .features import FEATURES_VERSION
from .files import atomic_write

FORMAT = "tapcheck-model"
FORMAT_VERSION = 1
RETRAIN = "retrain it with `tapcheck train`"


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
    with atomic_write(path) as f:
        torch.save(checkpoint, f)
    return path


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
    try:
        config = Config.from_dict(checkpoint["config"], source=str(path))
        module = rebuild(checkpoint["name"], checkpoint["model_args"])
        module.load_state_dict(checkpoint["state_dict"])
        detector = detector_from_state(checkpoint["detector"])
    except (KeyError, TypeError, RuntimeError, ValueError, ConfigError, ParameterError) as e:
        raise ModelFileError(f"is damaged or inconsistent ({type(e).__name__}: {e})", path=path,
                             fix=RETRAIN) from None
    module.eval()
    return LoadedModel(path=path, name=checkpoint["name"], module=module, detector=detector,
                       config=config, classes=list(checkpoint["classes"]), checkpoint=checkpoint)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict, after the checks that need no model code."""
    if not path.exists():
        raise ModelFileError("model file not found", path=path,
                             fix="train one with `tapcheck train` or pass --model PATH")
    if path.is_dir():
        raise ModelFileError("is a folder, not a model file", path=path,
                             fix="pass the .pt file, e.g. models/arcface-resnet18.pt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            "is not a tapcheck model file (it holds Python objects or code that tapcheck refuses "
            "to load)", path=path, fix="use a model file written by `tapcheck train`") from None
    except PermissionError:
        raise ModelFileError("cannot be read (permission denied)", path=path,
                             fix="check the file's permissions") from None
    except Exception as e:  # noqa: BLE001 - the unpickler raises anything on a garbage file
        raise ModelFileError(f"is not a tapcheck model file ({type(e).__name__})", path=path,
                             fix="use a model file written by `tapcheck train`") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ModelFileError("is not a tapcheck model file", path=path,
                             fix="use a model file written by `tapcheck train`")
    made_by = checkpoint.get("tapcheck_version", "an unknown version")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"was written by tapcheck {made_by} in model format {checkpoint.get('format_version')}"
            f"; this tapcheck ({__version__}) reads format {FORMAT_VERSION}", path=path,
            fix=RETRAIN)
    if checkpoint.get("features_version") != FEATURES_VERSION:
        raise ModelFileError(
            f"was trained on features of version {checkpoint.get('features_version')} (tapcheck "
            f"{made_by}); this tapcheck computes version {FEATURES_VERSION}", path=path,
            fix=RETRAIN)
    return checkpoint


def new_checkpoint(**fields: Any) -> dict[str, Any]:
    """A checkpoint dict with the format header filled in."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "tapcheck_version": __version__,
            "features_version": FEATURES_VERSION, **fields}
