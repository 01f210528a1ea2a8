"""The model registry: every model ``tapcheck train --model NAME`` knows, with its defaults.

A model is a family (one file each in this package) on a backbone, plus the optimiser settings
the study reported for it (``../shared/domain.md``). Epochs are fewer than the study's 100 where
a warm-up + cosine schedule reaches the same training loss on a CPU. ``tapcheck models`` prints
this table.

Embedding size: 512 on ResNet18 (the study's fc5), 32 on the shallow net (the width of its last
hidden layer: wider adds nothing, and the study's 2-D bottleneck "did not improve accuracy" —
t-SNE does the plotting instead), 32 for the autoencoders' code (Keras blog), 128 on the
``lite`` net (a quarter of ResNet18's 512, as its last stage is half as wide and pooled).

The ``lite`` backbone (``models/backbones.py``, ``docs/fast-model.md``) carries every head of
ResNet18 with ResNet18's optimiser settings: ``cnn-lite``, ``triplet-lite``, ``arcface-lite``, ...
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import TrainConfig
from ..errors import ParameterError
from .autoencoder import AutoencoderModel, VAEModel
from .base import TapModel
from .classifier import ClassifierModel
from .cosine import CosineModel
from .ensemble import Ensemble
from .triplet import TripletModel


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
        from ..detectors import SCORERS, representation_of

        if representation_of(resolved.scorer) not in self.family.scorers:
            usable = [s for s in SCORERS if representation_of(s) in self.family.scorers]
            raise ParameterError(
                f"model {self.name} cannot use the '{resolved.scorer}' scorer (--scorer, or "
                "train.scorer of the config)", fix=f"use one of: {', '.join(usable)}")
        if resolved.members > 1 and representation_of(resolved.scorer) != "knn":
            raise ParameterError(
                f"{self.name}: train.members = {resolved.members} needs a scorer on embeddings, "
                f"not '{resolved.scorer}' (probabilities or reconstruction errors of several "
                "networks have no common scale)",
                fix="one network (--members 1), or a kNN scorer (--scorer knn) where the model "
                    "has one")
        if resolved.optimizer not in ("sgd", "adam"):
            raise ParameterError(f"optimizer must be 'sgd' or 'adam', not '{resolved.optimizer}'")
        return resolved

    def build(self, *, n_classes: int, train: TrainConfig,
              input_shape: tuple[int, int]) -> TapModel:
        """A fresh, randomly initialised model for a resolved training config."""
        return self.family(n_classes=n_classes, embedding_dim=train.embedding_dim,
                           input_shape=input_shape, **self.args,
                           **self.family.config_args(train))


def _defaults(optimizer: str, lr: float, epochs: int, embedding_dim: int, scorer: str,
              batch_size: int = 32) -> dict[str, Any]:
    return dict(optimizer=optimizer, lr=lr, epochs=epochs, embedding_dim=embedding_dim,
                scorer=scorer, batch_size=batch_size)


_HEADS = {
    "arcface": "ArcFace (additive angular margin)",
    "adacos": "AdaCos (adaptive scale, no margin; AdaCos source)",
    "cosface": "CosFace (additive cosine margin)",
    "l2softmax": "L2-constrained softmax (normalised, scaled; L2-softmax source)",
}

_SPECS = [
    # study 1: dense AE, lr 1e-5, 50 epochs; 2: VAE, lr 1e-5, 100 epochs (Adam, Keras blog)
    ModelSpec("ae", AutoencoderModel, "dense autoencoder, reconstruction error (study #1)",
              {}, _defaults("adam", 1e-5, 50, 32, "recon")),
    ModelSpec("vae", VAEModel, "variational autoencoder, negative ELBO (study #2)",
              {}, _defaults("adam", 1e-5, 100, 32, "recon")),
    # study 3: shallow CNN, Adam lr 0.01, ~100 epochs; 4: ResNet18 CNN, SGD lr 0.01, 100 epochs
    ModelSpec("cnn-shallow", ClassifierModel, "shallow CNN, cross-entropy (study #3)",
              dict(backbone="shallow"), _defaults("adam", 0.01, 60, 32, "knn")),
    ModelSpec("cnn-resnet18", ClassifierModel, "ResNet18 CNN, cross-entropy (study #4)",
              dict(backbone="resnet18"), _defaults("sgd", 0.01, 15, 512, "knn")),
    # study 5: triplet shallow, Adam 0.01 / 0.001, 100 epochs; 6: ResNet18, Adam 5e-4..3e-3, 15-20
    ModelSpec("triplet-shallow", TripletModel, "shallow net, online triplet loss (study #5)",
              dict(backbone="shallow"), _defaults("adam", 1e-3, 60, 32, "knn")),
    ModelSpec("triplet-resnet18", TripletModel, "ResNet18, online triplet loss (study #6)",
              dict(backbone="resnet18"), _defaults("adam", 1e-3, 15, 512, "knn")),
]
# the fast model: every head on the lite net, with ResNet18's optimiser settings
_LITE = _defaults("sgd", 0.01, 15, 128, "knn")
_SPECS += [
    ModelSpec("cnn-lite", ClassifierModel, "lite ResNet CNN, cross-entropy (fast)",
              dict(backbone="lite"), _LITE),
    ModelSpec("triplet-lite", TripletModel, "lite ResNet, online triplet loss (fast)",
              dict(backbone="lite"), {**_LITE, "optimizer": "adam", "lr": 1e-3}),
]
for _backbone, _study in (("shallow", 7), ("resnet18", 8), ("lite", None)):
    for _head, _about in _HEADS.items():
        _note = f" (study #{_study})" if _head == "arcface" and _study else ""
        # study 7: ArcFace shallow, SGD lr 1e-3, 100-200 epochs; 8: ResNet18, SGD lr 0.01, 100
        _opt = {"shallow": _defaults("sgd", 1e-3, 60, 32, "knn"),
                "resnet18": _defaults("sgd", 0.01, 15, 512, "knn"), "lite": _LITE}[_backbone]
        _SPECS.append(ModelSpec(f"{_head}-{_backbone}", CosineModel,
                                f"{_about} on the {_backbone} net{_note}",
                                dict(backbone=_backbone, head=_head), _opt))

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}

#: the study's eight methods, in its order
STUDY_MODELS = ("ae", "vae", "cnn-shallow", "cnn-resnet18", "triplet-shallow", "triplet-resnet18",
                "arcface-shallow", "arcface-resnet18")


#: the laptop model (docs/fast-model.md), measured beside the study's best by ``tapcheck bench``
FAST_MODEL = "arcface-lite"


def get_spec(name: str) -> ModelSpec:
    """The registered model ``name``; an unknown name lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        from ..validate import nearest, shown

        near = nearest(name, MODELS)
        # a typo away from a name, it gets it; `tapcheck models` says what each is (QA)
        raise ParameterError(f"unknown model {shown(name)}" + (f" (did you mean '{near}'?)"
                                                          if near else ""),
                             fix=f"choose one of: {', '.join(MODELS)} (`tapcheck models` "
                                 "describes them)") from None


def rebuild(name: str, model_args: dict[str, Any], *, members: int = 1) -> TapModel | Ensemble:
    """The module of a saved model, from its registry name and stored arguments; with
    ``members`` > 1 an :class:`~tapcheck.models.ensemble.Ensemble` of that many.

    Its weights are left uninitialised (the caller loads the saved ones): drawing 25 million
    random numbers for ResNet18 would cost a sixth of a second of every ``tapcheck judge``.
    """
    spec = get_spec(name)
    args = dict(model_args)
    args["input_shape"] = tuple(args["input_shape"])
    with _skip_init():
        nets = [spec.family(**args) for _ in range(members)]
    return nets[0] if members == 1 else Ensemble(nets)


@contextlib.contextmanager
def _skip_init():
    """Make torch.nn.init's in-place initialisers no-ops (and the layers' reset_parameters)."""
    import torch

    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
