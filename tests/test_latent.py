"""``ganzoo sample``'s other views: class grids, latent walks, nearest neighbours."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganzoo import DataShape, GanzooError
from ganzoo.cli import main
from ganzoo.training import LoadedGenerator, generate
from ganzoo.training import _latent as latent

from .conftest import FASHION, REPO, TINY_RING, listing, needs_fashion, write

SIDE = 6
"""Side of the hand-made generator's images."""


class TinyConditional(nn.Module):
    """A class-conditional generator small enough to reason about: 3 classes."""

    latent_dim = 4
    conditional = True
    num_classes = 3
    output_range = (-1.0, 1.0)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(self.latent_dim, SIDE * SIDE)
        self.embed = nn.Embedding(self.num_classes, SIDE * SIDE)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(self.linear(z) + self.embed(labels))
        return out.view(-1, 1, SIDE, SIDE)


@pytest.fixture
def tiny() -> LoadedGenerator:
    generator = TinyConditional().eval().requires_grad_(False)
    shape = DataShape("image", (1, SIDE, SIDE), num_classes=3)
    return LoadedGenerator(generator, shape, None, Path("tiny.pt"), 0.0)


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ring")
    recipe = write(root / "ring.yaml", TINY_RING)
    assert main(["train", str(recipe), "--run-dir", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """Two steps of the quickstart DCGAN on 256 Fashion-MNIST images."""
    if not FASHION.exists():
        pytest.skip("Fashion-MNIST is not installed")
    root = tmp_path_factory.mktemp("image")
    status = main(
        [
            "train",
            str(REPO / "recipes" / "quickstart.yaml"),
            "data.limit=256",
            "train.kimg=0.128",
            "train.tick_kimg=0.128",
            "train.snapshot_kimg=0.128",
            "train.grid=16",
            "--run-dir",
            str(root / "run"),
        ]
    )
    assert status == 0
    return root / "run"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))


# Interpolation.


@pytest.mark.parametrize("mode", latent.INTERPOLATIONS)
def test_interpolation_starts_and_ends_exactly_at_its_endpoints(mode):
    start, end = torch.randn(2, 128, generator=torch.Generator().manual_seed(1))
    path = latent.interpolate(start, end, 7, mode)
    assert path.shape == (7, 128)
    assert torch.equal(path[0], start) and torch.equal(path[-1], end)


def test_slerp_keeps_unit_vectors_on_the_sphere_where_lerp_cuts_inside():
    start, end = torch.randn(2, 64, generator=torch.Generator().manual_seed(2))
    start, end = start / start.norm(), end / end.norm()
    spherical = latent.interpolate(start, end, 9, "slerp").norm(dim=1)
    straight = latent.interpolate(start, end, 9, "lerp").norm(dim=1)
    assert torch.allclose(spherical, torch.ones(9), atol=1e-5)
    assert float(straight[4]) < 0.9


def test_slerp_of_parallel_vectors_walks_the_straight_line():
    start = torch.randn(16, generator=torch.Generator().manual_seed(3))
    for end in (2.5 * start, start * (1 + 1e-9)):
        for t in (0.0, 0.3, 0.5, 1.0):
            point = latent.slerp(start, end, t)
            assert torch.isfinite(point).all()
            assert torch.allclose(point, latent.lerp(start, end, t))
            cosine = point @ start / (point.norm() * start.norm())
            assert float(cosine) == pytest.approx(1.0, abs=1e-6)


def test_interpolation_rejects_unknown_modes_and_too_few_steps():
    start, end = torch.zeros(2, 4)
    with pytest.raises(GanzooError, match="lerp, slerp"):
        latent.interpolate(start, end, 5, "cubic")
    with pytest.raises(GanzooError, match="at least 2"):
        latent.interpolate(start, end, 1, "lerp")


def test_walk_ends_are_the_samples_of_their_seeds_in_their_class(tiny):
    rows = latent.interpolation_rows(tiny, [(3, 7), (3, 7)], 5, "slerp", [2, 0])
    assert rows.shape == (2, 5, 1, SIDE, SIDE)
    for row, label in ((0, 2), (1, 0)):
        for column, seed in ((0, 3), (-1, 7)):
            direct = generate(tiny, 1, seed=seed, labels=torch.tensor([label]))
            assert torch.equal(rows[row, column], direct[0])
    assert not torch.equal(rows[0], rows[1]), "the class should change the images"


def test_walk_plan_gives_one_row_per_class_unless_a_class_is_held():
    pairs, labels = latent.walk_plan(3, seed=10)
    assert pairs == [(10, 11), (12, 13), (14, 15)] and labels == [0, 1, 2]
    pairs, labels = latent.walk_plan(3, seed=0, label=1)
    assert len(pairs) == 4 and labels == [1, 1, 1, 1]
    pairs, labels = latent.walk_plan(3, seed=0, from_seed=5, to_seed=9)
    assert pairs == [(5, 9)] * 3 and labels == [0, 1, 2]
    assert latent.walk_plan(0, seed=0, from_seed=5, to_seed=9) == ([(5, 9)], None)
    assert latent.walk_plan(0, seed=0, rows=2) == ([(0, 1), (2, 3)], None)


def test_strip_has_a_row_per_path_and_the_gif_goes_there_and_back(tiny, tmp_path):
    rows = latent.interpolation_rows(tiny, [(0, 1), (2, 3)], 5, "lerp", [0, 1])
    latent.save_rows(rows, tiny.shape, tmp_path / "strip.png")
    cell = SIDE + 2
    assert Image.open(tmp_path / "strip.png").size == (5 * cell + 2, 2 * cell + 2)

    frames = latent.save_gif(rows, tiny.shape, tmp_path / "walk.gif")
    gif = Image.open(tmp_path / "walk.gif")
    scale = 128 // SIDE
    assert frames == gif.n_frames == 2 * 5 - 2
    assert gif.size == ((2 * cell + 2) * scale, (cell + 2) * scale)


# Classes.


def test_class_grid_has_one_row_per_class_and_a_latent_per_column(tiny, tmp_path):
    grid = latent.class_grid(tiny, 4, seed=5)
    assert grid.shape == (3, 4, 1, SIDE, SIDE)
    for label in range(3):
        alone = generate(tiny, 4, seed=5, labels=torch.full((4,), label))
        assert torch.equal(grid[label], alone)
    latent.save_rows(grid, tiny.shape, tmp_path / "classes.png")
    cell = SIDE + 2
    assert Image.open(tmp_path / "classes.png").size == (4 * cell + 2, 3 * cell + 2)


def test_class_grid_of_points_is_a_scatter_with_a_colour_per_class(tmp_path):
    centres = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    rows = centres[:, None] + 0.05 * torch.randn(3, 40, 2)
    shape = DataShape("points", (2,), num_classes=3)
    latent.save_rows(rows, shape, tmp_path / "classes.png", reference=centres)
    picture = np.asarray(Image.open(tmp_path / "classes.png"))
    assert picture.shape == (400, 400, 3)
    for colour in latent.PALETTE[:3]:
        assert (picture == colour).all(axis=2).sum() > 40


def test_classes_out_of_range_are_refused(tiny):
    with pytest.raises(GanzooError, match=r"class 3 is out of range.*0\.\.2"):
        latent.check_classes(tiny, [3])
    with pytest.raises(GanzooError, match="out of range"):
        latent.check_classes(tiny, [-1])
    latent.check_classes(tiny, [0, 2])


# Nearest neighbours.


def test_nearest_finds_the_known_closest_reference_across_chunks():
    references = torch.tensor(
        [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]]
    )
    queries = torch.tensor([[9.0, 1.0], [5.0, 5.0], [0.5, 9.0], [-3.0, -4.0]])
    distances, indices = latent.nearest(queries, references, chunk=2)
    assert indices.tolist() == [1, 4, 2, 0]
    expected = [math.sqrt(2), 0.0, math.sqrt(1.25), 5.0]
    assert distances.tolist() == pytest.approx(expected, abs=1e-6)


def test_an_exact_copy_is_at_distance_zero_among_many_references():
    references = torch.rand(3000, 784, generator=torch.Generator().manual_seed(4))
    queries = references[[2999, 17, 1500]]
    distances, indices = latent.nearest(queries, references)
    assert indices.tolist() == [2999, 17, 1500]
    assert distances.tolist() == [0.0, 0.0, 0.0]


def test_neighbours_picture_pairs_each_sample_with_its_neighbour(tmp_path):
    samples = torch.rand(5, 1, 4, 4)
    found = latent.Neighbours(
        samples=samples,
        neighbours=samples.flip(0),
        distances=torch.arange(5.0),
        indices=torch.arange(5),
        space="pixel space (16-D)",
        training_split="train",
        training_size=5,
    )
    latent.save_neighbours(found, tmp_path / "pairs.png")
    # round(sqrt(5 / 2)) = 2 pairs per row: 3 rows, 4 images and a pair gap wide.
    cell = 4 + 2
    size = Image.open(tmp_path / "pairs.png").size
    assert size == (4 * cell + 2 + 6, 3 * cell + 2)
    assert "mean distance to the nearest of 5 train images" in found.summary()


@needs_fashion
def test_training_images_find_themselves_in_the_run_feature_space(image_run, cache):
    from ganzoo.training import load_generator

    loaded = load_generator(image_run)
    training = loaded.recipe.dataset().load("train").samples
    chosen = [200, 7, 31]
    found = latent.find_neighbours(loaded, training[chosen])
    assert found.space == "fashion-classifier features (256-D)"
    assert sorted(found.indices.tolist()) == sorted(chosen)
    assert float(found.distances.max()) < 1e-4
    assert found.training_size == 256 and found.held_out_split == "test"
    assert found.held_out_distance > 0.1


@needs_fashion
def test_neighbours_fall_back_to_pixels_when_no_extractor_applies(
    image_run, cache, monkeypatch, caplog
):
    from ganzoo.evaluation import _evaluator
    from ganzoo.training import load_generator

    def refuse(recipe, device=None):
        raise GanzooError("no extractor for these images")

    monkeypatch.setattr(_evaluator, "scorer_for", refuse)
    loaded = load_generator(image_run)
    found = latent.find_neighbours(loaded, generate(loaded, 3, seed=0))
    assert found.space == "pixel space (784-D)"
    assert "pixel space: no extractor for these images" in caplog.text


# The command line.


@needs_fashion
def test_sample_neighbours_writes_pairs_and_prints_the_mean_distance(
    image_run, cache, cli, tmp_path
):
    status, out, _ = cli(
        "sample", image_run, "--neighbours", "--n", 6, "--out", tmp_path / "nn.png"
    )
    assert status == 0
    assert "mean distance to the nearest of 256 train images" in out
    assert "held-out test images" in out
    # round(sqrt(3)) = 2 pairs per row, 3 rows of 28-pixel images.
    assert Image.open(tmp_path / "nn.png").size == (4 * 30 + 2 + 6, 3 * 30 + 2)


@needs_fashion
def test_sample_interpolation_of_images_ends_at_the_seed_samples(
    image_run, cli, tmp_path
):
    walk = tmp_path / "walk.npy"
    args = ("--interpolate", "slerp", "--steps", 6, "--from-seed", 3, "--to-seed", 8)
    assert cli("sample", image_run, *args, "--out", walk)[0] == 0
    rows = np.load(walk)
    assert rows.shape == (1, 6, 1, 28, 28)
    for column, seed in ((0, 3), (-1, 8)):
        cli("sample", image_run, "--n", 1, "--seed", seed, "--out", tmp_path / "e.npy")
        assert np.array_equal(rows[0, column], np.load(tmp_path / "e.npy")[0])

    strip = tmp_path / "s.png"
    status, _, _ = cli("sample", image_run, "--interpolate", "lerp", "--out", strip)
    assert status == 0
    assert Image.open(tmp_path / "s.png").size == (8 * 30 + 2, 4 * 30 + 2)
    gif = tmp_path / "s.gif"
    assert cli("sample", image_run, "--interpolate", "lerp", "--out", gif)[0] == 0
    assert Image.open(gif).n_frames == 2 * 8 - 2


def test_sample_interpolation_of_points_draws_paths_and_ends_at_the_seeds(
    ring_run, cli, tmp_path
):
    args = ("--interpolate", "lerp", "--steps", 5, "--from-seed", 3, "--to-seed", 4)
    assert cli("sample", ring_run, *args, "--out", tmp_path / "walk.npy")[0] == 0
    rows = np.load(tmp_path / "walk.npy")
    assert rows.shape == (1, 5, 2)
    for column, seed in ((0, 3), (-1, 4)):
        cli("sample", ring_run, "--n", 1, "--seed", seed, "--out", tmp_path / "e.npy")
        assert np.array_equal(rows[0, column], np.load(tmp_path / "e.npy")[0])

    args = ("--interpolate", "slerp", "--steps", 6, "--rows", 3, "--gif")
    status, out, _ = cli("sample", ring_run, *args, "--out", tmp_path / "paths.png")
    assert status == 0 and "0->1, 2->3, 4->5" in out
    assert Image.open(tmp_path / "paths.png").size == (400, 400)
    assert Image.open(tmp_path / "paths.gif").n_frames == 2 * 6 - 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--interpolate", "cubic"), "invalid choice: 'cubic'"),
        (("--interpolate", "lerp", "--steps", 1), "--steps must be at least 2"),
        (("--interpolate", "lerp", "--from-seed", 1), "go together"),
        (("--steps", 5, "--n", 4), "--steps applies only with --interpolate"),
        (("--class", 0, "--n", 4), "--class: .*not class-conditional"),
        (("--class-grid",), "--class-grid: .*not class-conditional"),
        (("--class-grid", "--interpolate", "lerp"), "not allowed with"),
        (("--neighbours",), "image runs only"),
        (("--neighbours", "--out-is", "gif"), "must end in .png"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_sample_requests_are_one_line_and_write_nothing(
    ring_run, cli, tmp_path, args, message
):
    out = tmp_path / "out" / "picture.png"
    if "--out-is" in args:
        args, out = args[:-2], out.with_suffix(".gif")
    before = listing(tmp_path)
    status, _, err = cli("sample", ring_run, *args, "--out", out)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("ganzoo: error: ")
    assert re.search(message, err), err
    assert listing(tmp_path) == before


def test_sample_of_a_missing_run_directory_is_one_line(cli, tmp_path):
    status, _, err = cli(
        "sample", tmp_path / "nowhere", "--class-grid", "--out", tmp_path / "g.png"
    )
    assert status == 2 and "run directory not found" in err
    assert listing(tmp_path) == set()


# A class-conditional run end to end.

CONDITIONAL = REPO / "recipes" / "fashion-mnist" / "cgan-concat.yaml"


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    """Two steps of the label-concatenation cGAN on 256 Fashion-MNIST images."""
    if not FASHION.exists() or not CONDITIONAL.exists():
        pytest.skip("needs Fashion-MNIST and the cgan-concat recipe")
    root = tmp_path_factory.mktemp("conditional")
    status = main(
        [
            "train",
            str(CONDITIONAL),
            "data.limit=256",
            "train.kimg=0.128",
            "train.tick_kimg=0.128",
            "train.snapshot_kimg=0.128",
            "train.grid=16",
            "eval.eval_kimg=null",
            "--run-dir",
            str(root / "run"),
        ]
    )
    assert status == 0
    return root / "run"


def test_sample_class_and_class_grid_of_a_conditional_run(
    conditional_run, cli, tmp_path
):
    run = conditional_run
    assert (
        cli("sample", run, "--class", 3, "--n", 5, "--out", tmp_path / "c.npy")[0] == 0
    )
    assert (
        cli("sample", run, "--class-grid", "--n", 5, "--out", tmp_path / "g.npy")[0]
        == 0
    )
    grid = np.load(tmp_path / "g.npy")
    assert grid.shape == (10, 5, 1, 28, 28)
    assert np.array_equal(grid[3], np.load(tmp_path / "c.npy"))
    assert not np.array_equal(grid[3], grid[4])

    assert cli("sample", run, "--class-grid", "--out", tmp_path / "g.png")[0] == 0
    assert Image.open(tmp_path / "g.png").size == (8 * 30 + 2, 10 * 30 + 2)

    before = listing(tmp_path)
    status, _, err = cli("sample", run, "--class", 10, "--out", tmp_path / "x.png")
    assert status == 2 and "0..9" in err and err.count("\n") == 1
    assert listing(tmp_path) == before


def test_conditional_walks_hold_one_class_per_row(conditional_run, cli, tmp_path):
    run = conditional_run
    walk = tmp_path / "walk.npy"
    assert cli("sample", run, "--interpolate", "slerp", "--out", walk)[0] == 0
    rows = np.load(walk)
    assert rows.shape == (10, 8, 1, 28, 28)
    # Row 3 walks in class 3 from the sample of seed 6 to that of seed 7.
    for column, seed in ((0, 6), (-1, 7)):
        end = tmp_path / "end.npy"
        args = ("--class", 3, "--n", 1, "--seed", seed, "--out", end)
        assert cli("sample", run, *args)[0] == 0
        assert np.array_equal(rows[3, column], np.load(end)[0])
