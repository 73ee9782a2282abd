"""Fully connected networks for low-dimensional point data (rings, grids, ...).

The discriminator can pack several samples into one input (PacGAN, Lin et al.
2018): it then judges a whole pack at once, which makes a generator that collapses
onto a few modes easy to spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky-relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
}
"""Hidden-layer nonlinearities by option value."""


def _activation_option() -> Option:
    return Option(
        "activation",
        str,
        "relu",
        "Nonlinearity after each hidden layer.",
        choices=tuple(ACTIVATIONS),
    )


def _stack(
    inputs: int, outputs: int, hidden: int, depth: int, activation: str
) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units, then a linear output layer."""
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class MlpGenerator(nn.Module):
    """Latent vector -> hidden layers -> point, with an unbounded linear output."""

    def __init__(
        self, dim: int, latent_dim: int, hidden: int, depth: int, activation: str
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_range = None
        self.net = _stack(latent_dim, dim, hidden, depth, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MlpDiscriminator(nn.Module):
    """Packs of ``pack`` consecutive points -> hidden layers -> one logit per pack."""

    def __init__(
        self, dim: int, hidden: int, depth: int, activation: str, pack: int
    ) -> None:
        super().__init__()
        self.pack = pack
        self.net = _stack(dim * pack, 1, hidden, depth, activation)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        count, dim = points.shape
        if count % self.pack:
            raise GanzooError(
                f"the 'mlp' discriminator packs {self.pack} samples together, but "
                f"got a batch of {count}; make the batch size a multiple of "
                f"pack={self.pack}"
            )

        # Consecutive samples form one pack: rows 0..pack-1, then pack..2*pack-1.
        packed = points.reshape(count // self.pack, self.pack * dim)
        return self.net(packed)


class Mlp(Architecture):
    """Fully connected generator and discriminator for 2-D (or n-D) points.

    The discriminator option ``pack`` enables PacGAN: it scores packs of ``pack``
    consecutive samples and returns ``N // pack`` logits for a batch of ``N``.
    """

    name = "mlp"
    generator_options = (
        Option("latent_dim", int, 2, "Length of the latent vector z.", minimum=1),
        Option("hidden", int, 128, "Units in each hidden layer.", minimum=1),
        Option("depth", int, 3, "Number of hidden layers.", minimum=1),
        _activation_option(),
    )
    discriminator_options = (
        Option("hidden", int, 128, "Units in each hidden layer.", minimum=1),
        Option("depth", int, 3, "Number of hidden layers.", minimum=1),
        _activation_option(),
        Option(
            "pack",
            int,
            1,
            "Samples judged together (PacGAN); the batch size must be a multiple.",
            minimum=1,
        ),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind == "points" and len(data.shape) == 1:
            return
        raise GanzooError(
            f"architecture 'mlp' supports only point data such as 2-D points, but "
            f"the data are {data.describe()}; use 'dcgan-seed' or 'dcgan' for images"
        )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return MlpGenerator(data.shape[0], **options)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        return MlpDiscriminator(data.shape[0], **options)
