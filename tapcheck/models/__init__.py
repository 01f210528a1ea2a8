"""The model registry: every model ``tapcheck train --model NAME`` knows, with its defaults.

A model is a family (one file each in this package) on a backbone, plus the training defaults the
study reported for it, adapted for a CPU where noted. ``tapcheck models`` prints this table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import TrainConfig
from ..errors import ParameterError
from .base import TapModel
from .cosine import CosineModel


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its family, fixed arguments and training defaults."""

    name: str
    family: type[TapModel]
    summary: str
    args: dict[str, Any] = field(default_factory=dict)  # family arguments (backbone, head, ...)
    defaults: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields left as None

    def resolve(self, train: TrainConfig) -> TrainConfig:
        """``train`` with every ``None`` field filled from this model's defaults."""
        filled = {k: v for k, v in self.defaults.items() if getattr(train, k) is None}
        resolved = dataclasses.replace(train, model=self.name, **filled)
        if resolved.scorer not in self.family.scorers:
            raise ParameterError(
                f"model {self.name} cannot use the '{resolved.scorer}' scorer",
                fix=f"use one of: {', '.join(self.family.scorers)}")
        return resolved

    def build(self, *, n_classes: int, train: TrainConfig,
              input_shape: tuple[int, int]) -> TapModel:
        """A fresh, randomly initialised model for a resolved training config."""
        args = dict(self.args)
        if "head" in args:  # cosine heads take the scale and margin from the config
            args.update(scale=train.arcface_scale, margin=train.arcface_margin)
        return self.family(n_classes=n_classes, embedding_dim=train.embedding_dim,
                           input_shape=input_shape, **args)


# study (domain.md, table of the eight methods): ArcFace-ResNet18 SGD lr 0.01, 100 epochs; tapcheck
# trains fewer epochs with a warm-up + cosine schedule, which reaches the same loss on a CPU.
_SGD = dict(optimizer="sgd", lr=0.01, epochs=15, batch_size=32)

_SPECS = [
    ModelSpec("arcface-resnet18", CosineModel,
              "ArcFace head on the study's ResNet18 — the study's best model",
              dict(backbone="resnet18", head="arcface"),
              dict(_SGD, embedding_dim=512, scorer="knn")),
]

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> ModelSpec:
    """The registered model ``name``; an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ParameterError(f"unknown model '{name}'",
                             fix=f"choose one of: {', '.join(MODELS)}") from None


def rebuild(name: str, model_args: dict[str, Any]) -> TapModel:
    """The module of a saved model, from its registry name and stored arguments."""
    spec = get_spec(name)
    args = dict(model_args)
    args["input_shape"] = tuple(args["input_shape"])
    return spec.family(**args)
