"""The built-in architectures: shapes, ranges, options and errors people can act on."""

from __future__ import annotations

import math

import pytest
import torch
from ganzoo_plugins.architectures import (
    Dcgan,
    DcganCritic,
    DcganSeed,
    Mlp,
    TimmDiscriminator,
)
from torch import nn

from ganzoo import DataShape, GanzooError
from ganzoo._registry import build_registry

MNIST = DataShape("image", (1, 28, 28))
POINTS = DataShape("points", (2,))


def images(data: DataShape, count: int = 4) -> torch.Tensor:
    return torch.rand(count, *data.shape)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sample(generator: nn.Module, count: int = 4) -> torch.Tensor:
    return generator(torch.randn(count, generator.latent_dim))


# Registration.


def test_registry_lists_every_builtin_architecture():
    registry = build_registry()

    names = set(registry.names("architecture"))

    assert {"dcgan-seed", "mlp", "dcgan", "dcgan-critic", "timm"} <= names
    assert not [p for p in registry.problems if "architectures" in p.origin]


# dcgan-seed.


def test_dcgan_seed_matches_lecture_parameter_count():
    generator = DcganSeed().make("generator", MNIST, {})
    discriminator = DcganSeed().make("discriminator", MNIST, {})

    assert parameter_count(generator) == 1_339_905
    assert parameter_count(discriminator) == 74_625


def test_dcgan_seed_generator_outputs_images_within_sigmoid_range():
    generator = DcganSeed().make("generator", MNIST, {})

    fakes = sample(generator, 8)

    assert generator.latent_dim == 128
    assert generator.output_range == (0.0, 1.0)
    assert fakes.shape == (8, 1, 28, 28)
    assert fakes.min() >= 0.0 and fakes.max() <= 1.0


@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_seed_handles_any_channel_count(channels):
    data = DataShape("image", (channels, 28, 28))
    generator = DcganSeed().make("generator", data, {"latent_dim": 16})
    discriminator = DcganSeed().make("discriminator", data, {})

    fakes = sample(generator)

    assert fakes.shape == (4, channels, 28, 28)
    assert discriminator(fakes).shape == (4, 1)


def test_dcgan_seed_starts_from_keras_initialisation():
    generator = DcganSeed().make("generator", MNIST, {})

    for layer in generator.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            limit = math.sqrt(6 / (fan_in + fan_out))
            assert layer.weight.abs().max() <= limit
            assert layer.weight.abs().max() > 0.9 * limit
            assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize(
    "data",
    [DataShape("image", (1, 32, 32)), DataShape("image", (3, 28, 32)), POINTS],
    ids=["32px", "non-square", "points"],
)
def test_dcgan_seed_rejects_other_shapes_and_suggests_dcgan(data):
    with pytest.raises(GanzooError) as caught:
        DcganSeed().make("generator", data, {})

    assert data.describe() in str(caught.value)
    assert "'dcgan'" in str(caught.value)


# mlp.


@pytest.mark.parametrize("dim", [2, 3])
def test_mlp_maps_latents_to_points_and_points_to_logits(dim):
    data = DataShape("points", (dim,))
    generator = Mlp().make("generator", data, {"depth": 2, "activation": "tanh"})
    discriminator = Mlp().make("discriminator", data, {"activation": "leaky-relu"})

    fakes = sample(generator, 10)

    assert generator.latent_dim == 2
    assert generator.output_range is None
    assert fakes.shape == (10, dim)
    assert discriminator(fakes).shape == (10, 1)


def test_mlp_depth_counts_hidden_layers():
    generator = Mlp().make("generator", POINTS, {"depth": 4, "hidden": 8})

    linear = [m for m in generator.modules() if isinstance(m, nn.Linear)]

    assert len(linear) == 5
    assert parameter_count(generator) == (2 * 8 + 8) + 3 * (8 * 8 + 8) + (8 * 2 + 2)


def test_mlp_pack_reduces_logit_count():
    discriminator = Mlp().make("discriminator", POINTS, {"pack": 4})

    logits = discriminator(torch.randn(12, 2))

    assert logits.shape == (3, 1)


def test_mlp_pack_groups_consecutive_samples():
    discriminator = Mlp().make("discriminator", POINTS, {"pack": 2})
    points = torch.randn(6, 2)
    changed = points.clone()
    changed[1] += 5.0

    before, after = discriminator(points), discriminator(changed)

    assert not torch.equal(before[0], after[0])
    assert torch.equal(before[1:], after[1:])


def test_mlp_pack_rejects_batch_that_does_not_divide():
    discriminator = Mlp().make("discriminator", POINTS, {"pack": 4})

    with pytest.raises(GanzooError, match="multiple of pack=4"):
        discriminator(torch.randn(10, 2))


def test_mlp_rejects_images():
    with pytest.raises(GanzooError) as caught:
        Mlp().make("discriminator", MNIST, {})

    assert "1x28x28 images" in str(caught.value)
    assert "point" in str(caught.value)


def test_mlp_unknown_activation_suggests_close_choice():
    with pytest.raises(GanzooError, match="leaky-relu"):
        Mlp().make("generator", POINTS, {"activation": "leaky_relu"})


# dcgan and dcgan-critic.


@pytest.mark.parametrize("resolution", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_builds_both_networks_for_each_resolution(resolution, channels):
    data = DataShape("image", (channels, resolution, resolution))
    generator = Dcgan().make("generator", data, {"latent_dim": 8, "width": 8})
    discriminator = Dcgan().make("discriminator", data, {"width": 8})
    critic = DcganCritic().make("discriminator", data, {"width": 8})

    fakes = sample(generator)

    assert fakes.shape == (4, channels, resolution, resolution)
    assert discriminator(fakes).shape == (4, 1)
    assert critic(fakes).shape == (4, 1)


def test_dcgan_generator_output_within_tanh_range():
    generator = Dcgan().make("generator", DataShape("image", (3, 32, 32)), {})

    fakes = sample(generator, 8)

    assert generator.latent_dim == 100
    assert generator.output_range == (-1.0, 1.0)
    assert fakes.min() >= -1.0 and fakes.max() <= 1.0
    assert fakes.min() < 0.0 < fakes.max()


def test_dcgan_starts_from_radford_initialisation():
    data = DataShape("image", (3, 64, 64))
    generator = Dcgan().make("generator", data, {})

    convolutions = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]

    assert convolutions[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert norms[0].weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(torch.count_nonzero(n.bias) == 0 for n in norms)


def test_dcgan_discriminator_normalises_all_but_first_block():
    discriminator = Dcgan().make("discriminator", DataShape("image", (1, 64, 64)), {})

    layers = list(discriminator.net)

    assert not isinstance(layers[1], nn.BatchNorm2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == 3


@pytest.mark.parametrize(
    ("norm", "layer"),
    [("none", None), ("layer", nn.GroupNorm), ("instance", nn.InstanceNorm2d)],
)
def test_dcgan_critic_has_no_batch_norm(norm, layer):
    data = DataShape("image", (1, 32, 32))
    critic = DcganCritic().make("discriminator", data, {"norm": norm, "width": 8})

    kinds = {type(m) for m in critic.modules()}

    assert nn.BatchNorm2d not in kinds
    if layer is not None:
        assert layer in kinds


def test_dcgan_critic_scores_each_sample_independently():
    data = DataShape("image", (1, 28, 28))
    critic = DcganCritic().make("discriminator", data, {"norm": "layer", "width": 8})
    batch = images(data)

    together = critic(batch)
    alone = torch.cat([critic(batch[i : i + 1]) for i in range(4)])

    assert torch.allclose(together, alone, atol=1e-6)


def test_dcgan_critic_provides_only_a_discriminator():
    assert DcganCritic.provides() == ("discriminator",)
    with pytest.raises(GanzooError, match="provides no generator"):
        DcganCritic().make("generator", MNIST, {})


@pytest.mark.parametrize(
    "data",
    [DataShape("image", (3, 48, 48)), DataShape("image", (3, 32, 64))],
    ids=["48px", "non-square"],
)
@pytest.mark.parametrize("architecture", [Dcgan, DcganCritic])
def test_dcgan_rejects_unsupported_resolution_and_names_supported(architecture, data):
    with pytest.raises(GanzooError) as caught:
        architecture().make("discriminator", data, {})

    message = str(caught.value)
    assert data.describe() in message
    assert "28, 32, 64" in message
    assert "'resolution'" in message


def test_dcgan_rejects_points():
    with pytest.raises(GanzooError, match=r"2-D points.*'mlp'"):
        Dcgan().make("generator", POINTS, {})


def test_dcgan_width_below_minimum_is_rejected():
    with pytest.raises(GanzooError, match=">= 8"):
        Dcgan().make("generator", MNIST, {"width": 4})


# Options shared by all families.


@pytest.mark.parametrize(
    ("architecture", "role", "data"),
    [
        (DcganSeed, "generator", MNIST),
        (Mlp, "discriminator", POINTS),
        (Dcgan, "generator", MNIST),
        (DcganCritic, "discriminator", MNIST),
        (TimmDiscriminator, "discriminator", MNIST),
    ],
)
def test_unknown_option_raises_with_known_options(architecture, role, data):
    with pytest.raises(GanzooError) as caught:
        architecture().make(role, data, {"widht": 8})

    assert caught.value.key == "widht"
    assert "unknown option" in str(caught.value)


# timm.


def test_timm_resnet18_gives_one_logit_per_image():
    discriminator = TimmDiscriminator().make("discriminator", MNIST, {})

    logits = discriminator(images(MNIST))

    assert logits.shape == (4, 1)


def test_timm_unknown_backbone_suggests_close_name():
    with pytest.raises(GanzooError, match="did you mean 'resnet18'"):
        TimmDiscriminator().make("discriminator", MNIST, {"backbone": "resnet81"})


def test_timm_rejects_points():
    with pytest.raises(GanzooError, match="2-D points"):
        TimmDiscriminator().make("discriminator", POINTS, {})


def test_timm_loads_backbone_weights_from_state_dict(tmp_path):
    source = TimmDiscriminator().make("discriminator", MNIST, {})
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)

    fresh = TimmDiscriminator().make("discriminator", MNIST, {})
    loaded = TimmDiscriminator().make("discriminator", MNIST, {"weights": str(path)})

    assert not torch.equal(fresh.conv1.weight, source.conv1.weight)
    for (name, expected), (_, actual) in zip(
        source.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(expected, actual), name


def test_timm_ignores_head_weights_of_another_size(tmp_path):
    import timm

    classifier = timm.create_model("resnet18", in_chans=1, num_classes=10)
    path = tmp_path / "resnet18-10-classes.pt"
    torch.save(classifier.state_dict(), path)

    loaded = TimmDiscriminator().make("discriminator", MNIST, {"weights": str(path)})

    assert torch.equal(loaded.conv1.weight, classifier.conv1.weight)
    assert loaded.fc.weight.shape == (1, 512)


def test_timm_adapts_rgb_stem_to_grayscale(tmp_path):
    import timm

    rgb = timm.create_model("resnet18", in_chans=3, num_classes=1)
    path = tmp_path / "resnet18-rgb.pt"
    torch.save(rgb.state_dict(), path)

    loaded = TimmDiscriminator().make("discriminator", MNIST, {"weights": str(path)})

    assert loaded.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.equal(loaded.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


def test_timm_rejects_weights_of_another_backbone(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(Mlp().make("discriminator", POINTS, {}).state_dict(), path)

    with pytest.raises(GanzooError, match="does not fit backbone 'resnet18'"):
        TimmDiscriminator().make("discriminator", MNIST, {"weights": str(path)})


def test_timm_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "absent.pt"

    with pytest.raises(GanzooError) as caught:
        TimmDiscriminator().make("discriminator", MNIST, {"weights": str(path)})

    assert str(path) in str(caught.value)


# Every discriminator must pass gradients to its input (penalties, generator step).


@pytest.mark.parametrize(
    ("architecture", "data", "options"),
    [
        (DcganSeed, MNIST, {}),
        (Mlp, POINTS, {"pack": 2}),
        (Dcgan, DataShape("image", (3, 32, 32)), {"width": 8}),
        (DcganCritic, DataShape("image", (1, 64, 64)), {"width": 8, "norm": "layer"}),
        (TimmDiscriminator, MNIST, {}),
    ],
    ids=["dcgan-seed", "mlp", "dcgan", "dcgan-critic", "timm"],
)
def test_gradient_flows_through_discriminator_to_input(architecture, data, options):
    discriminator = architecture().make("discriminator", data, options)
    inputs = torch.rand(4, *data.shape, requires_grad=True)

    discriminator(inputs).sum().backward()

    assert inputs.grad is not None
    assert torch.isfinite(inputs.grad).all()
    assert inputs.grad.abs().sum() > 0
