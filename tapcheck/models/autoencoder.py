"""Reconstruction models (the study's methods 1 and 2): a dense autoencoder and a VAE.

Both flatten the standardised 100 x 120 crop, squeeze it through a small code and rebuild it;
the anomaly score is how badly they rebuild a clip (``recon`` scorer): mean squared error for the
autoencoder, the negative ELBO (reconstruction + KL) for the VAE. The study found their output
blurry and no separation at all — the details a crack changes are exactly what a small code loses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import TapModel


def _dense(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class AutoencoderModel(TapModel):
    """Dense autoencoder, Keras-blog style: 12000-128-64-code-64-128-12000, ReLU, linear output.

    Parameters
    ----------
    embedding_dim : int
        Size of the code (Keras blog: 32).
    n_classes : int
        Ignored (reconstruction needs no classes); kept for a uniform interface.
    input_shape : (int, int)
    """

    scorers = ("recon", "knn")
    needs_classes = False

    def __init__(self, *, embedding_dim: int = 32, n_classes: int = 1,
                 input_shape: tuple[int, int] = (100, 120), backbone: str = "dense"):
        size = self._start(embedding_dim, n_classes, input_shape)
        self.encoder = _dense([size, 128, 64, embedding_dim])
        self.decoder = _dense([embedding_dim, 64, 128, size])

    def _start(self, embedding_dim: int, n_classes: int, input_shape) -> int:
        """Module set-up without a backbone; returns the flattened crop size."""
        nn.Module.__init__(self)
        self.model_args = dict(backbone="dense", embedding_dim=embedding_dim, n_classes=n_classes,
                               input_shape=tuple(input_shape))
        return math.prod(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.flatten(x, 1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self(x)).reshape(x.shape)

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        return F.mse_loss(self.reconstruct(x).float(), x.float()), None

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        if scorer == "recon":
            err = (self.reconstruct(x).float() - x.float()) ** 2
            return err.flatten(1).mean(dim=1, keepdim=True)
        return super().represent(x, scorer)


class VAEModel(AutoencoderModel):
    """Variational autoencoder: 12000-512-(μ, log σ²) of the code, decoder code-512-12000.

    The decoder models each standardised bin as a unit-variance Gaussian, so the reconstruction
    term of the ELBO is half the summed squared error (plus a constant); the score is the negative
    ELBO per clip. The embedding for ``knn`` is μ.
    """

    def __init__(self, *, embedding_dim: int = 32, n_classes: int = 1,
                 input_shape: tuple[int, int] = (100, 120), backbone: str = "dense"):
        size = self._start(embedding_dim, n_classes, input_shape)
        self.encoder = nn.Sequential(nn.Linear(size, 512), nn.ReLU(inplace=True))
        self.mu = nn.Linear(512, embedding_dim)
        self.logvar = nn.Linear(512, embedding_dim)
        self.decoder = _dense([embedding_dim, 512, size])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mu(self.encoder(torch.flatten(x, 1)))

    def _elbo_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.flatten(x, 1))
        mu, logvar = self.mu(h).float(), self.logvar(h).float().clamp(-20, 20)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        recon = self.decoder(z.to(h.dtype)).float()  # bfloat16 in a for_inference copy
        rec = 0.5 * ((recon - torch.flatten(x, 1).float()) ** 2).sum(dim=1)
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(dim=1)
        return rec, kl

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        rec, kl = self._elbo_terms(x)
        # per-bin scale keeps the loss comparable to the autoencoder's MSE across crop sizes
        return (rec + kl).mean() / x[0].numel(), None

    def represent(self, x: torch.Tensor, scorer: str) -> torch.Tensor:
        if scorer == "recon":
            rec, kl = self._elbo_terms(x)
            return ((rec + kl) / x[0].numel())[:, None]
        return TapModel.represent(self, x, scorer)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self(x)).reshape(x.shape)
