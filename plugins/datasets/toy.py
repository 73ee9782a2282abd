"""The 2-D Gaussian mixtures used to measure mode collapse: ``ring`` and ``grid``.

Both follow PacGAN's configurations exactly, so that mode counts and quality
scores are comparable across papers: the means and the standard deviation are
part of the protocol and are exposed for the metrics through ``means()`` and
``std``. This module also holds the two helpers the other data set plugins share.
"""

from __future__ import annotations

import hashlib
import math
from typing import ClassVar

import torch

from ganzoo import Dataset, DataShape, GanzooError, Option, TensorData, fingerprint
from ganzoo._options import closest


def check_split(dataset: Dataset, split: str) -> None:
    """Raise GanzooError unless ``split`` is one of ``dataset.splits``."""
    if split in dataset.splits:
        return
    near = closest(str(split), dataset.splits)
    hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    raise GanzooError(
        f"data set {dataset.name!r} has no split {split!r}{hint}; "
        f"its splits are: {', '.join(dataset.splits)}",
        key="split",
    )


def split_seed(seed: int, split: str) -> int:
    """A seed derived from the user's seed and the split name.

    Hashing both keeps the splits independent: seed 1's train split shares no
    random stream with seed 0's test split, as ``seed + 1`` would.
    """
    digest = hashlib.sha256(f"{seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


class GaussianMixture(Dataset):
    """Equal-weight mixture of isotropic 2-D Gaussians with fixed means."""

    splits = ("train", "test")
    std: ClassVar[float] = 0.0
    options = (
        Option("n", int, 100_000, "number of points to draw", minimum=1),
        Option("seed", int, 0, "seed of the draw; the test split derives its own"),
    )

    @classmethod
    def means(cls) -> torch.Tensor:
        """The component means, a float32 tensor of shape (K, 2)."""
        raise NotImplementedError

    def data_shape(self) -> DataShape:
        return DataShape("points", (2,), num_classes=len(self.means()))

    def load(self, split: str = "train") -> TensorData:
        """Draw ``n`` points; the labels are the components they were drawn from."""
        check_split(self, split)
        means = self.means()

        # Draw the components, then the noise, from a generator of our own, so that
        # the global random state neither affects nor is affected by the data.
        generator = torch.Generator().manual_seed(split_seed(self.seed, split))
        components = torch.randint(len(means), (self.n,), generator=generator)
        noise = torch.randn(self.n, 2, generator=generator) * self.std
        samples = means[components] + noise

        return TensorData(
            samples=samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, means.tolist(), self.std, self.n, self.seed, split
            ),
            labels=components,
        )


class Ring(GaussianMixture):
    """Eight Gaussians on the unit circle, 45 degrees apart, std 0.01 (PacGAN)."""

    name = "ring"
    std = 0.01

    @classmethod
    def means(cls) -> torch.Tensor:
        # 2*pi*i/8 for i = 0..7: a linspace from 0 to 2*pi would repeat the first
        # angle and leave only seven distinct modes.
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1).float()


class Grid(GaussianMixture):
    """Twenty-five Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 (PacGAN)."""

    name = "grid"
    std = 0.05

    @classmethod
    def means(cls) -> torch.Tensor:
        steps = torch.arange(-4.0, 5.0, 2.0)
        xs, ys = torch.meshgrid(steps, steps, indexing="ij")
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
