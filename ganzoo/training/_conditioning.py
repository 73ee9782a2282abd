"""How the networks of a run use class labels, checked before anything trains.

An unconditional run uses none. A class-conditional run gives its generator a
class for every fake, and its discriminator either sees the labels (label
concatenation, projection) or predicts them with an auxiliary classifier
(ACGAN), whose classification term the loss adds. The contract the networks
follow is in :class:`ganzoo.Architecture`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._errors import GanzooError
from .._plugin import Loss, TensorData


def takes_labels(network: nn.Module) -> int:
    """The classes a network is conditioned on; 0 for an unconditional one.

    Many networks have a ``num_classes`` (timm's, torchvision's): only those
    that also say ``conditional`` or have an auxiliary classifier count.
    """
    marked = getattr(network, "conditional", False) or has_auxiliary_classifier(network)
    return int(getattr(network, "num_classes", 0) or 0) if marked else 0


def has_auxiliary_classifier(network: nn.Module) -> bool:
    return bool(getattr(network, "auxiliary_classifier", False))


@dataclass(frozen=True)
class Conditioning:
    """The label handling of one run; ``num_classes`` is 0 when it has none."""

    num_classes: int = 0
    discriminator_takes_labels: bool = False
    auxiliary: bool = False

    @classmethod
    def of(
        cls,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: Loss,
        data: TensorData,
    ) -> Conditioning:
        """Check that the networks, the loss and the data agree about labels."""
        g_classes = takes_labels(generator)
        auxiliary = has_auxiliary_classifier(discriminator)
        d_classes = 0 if auxiliary else takes_labels(discriminator)
        aux_classes = takes_labels(discriminator) if auxiliary else 0
        classifies = callable(getattr(loss, "classification_loss", None))

        if auxiliary and not classifies:
            raise GanzooError(
                "the discriminator has an auxiliary classifier, but the loss "
                f"{loss.name!r} has no classification term; use the 'acgan' loss",
                key="loss",
            )
        if classifies and not auxiliary:
            raise GanzooError(
                f"the loss {loss.name!r} trains an auxiliary classifier, but the "
                "discriminator has none; use an auxiliary-classifier "
                "discriminator or another loss",
                key="loss",
            )
        if not g_classes:
            if d_classes or aux_classes:
                raise GanzooError(
                    "the discriminator is class-conditional but the generator is "
                    "not: fakes would have no class to be judged by",
                    key="model.generator",
                )
            return cls()
        if not (d_classes or aux_classes):
            raise GanzooError(
                "the generator is class-conditional but the discriminator never "
                "sees a label, so nothing would teach the generator the classes; "
                "use a discriminator that takes labels or has an auxiliary "
                "classifier",
                key="model.discriminator",
            )
        if data.labels is None or data.shape.num_classes == 0:
            raise GanzooError(
                "the model is class-conditional, but the data set has no labels",
                key="data",
            )
        for role, classes in (
            ("generator", g_classes),
            ("discriminator", d_classes or aux_classes),
        ):
            if classes != data.shape.num_classes:
                raise GanzooError(
                    f"the {role} is built for {classes} classes, the data set has "
                    f"{data.shape.num_classes}",
                    key=f"model.{role}",
                )
        return cls(g_classes, bool(d_classes), auxiliary)

    @property
    def active(self) -> bool:
        return self.num_classes > 0

    def sample_labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        """Classes for ``n`` fakes, uniform; None for an unconditional run."""
        if not self.active:
            return None
        return torch.randint(self.num_classes, (n,), device=device)

    def generate(
        self, generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        if labels is None:
            return generator(latents)
        return generator(latents, labels)

    def judge(
        self,
        discriminator: nn.Module,
        samples: torch.Tensor,
        labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The discriminator's logits (N,) and, with an auxiliary classifier, its
        class logits (N, K)."""
        if self.auxiliary:
            logits, class_logits = discriminator(samples)
            return logits.reshape(-1), class_logits
        if self.discriminator_takes_labels:
            return discriminator(samples, labels).reshape(-1), None
        return discriminator(samples).reshape(-1), None

    def for_regularizers(
        self, discriminator: nn.Module, labels: torch.Tensor | None
    ) -> nn.Module:
        """The discriminator as regularizers call it: samples in, logits out.

        A conditional one judges every sample by the real batch's labels, which
        is what gradient penalties on reals and on real-fake interpolates use.
        """
        if not self.active:
            return discriminator
        return _LabelsBound(self, discriminator, labels)


class _LabelsBound(nn.Module):
    def __init__(
        self,
        conditioning: Conditioning,
        discriminator: nn.Module,
        labels: torch.Tensor | None,
    ) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.discriminator = discriminator
        self.labels = labels

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        labels = None if self.labels is None else self.labels[: len(samples)]
        return self.conditioning.judge(self.discriminator, samples, labels)[0]
