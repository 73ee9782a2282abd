"""The built-in adversarial objectives: one class per loss family.

Every loss receives raw discriminator outputs (logits, one per sample, as 1-D
tensors) and returns scalar tensors that the discriminator and the generator each
minimise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganzoo import Loss, Option, hookimpl


class BinaryCrossEntropy(Loss):
    """The original GAN objective: binary cross-entropy on the logits.

    Goodfellow et al. 2014, "Generative Adversarial Nets". The discriminator sees
    one combined batch, fakes labelled 0 and reals labelled 1, as in the lecture's
    train step. The generator either pushes its samples towards "real"
    (``non-saturating``, -log D(G(z))) or minimises log(1 - D(G(z))) (``minimax``),
    whose gradient vanishes when the discriminator is confident.
    """

    name = "bce"
    options = (
        Option(
            "generator",
            str,
            "non-saturating",
            "generator objective: -log D(G(z)) or the original log(1 - D(G(z)))",
            choices=("non-saturating", "minimax"),
        ),
        Option(
            "label_noise",
            float,
            0.0,
            "add label_noise * U(0, 1) to each discriminator target, real and fake",
            minimum=0.0,
            maximum=1.0,
        ),
        Option(
            "label_smoothing",
            float,
            0.0,
            "one-sided smoothing: real targets become 1 - label_smoothing",
            minimum=0.0,
            maximum=0.5,
        ),
    )

    generator: str
    label_noise: float
    label_smoothing: float

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        fake_logits = fake_logits.reshape(-1)
        real_logits = real_logits.reshape(-1)
        logits = torch.cat([fake_logits, real_logits])

        # Targets: fakes 0, reals 1 (or 1 - label_smoothing), fakes first.
        targets = torch.cat(
            [
                torch.zeros_like(fake_logits),
                torch.full_like(real_logits, 1.0 - self.label_smoothing),
            ]
        )

        # Noisy labels, independently per sample; no draw at all when disabled,
        # so that turning the option off leaves the random stream untouched.
        if self.label_noise > 0:
            noise = torch.rand(targets.shape, device=logits.device, dtype=logits.dtype)
            targets = targets + self.label_noise * noise

        return F.binary_cross_entropy_with_logits(logits, targets)

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        fake_logits = fake_logits.reshape(-1)
        if self.generator == "minimax":
            # log(1 - sigmoid(x)) is minus the cross-entropy against target 0.
            zeros = torch.zeros_like(fake_logits)
            return -F.binary_cross_entropy_with_logits(fake_logits, zeros)
        ones = torch.ones_like(fake_logits)
        return F.binary_cross_entropy_with_logits(fake_logits, ones)


class AuxiliaryClassifierGan(BinaryCrossEntropy):
    """ACGAN: the BCE objective plus a weighted cross-entropy on the class head.

    Odena, Olah and Shlens 2017, "Conditional Image Synthesis with Auxiliary
    Classifier GANs". For a discriminator with an auxiliary classifier: the
    real/fake logits are scored as by 'bce', with the same options, and
    ``classification_loss`` scores the class logits against the labels, which
    the trainer adds for reals and fakes in the discriminator step and for fakes
    in the generator step.
    """

    name = "acgan"
    options = (
        *BinaryCrossEntropy.options,
        Option(
            "classification_weight",
            float,
            1.0,
            "multiplier of the class cross-entropy in both networks' losses",
            minimum=0.0,
        ),
    )

    classification_weight: float

    def classification_loss(
        self, class_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """``classification_weight`` times the cross-entropy of the class logits."""
        return self.classification_weight * F.cross_entropy(class_logits, labels)


class Wasserstein(Loss):
    """The Wasserstein GAN critic objective, E[D(fake)] - E[D(real)].

    Arjovsky, Chintala and Bottou 2017, "Wasserstein GAN". The critic must be kept
    (roughly) 1-Lipschitz, with the ``weight-clip`` constraint or the
    ``gradient-penalty`` regularizer; on its own this loss is unbounded.
    """

    name = "wasserstein"

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


class Hinge(Loss):
    """The hinge objective: margins of 1 around the decision boundary.

    Lim and Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization
    for Generative Adversarial Networks". The discriminator minimises
    E[relu(1 - D(real))] + E[relu(1 + D(fake))]; the generator -E[D(fake)].
    """

    name = "hinge"

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        real_term = F.relu(1.0 - real_logits).mean()
        fake_term = F.relu(1.0 + fake_logits).mean()
        return real_term + fake_term

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


class LeastSquares(Loss):
    """The least-squares objective (LSGAN) with targets a=0, b=1, c=1.

    Mao et al. 2017, "Least Squares Generative Adversarial Networks". The
    discriminator regresses fakes to 0 and reals to 1; the generator regresses its
    samples to 1. Both terms carry the paper's factor 1/2.
    """

    name = "least-squares"

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        real_term = 0.5 * (real_logits - 1.0).pow(2).mean()
        fake_term = 0.5 * fake_logits.pow(2).mean()
        return real_term + fake_term

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits - 1.0).pow(2).mean()


@hookimpl
def ganzoo_losses() -> list[type[Loss]]:
    from .translation_losses import Pix2pixLoss  # it extends BCE: imported late

    return [
        BinaryCrossEntropy,
        Wasserstein,
        Hinge,
        LeastSquares,
        AuxiliaryClassifierGan,
        Pix2pixLoss,
    ]
