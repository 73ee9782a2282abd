"""Precision, recall, density and coverage from the blockwise k-NN pass.

Agreement with torch-fidelity and prdc on the same features, answers known in
closed form, and exact handling of ties and duplicated points.
"""

from __future__ import annotations

import contextlib
import io
import sys

import numpy as np
import pytest
import torch
from prdc import compute_prdc
from torch_fidelity.metric_prc import prc_features_to_metric

from ganzoo import GanzooError
from ganzoo.evaluation._knn import knn_radii, precision_recall_density_coverage

KEYS = ("precision", "recall", "density", "coverage")


def gaussians(n_real=600, n_fake=500, dim=64, shift=0.3, seed=0):
    """Two overlapping Gaussian clouds of different sizes."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, dim, generator=g)
    fake = 1.1 * torch.randn(n_fake, dim, generator=g) + shift
    return real, fake


def torch_fidelity_pr(real, fake, k=3):
    # torch-fidelity's convention: features_1 is generated, features_2 real.
    scores = prc_features_to_metric(fake, real, prc_neighborhood=k, verbose=False)
    return scores["precision"], scores["recall"]


def prdc_scores(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        scores = compute_prdc(
            real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=k
        )
    return {key: float(value) for key, value in scores.items()}


def dense_reference(real, fake, k_pr=3, k_dc=5):
    """The definitions written out on full float64 distance matrices."""
    real, fake = real.double(), fake.double()
    mode = "donot_use_mm_for_euclid_dist"
    rr = torch.cdist(real, real, compute_mode=mode)
    ff = torch.cdist(fake, fake, compute_mode=mode)
    rf = torch.cdist(real, fake, compute_mode=mode)
    r_pr = rr.kthvalue(k_pr + 1, dim=1).values
    r_dc = rr.kthvalue(k_dc + 1, dim=1).values
    f_pr = ff.kthvalue(k_pr + 1, dim=1).values
    return {
        "precision": (rf <= r_pr[:, None]).any(0).double().mean().item(),
        "recall": (rf <= f_pr[None, :]).any(1).double().mean().item(),
        "density": (rf < r_dc[:, None]).sum().item() / (k_dc * len(fake)),
        "coverage": (rf < r_dc[:, None]).any(1).double().mean().item(),
    }


def assert_scores(got, expected, tol=1e-6):
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=tol), key


# Agreement with the reference implementations.


@pytest.mark.parametrize("dim", [8, 64, 300])
def test_precision_recall_agree_with_torch_fidelity(dim):
    real, fake = gaussians(dim=dim)
    ours = precision_recall_density_coverage(real, fake)
    precision, recall = torch_fidelity_pr(real, fake)
    assert ours["precision"] == pytest.approx(precision, abs=1e-6)
    assert ours["recall"] == pytest.approx(recall, abs=1e-6)
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


@pytest.mark.parametrize("dim", [8, 64, 300])
def test_density_coverage_agree_with_prdc(dim):
    real, fake = gaussians(dim=dim)
    ours = precision_recall_density_coverage(real, fake)
    reference = prdc_scores(real, fake, k=5)
    assert_scores(ours, {"density": reference["density"]})
    assert_scores(ours, {"coverage": reference["coverage"]})
    assert ours["density"] > 0 and 0 < ours["coverage"] < 1


def test_prdc_precision_recall_match_ours_at_the_same_k_without_ties():
    # prdc uses strict < and its one nearest_k for precision/recall too; on
    # continuous features no distance equals a radius, so the two agree.
    real, fake = gaussians()
    ours = precision_recall_density_coverage(real, fake, k_pr=3)
    reference = prdc_scores(real, fake, k=3)
    assert_scores(ours, {"precision": reference["precision"]})
    assert_scores(ours, {"recall": reference["recall"]})


def test_matches_the_definitions_on_dense_float64_matrices():
    real, fake = gaussians(n_real=400, n_fake=450, dim=40, shift=0.5, seed=3)
    got = precision_recall_density_coverage(real, fake, k_pr=2, k_dc=7)
    assert_scores(got, dense_reference(real, fake, k_pr=2, k_dc=7), tol=1e-12)


# Known answers.


def test_identical_sets_are_fully_precise_and_covered():
    real, _ = gaussians()
    got = precision_recall_density_coverage(real, real.clone())
    assert got["precision"] == 1.0 and got["recall"] == 1.0
    assert got["coverage"] == 1.0
    # Each real ball strictly holds the copies of its point and of its k - 1
    # nearest neighbours, the copy of the k-th lying on the boundary.
    assert got["density"] == 1.0
    assert got == prdc_scores(real, real.clone(), k=5) | {
        "precision": 1.0,
        "recall": 1.0,
    }


def test_disjoint_sets_score_zero():
    real, fake = gaussians(shift=0.0)
    got = precision_recall_density_coverage(real, fake + 1000.0)
    assert got == dict.fromkeys(KEYS, 0.0)


def test_fake_collapsed_onto_one_real_point():
    real, _ = gaussians()
    fake = real[17].repeat(50, 1)
    got = precision_recall_density_coverage(real, fake)
    # Every fake point sits on a real point, but the fake balls have radius 0
    # and hold only that one real point.
    assert got["precision"] == 1.0
    assert got["recall"] == 1 / len(real)
    assert got == pytest.approx(dense_reference(real, fake), abs=1e-12)


def test_radii_are_kth_neighbour_distances_without_self():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0], [15.0]]).repeat(1, 20)
    radii = knn_radii(points, ks=(1, 2), device="cpu")
    scale = 20**0.5
    torch.testing.assert_close(
        radii[1], torch.tensor([1.0, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64) * scale
    )
    torch.testing.assert_close(
        radii[2], torch.tensor([3.0, 2.0, 3.0, 6.0, 12.0], dtype=torch.float64) * scale
    )


@pytest.mark.parametrize("step", [256, 4, 1])
def test_radii_match_dense_kth_values_over_many_strips(monkeypatch, step):
    # 45 strips of 9 rows: candidates from earlier strips are held and folded.
    # A step below 9 covers each diagonal block in a staircase of shorter strips.
    monkeypatch.setattr(
        sys.modules["ganzoo.evaluation._knn._radii"], "_DIAGONAL_STEP", step
    )
    real, _ = gaussians(n_real=400, dim=48)
    real = torch.cat([real, real[:30]])  # some points twice
    radii = knn_radii(real, ks=(1, 3, 5), block=9)
    dense = torch.cdist(
        real.double(), real.double(), compute_mode="donot_use_mm_for_euclid_dist"
    )
    for k in (1, 3, 5):
        expected = dense.kthvalue(k + 1, dim=1).values
        assert torch.equal(radii[k], expected), k


# Invariance and exactness.


@pytest.mark.parametrize("dim", [4, 64])
def test_block_size_does_not_change_the_result(dim):
    real, fake = gaussians(n_real=300, n_fake=350, dim=dim)
    small = precision_recall_density_coverage(real, fake, block=7)
    large = precision_recall_density_coverage(real, fake, block=10000)
    assert small == large


def test_column_tiles_do_not_change_the_result(monkeypatch):
    from ganzoo.evaluation._knn import _points

    real, fake = gaussians(n_real=300, n_fake=350, dim=64)
    whole = precision_recall_density_coverage(real, fake, block=16)
    monkeypatch.setitem(_points._TILE_ENTRIES, "cpu", 16 * 24)  # 24 columns a tile
    tiled = precision_recall_density_coverage(real, fake, block=16)
    assert tiled == whole
    assert_scores(tiled, dense_reference(real, fake), tol=1e-12)


def test_duplicated_points_count_at_distance_zero():
    # Each real point three times: with k = 3 the radius is the distance to the
    # nearest other point, and a fake copy of a real point is inside its ball.
    real, fake = gaussians(n_real=200, n_fake=300)
    real = real.repeat(3, 1)
    fake = torch.cat([fake, real[:40]])
    got = precision_recall_density_coverage(real, fake, block=64)
    assert_scores(got, dense_reference(real, fake), tol=1e-12)
    precision, recall = torch_fidelity_pr(real, fake)
    assert got["precision"] == pytest.approx(precision, abs=1e-6)
    assert got["recall"] == pytest.approx(recall, abs=1e-6)


def test_points_with_k_copies_have_radius_zero():
    real, _ = gaussians(n_real=100)
    real = torch.cat([real, real[:1].repeat(4, 1)])  # five copies of point 0
    radii = knn_radii(real, ks=(3, 5))
    assert (radii[3][[0, 100, 101, 102, 103]] == 0).all()
    assert (radii[5][[0, 100, 101, 102, 103]] > 0).all()
    # A fake copy of point 0 is inside a radius-0 ball with <=, not with <.
    fake = torch.cat([real[:1], real[50:90] + 5.0])
    got = precision_recall_density_coverage(real, fake)
    assert_scores(got, dense_reference(real, fake), tol=1e-12)
    assert got["precision"] == 1 / len(fake)


def test_ties_on_an_integer_lattice_follow_the_membership_rules():
    # Many distances equal radii exactly here; <= and < must be applied to them
    # as to exact distances, which torch-fidelity and prdc also see exactly.
    g = torch.Generator().manual_seed(5)
    real = torch.randint(0, 3, (300, 24), generator=g).float()
    fake = torch.randint(0, 3, (250, 24), generator=g).float()
    got = precision_recall_density_coverage(real, fake, block=50)
    assert_scores(got, dense_reference(real, fake), tol=1e-12)
    precision, recall = torch_fidelity_pr(real, fake)
    assert got["precision"] == pytest.approx(precision, abs=1e-6)
    assert got["recall"] == pytest.approx(recall, abs=1e-6)
    reference = prdc_scores(real, fake, k=5)
    assert_scores(got, {"density": reference["density"]})
    assert_scores(got, {"coverage": reference["coverage"]})


def test_cached_real_radii_give_the_same_scores():
    real, fake = gaussians()
    radii = knn_radii(real, ks=(3, 5))
    fresh = precision_recall_density_coverage(real, fake)
    cached = precision_recall_density_coverage(real, fake, real_radii=radii)
    assert fresh == cached


def test_offset_and_scale_do_not_change_the_result():
    real, fake = gaussians(dim=32)
    base = precision_recall_density_coverage(real, fake)
    # A power-of-two scale and an offset applied in float64 are both exact.
    moved = precision_recall_density_coverage(
        real.double() * 1024 + 50.0, fake.double() * 1024 + 50.0
    )
    assert moved == base
    wide = precision_recall_density_coverage(real.double(), fake.double())
    assert wide == base


def test_half_precision_features_are_measured_as_given():
    real, fake = gaussians(n_real=300, n_fake=280, dim=40)
    real, fake = real.half(), fake.half()
    got = precision_recall_density_coverage(real, fake)
    assert_scores(got, dense_reference(real, fake), tol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_result():
    real, fake = gaussians(n_real=3000, n_fake=2500, dim=256)
    on_cpu = precision_recall_density_coverage(real, fake, device="cpu")
    on_gpu = precision_recall_density_coverage(real.cuda(), fake.cuda(), device="cuda")
    assert on_gpu == on_cpu


def test_tight_low_dimensional_clusters():
    # 2-D points in eight tight modes, as the ring benchmark produces them.
    g = torch.Generator().manual_seed(1)
    angles = torch.arange(8) * (2 * np.pi / 8)
    means = torch.stack([angles.cos(), angles.sin()], 1)
    real = means[torch.randint(0, 8, (800,), generator=g)]
    real = real + 0.01 * torch.randn(800, 2, generator=g)
    fake = means[torch.randint(0, 6, (700,), generator=g)]
    fake = fake + 0.02 * torch.randn(700, 2, generator=g)
    got = precision_recall_density_coverage(real, fake)
    assert_scores(got, dense_reference(real, fake), tol=1e-12)


# Errors a user can act on.


def test_nan_in_fake_features_names_the_set_and_row():
    real, fake = gaussians()
    fake[12, 3] = float("nan")
    with pytest.raises(GanzooError, match=r"fake features .*NaN.*row 12"):
        precision_recall_density_coverage(real, fake)


def test_infinite_real_features_are_refused():
    real, fake = gaussians()
    real[0, 0] = float("inf")
    with pytest.raises(GanzooError, match="real features"):
        precision_recall_density_coverage(real, fake)


@pytest.mark.parametrize(
    ("real", "fake", "message"),
    [
        (torch.zeros(10), torch.zeros(10, 3), "2-D"),
        (torch.zeros(10, 3), torch.zeros(10, 4), "differ in dimension"),
        (torch.zeros(5, 3), torch.zeros(10, 3), "real features has 5 points"),
        (torch.zeros(10, 3), torch.zeros(3, 3), "fake features has 3 points"),
        (np.zeros((10, 3)), torch.zeros(10, 3), "torch.Tensor"),
    ],
)
def test_malformed_inputs_are_refused(real, fake, message):
    with pytest.raises(GanzooError, match=message):
        precision_recall_density_coverage(real, fake)


def test_bad_options_are_refused():
    real, fake = gaussians()
    with pytest.raises(GanzooError, match="k_pr"):
        precision_recall_density_coverage(real, fake, k_pr=0)
    with pytest.raises(GanzooError, match="block"):
        precision_recall_density_coverage(real, fake, block=0)
    if not torch.cuda.is_available():
        with pytest.raises(GanzooError, match="CUDA"):
            precision_recall_density_coverage(real, fake, device="cuda")
    with pytest.raises(GanzooError, match="lacks k = 5"):
        precision_recall_density_coverage(
            real, fake, real_radii=knn_radii(real, ks=(3,))
        )
