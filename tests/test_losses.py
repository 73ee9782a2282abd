"""The built-in losses against values computed by hand on a few logits."""

from __future__ import annotations

import math
import re

import pluggy
import pytest
import torch
from ganzoo_plugins import losses
from ganzoo_plugins.losses import BinaryCrossEntropy, Hinge, LeastSquares, Wasserstein

import ganzoo
from ganzoo import hookspecs


def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def bce(logit: float, target: float) -> float:
    """-(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), written out."""
    return target * softplus(-logit) + (1.0 - target) * softplus(logit)


def tensor(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# Binary cross-entropy.


def test_bce_discriminator_loss_matches_hand_computation() -> None:
    loss = BinaryCrossEntropy.create()
    value = loss.discriminator_loss(tensor(0.0, 2.0), tensor(0.0, -1.0))

    expected = (math.log(2) + softplus(-2.0) + math.log(2) + softplus(-1.0)) / 4
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_bce_discriminator_loss_averages_over_the_combined_batch() -> None:
    loss = BinaryCrossEntropy.create()
    value = loss.discriminator_loss(tensor(1.0, 2.0, 3.0), tensor(0.5))

    # One batch of four, not the mean of the real mean and the fake mean.
    expected = (bce(1.0, 1) + bce(2.0, 1) + bce(3.0, 1) + bce(0.5, 0)) / 4
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_bce_generator_losses_match_hand_computation() -> None:
    fake = tensor(0.0, 2.0)
    non_saturating = BinaryCrossEntropy.create().generator_loss(fake)
    minimax = BinaryCrossEntropy.create(generator="minimax").generator_loss(fake)

    # -log sigmoid(x) and log(1 - sigmoid(x)) = -softplus(x).
    assert non_saturating.item() == pytest.approx(
        (math.log(2) + softplus(-2.0)) / 2, rel=1e-6
    )
    assert minimax.item() == pytest.approx(-(math.log(2) + softplus(2.0)) / 2, rel=1e-6)


def test_bce_is_stable_for_extreme_logits() -> None:
    loss = BinaryCrossEntropy.create()
    value = loss.discriminator_loss(tensor(200.0, -200.0), tensor(-200.0, 200.0))

    assert torch.isfinite(value)
    assert value.item() == pytest.approx(100.0, rel=1e-6)


def test_non_saturating_keeps_its_gradient_where_minimax_vanishes() -> None:
    # A confident discriminator rejects the fake: logit -20, D(G(z)) ~ 2e-9.
    gradients = {}
    for generator in ("non-saturating", "minimax"):
        fake = tensor(-20.0).requires_grad_(True)
        BinaryCrossEntropy.create(generator=generator).generator_loss(fake).backward()
        gradients[generator] = fake.grad.item()

    # d/dx softplus(-x) = -sigmoid(-x) ~ -1; d/dx -softplus(x) = -sigmoid(x) ~ 0.
    assert gradients["non-saturating"] == pytest.approx(-1.0, abs=1e-6)
    assert abs(gradients["minimax"]) < 1e-8
    assert gradients["minimax"] == pytest.approx(-1.0 / (1.0 + math.exp(20.0)))


def test_label_noise_adds_uniform_noise_to_every_target() -> None:
    real, fake = tensor(1.5, -0.5), tensor(-2.0, 0.7)
    loss = BinaryCrossEntropy.create(label_noise=0.05)

    torch.manual_seed(7)
    value = loss.discriminator_loss(real, fake)

    # Recompute the targets: fakes first, one uniform draw per sample.
    torch.manual_seed(7)
    targets = tensor(0.0, 0.0, 1.0, 1.0) + 0.05 * torch.rand(4)
    assert torch.all(targets >= tensor(0.0, 0.0, 1.0, 1.0))
    assert torch.all(targets <= tensor(0.05, 0.05, 1.05, 1.05))
    assert len(set(targets.tolist())) == 4

    logits = [-2.0, 0.7, 1.5, -0.5]
    expected = sum(bce(x, t) for x, t in zip(logits, targets.tolist(), strict=True)) / 4
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_label_noise_keeps_the_loss_between_its_bounds() -> None:
    # BCE is linear in the target, so the loss of each sample lies between its
    # values at t and t + noise; with every logit positive, more noise means less.
    real, fake = tensor(2.0, 3.0), tensor(1.0, 0.5)
    noisy = BinaryCrossEntropy.create(label_noise=0.3)
    logits = [1.0, 0.5, 2.0, 3.0]
    low = sum(bce(x, t + 0.3) for x, t in zip(logits, [0, 0, 1, 1], strict=True)) / 4
    high = sum(bce(x, t) for x, t in zip(logits, [0, 0, 1, 1], strict=True)) / 4

    values = {noisy.discriminator_loss(real, fake).item() for _ in range(20)}
    assert len(values) > 1
    assert all(low - 1e-6 <= v <= high + 1e-6 for v in values)


def test_no_label_noise_gives_exact_bce_and_draws_nothing() -> None:
    real, fake = tensor(1.5, -0.5), tensor(-2.0, 0.7)

    torch.manual_seed(3)
    value = BinaryCrossEntropy.create(label_noise=0.0).discriminator_loss(real, fake)
    after = torch.rand(1)
    torch.manual_seed(3)

    assert torch.equal(after, torch.rand(1))
    expected = (bce(-2.0, 0) + bce(0.7, 0) + bce(1.5, 1) + bce(-0.5, 1)) / 4
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_lowers_only_the_real_targets() -> None:
    real, fake = tensor(1.5, -0.5), tensor(-2.0, 0.7)
    loss = BinaryCrossEntropy.create(label_smoothing=0.1)

    value = loss.discriminator_loss(real, fake)
    expected = (bce(-2.0, 0) + bce(0.7, 0) + bce(1.5, 0.9) + bce(-0.5, 0.9)) / 4
    assert value.item() == pytest.approx(expected, rel=1e-6)

    # The generator still aims at "all real", unsmoothed.
    assert loss.generator_loss(fake).item() == pytest.approx(
        (bce(-2.0, 1) + bce(0.7, 1)) / 2, rel=1e-6
    )


def test_label_smoothing_is_applied_before_noise() -> None:
    loss = BinaryCrossEntropy.create(label_smoothing=0.2, label_noise=0.1)

    torch.manual_seed(11)
    value = loss.discriminator_loss(tensor(1.0), tensor(-1.0))
    torch.manual_seed(11)
    targets = tensor(0.0, 0.8) + 0.1 * torch.rand(2)

    expected = (bce(-1.0, targets[0].item()) + bce(1.0, targets[1].item())) / 2
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_bce_defaults_are_the_lecture_setup_without_noise() -> None:
    loss = BinaryCrossEntropy.create()

    assert loss.generator == "non-saturating"
    assert loss.label_noise == 0.0
    assert loss.label_smoothing == 0.0


def test_bce_rejects_label_noise_above_one() -> None:
    with pytest.raises(ganzoo.GanzooError) as caught:
        BinaryCrossEntropy.create(label_noise=2)

    assert caught.value.key == "label_noise"
    assert "[0, 1]" in str(caught.value)


def test_bce_rejects_label_smoothing_above_half() -> None:
    with pytest.raises(ganzoo.GanzooError):
        BinaryCrossEntropy.create(label_smoothing=0.6)


def test_unknown_generator_choice_suggests_non_saturating() -> None:
    with pytest.raises(ganzoo.GanzooError) as caught:
        BinaryCrossEntropy.create(generator="nonsaturating")

    assert caught.value.key == "generator"
    assert "did you mean 'non-saturating'" in str(caught.value)


def test_unknown_bce_option_is_an_error() -> None:
    with pytest.raises(ganzoo.GanzooError, match="label_smoothing"):
        BinaryCrossEntropy.create(label_smothing=0.1)


# Wasserstein, hinge and least squares.


def test_wasserstein_losses_match_hand_computation() -> None:
    loss = Wasserstein.create()
    real, fake = tensor(1.0, 3.0), tensor(-1.0, 0.5)

    assert loss.discriminator_loss(real, fake).item() == pytest.approx(-0.25 - 2.0)
    assert loss.generator_loss(fake).item() == pytest.approx(0.25)


def test_hinge_losses_match_hand_computation() -> None:
    loss = Hinge.create()
    real, fake = tensor(0.5, 2.0), tensor(-2.0, 0.5)

    # Reals: relu(0.5) and relu(-1); fakes: relu(-1) and relu(1.5).
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert loss.generator_loss(fake).item() == pytest.approx(0.75)


def test_hinge_ignores_samples_beyond_the_margin() -> None:
    real = tensor(1.5).requires_grad_(True)
    fake = tensor(-3.0).requires_grad_(True)

    value = Hinge.create().discriminator_loss(real, fake)
    value.backward()

    assert value.item() == 0.0
    assert real.grad.item() == 0.0
    assert fake.grad.item() == 0.0


def test_least_squares_losses_match_hand_computation() -> None:
    loss = LeastSquares.create()
    real, fake = tensor(0.0, 2.0), tensor(1.0, -1.0)

    # 0.5 * mean(1, 1) + 0.5 * mean(1, 1), and 0.5 * mean(0, 4).
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(1.0)
    assert loss.generator_loss(fake).item() == pytest.approx(1.0)


def test_least_squares_is_zero_at_its_targets() -> None:
    loss = LeastSquares.create()

    assert loss.discriminator_loss(tensor(1.0, 1.0), tensor(0.0)).item() == 0.0
    assert loss.generator_loss(tensor(1.0, 1.0)).item() == 0.0


# Registration.


def test_hook_registers_every_loss_with_a_kebab_name_and_summary() -> None:
    manager = pluggy.PluginManager("ganzoo")
    manager.add_hookspecs(hookspecs)
    manager.register(losses)
    classes = [cls for found in manager.hook.ganzoo_losses() for cls in found]

    names = [cls.name for cls in classes]
    assert names == ["bce", "wasserstein", "hinge", "least-squares", "acgan", "pix2pix"]
    for cls in classes:
        assert issubclass(cls, ganzoo.Loss)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name)
        assert cls.summary() and len(cls.summary()) < 88
