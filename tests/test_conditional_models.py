"""Class-conditional networks and the ACGAN loss: shapes, labels that matter,
errors people can act on, and the conformance kit's conditional probes."""

from __future__ import annotations

import math

import pytest
import torch
from ganzoo_plugins.architectures import ConditionalDcgan
from ganzoo_plugins.losses import AuxiliaryClassifierGan, BinaryCrossEntropy
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError
from ganzoo._registry import build_registry
from ganzoo.testing import check_plugin

LABELED = DataShape("image", (1, 28, 28), num_classes=10)
UNLABELED = DataShape("image", (1, 28, 28))

CONDITIONINGS = ["embedding", "batchnorm"]
STYLES = ["concat", "projection", "auxiliary"]


def generator(conditioning: str, data: DataShape = LABELED) -> nn.Module:
    torch.manual_seed(0)
    return ConditionalDcgan().make(
        "generator", data, {"conditioning": conditioning, "latent_dim": 16}
    )


def discriminator(style: str, data: DataShape = LABELED) -> nn.Module:
    torch.manual_seed(0)
    return ConditionalDcgan().make("discriminator", data, {"style": style})


def judge(network: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """Logits of a discriminator that takes labels, or of an auxiliary one."""
    if getattr(network, "auxiliary_classifier", False):
        return network(images)[0]
    return network(images, labels)


def classes(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


# Registration.


def test_registry_lists_cdcgan_and_acgan():
    registry = build_registry()

    assert "cdcgan" in registry.names("architecture")
    assert "acgan" in registry.names("loss")
    assert not [p for p in registry.problems if "architectures" in p.origin]


# Shapes.


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_maps_latents_and_labels_to_images(conditioning, channels):
    data = DataShape("image", (channels, 28, 28), num_classes=10)
    network = generator(conditioning, data)

    fakes = network(torch.randn(6, 16), classes(0, 1, 2, 3, 4, 9))

    assert network.latent_dim == 16
    assert network.conditional is True and network.num_classes == 10
    assert network.output_range == (0.0, 1.0)
    assert fakes.shape == (6, channels, 28, 28)
    assert fakes.min() >= 0.0 and fakes.max() <= 1.0


@pytest.mark.parametrize("style", ["concat", "projection"])
def test_labeled_discriminator_gives_one_logit_per_image(style):
    network = discriminator(style)

    logits = network(torch.rand(5, 1, 28, 28), classes(0, 1, 2, 3, 4))

    assert network.conditional is True and network.num_classes == 10
    assert not getattr(network, "auxiliary_classifier", False)
    assert logits.shape == (5,)


def test_auxiliary_discriminator_returns_logits_and_class_logits():
    network = discriminator("auxiliary")

    logits, class_logits = network(torch.rand(5, 1, 28, 28))

    assert network.auxiliary_classifier is True and network.num_classes == 10
    assert not getattr(network, "conditional", False)
    assert logits.shape == (5,)
    assert class_logits.shape == (5, 10)


@pytest.mark.parametrize("style", STYLES)
def test_discriminators_have_no_batch_norm(style):
    network = discriminator(style)

    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]

    assert norms == []


@pytest.mark.parametrize("style", STYLES)
def test_discriminator_passes_gradients_to_its_input(style):
    network = discriminator(style)
    images = torch.rand(4, 1, 28, 28, requires_grad=True)

    judge(network, images, classes(0, 1, 2, 3)).sum().backward()

    assert images.grad is not None and images.grad.abs().sum() > 0


def test_networks_stay_small_enough_for_a_cpu():
    for conditioning in CONDITIONINGS:
        network = ConditionalDcgan().make(
            "generator", LABELED, {"conditioning": conditioning}
        )
        assert sum(p.numel() for p in network.parameters()) < 500_000
    for style in STYLES:
        network = discriminator(style)
        assert sum(p.numel() for p in network.parameters()) < 100_000


# The label matters.


def test_embedding_generator_draws_other_images_for_other_labels():
    network = generator("embedding")
    z = torch.randn(1, 16).expand(2, -1)

    fakes = network(z, classes(0, 1))

    assert not torch.allclose(fakes[0], fakes[1])


def test_batchnorm_generator_starts_as_plain_batch_norm_for_every_class():
    network = generator("batchnorm")
    norms = [m for m in network.modules() if hasattr(m, "gain")]
    z = torch.randn(4, 16)

    same = network(z, classes(0, 0, 0, 0)), network(z, classes(1, 2, 3, 4))

    assert len(norms) == 2
    for norm in norms:
        assert norm.norm.affine is False
        assert torch.equal(norm.gain.weight, torch.ones_like(norm.gain.weight))
        assert torch.equal(norm.bias.weight, torch.zeros_like(norm.bias.weight))
    assert torch.allclose(*same)


def test_batchnorm_generator_draws_other_images_once_the_gains_differ():
    network = generator("batchnorm")
    with torch.no_grad():
        for module in network.modules():
            if hasattr(module, "gain"):
                module.gain.weight.uniform_(0.5, 1.5)
                module.bias.weight.uniform_(-0.5, 0.5)
    z = torch.randn(1, 16).expand(4, -1)

    fakes = network(z, classes(0, 1, 0, 1))

    assert torch.allclose(fakes[0], fakes[2])
    assert not torch.allclose(fakes[0], fakes[1])


@pytest.mark.parametrize("style", ["concat", "projection"])
def test_labeled_discriminator_judges_an_image_by_its_label(style):
    network = discriminator(style)
    images = torch.rand(1, 1, 28, 28).expand(2, -1, -1, -1)

    logits = network(images, classes(3, 7))

    assert not torch.isclose(logits[0], logits[1])


def test_projection_logit_is_psi_plus_inner_product_with_the_class_vector():
    network = discriminator("projection")
    images, labels = torch.rand(3, 1, 28, 28), classes(0, 4, 9)

    pooled = torch.amax(network.features(images), dim=(2, 3))
    expected = network.head(pooled).reshape(-1) + (
        network.embed.weight[labels] * pooled
    ).sum(dim=1)

    assert torch.allclose(network(images, labels), expected)


# Gradients reach the class embeddings.


@pytest.mark.parametrize(
    ("conditioning", "parameters"),
    [
        ("embedding", ["embed.weight"]),
        ("batchnorm", ["blocks.0.norm.gain.weight", "blocks.1.norm.bias.weight"]),
    ],
)
def test_generator_gradients_reach_the_class_parameters(conditioning, parameters):
    network = generator(conditioning)
    named = dict(network.named_parameters())

    fakes = network(torch.randn(4, 16), classes(0, 1, 2, 3))
    (fakes * torch.randn_like(fakes)).sum().backward()

    for name in parameters:
        grad = named[name].grad
        assert grad is not None and grad[:4].abs().sum() > 0, name
        assert torch.count_nonzero(grad[4:]) == 0, f"{name}: unused classes moved"


@pytest.mark.parametrize(
    ("style", "parameter"),
    [("concat", "embed.weight"), ("projection", "embed.weight")],
)
def test_discriminator_gradients_reach_the_class_embedding(style, parameter):
    network = discriminator(style)

    network(torch.rand(2, 1, 28, 28), classes(5, 6)).sum().backward()

    grad = dict(network.named_parameters())[parameter].grad
    assert grad is not None and grad[5:7].abs().sum() > 0
    assert torch.count_nonzero(grad[:5]) == 0


def test_auxiliary_class_head_learns_from_the_classification_loss():
    network = discriminator("auxiliary")
    loss = AuxiliaryClassifierGan.create()

    _, class_logits = network(torch.rand(4, 1, 28, 28))
    loss.classification_loss(class_logits, classes(0, 1, 2, 3)).backward()

    assert network.classify.weight.grad.abs().sum() > 0
    assert network.head.weight.grad is None


# Data the networks cannot serve.


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_unlabeled_data_is_refused_with_a_clear_error(role):
    with pytest.raises(GanzooError) as caught:
        ConditionalDcgan().make(role, UNLABELED, {})

    message = str(caught.value)
    assert f"class-conditional {role} needs a labeled data set" in message
    assert "1x28x28 images" in message and "no labels" in message


@pytest.mark.parametrize(
    "data",
    [
        DataShape("image", (1, 32, 32), num_classes=10),
        DataShape("points", (2,), num_classes=8),
    ],
    ids=["32px", "points"],
)
def test_other_shapes_are_refused_and_named(data):
    with pytest.raises(GanzooError) as caught:
        ConditionalDcgan().make("generator", data, {})

    assert "only 28x28 images" in str(caught.value)
    assert data.describe() in str(caught.value)


def test_unknown_style_lists_the_choices():
    with pytest.raises(GanzooError, match="'concat', 'projection', 'auxiliary'"):
        ConditionalDcgan().make("discriminator", LABELED, {"style": "project"})


# The acgan loss.


def test_acgan_classification_loss_matches_hand_computation():
    loss = AuxiliaryClassifierGan.create(classification_weight=0.5)
    class_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    value = loss.classification_loss(class_logits, classes(0, 2))

    first = math.log(math.exp(2.0) + 2.0) - 2.0
    second = math.log(math.e + 2.0)
    assert value.item() == pytest.approx(0.5 * (first + second) / 2, rel=1e-6)


def test_acgan_classification_weight_zero_turns_the_term_off():
    loss = AuxiliaryClassifierGan.create(classification_weight=0.0)

    value = loss.classification_loss(torch.randn(4, 10), classes(0, 1, 2, 3))

    assert value.item() == 0.0


def test_acgan_rejects_a_negative_classification_weight():
    with pytest.raises(GanzooError, match="classification_weight"):
        AuxiliaryClassifierGan.create(classification_weight=-1.0)


def test_acgan_adversarial_terms_are_those_of_bce_with_the_same_options():
    options = {"label_noise": 0.1, "label_smoothing": 0.1}
    real, fake = torch.randn(8), torch.randn(8)

    values = []
    for cls in (AuxiliaryClassifierGan, BinaryCrossEntropy):
        loss = cls.create(**options)
        torch.manual_seed(0)
        values.append((loss.discriminator_loss(real, fake), loss.generator_loss(fake)))

    assert torch.equal(values[0][0], values[1][0])
    assert torch.equal(values[0][1], values[1][1])


# The conformance kit's conditional probes.


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_option_value_meets_the_contract(conditioning, style):
    options = {
        "generator": {"conditioning": conditioning},
        "discriminator": {"style": style},
    }

    report = check_plugin(ConditionalDcgan, options=options)

    assert report.ok, report.line()
    assert {"unsupported", "shapes", "seed", "state-dict", "finite"} <= set(
        report.passed
    )


class _ShortClassHead(nn.Module):
    """An auxiliary classifier that predicts one class too few."""

    auxiliary_classifier = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Linear(2, num_classes)

    def forward(self, points: torch.Tensor):
        out = self.net(points)
        return out[:, 0], out[:, 1:]


class _ShortClassHeadArchitecture(Architecture):
    """Labeled points only, with a class head one class short."""

    name = "short-class-head"

    def check(self, data, role, options):
        if data.kind != "points" or not data.num_classes:
            raise GanzooError("needs labeled points")

    def build_discriminator(self, data, **options):
        return _ShortClassHead(data.num_classes)


def test_kit_probes_labeled_data_and_checks_the_class_logits():
    report = check_plugin(_ShortClassHeadArchitecture)

    assert "unsupported" in report.passed
    assert [v.rule for v in report.violations] == ["shapes"]
    assert "the auxiliary classifier gave a tensor of shape (8, 9)" in report.line()
    assert "expected (8, 10) class logits" in report.line()


def test_kit_offers_conditional_architectures_labels_for_the_given_shapes():
    report = check_plugin(ConditionalDcgan, shapes=[UNLABELED])

    assert report.ok, report.line()
    assert "shapes" in report.passed
