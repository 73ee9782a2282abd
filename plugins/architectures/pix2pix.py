"""pix2pix (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator.

On paired data the U-Net translates an input image A into an output the shape of
the target B, with skip connections between mirrored encoder and decoder levels
and dropout as its only noise; the PatchGAN judges the pair (A next to B, or A
next to the translation) patch by patch. On unpaired images there is nothing to
translate: the U-Net then maps a noise image of the data's shape to a sample and
the PatchGAN judges single images, so that both also serve as ordinary GAN
networks.
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
"""Negative slope of the encoder's and the discriminator's LeakyReLUs."""

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


def _init_like_pix2pix(module: nn.Module) -> None:
    """Weights from N(0, 0.02), norm scales from N(1, 0.02), biases zero."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def auto_depth(height: int, width: int) -> int:
    """Levels that halve the (padded) image down to a 1x1 bottleneck, at least 2."""
    return max(2, math.ceil(math.log2(max(height, width))))


class UnetGenerator(nn.Module):
    """Image -> ``depth`` stride-2 convolutions -> mirrored decoder with skips.

    The input is padded (replicating its border) to a multiple of 2**depth and
    the output cropped back, so any image size works.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        size: tuple[int, int],
        *,
        translating: bool,
        depth: int,
        width: int,
        max_width: int,
        dropout: float,
        dropout_layers: int,
        norm: str,
    ) -> None:
        super().__init__()
        self.size = size
        self.input_shape = (in_channels, *size) if translating else None
        self.latent_dim = 0 if translating else in_channels * size[0] * size[1]
        self.output_range = (-1.0, 1.0)
        # Kept in the state dict, so that weights trained to translate still say
        # so when loaded into a network built for latents.
        self.register_buffer("translates", torch.tensor(translating))

        widths = [min(width * 2**level, max_width) for level in range(depth)]
        bias = norm != "batch"
        self.down = nn.ModuleList([nn.Conv2d(in_channels, widths[0], 4, 2, 1)])
        for level in range(1, depth):
            innermost = level == depth - 1
            self.down.append(
                nn.Sequential(
                    nn.LeakyReLU(SLOPE),
                    nn.Conv2d(widths[level - 1], widths[level], 4, 2, 1, bias=bias),
                    nn.Identity() if innermost else _norm(norm, widths[level]),
                )
            )

        # up[level] produces the map that down[level] took in; all but the
        # innermost take the skip connection of their level as well.
        self.up = nn.ModuleList()
        for level in range(depth):
            innermost, outermost = level == depth - 1, level == 0
            takes = widths[level] * (1 if innermost else 2)
            if outermost:
                layers = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(takes, out_channels, 4, 2, 1),
                    nn.Tanh(),
                ]
            else:
                layers = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(takes, widths[level - 1], 4, 2, 1, bias=bias),
                    _norm(norm, widths[level - 1]),
                ]
                # As in pix2pix: dropout on the decoder levels next to the
                # innermost one, where it stands in for a noise input.
                if dropout > 0 and depth - 1 - dropout_layers <= level < depth - 1:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.multiple = 2**depth
        _init_like_pix2pix(self)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 2:
            inputs = self._noise_image(inputs)
        height, width = inputs.shape[-2:]
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        x = F.pad(inputs, padding, mode="replicate") if any(padding) else inputs

        # Encoder, keeping every level's output for the skip connections.
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)

        # Decoder, innermost level first.
        x = self.up[-1](skips[-1])
        for level in range(len(self.up) - 2, -1, -1):
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
        top, left = padding[2], padding[0]
        return x[..., top : top + height, left : left + width]

    def _noise_image(self, latents: torch.Tensor) -> torch.Tensor:
        if bool(self.translates) or self.input_shape is not None:
            raise GanzooError(
                "this pix2pix generator translates images and takes no latents: "
                "translate input images with `ganzoo translate RUN_DIR INPUT_DIR "
                "OUTPUT_DIR`"
            )
        channels = self.latent_dim // (self.size[0] * self.size[1])
        return latents.reshape(len(latents), channels, *self.size)


class PatchDiscriminator(nn.Module):
    """A fully convolutional discriminator with one logit per overlapping patch.

    Called with ``patches=True`` it returns the (N, 1, h, w) map of logits that
    pix2pix's objective averages over; otherwise the mean patch logit of each
    sample, (N,), as any discriminator does.
    """

    per_patch = True

    def __init__(
        self, in_channels: int, *, width: int, layers: int, max_width: int, norm: str
    ) -> None:
        super().__init__()
        widths = [min(width * 2**level, max_width) for level in range(layers + 1)]
        bias = norm != "batch"
        blocks: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 4, 2, 1),
            nn.LeakyReLU(SLOPE),
        ]
        for level in range(1, layers):
            blocks += [
                nn.Conv2d(widths[level - 1], widths[level], 4, 2, 1, bias=bias),
                _norm(norm, widths[level]),
                nn.LeakyReLU(SLOPE),
            ]
        blocks += [
            nn.Conv2d(widths[layers - 1], widths[layers], 4, 1, 1, bias=bias),
            _norm(norm, widths[layers]),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(widths[layers], 1, 4, 1, 1),
        ]
        self.net = nn.Sequential(*blocks)
        _init_like_pix2pix(self)

    def forward(self, samples: torch.Tensor, patches: bool = False) -> torch.Tensor:
        logits = self.net(samples)
        return logits if patches else logits.mean(dim=(1, 2, 3))


def patch_map_side(side: int, layers: int) -> int:
    """The side of the PatchGAN's logit map for images of ``side`` pixels."""
    for _ in range(layers):
        side //= 2
    return side - 2


def receptive_field(layers: int) -> int:
    """The side of the image patch that one logit of the PatchGAN sees."""
    field = 7  # the two stride-1 convolutions
    for _ in range(layers):
        field = 2 * field + 2
    return field


class Pix2pix(Architecture):
    """pix2pix: U-Net generator and PatchGAN discriminator (Isola et al. 2017).

    Generator: ``depth`` 4x4 stride-2 convolutions (LeakyReLU 0.2, normalised
    except the first and the innermost) down to a bottleneck, a mirrored decoder
    of transposed convolutions (ReLU) whose every level also takes the encoder's
    map of that level, dropout on the ``dropout_layers`` decoder levels next to
    the bottleneck, and a tanh output in [-1, 1]. By default it goes down to a
    1x1 bottleneck, as pix2pix's U-Net-256 does. Discriminator: the 70x70
    PatchGAN for ``layers: 3`` (C64-C128-C256-C512, a one-channel map of patch
    logits); fewer layers see smaller patches. On paired data the discriminator
    takes A and B concatenated on channels. Weights start from N(0, 0.02).
    """

    name = "pix2pix"
    generator_options = (
        Option(
            "depth",
            int,
            None,
            "U-Net levels (null: down to a 1x1 bottleneck)",
            minimum=2,
            nullable=True,
        ),
        Option("width", int, 64, "channels of the first level", minimum=1),
        Option(
            "max_width", int, 512, "channels of the deeper levels, at most", minimum=1
        ),
        Option(
            "dropout",
            float,
            0.5,
            "dropout rate of the decoder levels next to the bottleneck",
            minimum=0.0,
            maximum=0.9,
        ),
        Option("dropout_layers", int, 3, "decoder levels with dropout", minimum=0),
        Option("norm", str, "batch", "normalisation layers", choices=NORMS),
    )
    discriminator_options = (
        Option("width", int, 64, "channels of the first convolution", minimum=1),
        Option(
            "layers",
            int,
            3,
            "stride-2 convolutions; 3 sees 70x70 patches, 2 sees 34, 1 sees 16",
            minimum=1,
        ),
        Option(
            "max_width", int, 512, "channels of the deeper layers, at most", minimum=1
        ),
        Option("norm", str, "batch", "normalisation layers", choices=NORMS),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind != "image":
            raise GanzooError(
                f"architecture 'pix2pix' is for images, but the data are "
                f"{data.describe()}; use 'mlp' for points"
            )
        _, height, width = data.shape
        if data.paired and tuple(data.input_shape[1:]) != (height, width):
            _, in_h, in_w = data.input_shape
            raise GanzooError(
                f"architecture 'pix2pix' maps each input pixel to an output "
                f"pixel, so inputs and targets must have one size; the inputs "
                f"are {in_h}x{in_w}, the targets {height}x{width}"
            )
        if role == "generator":
            deepest = auto_depth(height, width)
            depth = options.get("depth")
            if depth is not None and depth > deepest:
                raise GanzooError(
                    f"depth {depth} halves {height}x{width} images below one "
                    f"pixel; use at most {deepest} (or null)",
                    key="depth",
                )
            return
        layers = options.get("layers", 3)
        if patch_map_side(min(height, width), layers) < 1:
            side = min(height, width)
            fits = [n for n in range(1, layers) if patch_map_side(side, n) >= 1]
            hint = f"use layers: {max(fits)}" if fits else "use larger images"
            raise GanzooError(
                f"a PatchGAN of {layers} layers leaves no patch of "
                f"{height}x{width} images; {hint}",
                key="layers",
            )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        _, height, width = data.shape
        in_channels = data.input_shape[0] if data.paired else data.channels
        depth = options["depth"] or auto_depth(height, width)
        return UnetGenerator(
            in_channels,
            data.channels,
            (height, width),
            translating=data.paired,
            depth=depth,
            width=options["width"],
            max_width=options["max_width"],
            dropout=options["dropout"],
            dropout_layers=options["dropout_layers"],
            norm=options["norm"],
        )

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        in_channels = data.channels + (data.input_shape[0] if data.paired else 0)
        return PatchDiscriminator(
            in_channels,
            width=options["width"],
            layers=options["layers"],
            max_width=options["max_width"],
            norm=options["norm"],
        )
