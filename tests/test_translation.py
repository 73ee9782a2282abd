"""Image-to-image translation end to end: pix2pix's networks and loss, paired data,
the translation trainer, pixel scores, ``ganzoo translate`` and ``ganzoo eval``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ganzoo_plugins.architectures.pix2pix import Pix2pix, receptive_field
from ganzoo_plugins.datasets.paired import FashionEdges, PairedFolder, sobel_edges
from ganzoo_plugins.translation_losses import Pix2pixLoss
from PIL import Image

from ganzoo import DataShape, GanzooError
from ganzoo.evaluation._translation import (
    gaussian_kernel,
    l1_distance,
    pixel_scores,
    psnr,
    ssim,
)
from ganzoo.recipes import load_recipe
from ganzoo.training import build_trackers, load_checkpoint, prepare_run_dir
from ganzoo.training._translation import (
    TranslationTrainer,
    load_translator,
    trainer_class,
)

from .conftest import (
    REPO,
    TINY_RING,
    listing,
    needs_fashion,
    stop_after_checkpoints,
    write,
)

RECIPE = REPO / "recipes" / "fashion-edges" / "pix2pix.yaml"

TINY = [
    "data.limit=128",
    "model.generator.width=4",
    "model.generator.max_width=8",
    "model.discriminator.width=4",
    "model.discriminator.layers=1",
    "train.batch_size=16",
    "train.kimg=0.064",
    "train.tick_kimg=0.032",
    "train.snapshot_kimg=0.032",
    "train.grid=6",
    "eval.eval_kimg=null",
]
"""Overrides that train the fashion-edges recipe for 4 steps of tiny networks."""

EDGES = DataShape("image", (1, 28, 28), input_shape=(1, 28, 28))
COLOR = DataShape("image", (3, 32, 32), input_shape=(1, 32, 32))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))


def build(role: str, shape: DataShape, **options):
    torch.manual_seed(0)
    return Pix2pix().make(role, shape, options)


def train_tiny(run_dir: Path, overrides=(), recipe: Path = RECIPE, resume=False):
    loaded = load_recipe(recipe, [*TINY, *overrides])
    trainer = trainer_class(loaded)(loaded, run_dir, build_trackers(loaded))
    prepare_run_dir(loaded, run_dir, resume=resume)
    trainer.run(resume=resume, show_bar=False)
    return trainer


# The U-Net generator.


@pytest.mark.parametrize("shape", [EDGES, COLOR], ids=["edges", "gray-to-color"])
def test_unet_translates_inputs_into_images_of_the_target_shape(shape):
    generator = build("generator", shape, width=8, max_width=32).eval()
    inputs = torch.rand(3, *shape.input_shape) * 2 - 1
    with torch.no_grad():
        outputs = generator(inputs)
    assert outputs.shape == (3, *shape.shape)
    assert generator.latent_dim == 0 and generator.input_shape == shape.input_shape
    assert float(outputs.abs().max()) <= 1.0
    # Down to a 1x1 bottleneck by default: 28 pixels are padded to 32 = 2**5.
    assert len(generator.down) == 5


def test_unet_skip_connections_carry_the_input_to_the_output():
    generator = build("generator", EDGES, width=8, max_width=16).eval()
    inputs = torch.rand(1, 1, 28, 28, requires_grad=True)
    generator(inputs)[0, 0, 3, 3].backward()
    # The output pixel depends on its input pixel, through the outermost skip.
    assert float(inputs.grad[0, 0, 3, 3].abs()) > 0


def test_unet_on_unpaired_images_maps_noise_images_to_samples():
    shape = DataShape("image", (3, 32, 32))
    generator = build("generator", shape, width=8)
    assert generator.latent_dim == 3 * 32 * 32 and generator.input_shape is None
    assert generator(torch.randn(2, generator.latent_dim)).shape == (2, 3, 32, 32)


def test_translating_weights_refuse_latents_even_in_a_network_built_for_them():
    unpaired = build("generator", DataShape("image", (1, 28, 28)), width=8)
    unpaired.load_state_dict(build("generator", EDGES, width=8).state_dict())
    with pytest.raises(GanzooError, match="ganzoo translate"):
        unpaired(torch.randn(2, unpaired.latent_dim))


# The PatchGAN discriminator.


def test_patchgan_judges_pairs_patch_by_patch():
    discriminator = build("discriminator", COLOR, width=8, layers=2)
    pairs = torch.rand(4, 1 + 3, 32, 32)
    # 32 -> 16 -> 8 by two stride-2 layers, then -1 twice by the stride-1 ones.
    assert discriminator(pairs, patches=True).shape == (4, 1, 6, 6)
    assert discriminator(pairs).shape == (4,)
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]


def test_pix2pix_rejects_what_it_cannot_serve():
    architecture = Pix2pix()
    with pytest.raises(GanzooError, match=r"leaves no patch.*use layers: 3"):
        architecture.check(EDGES, "discriminator", {"layers": 4})
    with pytest.raises(GanzooError, match="inputs are 14x14, the targets 28x28"):
        shape = DataShape("image", (1, 28, 28), input_shape=(1, 14, 14))
        architecture.check(shape, "generator", {})
    with pytest.raises(GanzooError, match="at most 5"):
        architecture.check(EDGES, "generator", {"depth": 6})
    with pytest.raises(GanzooError, match="for images"):
        architecture.check(DataShape("points", (2,)), "generator", {})


# The pix2pix loss.


def test_pix2pix_loss_is_bce_plus_a_weighted_l1():
    loss = Pix2pixLoss.create()
    assert loss.l1_weight == 100.0
    fake, target = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)
    assert float(loss.reconstruction_loss(fake, target)) == pytest.approx(50.0)
    logits = torch.tensor([0.0, 0.0])
    assert float(loss.generator_loss(logits)) == pytest.approx(math.log(2))
    assert float(loss.discriminator_loss(logits, logits)) == pytest.approx(math.log(2))
    assert Pix2pixLoss.create(l1_weight=10).reconstruction_loss(
        fake, target
    ).item() == pytest.approx(5.0)


def test_pix2pix_loss_on_unpaired_data_is_rejected_before_training(tmp_path, cli):
    recipe = write(tmp_path / "r.yaml", TINY_RING.replace("{name: bce}", "pix2pix"))
    before = listing(tmp_path)
    status, _, err = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert status == 2
    assert re.match(rf"ganzoo: error: {re.escape(str(recipe))}:5: loss: ", err), err
    assert "needs paired data" in err and err.count("\n") == 1
    assert listing(tmp_path) == before


@needs_fashion
def test_generator_that_does_not_translate_is_rejected(tmp_path):
    recipe = load_recipe(
        RECIPE, [*TINY, "model.generator={name: dcgan-seed, latent_dim: 8}"]
    )
    with pytest.raises(GanzooError, match="does not translate images") as error:
        TranslationTrainer(recipe, tmp_path / "run", [])
    assert error.value.key == "model.generator"
    assert not (tmp_path / "run").exists()


# Edges to garments.


def test_sobel_edges_mark_both_sides_of_a_step_and_nothing_on_flat_ground():
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    edges = sobel_edges(step, 0.25)
    # The step sits between columns 3 and 4; the image's right border (next to
    # the black outside) is an edge as well.
    assert edges[0, 0, 2:6, 3:5].eq(1).all() and edges[0, 0, 2:6, 7].eq(1).all()
    assert edges[0, 0, :, :3].eq(0).all()
    assert sobel_edges(torch.zeros(2, 1, 8, 8), 0.25).eq(0).all()
    # Half a step stays below a threshold of 0.6, a full one does not.
    assert sobel_edges(step * 0.5, 0.6)[0, 0, 4, 3] == 0
    assert sobel_edges(step, 0.6)[0, 0, 4, 3] == 1


@needs_fashion
def test_fashion_edges_pairs_garments_with_their_edge_maps():
    dataset = FashionEdges.create(limit=64)
    shape = dataset.data_shape()
    assert shape.paired and shape.input_shape == shape.shape == (1, 28, 28)
    data = dataset.load("test")
    assert data.samples.shape == data.inputs.shape == (64, 1, 28, 28)
    assert set(data.inputs.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(data.inputs, sobel_edges(data.samples, 0.25))
    again = FashionEdges.create(limit=64).load("test")
    assert torch.equal(again.inputs, data.inputs)
    assert again.fingerprint == data.fingerprint
    train = dataset.load("train")
    assert train.fingerprint != data.fingerprint
    assert not torch.equal(train.samples, data.samples)


# Paired folders.


def _side_by_side(path: Path, left: int, right: int, size=(8, 6)) -> None:
    width, height = size
    pixels = np.zeros((height, 2 * width, 3), np.uint8)
    pixels[:, :width], pixels[:, width:] = left, right
    Image.fromarray(pixels).save(path)


def test_side_by_side_pairs_split_into_a_and_b(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    for index in range(6):
        _side_by_side(folder / f"{index}.png", 10 * index, 200)
    (folder / "notes.txt").write_text("not an image")
    dataset = PairedFolder.create(
        path=str(folder), resolution=4, input_channels=1, test_fraction=0.5
    )
    train, test = dataset.load("train"), dataset.load("test")
    assert len(train) + len(test) == 6 and len(test) > 0 and len(train) > 0
    assert train.inputs.shape[1:] == (1, 4, 4) and train.samples.shape[1:] == (3, 4, 4)
    assert torch.allclose(train.samples, torch.full_like(train.samples, 200 / 255))
    lefts = sorted(
        round(float(v) * 255)
        for v in torch.cat([train.inputs, test.inputs])[:, 0, 0, 0]
    )
    assert lefts == [0, 10, 20, 30, 40, 50]

    # The held-out pairs are chosen by name: the same ones on every load.
    assert torch.equal(
        PairedFolder.create(
            path=str(folder), resolution=4, input_channels=1, test_fraction=0.5
        )
        .load("test")
        .inputs,
        test.inputs,
    )

    swapped = PairedFolder.create(path=str(folder), resolution=4, direction="b-to-a")
    assert torch.allclose(swapped.load("train").inputs, torch.tensor(200 / 255))


def test_split_subfolders_are_the_splits(tmp_path):
    for split, count in (("train", 3), ("val", 2)):
        (tmp_path / split).mkdir()
        for index in range(count):
            _side_by_side(tmp_path / split / f"{index}.png", 0, 255)
    dataset = PairedFolder.create(path=str(tmp_path), resolution=4)
    assert len(dataset.load("train")) == 3
    assert len(dataset.load("test")) == 2  # val/ stands in for a missing test/


def test_side_by_side_image_of_odd_width_is_an_error_naming_it(tmp_path):
    Image.new("RGB", (15, 6)).save(tmp_path / "odd.png")
    dataset = PairedFolder.create(path=str(tmp_path), resolution=4, test_fraction=0)
    with pytest.raises(GanzooError, match=r"odd\.png is 15x6 pixels: an odd width"):
        dataset.load("train")


def test_two_folders_pair_files_by_name(tmp_path, caplog):
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    for name in ("x", "y"):
        Image.new("L", (6, 6), 40).save(tmp_path / "A" / f"{name}.png")
        Image.new("RGB", (6, 6), (0, 0, 250)).save(tmp_path / "B" / f"{name}.jpg")
    Image.new("L", (6, 6)).save(tmp_path / "A" / "lonely.png")
    dataset = PairedFolder.create(
        path=str(tmp_path),
        layout="folders",
        resolution=6,
        input_channels=1,
        test_fraction=0,
    )
    data = dataset.load("train")
    assert len(data) == 2
    assert torch.allclose(data.inputs, torch.tensor(40 / 255))
    assert float(data.samples[:, 2].mean()) > 0.9 > float(data.samples[:, 0].mean())
    assert "1 files" in caplog.text and "lonely.png" in caplog.text


def test_pair_of_mismatched_sizes_is_an_error_naming_both_files(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "A" / "p.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "B" / "p.png")
    dataset = PairedFolder.create(path=str(tmp_path), layout="folders", test_fraction=0)
    with pytest.raises(GanzooError) as error:
        dataset.load("train")
    message = str(error.value)
    assert str(tmp_path / "A" / "p.png") in message
    assert str(tmp_path / "B" / "p.png") in message
    assert "8x8" in message and "8x6" in message and "one size" in message


def test_paired_folder_trains_a_few_steps(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    for index in range(20):
        _side_by_side(folder / f"{index:02d}.png", 12 * index, 255 - 12 * index)
    recipe = write(
        tmp_path / "pairs.yaml",
        f"""\
        data: {{name: paired-folder, path: {folder}, resolution: 16, test_fraction: 0}}
        model:
          generator: {{name: pix2pix, width: 4, max_width: 8}}
          discriminator: {{name: pix2pix, width: 4, layers: 1}}
        loss: pix2pix
        train: {{batch_size: 4, kimg: 0.012, tick_kimg: 0.004, snapshot_kimg: 0.012}}
        """,
    )
    loaded = load_recipe(recipe)
    trainer = trainer_class(loaded)(loaded, tmp_path / "run", [])
    before = [p.detach().clone() for p in trainer.nets.discriminator.parameters()]
    prepare_run_dir(loaded, tmp_path / "run", resume=False)
    trainer.run(show_bar=False)
    assert trainer.step == 3
    after = list(trainer.nets.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").open()]
    ticks = [s for s in stats if "tick" in s]
    assert all(
        math.isfinite(t["g_l1_loss"]) and math.isfinite(t["d_loss"]) for t in ticks
    )


# The translation trainer.


@needs_fashion
def test_translation_run_snapshots_pairs_and_checkpoints_the_input_shape(tmp_path):
    trainer = train_tiny(tmp_path / "run")
    assert trainer.step == 4
    final = load_checkpoint(tmp_path / "run" / "final.pt")
    assert final["data_shape"]["input_shape"] == [1, 28, 28]
    grids = sorted((tmp_path / "run").glob("fakes-kimg*.png"))
    assert len(grids) == 3
    # Six triplets A | G(A) | B in one group of 6 rows, 2 pixels apart.
    assert Image.open(grids[-1]).size == (2 + 3 * 30, 2 + 6 * 30)
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").open()]
    last = [s for s in stats if "tick" in s][-1]
    assert last["g_l1_loss"] > 0 and math.isfinite(last["g_adv_loss"])

    loaded = load_translator(tmp_path / "run")
    edges = FashionEdges.create(limit=4).load("test").inputs
    outputs = loaded.translate(edges)
    assert outputs.shape == (4, 1, 28, 28)
    assert 0 <= float(outputs.min()) <= float(outputs.max()) <= 1


@needs_fashion
def test_resumed_translation_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    settings = ["train.kimg=0.096", "train.checkpoint_kimg=0.032"]
    straight = train_tiny(tmp_path / "straight", settings)

    undo = stop_after_checkpoints(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(tmp_path / "resumed", settings)
    undo()

    resumed = train_tiny(tmp_path / "resumed", settings, resume=True)
    assert resumed.step == straight.step == 6
    for name in ("generator", "discriminator", "generator_ema"):
        a = getattr(straight.nets, name).state_dict()
        b = getattr(resumed.nets, name).state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"


# Pixel scores.


def test_identical_images_score_perfectly():
    images = torch.rand(3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    scores = pixel_scores(images, images.clone())
    assert scores["l1"] == 0.0
    assert scores["psnr"] == pytest.approx(100.0)  # the 1e-10 MSE floor
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_constant_images_have_the_known_scores():
    a, b = 0.2, 0.7
    x, y = torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)
    assert float(l1_distance(x, y)) == pytest.approx(0.5)
    assert float(psnr(x, y)) == pytest.approx(-20 * math.log10(0.5))
    # No variance: SSIM reduces to its luminance term.
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ssim(x, y)) == pytest.approx(expected, rel=1e-6)


def test_ssim_matches_a_hand_computed_single_window():
    # An 11x11 image has one window position: the statistics are plain
    # Gaussian-weighted sums over the whole image.
    rng = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 11, 11, generator=rng, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(1, 1, 11, 11, generator=rng, dtype=torch.float64)) / 1.2
    g = gaussian_kernel(11, 1.5)
    w = torch.outer(g, g)
    mx, my = (w * x[0, 0]).sum(), (w * y[0, 0]).sum()
    vx = (w * (x[0, 0] - mx) ** 2).sum()
    vy = (w * (y[0, 0] - my) ** 2).sum()
    cov = (w * (x[0, 0] - mx) * (y[0, 0] - my)).sum()
    c1, c2 = 0.01**2, 0.03**2
    hand = ((2 * mx * my + c1) * (2 * cov + c2)) / (
        (mx**2 + my**2 + c1) * (vx + vy + c2)
    )
    assert float(ssim(x, y)) == pytest.approx(float(hand), rel=1e-9)
    assert float(ssim(y, x)) == pytest.approx(float(hand), rel=1e-9)


def test_ssim_falls_with_noise_and_the_window_is_a_unit_gaussian():
    rng = torch.Generator().manual_seed(1)
    clean = torch.rand(4, 1, 28, 28, generator=rng)
    scores = [
        float(
            ssim(
                clean, (clean + s * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
            ).mean()
        )
        for s in (0.05, 0.2, 0.5)
    ]
    assert 1 > scores[0] > scores[1] > scores[2]
    kernel = gaussian_kernel(11, 1.5)
    assert float(kernel.sum()) == pytest.approx(1.0) and int(kernel.argmax()) == 5


# The commands.


@needs_fashion
def test_translate_command_writes_outputs_under_the_input_names(tmp_path, cli):
    run_dir = tmp_path / "run"
    train_tiny(run_dir)
    inputs = tmp_path / "drawings"
    inputs.mkdir()
    edges = FashionEdges.create(limit=2).load("test").inputs
    for index, edge in enumerate(edges):
        pixels = (edge[0].numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).resize((56, 40)).save(inputs / f"shoe{index}.png")
    Image.new("RGB", (30, 30), "white").save(inputs / "photo.jpg")
    (inputs / "readme.txt").write_text("not an image")

    status, out, err = cli("translate", run_dir, inputs, tmp_path / "out")
    assert status == 0, err
    assert "skipped 1 of 4 files" in err and "translated 3 images" in out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["photo.jpg", "shoe0.png", "shoe1.png"]
    with Image.open(tmp_path / "out" / "shoe0.png") as image:
        assert image.size == (28, 28) and image.mode == "L"


@needs_fashion
def test_translate_command_rejects_bad_input_and_writes_nothing(tmp_path, cli):
    run_dir = tmp_path / "run"
    train_tiny(run_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    before = listing(tmp_path)
    for args, fragment in (
        ((tmp_path / "missing", tmp_path / "out"), "does not exist"),
        ((empty, tmp_path / "out"), "no readable image"),
        ((empty, empty), "is the input folder"),
    ):
        status, _, err = cli("translate", run_dir, *args)
        assert status == 2 and fragment in err, err
        assert err.startswith("ganzoo: error: ") and err.count("\n") == 1
        assert listing(tmp_path) == before


def test_translate_command_on_a_run_that_does_not_translate(tmp_path, cli):
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    assert cli("train", recipe, "--run-dir", tmp_path / "run")[0] == 0
    (tmp_path / "in").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "in" / "a.png")
    status, _, err = cli("translate", tmp_path / "run", tmp_path / "in", tmp_path / "o")
    assert status == 2 and "not a translation run" in err
    assert not (tmp_path / "o").exists()


@needs_fashion
def test_eval_scores_held_out_pairs_into_a_ranked_record(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    overrides = [*TINY, "eval.n_fake=100", "eval.n_real=120"]
    status, out, err = cli("eval", RECIPE, *overrides, "--json")
    assert status == 0, err
    record = json.loads(out[out.index("{") :])
    for key in ("l1", "psnr", "ssim", "fid"):
        assert math.isfinite(record[key]), key
    assert 0 < record["l1"] < 1 and -1 <= record["ssim"] <= 1
    protocol = record["protocol"]
    assert protocol["n_fake"] == 100 and protocol["n_real"] == 120
    assert protocol["feature_extractor"]["name"] == "fashion-classifier"
    assert protocol["translation"]["pairs"]["split"] == "test"
    assert protocol["translation"]["ssim_window"] == 11
    [stored] = list((tmp_path / "leaderboard" / "results").glob("*.json"))
    assert json.loads(stored.read_text())["recipe_hash"] == record["recipe_hash"]

    status, board, _ = cli("leaderboard", "--dataset", "fashion-edges")
    assert status == 0
    assert "## fashion-edges" in board and "Ranked by FID ↓" in board
    assert "l1 ↓" in board and "psnr ↑" in board and "ssim ↑" in board
    status, board, _ = cli("leaderboard", "--metric", "l1")
    assert "Ranked by l1 ↓" in board
