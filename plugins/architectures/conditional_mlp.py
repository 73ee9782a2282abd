"""Mirza & Osindero's class-conditional GAN (2014): fully connected, for small images.

"Conditional Generative Adversarial Nets" conditioned a pair of multilayer
perceptrons on MNIST by joining a one-hot label to the generator's noise and to
the discriminator's input. Fully connected layers on 784 pixels cost little, so
this family trains for many more steps than a convolutional one in the same CPU
time: it is the conditional model to reach for when a run must finish in
minutes. The discriminator sees the class joined to the image (``concat``, as in
the paper) or by projection onto its last hidden layer (``projection``, Miyato &
Koyama 2018).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option

SLOPE = 0.2
"""Negative slope of the LeakyReLUs."""

MAX_PIXELS = 64 * 64 * 3
"""Larger images need convolutions: a fully connected layer on them is too big."""


def _hidden(inputs: int, widths: list[int], norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Linear(inputs, width))
        if norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.LeakyReLU(SLOPE))
        inputs = width
    return nn.Sequential(*layers)


class MlpConditionalGenerator(nn.Module):
    """Latent vector joined to the one-hot class -> hidden layers -> image in [0, 1]."""

    conditional = True

    def __init__(
        self, shape: tuple[int, ...], num_classes: int, latent_dim: int, hidden: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.output_range = (0.0, 1.0)
        self.shape = shape
        widths = [hidden, 2 * hidden, 4 * hidden]
        self.body = _hidden(latent_dim + num_classes, widths, norm=True)
        self.to_image = nn.Linear(widths[-1], math.prod(shape))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], 1)
        pixels = torch.sigmoid(self.to_image(self.body(joined)))
        return pixels.view(-1, *self.shape)


class MlpConditionalDiscriminator(nn.Module):
    """Image and class -> hidden layers -> one logit.

    ``style`` ``concat`` joins the one-hot class to the pixels; ``projection``
    adds the inner product of a class embedding with the last hidden layer to
    an unconditional logit.
    """

    conditional = True

    def __init__(
        self, shape: tuple[int, ...], num_classes: int, hidden: int, style: str
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.style = style
        widths = [4 * hidden, 2 * hidden]
        extra = num_classes if style == "concat" else 0
        self.body = _hidden(math.prod(shape) + extra, widths, norm=False)
        self.logit = nn.Linear(widths[-1], 1)
        self.embed = (
            nn.Embedding(num_classes, widths[-1]) if style == "projection" else None
        )
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=1 / math.sqrt(widths[-1]))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pixels = x.flatten(1)
        if self.embed is None:
            one_hot = F.one_hot(labels, self.num_classes).to(pixels.dtype)
            return self.logit(self.body(torch.cat([pixels, one_hot], 1))).squeeze(1)
        features = self.body(pixels)
        projected = (self.embed(labels) * features).sum(dim=1)
        return self.logit(features).squeeze(1) + projected


class ConditionalMlp(Architecture):
    """Mirza & Osindero's conditional GAN: MLPs with the class joined to their input."""

    name = "cgan-mlp"
    generator_options = (
        Option("latent_dim", int, 100, "Length of the latent vector z.", minimum=1),
        Option(
            "hidden",
            int,
            256,
            "Units of the first hidden layer; the next two have 2x and 4x.",
            minimum=1,
        ),
    )
    discriminator_options = (
        Option(
            "hidden",
            int,
            256,
            "Units of the last hidden layer; the first has 2x.",
            minimum=1,
        ),
        Option(
            "style",
            str,
            "concat",
            "How the class reaches the discriminator: joined to the pixels, or "
            "by projection onto the last hidden layer.",
            choices=("concat", "projection"),
        ),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind != "image":
            raise GanzooError(
                f"architecture {self.name!r} needs images, but the data are "
                f"{data.describe()}"
            )
        if math.prod(data.shape) > MAX_PIXELS:
            raise GanzooError(
                f"architecture {self.name!r} is fully connected and takes images "
                f"of at most {MAX_PIXELS} values, but the data are "
                f"{data.describe()}; use 'cdcgan' or lower the resolution"
            )
        if data.num_classes == 0:
            raise GanzooError(
                f"architecture {self.name!r}: the class-conditional {role} needs a "
                f"labeled data set, but the data ({data.describe()}) have no labels"
            )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return MlpConditionalGenerator(data.shape, data.num_classes, **options)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        return MlpConditionalDiscriminator(data.shape, data.num_classes, **options)
