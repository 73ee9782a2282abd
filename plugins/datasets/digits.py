"""scikit-learn's 8x8 handwritten digits: a tiny labeled image set, no files needed."""

from __future__ import annotations

import numpy as np
import torch

from ganzoo import Dataset, DataShape, Option, TensorData, fingerprint

from .idx import resize_images
from .toy import check_split

TRAIN_SIZE = 1437
"""The first 1,437 of the 1,797 images form the train split, the rest the test."""


class Digits(Dataset):
    """scikit-learn's 1,797 8x8 grayscale handwritten digits, 10 classes."""

    name = "digits"
    splits = ("train", "test", "all")
    options = (
        Option(
            "resolution", int, 8, "side of the images, resized once at load", minimum=1
        ),
    )

    def data_shape(self) -> DataShape:
        return DataShape("image", (1, self.resolution, self.resolution), num_classes=10)

    def load(self, split: str = "train") -> TensorData:
        """Load ``split``: the first 1,437 images ("train"), the rest, or all."""
        check_split(self, split)

        # Imported here: scikit-learn is slow to import and only this plugin needs it.
        from sklearn.datasets import load_digits

        pixels, targets = load_digits(return_X_y=True)
        pixels = pixels.astype(np.uint8)
        if split == "train":
            pixels, targets = pixels[:TRAIN_SIZE], targets[:TRAIN_SIZE]
        elif split == "test":
            pixels, targets = pixels[TRAIN_SIZE:], targets[TRAIN_SIZE:]

        # Values are counts 0..16 of set pixels in 4x4 blocks of the original scans.
        samples = torch.from_numpy(pixels.astype(np.float32) / 16.0).reshape(
            -1, 1, 8, 8
        )
        samples = resize_images(samples, self.resolution)
        return TensorData(
            samples=samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, pixels.tobytes(), targets.tobytes(), split, self.resolution
            ),
            labels=torch.from_numpy(targets.astype(np.int64)),
        )
