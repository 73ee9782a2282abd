"""Objectives for image-to-image translation, which compare a translation with its
target as well as with the discriminator's judgement.

A loss of this family has a ``reconstruction_loss(fake, target)`` method; the
translation trainer adds its value to the generator's adversarial loss, and a
recipe that gives such a loss unpaired data is rejected before training.
"""

from __future__ import annotations

import torch

from ganzoo import Option

from .losses import BinaryCrossEntropy


class Pix2pixLoss(BinaryCrossEntropy):
    """pix2pix's objective: BCE on the patch logits plus a weighted L1 to the target.

    Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
    Networks". The discriminator's part is the ``bce`` loss on every patch logit
    of real pairs (A, B) and fake pairs (A, G(A)), averaged over both, which is
    pix2pix's halved discriminator objective. The generator minimises the
    non-saturating BCE plus ``l1_weight`` times the mean absolute difference
    between G(A) and B in the generator's output range ([-1, 1] for pix2pix's
    U-Net), with pix2pix's default weight of 100.
    """

    name = "pix2pix"
    options = (
        Option(
            "l1_weight",
            float,
            100.0,
            "weight of the L1 distance between translation and target",
            minimum=0.0,
        ),
        *BinaryCrossEntropy.options,
    )

    l1_weight: float

    def reconstruction_loss(
        self, fake: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """``l1_weight`` times the mean absolute difference, a scalar tensor."""
        return self.l1_weight * (fake - target).abs().mean()
