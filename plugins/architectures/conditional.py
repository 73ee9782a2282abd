"""Class-conditional DCGANs for 28x28 images, after the lecture's seed network.

The generator is the seed's (a dense projection to 7x7 maps, two 4x4 stride-2
transposed convolutions, a 7x7 convolution and a sigmoid), narrower so that it
trains on a CPU, and told the class either by a learned label embedding joined to
z or by conditional batch norm in its upsampling blocks. The discriminator is the
seed's (two 3x3 stride-2 convolutions and global max pooling) and sees the class
in one of three ways: as extra input channels, by projection onto its pooled
features, or not at all, predicting it with an auxiliary classifier (ACGAN). No
discriminator uses batch norm, so that reals and fakes may share a batch and
gradient penalties stay per sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option

from .dcgan_seed import SLOPE, init_like_keras

RESOLUTION = 28
"""The only image size these networks handle: 7 -> 14 -> 28 pixels."""


# Generator.


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine part, then a gain and a bias per class.

    de Vries et al. 2017, "Modulating early visual processing by language". The
    gains start at 1 and the biases at 0, so that before training every class
    sees plain batch norm.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = self.gain(labels)[:, :, None, None]
        bias = self.bias(labels)[:, :, None, None]
        return gain * self.norm(features) + bias


class UpsampleBlock(nn.Module):
    """A 4x4 stride-2 transposed convolution, optionally normalised per class."""

    def __init__(self, channels: int, num_classes: int, class_norm: bool) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.norm = ConditionalBatchNorm(channels, num_classes) if class_norm else None

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.upsample(features)
        if self.norm is not None:
            features = self.norm(features, labels)
        return F.leaky_relu(features, SLOPE)


class ConditionalGenerator(nn.Module):
    """Latent vector and class -> 7x7 maps -> two 2x upsamplings -> image in [0, 1].

    ``conditioning`` is ``"embedding"`` (a learned embedding of the class joined
    to z) or ``"batchnorm"`` (z alone, the class setting the gain and bias of
    batch norm in both upsampling blocks).
    """

    conditional = True

    def __init__(
        self,
        channels: int,
        num_classes: int,
        latent_dim: int,
        width: int,
        conditioning: str,
        embedding_dim: int,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_range = (0.0, 1.0)
        self.num_classes = num_classes
        self.width = width

        # The class enters either with z or in the normalisation of each block.
        self.embed = None
        inputs = latent_dim
        if conditioning == "embedding":
            self.embed = nn.Embedding(num_classes, embedding_dim)
            inputs += embedding_dim
        class_norm = conditioning == "batchnorm"

        self.project = nn.Sequential(
            nn.Linear(inputs, 7 * 7 * width),
            nn.LeakyReLU(SLOPE),
        )
        self.blocks = nn.ModuleList(
            UpsampleBlock(width, num_classes, class_norm) for _ in range(2)
        )
        self.to_image = nn.Sequential(
            nn.Conv2d(width, channels, 7, padding=3),
            nn.Sigmoid(),
        )

        # Keras initialisation for the layers the seed has; the embeddings keep
        # PyTorch's N(0, 1), the same scale as z, and the conditional batch norm
        # keeps its identity start.
        init_like_keras(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        features = self.project(z).view(-1, self.width, 7, 7)
        for block in self.blocks:
            features = block(features, labels)
        return self.to_image(features)


# Discriminators.


def _seed_trunk(in_channels: int, width: int) -> nn.Sequential:
    """The seed's two 3x3 stride-2 convolutions, ``width`` then 2x ``width`` maps."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
        nn.LeakyReLU(SLOPE),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.LeakyReLU(SLOPE),
    )


def _pooled(trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Global max pooling of the trunk's last maps, as in the seed: (N, channels)."""
    return torch.amax(trunk(images), dim=(2, 3))


class ConcatDiscriminator(nn.Module):
    """A learned class embedding, broadcast over the image as extra channels."""

    conditional = True

    def __init__(
        self, channels: int, num_classes: int, width: int, embedding_dim: int
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embedding_dim)
        self.features = _seed_trunk(channels + embedding_dim, width)
        self.head = nn.Linear(2 * width, 1)
        init_like_keras(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        size = images.shape[2:]
        label_maps = self.embed(labels)[:, :, None, None].expand(-1, -1, *size)
        pooled = _pooled(self.features, torch.cat([images, label_maps], dim=1))
        return self.head(pooled).reshape(-1)


class ProjectionDiscriminator(nn.Module):
    """logit = psi(h) + <embed(y), h> on the pooled features h.

    Miyato and Koyama 2018, "cGANs with Projection Discriminator".
    """

    conditional = True

    def __init__(self, channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = _seed_trunk(channels, width)
        self.head = nn.Linear(2 * width, 1)
        self.embed = nn.Embedding(num_classes, 2 * width)
        init_like_keras(self)

        # N(0, 1) class vectors would make the projection term dwarf psi(h) at
        # the start; Glorot-uniform keeps the two terms of comparable size.
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pooled = _pooled(self.features, images)
        projection = (self.embed(labels) * pooled).sum(dim=1)
        return self.head(pooled).reshape(-1) + projection


class AuxiliaryDiscriminator(nn.Module):
    """One trunk, two heads: a real/fake logit and K class logits (ACGAN).

    Odena, Olah and Shlens 2017, "Conditional Image Synthesis with Auxiliary
    Classifier GANs". Called without labels; returns ``(logits, class_logits)``.
    """

    auxiliary_classifier = True

    def __init__(self, channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = _seed_trunk(channels, width)
        self.head = nn.Linear(2 * width, 1)
        self.classify = nn.Linear(2 * width, num_classes)
        init_like_keras(self)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = _pooled(self.features, images)
        return self.head(pooled).reshape(-1), self.classify(pooled)


# The plugin.


def _embedding_dim_option(used_by: str) -> Option:
    return Option(
        "embedding_dim",
        int,
        16,
        f"Length of the learned class embedding ({used_by} only).",
        minimum=1,
    )


class ConditionalDcgan(Architecture):
    """Class-conditional DCGAN for 28x28 labeled images (sigmoid output in [0, 1]).

    The lecture's seed networks, narrower, told the class. Generator
    ``conditioning``: ``embedding`` joins a learned class embedding to z,
    ``batchnorm`` uses conditional batch norm in both upsampling blocks.
    Discriminator ``style``: ``concat`` adds the class embedding as input
    channels, ``projection`` adds the inner product of a class vector with the
    pooled features (pair it with the hinge loss), ``auxiliary`` predicts the
    class with a second head (pair it with the 'acgan' loss).
    """

    name = "cdcgan"
    generator_options = (
        Option(
            "conditioning",
            str,
            "embedding",
            "How the class reaches the generator.",
            choices=("embedding", "batchnorm"),
        ),
        Option("latent_dim", int, 128, "Length of the latent vector z.", minimum=1),
        Option("width", int, 48, "Channels of every feature map.", minimum=8),
        _embedding_dim_option("'embedding' conditioning"),
    )
    discriminator_options = (
        Option(
            "style",
            str,
            "projection",
            "How the discriminator uses the class.",
            choices=("concat", "projection", "auxiliary"),
        ),
        Option(
            "width",
            int,
            64,
            "Channels of the first convolution; the second has twice as many.",
            minimum=8,
        ),
        _embedding_dim_option("'concat' style"),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind != "image" or data.shape[1:] != (RESOLUTION, RESOLUTION):
            raise GanzooError(
                f"architecture {self.name!r} supports only {RESOLUTION}x{RESOLUTION} "
                f"images (any channel count), but the data are {data.describe()}; "
                "for images of another size, set the data set's 'resolution' "
                "option to 28"
            )
        if data.num_classes == 0:
            raise GanzooError(
                f"architecture {self.name!r}: the class-conditional {role} needs a "
                f"labeled data set, but the data ({data.describe()}) have no "
                "labels; use 'dcgan-seed' for unlabeled data"
            )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return ConditionalGenerator(data.channels, data.num_classes, **options)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        channels, classes, width = data.channels, data.num_classes, options["width"]
        if options["style"] == "concat":
            return ConcatDiscriminator(
                channels, classes, width, options["embedding_dim"]
            )
        if options["style"] == "projection":
            return ProjectionDiscriminator(channels, classes, width)
        return AuxiliaryDiscriminator(channels, classes, width)
