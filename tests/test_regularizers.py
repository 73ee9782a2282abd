"""The gradient penalties and weight clipping on critics whose gradients are known."""

from __future__ import annotations

import re

import pluggy
import pytest
import torch
from ganzoo_plugins import regularizers
from ganzoo_plugins.regularizers import GradientPenalty, R1Penalty, WeightClip
from torch import nn

import ganzoo
from ganzoo import hookspecs


def linear_critic(weights: list[float], bias: float = 0.5) -> nn.Linear:
    """D(x) = w . x + b, whose input gradient is w everywhere."""
    critic = nn.Linear(len(weights), 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weights]))
        critic.bias.fill_(bias)
    return critic


class SquareCritic(nn.Module):
    """D(x) = sum(x^2) per sample, whose input gradient is 2x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).flatten(1).sum(dim=1)


class PackedCritic(nn.Module):
    """A linear critic that judges pairs of samples: N samples give N/2 logits."""

    def __init__(self, first: list[float], second: list[float]) -> None:
        super().__init__()
        self.linear = linear_critic(first + second)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0] // 2, -1)).reshape(-1)


# Gradient penalty.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_penalty_of_linear_critic_is_exact_for_any_eps(seed: int) -> None:
    torch.manual_seed(seed)
    critic = linear_critic([1.0, 2.0, 2.0])
    real, fake = torch.randn(6, 3), torch.randn(6, 3)

    value = GradientPenalty.create(weight=10.0).penalty(critic, real, fake)

    # ||w|| = 3, so 10 * (3 - 1)^2.
    assert value.shape == ()
    assert value.item() == pytest.approx(40.0, rel=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_norm_critic() -> None:
    critic = linear_critic([0.6, 0.0, 0.8])
    real, fake = torch.randn(5, 3), torch.randn(5, 3)

    value = GradientPenalty.create().penalty(critic, real, fake)

    assert value.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_pushes_norms_to_its_target() -> None:
    critic = linear_critic([1.0, 2.0, 2.0])
    real, fake = torch.randn(4, 3), torch.randn(4, 3)

    value = GradientPenalty.create(weight=2.0, target=2.0).penalty(critic, real, fake)

    assert value.item() == pytest.approx(2.0 * (3.0 - 2.0) ** 2, rel=1e-6)


def test_gradient_penalty_trains_the_critic_parameters() -> None:
    weights = [1.0, 2.0, 2.0]
    critic = linear_critic(weights)
    real, fake = torch.randn(4, 3), torch.randn(4, 3)

    GradientPenalty.create(weight=10.0).penalty(critic, real, fake).backward()

    # d/dw of 10 * (||w|| - 1)^2 is 20 * (||w|| - 1) * w / ||w|| = 40/3 * w.
    expected = torch.tensor([weights]) * 40.0 / 3.0
    torch.testing.assert_close(critic.weight.grad, expected)
    # The bias does not change the input gradient, so the penalty ignores it.
    assert critic.bias.grad is None or critic.bias.grad.item() == 0.0


def test_gradient_penalty_interpolates_with_one_eps_per_sample() -> None:
    # For D(x) = sum(x^2) the gradient at x_hat is 2 * x_hat, so the penalty
    # depends on eps: recompute it from the same draw.
    real, fake = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4) - 1.0

    torch.manual_seed(5)
    value = GradientPenalty.create(weight=10.0).penalty(SquareCritic(), real, fake)
    torch.manual_seed(5)
    eps = torch.rand(3, 1, 1, 1)

    interpolates = eps * real + (1 - eps) * fake
    norms = (2 * interpolates).flatten(1).norm(dim=1)
    expected = 10.0 * ((norms - 1.0) ** 2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_of_a_linear_conv_critic_on_images() -> None:
    # A 4x4 kernel over a 4x4 image is a linear map: its gradient is the kernel.
    critic = nn.Conv2d(1, 1, kernel_size=4)
    with torch.no_grad():
        critic.weight.fill_(0.5)
    real, fake = torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4)

    value = GradientPenalty.create(weight=10.0).penalty(critic, real, fake)

    # The kernel has 16 entries of 0.5: norm 2.
    assert value.item() == pytest.approx(10.0 * (2.0 - 1.0) ** 2, rel=1e-6)


def test_gradient_penalty_matches_per_sample_gradients_of_a_conv_critic() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(
        nn.Conv2d(1, 2, kernel_size=3),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(8, 1),
    )
    real, fake = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)

    torch.manual_seed(9)
    value = GradientPenalty.create(weight=10.0).penalty(critic, real, fake)
    value.backward()
    torch.manual_seed(9)
    eps = torch.rand(3, 1, 1, 1)

    # One sample at a time, so no sample can leak into another's gradient.
    terms = []
    for i in range(3):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0)
        x.requires_grad_(True)
        (gradient,) = torch.autograd.grad(critic(x).sum(), x)
        terms.append((gradient.norm() - 1.0) ** 2)
    assert value.item() == pytest.approx(10.0 * sum(terms).item() / 3, rel=1e-5)
    assert critic[0].weight.grad is not None
    assert critic[3].weight.grad is not None
    assert critic[0].weight.grad.abs().sum() > 0


def test_gradient_penalty_with_a_packed_critic() -> None:
    # Each sample of a pair gets its own half of the weights as its gradient.
    critic = PackedCritic([1.0, 2.0, 2.0], [0.0, 0.0, 2.0])
    real, fake = torch.randn(4, 3), torch.randn(4, 3)

    value = GradientPenalty.create(weight=10.0).penalty(critic, real, fake)

    expected = 10.0 * ((3.0 - 1.0) ** 2 + (2.0 - 1.0) ** 2) / 2
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_accepts_a_critic_returning_column_logits() -> None:
    critic = nn.Sequential(linear_critic([1.0, 2.0, 2.0]))
    assert critic(torch.zeros(2, 3)).shape == (2, 1)

    value = GradientPenalty.create().penalty(
        critic, torch.randn(4, 3), torch.randn(4, 3)
    )

    assert value.item() == pytest.approx(40.0, rel=1e-6)


def test_gradient_penalty_does_not_reach_the_generator() -> None:
    generator = nn.Linear(2, 3)
    fake = generator(torch.randn(4, 2))
    critic = linear_critic([1.0, 2.0, 2.0])

    GradientPenalty.create().penalty(critic, torch.randn(4, 3), fake).backward()

    assert generator.weight.grad is None
    assert critic.weight.grad is not None


def test_gradient_penalty_pairs_up_uneven_batches() -> None:
    critic = linear_critic([1.0, 2.0, 2.0])

    value = GradientPenalty.create().penalty(
        critic, torch.randn(5, 3), torch.randn(3, 3)
    )

    assert value.item() == pytest.approx(40.0, rel=1e-6)


def test_gradient_penalty_works_inside_no_grad() -> None:
    critic = linear_critic([1.0, 2.0, 2.0])

    with torch.no_grad():
        value = GradientPenalty.create().penalty(
            critic, torch.randn(4, 3), torch.randn(4, 3)
        )

    assert value.item() == pytest.approx(40.0, rel=1e-6)


def test_gradient_penalty_options_are_validated() -> None:
    penalty = GradientPenalty.create()
    assert (penalty.weight, penalty.target) == (10.0, 1.0)

    with pytest.raises(ganzoo.GanzooError):
        GradientPenalty.create(weight=-1.0)
    with pytest.raises(ganzoo.GanzooError, match="> 0"):
        GradientPenalty.create(target=0.0)


# R1.


def test_r1_of_linear_critic_is_half_weight_times_squared_norm() -> None:
    critic = linear_critic([1.0, 2.0, 2.0])

    value = R1Penalty.create(weight=10.0).penalty(
        critic, torch.randn(5, 3), torch.randn(5, 3)
    )

    assert value.item() == pytest.approx(10.0 / 2 * 9.0, rel=1e-6)


def test_r1_trains_the_critic_parameters() -> None:
    weights = [1.0, 2.0, 2.0]
    critic = linear_critic(weights)

    R1Penalty.create(weight=4.0).penalty(critic, torch.randn(3, 3), None).backward()

    # d/dw of 4/2 * ||w||^2 is 4 * w.
    torch.testing.assert_close(critic.weight.grad, 4.0 * torch.tensor([weights]))


def test_r1_of_square_critic_uses_the_real_samples() -> None:
    real = torch.randn(4, 1, 4, 4)

    value = R1Penalty.create(weight=10.0).penalty(SquareCritic(), real, real + 5.0)

    # The gradient of sum(x^2) is 2x.
    expected = 10.0 / 2 * (2 * real).flatten(1).pow(2).sum(dim=1).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_r1_with_a_packed_critic() -> None:
    critic = PackedCritic([1.0, 2.0, 2.0], [0.0, 0.0, 2.0])

    value = R1Penalty.create(weight=10.0).penalty(critic, torch.randn(6, 3), None)

    assert value.item() == pytest.approx(10.0 / 2 * (9.0 + 4.0) / 2, rel=1e-6)


def test_r1_leaves_the_real_batch_untouched() -> None:
    real = torch.randn(4, 3)

    R1Penalty.create().penalty(linear_critic([1.0, 0.0, 0.0]), real, None)

    assert not real.requires_grad
    assert real.grad is None


# Weight clipping.


def test_weight_clip_clamps_every_parameter_in_place() -> None:
    critic = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        critic[0].weight.copy_(torch.tensor([[-0.5, 0.005, 0.02], [0.0, -0.01, 3.0]]))
        critic[0].bias.copy_(torch.tensor([0.001, -0.2]))
        critic[2].weight.copy_(torch.tensor([[0.009, -0.009]]))
        critic[2].bias.fill_(-0.003)
    first_weight = critic[0].weight

    WeightClip.create().apply(critic)

    assert critic[0].weight is first_weight
    torch.testing.assert_close(
        critic[0].weight, torch.tensor([[-0.01, 0.005, 0.01], [0.0, -0.01, 0.01]])
    )
    torch.testing.assert_close(critic[0].bias, torch.tensor([0.001, -0.01]))
    torch.testing.assert_close(critic[2].weight, torch.tensor([[0.009, -0.009]]))
    torch.testing.assert_close(critic[2].bias, torch.tensor([-0.003]))
    assert all(p.requires_grad for p in critic.parameters())


def test_weight_clip_uses_its_clip_option() -> None:
    critic = linear_critic([-2.0, 0.5, 2.0], bias=1.5)

    WeightClip.create(clip=1.0).apply(critic)

    torch.testing.assert_close(critic.weight, torch.tensor([[-1.0, 0.5, 1.0]]))
    assert critic.bias.item() == 1.0


def test_weight_clip_rejects_a_non_positive_clip() -> None:
    assert WeightClip.create().clip == 0.01
    with pytest.raises(ganzoo.GanzooError):
        WeightClip.create(clip=0)


# Registration.


def test_hooks_register_regularizers_and_constraints() -> None:
    manager = pluggy.PluginManager("ganzoo")
    manager.add_hookspecs(hookspecs)
    manager.register(regularizers)

    found = [c for group in manager.hook.ganzoo_regularizers() for c in group]
    constraints = [c for group in manager.hook.ganzoo_constraints() for c in group]

    assert [c.name for c in found] == ["gradient-penalty", "r1"]
    assert [c.name for c in constraints] == ["weight-clip"]
    assert all(issubclass(c, ganzoo.Regularizer) for c in found)
    assert all(issubclass(c, ganzoo.Constraint) for c in constraints)
    for cls in found + constraints:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name)
        assert cls.summary() and len(cls.summary()) < 88
