"""The pieces the training loop is built from: device, seeds, optimizers, batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import GanzooError


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise GanzooError(
            "train.device is 'cuda' but no CUDA device is available", key="train.device"
        )
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(parameters, options: dict[str, Any]) -> torch.optim.Optimizer:
    name, lr = options["name"], options["lr"]
    if name in ("adam", "adamw"):
        kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return kind(
            parameters,
            lr=lr,
            betas=tuple(options["betas"]),
            eps=options["eps"],
            weight_decay=options["weight_decay"],
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            parameters,
            lr=lr,
            eps=options["eps"],
            momentum=options["momentum"],
            weight_decay=options["weight_decay"],
        )
    return torch.optim.SGD(
        parameters,
        lr=lr,
        momentum=options["momentum"],
        weight_decay=options["weight_decay"],
    )


class BatchSampler:
    """Shuffled batches drawn from a tensor on the training device.

    Each epoch is one permutation from its own generator, so the data order is
    independent of every other random draw and can be saved and restored.
    """

    def __init__(self, samples: torch.Tensor, batch_size: int, seed: int) -> None:
        self.samples = samples
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(samples), generator=self.generator)
        self.position = 0

    def next(self) -> torch.Tensor:
        return self.samples[self.next_index()]

    def next_index(self) -> torch.Tensor:
        """The indices of the next batch, on the samples' device."""
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.samples), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return index.to(self.samples.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"]
        self.position = state["position"]


@dataclass
class Networks:
    generator: nn.Module
    discriminator: nn.Module
    generator_ema: nn.Module
