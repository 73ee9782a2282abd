"""The f-GAN objectives (Nowozin, Cseke and Tomioka 2016) as one ganzoo loss.

An f-divergence D_f(P || Q) = E_Q[f(p/q)] has the variational lower bound
E_P[T(x)] - E_Q[f*(T(x))] over functions T, where f* is the convex conjugate of
f. The discriminator's logit v becomes T = g(v) through an output activation g
that keeps T in the domain of f*; the discriminator maximises the bound, and the
generator, as in the paper's practical variant, maximises E_Q[g(v)].

Each divergence is a pair of functions of the logit, g(v) and f*(g(v)), written
in forms that do not overflow for moderate logits (softplus instead of
log(1 + exp)). ``kl`` and ``hellinger`` grow exponentially in the fake logits
and ``reverse-kl`` in the real ones, so they need smaller learning rates than
the bounded ``jensen-shannon`` and ``gan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ganzoo import Loss, Option, hookimpl

Activation = Callable[[torch.Tensor], torch.Tensor]

DIVERGENCES: dict[str, tuple[Activation, Activation]] = {
    # name: (g(v), f*(g(v))), from Table 6 of the paper.
    "kl": (lambda v: v, lambda v: torch.exp(v - 1.0)),
    "reverse-kl": (lambda v: -torch.exp(-v), lambda v: v - 1.0),
    "pearson": (lambda v: v, lambda v: 0.25 * v * v + v),
    "hellinger": (lambda v: 1.0 - torch.exp(-v), lambda v: torch.exp(v) - 1.0),
    "jensen-shannon": (
        lambda v: math.log(2.0) - F.softplus(-v),
        lambda v: F.softplus(v) - math.log(2.0),
    ),
    "gan": (lambda v: -F.softplus(-v), F.softplus),
}
"""Output activation g and conjugate f* composed with g, per divergence."""


class FGan(Loss):
    """f-GAN: the variational bound of an f-divergence (KL, Pearson, JS, ...).

    Nowozin, Cseke and Tomioka 2016. The discriminator minimises
    E_Q[f*(g(v))] - E_P[g(v)], the negated lower bound on D_f(P || Q); at its
    optimum the bound equals the divergence. The generator minimises -E_Q[g(v)]
    (``non-saturating``, the paper's choice) or E_Q[-f*(g(v))] (``minimax``).
    """

    name = "f-gan"
    options = (
        Option(
            "divergence",
            str,
            "jensen-shannon",
            "the f-divergence whose variational bound is trained",
            choices=tuple(DIVERGENCES),
        ),
        Option(
            "generator",
            str,
            "non-saturating",
            "generator objective: -E[g(v)] or the saddle point's -E[f*(g(v))]",
            choices=("non-saturating", "minimax"),
        ),
    )

    divergence: str
    generator: str

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        activation, conjugate = DIVERGENCES[self.divergence]
        return conjugate(fake_logits).mean() - activation(real_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        activation, conjugate = DIVERGENCES[self.divergence]
        if self.generator == "minimax":
            return -conjugate(fake_logits).mean()
        return -activation(fake_logits).mean()


@hookimpl
def ganzoo_losses() -> list[type[Loss]]:
    return [FGan]
