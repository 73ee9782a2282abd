"""The f-gan loss: its contract, its registration and the divergences it bounds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ganzoo_fgan import DIVERGENCES, FGan

from ganzoo.testing import assert_conforms, registered_entries

GENERATORS = {
    # f(u) of each divergence, D_f(P || Q) = sum_x q(x) f(p(x) / q(x)).
    "kl": lambda u: u * math.log(u),
    "reverse-kl": lambda u: -math.log(u),
    "pearson": lambda u: (u - 1.0) ** 2,
    "hellinger": lambda u: (math.sqrt(u) - 1.0) ** 2,
    "jensen-shannon": lambda u: (
        -(u + 1.0) * math.log((1.0 + u) / 2.0) + u * math.log(u)
    ),
    "gan": lambda u: u * math.log(u) - (u + 1.0) * math.log(u + 1.0),
}

P = (0.5, 0.5)
Q = (0.25, 0.75)
"""Two distributions on two points; the counts below draw them exactly."""


@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_every_divergence_meets_the_loss_contract(divergence):
    report = assert_conforms(FGan, options={"divergence": divergence})
    assert report.unavailable is None


def test_the_loss_is_found_through_its_entry_point():
    entries = registered_entries(kinds=["loss"])
    assert [e.cls for e in entries if e.name == "f-gan"] == [FGan]


@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_the_optimal_discriminator_recovers_the_divergence(divergence):
    # One logit per point; real samples hit the points 1:1, fake ones 1:3.
    logits = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    loss = FGan.create(divergence=divergence)

    def negated_bound():
        optimizer.zero_grad()
        value = loss.discriminator_loss(logits[[0, 1]], logits[[0, 1, 1, 1]])
        value.backward()
        return value

    optimizer = torch.optim.LBFGS([logits], max_iter=200, line_search_fn="strong_wolfe")
    optimizer.step(negated_bound)

    f = GENERATORS[divergence]
    expected = sum(q * f(p / q) for p, q in zip(P, Q, strict=True))
    with torch.no_grad():
        bound = -loss.discriminator_loss(logits[[0, 1]], logits[[0, 1, 1, 1]])
    assert float(bound) == pytest.approx(expected, abs=1e-6)


def test_the_gan_divergence_is_binary_cross_entropy():
    real, fake = torch.randn(16), torch.randn(16)
    loss = FGan.create(divergence="gan")
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(16)) + bce(fake, torch.zeros(16))
    assert torch.allclose(loss.discriminator_loss(real, fake), expected)
    assert torch.allclose(loss.generator_loss(fake), bce(fake, torch.ones(16)))


def test_minimax_generator_is_the_negated_fake_term():
    fake = torch.randn(16)
    minimax = FGan.create(divergence="pearson", generator="minimax")
    assert torch.allclose(
        minimax.generator_loss(fake), -(0.25 * fake * fake + fake).mean()
    )
