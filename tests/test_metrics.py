"""Known answers for the metric plugins: FID, KID, IS, mode and class scores."""

from __future__ import annotations

import math

import pytest
import torch
from ganzoo_plugins.datasets import Grid, Ring
from ganzoo_plugins.metrics import kl_divergence, mixture_scores

from ganzoo import SampleSet
from ganzoo._registry import build_registry


@pytest.fixture(scope="module")
def registry():
    return build_registry()


def metric(registry, name, **options):
    return registry.get("metric", name).cls.create(**options)


def features(n, dim=16, shift=0.0, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def test_fid_of_identical_sets_is_zero(registry):
    x = features(500)
    result = metric(registry, "fid").compute(
        SampleSet("r", features=x), SampleSet("f", features=x.clone())
    )
    assert result["fid"] == pytest.approx(0.0, abs=1e-6)
    assert result["protocol"]["fid_biased"] is False


def test_fid_of_a_mean_shift_is_the_squared_shift(registry):
    x = features(4000, dim=4)
    shifted = x + torch.tensor([1.0, 0.0, 0.0, 0.0])
    result = metric(registry, "fid").compute(
        SampleSet("r", features=x), SampleSet("f", features=shifted)
    )
    assert result["fid"] == pytest.approx(1.0, abs=1e-6)


def test_fid_marks_fewer_samples_than_dimensions_as_biased(registry):
    result = metric(registry, "fid").compute(
        SampleSet("r", features=features(20, 64)),
        SampleSet("f", features=features(20, 64, 1)),
    )
    assert result["protocol"]["fid_biased"] is True


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two(registry):
    kid = metric(registry, "kid", subsets=20, subset_size=200)
    same = kid.compute(
        SampleSet("r", features=features(400, seed=1)),
        SampleSet("f", features=features(400, seed=2)),
    )
    apart = kid.compute(
        SampleSet("r", features=features(400, seed=1)),
        SampleSet("f", features=features(400, shift=1.0, seed=2)),
    )
    assert abs(same["kid"]) < 0.01 < apart["kid"]
    assert same["kid_std"] >= 0


def test_kid_shrinks_the_subset_size_for_small_sets_and_says_so(registry):
    result = metric(registry, "kid").compute(
        SampleSet("r", features=features(300)),
        SampleSet("f", features=features(250, seed=3)),
    )
    assert result["protocol"]["kid_subset_size"] == 250
    assert result["protocol"]["kid_subset_size_reduced"] is True


def test_inception_score_of_confident_uniform_predictions_is_the_class_count(registry):
    logits = torch.full((1000, 10), -50.0)
    logits[torch.arange(1000), torch.arange(1000) % 10] = 50.0
    result = metric(registry, "is", splits=1).compute(
        SampleSet("r", logits=logits), SampleSet("f", logits=logits)
    )
    assert result["is"] == pytest.approx(10.0, rel=1e-6)


def test_ring_modes_all_eight_versus_a_single_mode():
    means, std = Ring.means(), Ring.std
    everywhere = Ring.create(n=2500).load("test").samples
    result = mixture_scores(everywhere, means, std)
    assert result["modes"] == 8
    assert result["high_quality"] > 99
    assert result["reverse_kl"] < 0.01
    collapsed = means[3].repeat(2500, 1) + 0.001 * torch.randn(2500, 2)
    result = mixture_scores(collapsed, means, std)
    assert result["modes"] == 1
    assert result["high_quality"] == pytest.approx(100.0)
    assert result["reverse_kl"] == pytest.approx(math.log(8))


def test_grid_points_between_modes_are_low_quality():
    means, std = Grid.means(), Grid.std
    between = means[:24] + torch.tensor([1.0, 1.0])
    result = mixture_scores(between, means, std)
    assert result["modes"] == 0 and result["high_quality"] == 0.0
    assert result["reverse_kl"] is None
    assert result["protocol"]["modes_total"] == 25


def test_modes_metric_applies_only_to_mixtures(registry):
    modes = metric(registry, "modes")
    ring = Ring.create(n=2500)
    real = SampleSet("ring", samples=ring.load("test").samples, dataset=ring)
    assert modes.applies_to(real)
    assert not modes.applies_to(SampleSet("x", samples=torch.zeros(10, 2)))
    assert modes.compute(real, SampleSet("f", samples=real.samples))["modes"] == 8


def one_hot_logits(classes: torch.Tensor, k: int = 10) -> torch.Tensor:
    logits = torch.zeros(len(classes), k)
    logits[torch.arange(len(classes)), classes] = 5.0
    return logits


def test_generator_stuck_on_one_class(registry):
    real = SampleSet("r", logits=one_hot_logits(torch.arange(1000) % 10))
    stuck = SampleSet("f", logits=one_hot_logits(torch.full((1000,), 7)))
    result = metric(registry, "classes").compute(real, stuck)
    assert result["classes_covered"] == 1
    assert result["class_kl"] == pytest.approx(math.log(10))
    healthy = metric(registry, "classes").compute(real, real)
    assert healthy["classes_covered"] == 10 and healthy["class_kl"] == pytest.approx(0)


def test_stacked_modes_count_channel_triples(registry):
    digits = torch.stack(
        [
            torch.arange(1000) // 100,
            torch.arange(1000) // 10 % 10,
            torch.arange(1000) % 10,
        ],
        dim=1,
    )
    logits = torch.stack([one_hot_logits(digits[:, c]) for c in range(3)], dim=1)
    stacked = metric(registry, "stacked-modes")
    assert stacked.applies_to(SampleSet("r", logits=logits))
    every = stacked.compute(
        SampleSet("r", logits=logits), SampleSet("f", logits=logits)
    )
    assert every["modes"] == 1000 and every["reverse_kl"] == pytest.approx(0, abs=1e-9)
    one = stacked.compute(
        SampleSet("r", logits=logits),
        SampleSet("f", logits=logits[:1].repeat(50, 1, 1)),
    )
    assert one["modes"] == 1 and one["reverse_kl"] == pytest.approx(math.log(1000))


def test_kl_divergence_is_infinite_where_the_reference_has_no_mass():
    assert kl_divergence(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])) == math.inf
    assert kl_divergence(
        torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    ) == pytest.approx(math.log(2))
