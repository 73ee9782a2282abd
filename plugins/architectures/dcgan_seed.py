"""The lecture's Keras DCGAN for 28x28 images, layer for layer in PyTorch.

This is the seed of the zoo: every other architecture is compared against it, so
it reproduces the lecture's listing exactly, including Keras' default
initialisation, rather than improving on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option

RESOLUTION = 28
"""The only image size the lecture's network handles: 7 -> 14 -> 28 pixels."""

SLOPE = 0.2
"""Negative slope of every LeakyReLU in the lecture's listing."""


class SeedGenerator(nn.Module):
    """Latent vector -> 7x7x128 map -> two 2x upsamplings -> image in [0, 1]."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_range = (0.0, 1.0)

        self.project = nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * 128),
            nn.LeakyReLU(SLOPE),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
            nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(128, channels, 7, padding=3),
            nn.Sigmoid(),
        )
        init_like_keras(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.project(z).view(-1, 128, 7, 7)
        return self.upsample(features)


class SeedDiscriminator(nn.Module):
    """Two stride-2 convolutions, global max pooling and one linear logit."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 64, 3, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(64, 128, 3, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
        )
        self.head = nn.Linear(128, 1)
        init_like_keras(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.amax(self.features(images), dim=(2, 3))
        return self.head(pooled)


def init_like_keras(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases, as Keras initialises its layers.

    PyTorch's default (Kaiming-uniform with a=sqrt(5)) gives smaller weights, which
    changes how fast the lecture's GAN trains; matching Keras keeps the dynamics.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class DcganSeed(Architecture):
    """The lecture's Keras DCGAN for 28x28 images (sigmoid output in [0, 1]).

    Generator: Dense(7*7*128) and LeakyReLU(0.2), reshape, two 4x4 stride-2
    transposed convolutions with LeakyReLU(0.2), a 7x7 convolution to the image
    channels and a sigmoid. Discriminator: two 3x3 stride-2 convolutions (64 and
    128 filters) with LeakyReLU(0.2). The lecture's listing stops there; it is
    completed as in the Keras conditional-GAN example it comes from, with global
    max pooling and a Dense(1) logit. Weights start as Keras initialises them.
    """

    name = "dcgan-seed"
    generator_options = (
        Option("latent_dim", int, 128, "Length of the latent vector z.", minimum=1),
    )
    discriminator_options = ()

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind == "image" and data.shape[1:] == (RESOLUTION, RESOLUTION):
            return
        raise GanzooError(
            f"architecture 'dcgan-seed' supports only {RESOLUTION}x{RESOLUTION} "
            f"images (any channel count), but the data are {data.describe()}; "
            "use 'dcgan' for 28, 32 or 64 pixel images, or 'mlp' for points"
        )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return SeedGenerator(data.channels, options["latent_dim"])

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        return SeedDiscriminator(data.channels)
