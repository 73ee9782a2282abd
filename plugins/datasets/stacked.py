"""Stacked MNIST and Fashion-MNIST: three random images on the three channels.

The standard mode-collapse benchmark of VEEGAN, Unrolled GAN and PacGAN: each
sample stacks three independently drawn images of the base set, so the data has
10 x 10 x 10 = 1,000 modes, and the label 100*l0 + 10*l1 + l2 names the mode.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ganzoo import Dataset, DataShape, Option, TensorData, fingerprint

from .idx import FashionMnist, IdxImages, Mnist
from .toy import check_split, split_seed

_FORWARDED = ("split", "root", "download", "resolution")
"""Options passed on unchanged to the base data set."""


def _stacked_options(base: type[IdxImages]) -> tuple[Option, ...]:
    declared = {option.name: option for option in base.options}
    return (
        Option("n", int, 50_000, "number of stacked samples to draw", minimum=1),
        Option("seed", int, 0, "seed of the draw; each split derives its own"),
        *(declared[name] for name in _FORWARDED),
    )


class StackedIdx(Dataset):
    """Three images of an IDX data set stacked as RGB channels, 1,000 modes."""

    splits = IdxImages.splits
    base: ClassVar[type[IdxImages]] = IdxImages

    def data_shape(self) -> DataShape:
        return DataShape(
            "image", (3, self.resolution, self.resolution), num_classes=1000
        )

    def base_dataset(self) -> IdxImages:
        """The base data set with the forwarded options."""
        values = {name: getattr(self, name) for name in _FORWARDED}
        return self.base.create(**values)

    def load(self, split: str | None = None) -> TensorData:
        """Draw ``n`` stacks from ``split`` of the base set; default: the option."""
        split = self.split if split is None else split
        check_split(self, split)
        base = self.base_dataset().load(split)

        # Pick three base images per sample, independently and with replacement.
        generator = torch.Generator().manual_seed(split_seed(self.seed, split))
        picks = torch.randint(len(base), (self.n, 3), generator=generator)
        samples = base.samples[:, 0][picks]
        labels = (base.labels[picks] * torch.tensor([100, 10, 1])).sum(dim=1)

        return TensorData(
            samples=samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, base.fingerprint, self.n, self.seed, split
            ),
            labels=labels,
        )


class StackedMnist(StackedIdx):
    """Stacked MNIST: three random MNIST digits as RGB channels, 1,000 modes."""

    name = "stacked-mnist"
    base = Mnist
    options = _stacked_options(Mnist)


class StackedFashionMnist(StackedIdx):
    """Stacked Fashion-MNIST: three random Fashion-MNIST images as RGB, 1,000 modes."""

    name = "stacked-fashion-mnist"
    base = FashionMnist
    options = _stacked_options(FashionMnist)
