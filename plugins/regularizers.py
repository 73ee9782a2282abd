"""The built-in discriminator regularizers and parameter constraints.

A regularizer returns a weighted term that the training loop adds to the
discriminator's loss; a constraint changes the discriminator's parameters in
place after each of its steps. Samples may have any shape (N, ...), images or
points. The discriminator may return N logits, (N,) or (N, 1), or fewer when it
packs several samples into one decision (PacGAN): the gradients below are taken
of the summed outputs, which gives each sample its own gradient either way.
"""

from __future__ import annotations

import torch
from torch import nn

from ganzoo import Constraint, Option, Regularizer, hookimpl


def _input_gradients(discriminator: nn.Module, samples: torch.Tensor) -> torch.Tensor:
    """Gradients of the discriminator's outputs w.r.t. ``samples``, one per sample.

    The graph is kept (``create_graph``), so a penalty built from the result
    trains the discriminator's parameters. ``samples`` must require gradients.
    """
    outputs = discriminator(samples)
    (gradients,) = torch.autograd.grad(outputs.sum(), samples, create_graph=True)
    return gradients.reshape(gradients.shape[0], -1)


class GradientPenalty(Regularizer):
    """The WGAN-GP penalty: gradient norms on real-fake interpolates pushed to 1.

    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs". Each term is
    weight * E[(||grad D(x_hat)||_2 - target)^2], where x_hat = eps * real +
    (1 - eps) * fake with eps ~ U(0, 1) drawn once per sample.
    """

    name = "gradient-penalty"
    options = (
        Option(
            "weight",
            float,
            10.0,
            "lambda, the factor in front of the penalty",
            minimum=0.0,
        ),
        Option(
            "target",
            float,
            1.0,
            "the gradient norm the penalty pushes towards",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    weight: float
    target: float

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        # The last batch of an epoch can be shorter than the generated one: pair up
        # as many samples as both batches have.
        count = min(real.shape[0], fake.shape[0])
        real = real[:count].detach()
        fake = fake[:count].detach()

        # Interpolate with one eps per sample, broadcast over the other dims.
        eps_shape = (count,) + (1,) * (real.dim() - 1)
        eps = torch.rand(eps_shape, device=real.device, dtype=real.dtype)
        interpolates = (eps * real + (1.0 - eps) * fake).requires_grad_(True)

        # Penalise the distance of each gradient norm from the target.
        with torch.enable_grad():
            gradients = _input_gradients(discriminator, interpolates)
            norms = torch.linalg.vector_norm(gradients, ord=2, dim=1)
            return self.weight * (norms - self.target).pow(2).mean()


class R1Penalty(Regularizer):
    """The R1 penalty: squared gradient norms of the discriminator on real data.

    Mescheder, Geiger and Nowozin 2018, "Which Training Methods for GANs do
    actually Converge?". The term is weight / 2 * E[||grad D(x)||^2] over the real
    batch; ``weight`` is the paper's gamma. Fakes are not used.
    """

    name = "r1"
    options = (
        Option(
            "weight",
            float,
            10.0,
            "gamma; the penalty is gamma / 2 times the mean squared gradient norm",
            minimum=0.0,
        ),
    )

    weight: float

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        samples = real.detach().requires_grad_(True)
        with torch.enable_grad():
            gradients = _input_gradients(discriminator, samples)
            return 0.5 * self.weight * gradients.pow(2).sum(dim=1).mean()


class WeightClip(Constraint):
    """Clamps every discriminator parameter to [-clip, clip] after each step.

    Arjovsky, Chintala and Bottou 2017, "Wasserstein GAN": a crude way to keep the
    critic Lipschitz. Too small a clip makes the critic weak, too large makes it
    slow to reach the limit; the paper uses 0.01.
    """

    name = "weight-clip"
    options = (
        Option(
            "clip",
            float,
            0.01,
            "the bound on the absolute value of each parameter",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    clip: float

    def apply(self, discriminator: nn.Module) -> None:
        with torch.no_grad():
            for parameter in discriminator.parameters():
                parameter.clamp_(-self.clip, self.clip)


@hookimpl
def ganzoo_regularizers() -> list[type[Regularizer]]:
    return [GradientPenalty, R1Penalty]


@hookimpl
def ganzoo_constraints() -> list[type[Constraint]]:
    return [WeightClip]
