"""A configurable DCGAN (Radford et al. 2016) and its batch-norm-free critic.

Both networks follow the paper's recipe: only strided (transposed) convolutions,
batch norm in the generator and in all but the first discriminator block, ReLU in
the generator, LeakyReLU(0.2) in the discriminator, tanh output and weights drawn
from N(0, 0.02). The discriminator mirrors the generator, so for every supported
resolution the two have the same feature-map sizes and channel counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option

PLANS = {28: (7, 4), 32: (4, 4), 64: (4, 8)}
"""Resolution -> (size of the smallest feature map, its channels in widths).

Each 2x upsampling halves the channels, so a 64 px generator runs 8w -> 4w -> 2w
-> w channels at 4, 8, 16 and 32 pixels before its output layer.
"""

SLOPE = 0.2
"""Negative slope of the discriminator's LeakyReLUs."""


def _channel_plan(resolution: int, width: int) -> tuple[int, list[int]]:
    """The smallest map size and the generator's channels at each map size."""
    start, multiple = PLANS[resolution]
    steps = (resolution // start).bit_length() - 1
    return start, [width * multiple // 2**i for i in range(steps)]


def _norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer for the discriminator's feature maps."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # One group normalises over channels, height and width of each sample:
        # layer norm for feature maps, with one scale and shift per channel.
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def init_dcgan(module: nn.Module) -> None:
    """Weights from N(0, 0.02), norm scales from N(1, 0.02), biases zero."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm2d | nn.GroupNorm | nn.InstanceNorm2d):
            if layer.weight is not None:
                nn.init.normal_(layer.weight, 1.0, 0.02)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class DcganGenerator(nn.Module):
    """Latent vector -> small map -> 2x upsampling blocks -> image in [-1, 1]."""

    def __init__(
        self, channels: int, resolution: int, latent_dim: int, width: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_range = (-1.0, 1.0)
        start, plan = _channel_plan(resolution, width)

        # Project z, seen as a 1x1 map, to the smallest map with one transposed
        # convolution whose kernel covers that map.
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, plan[0], start, bias=False),
            nn.BatchNorm2d(plan[0]),
            nn.ReLU(),
        ]

        # Upsample, halving the channels, until one step short of the resolution.
        for wide, narrow in pairwise(plan):
            layers += [
                nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(narrow),
                nn.ReLU(),
            ]

        # The last upsampling produces the image channels.
        layers += [
            nn.ConvTranspose2d(plan[-1], channels, 4, stride=2, padding=1),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DcganDiscriminator(nn.Module):
    """Image -> stride-2 convolution blocks -> one logit per image.

    ``norm`` is applied in every block but the first: ``"batch"`` for the DCGAN
    discriminator, ``"none"``, ``"layer"`` or ``"instance"`` for the critic.
    """

    def __init__(self, channels: int, resolution: int, width: int, norm: str) -> None:
        super().__init__()
        start, plan = _channel_plan(resolution, width)
        plan = plan[::-1]

        # Downsample, doubling the channels; the first block sees raw pixels and
        # is never normalised, as in the paper.
        layers: list[nn.Module] = [
            nn.Conv2d(channels, plan[0], 4, stride=2, padding=1),
            nn.LeakyReLU(SLOPE),
        ]
        normed = norm != "none"
        for narrow, wide in pairwise(plan):
            layers += [
                nn.Conv2d(narrow, wide, 4, stride=2, padding=1, bias=not normed),
                _norm(norm, wide),
                nn.LeakyReLU(SLOPE),
            ]

        # A convolution covering the whole smallest map gives the logit.
        layers.append(nn.Conv2d(plan[-1], 1, start))
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(1)


def _check_images(name: str, data: DataShape) -> None:
    """Raise GanzooError unless ``data`` are square images of a supported size."""
    supported = ", ".join(str(r) for r in PLANS)
    if data.kind != "image":
        raise GanzooError(
            f"architecture {name!r} needs images, but the data are "
            f"{data.describe()}; use 'mlp' for point data"
        )
    _, height, width = data.shape
    if height != width or height not in PLANS:
        raise GanzooError(
            f"architecture {name!r} supports square images of {supported} pixels "
            f"(any channel count), but the data are {data.describe()}; set the data "
            f"set's 'resolution' option to one of {supported}"
        )


def _width_option() -> Option:
    return Option(
        "width",
        int,
        64,
        "Base channel count; the smallest map has 4x as many (8x at 64 px).",
        minimum=8,
    )


class Dcgan(Architecture):
    """DCGAN generator and discriminator for 28, 32 or 64 px images (tanh output).

    The generator projects z to a 4x4 map (7x7 for 28 px) and doubles the size
    with transposed convolutions, BatchNorm and ReLU; the discriminator mirrors it
    with strided convolutions, BatchNorm and LeakyReLU(0.2). For gradient
    penalties use the batch-norm-free discriminator of 'dcgan-critic'.
    """

    name = "dcgan"
    generator_options = (
        Option("latent_dim", int, 100, "Length of the latent vector z.", minimum=1),
        _width_option(),
    )
    discriminator_options = (_width_option(),)

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        _check_images(self.name, data)

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return DcganGenerator(data.channels, data.resolution, **options)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        return DcganDiscriminator(
            data.channels, data.resolution, norm="batch", **options
        )


class DcganCritic(Architecture):
    """The DCGAN discriminator without batch norm, for WGAN-GP and other penalties.

    A gradient penalty is computed per sample, but batch norm makes each output
    depend on the whole batch, so the penalty constrains the wrong function. This
    critic has no normalisation by default, or layer/instance norm, which act on
    one sample at a time. Pair it with the generator of 'dcgan'.
    """

    name = "dcgan-critic"
    discriminator_options = (
        _width_option(),
        Option(
            "norm",
            str,
            "none",
            "Per-sample normalisation in all but the first block.",
            choices=("none", "layer", "instance"),
        ),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        _check_images(self.name, data)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        return DcganDiscriminator(data.channels, data.resolution, **options)
