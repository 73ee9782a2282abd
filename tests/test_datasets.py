"""The built-in data set plugins: protocols, files, determinism and fingerprints."""

from __future__ import annotations

import gzip
import logging
import math
import re
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from ganzoo_plugins.datasets import (
    Digits,
    FashionMnist,
    Grid,
    ImageFolder,
    Mnist,
    Ring,
    StackedFashionMnist,
    StackedMnist,
    ganzoo_datasets,
)
from ganzoo_plugins.datasets.idx import file_digest, read_idx
from PIL import Image

from ganzoo import Dataset, GanzooError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` as an IDX file, the way the MNIST authors do."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_fake_mnist(root: Path, train: int = 40, test: int = 10) -> Path:
    """Four small IDX files in MNIST's layout, with labels cycling through 0-9."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        image_name, label_name = IDX_NAMES[split]
        write_idx(root / f"{image_name}.gz", images)
        write_idx(root / label_name, labels, compress=False)
    return root


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding small MNIST files, with no system copy to find."""
    monkeypatch.setattr(Mnist, "system_dir", tmp_path / "no-system-copy")
    return write_fake_mnist(tmp_path / "mnist")


# Registration.


def test_hook_returns_every_builtin_with_kebab_names_and_summaries():
    classes = ganzoo_datasets()
    names = [cls.name for cls in classes]

    assert {"fashion-edges", "paired-folder", "ring", "fashion-mnist"} <= set(names)
    assert len(classes) == 10
    assert len(set(names)) == len(names)
    for cls in classes:
        assert issubclass(cls, Dataset)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name)
        assert cls.summary()
        assert cls.splits


# Toy mixtures.


def test_ring_has_eight_distinct_means_on_the_unit_circle_45_degrees_apart():
    means = Ring.means().double()
    angles = torch.atan2(means[:, 1], means[:, 0]).remainder(2 * math.pi)
    gaps = torch.diff(torch.sort(angles).values)

    assert means.shape == (8, 2)
    assert torch.cdist(means, means).add(torch.eye(8)).min() > 0.7
    assert torch.allclose(means.norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert torch.allclose(gaps, torch.full((7,), math.pi / 4, dtype=torch.float64))
    assert Ring.std == 0.01


def test_grid_has_25_means_on_the_protocol_lattice():
    means = Grid.means()
    expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}

    assert means.shape == (25, 2)
    assert {(int(x), int(y)) for x, y in means.tolist()} == expected
    assert Grid.std == 0.05


@pytest.mark.parametrize("cls", [Ring, Grid])
def test_samples_spread_around_each_mean_with_the_protocol_std(cls):
    data = cls.create(n=40_000).load()
    means = cls.means()

    assert data.samples.shape == (40_000, 2)
    assert data.samples.dtype == torch.float32
    assert data.labels.dtype == torch.int64
    counts = torch.bincount(data.labels, minlength=len(means))
    assert counts.min() > 0.7 * 40_000 / len(means)
    for component in range(len(means)):
        points = data.samples[data.labels == component]
        assert torch.allclose(points.mean(0), means[component], atol=4 * cls.std)
        assert points.std(0) == pytest.approx([cls.std, cls.std], rel=0.15)


def test_toy_draws_are_reproducible_and_the_test_split_differs():
    ring = Ring.create(n=500, seed=3)
    train, again, test = ring.load("train"), ring.load("train"), ring.load("test")

    assert torch.equal(train.samples, again.samples)
    assert train.fingerprint == again.fingerprint
    assert not torch.equal(train.samples, test.samples)
    assert train.fingerprint != test.fingerprint
    other_seed = Ring.create(n=500, seed=4).load()
    assert not torch.equal(train.samples, other_seed.samples)


def test_toy_draws_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)

    torch.manual_seed(123)
    Grid.create(n=1000).load()
    assert torch.equal(torch.rand(3), expected)


def test_toy_fingerprint_follows_every_option():
    base = Ring.create(n=100).load().fingerprint

    assert Ring.create(n=100).load().fingerprint == base
    assert Ring.create(n=101).load().fingerprint != base
    assert Ring.create(n=100, seed=1).load().fingerprint != base
    assert Grid.create(n=100).load().fingerprint != base


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(GanzooError, match="train, test") as caught:
        Ring.create(n=10).load("validation")
    assert caught.value.key == "split"


def test_toy_data_shape_agrees_with_load():
    for cls in (Ring, Grid):
        dataset = cls.create(n=10)
        assert dataset.load().shape == dataset.data_shape()
        assert dataset.data_shape().shape == (2,)


# The IDX format.


@pytest.mark.parametrize("compress", [True, False])
def test_idx_parser_reads_gzip_and_plain_files(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    floats = np.linspace(-1, 1, 6).astype(">f4").reshape(3, 2)

    image_path = write_idx(tmp_path / "images", images, compress)
    float_path = write_idx(tmp_path / "floats", floats, compress)

    assert np.array_equal(read_idx(image_path), images)
    assert np.array_equal(read_idx(float_path), floats)
    assert read_idx(float_path).dtype == np.dtype(">f4")


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"\x00\x00\x99\x03" + raw[4:],
        lambda raw: raw[:-5],
        lambda raw: raw[:6],
        lambda raw: gzip.compress(raw)[:-12],
    ],
    ids=["bad-magic", "truncated-data", "truncated-header", "broken-gzip"],
)
def test_corrupt_idx_file_is_an_error_naming_it(tmp_path, damage):
    good = write_idx(tmp_path / "good", np.zeros((2, 4, 4), np.uint8), False)
    bad = tmp_path / "damaged-images-idx3-ubyte"
    bad.write_bytes(damage(good.read_bytes()))

    with pytest.raises(GanzooError) as caught:
        read_idx(bad)
    assert "damaged-images-idx3-ubyte" in str(caught.value)


def test_file_digest_is_cached_until_the_file_changes(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "labels", np.zeros(5, np.uint8))
    first = file_digest(path)

    # A second call must not read the file again.
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("re-read"))
    assert file_digest(path) == first
    monkeypatch.undo()

    write_idx(path, np.ones(7, np.uint8))
    assert file_digest(path) != first


# MNIST and Fashion-MNIST from local files.


def test_mnist_loads_every_split_from_the_root(fake_mnist):
    dataset = Mnist.create(root=str(fake_mnist), download=False)
    train, test, both = dataset.load("train"), dataset.load("test"), dataset.load("all")

    assert train.samples.shape == (40, 1, 28, 28)
    assert test.samples.shape == (10, 1, 28, 28)
    assert both.samples.shape == (50, 1, 28, 28)
    assert torch.equal(both.samples[40:], test.samples)
    assert train.samples.dtype == torch.float32
    assert train.samples.min() >= 0.0 and train.samples.max() <= 1.0
    assert train.labels.dtype == torch.int64
    assert train.shape == dataset.data_shape()
    assert len({train.fingerprint, test.fingerprint, both.fingerprint}) == 3


def test_mnist_split_option_chooses_the_default_split(fake_mnist):
    dataset = Mnist.create(root=str(fake_mnist), split="test")

    assert len(dataset.load()) == 10
    assert len(dataset.load("train")) == 40


def test_mnist_limit_classes_and_resolution_select_and_resize(fake_mnist):
    full = Mnist.create(root=str(fake_mnist)).load()
    picked = Mnist.create(root=str(fake_mnist), classes=[2, 7], limit=5).load()
    resized = Mnist.create(root=str(fake_mnist), resolution=14).load()

    assert picked.labels.tolist() == [2, 7, 2, 7, 2]
    assert torch.equal(picked.samples[0], full.samples[2])
    assert resized.samples.shape == (40, 1, 14, 14)
    assert resized.shape.resolution == 14
    assert resized.samples.min() >= 0.0 and resized.samples.max() <= 1.0


def test_mnist_fingerprint_follows_options_and_file_bytes(fake_mnist):
    def fingerprint_of(**options):
        return Mnist.create(root=str(fake_mnist), **options).load().fingerprint

    base = fingerprint_of()
    assert fingerprint_of() == base
    assert fingerprint_of(limit=3) != base
    assert fingerprint_of(classes=[1]) != base
    assert fingerprint_of(resolution=32) != base

    labels = (np.arange(40) % 5).astype(np.uint8)
    write_idx(fake_mnist / "train-labels-idx1-ubyte", labels, compress=False)
    assert fingerprint_of() != base


def test_mnist_rejects_labels_outside_0_to_9():
    with pytest.raises(GanzooError) as caught:
        Mnist.create(classes=[3, 12])
    assert caught.value.key == "classes"


def test_default_root_follows_ganzoo_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_DATA", str(tmp_path))
    assert Mnist.create().data_root() == tmp_path / "mnist"

    monkeypatch.delenv("GANZOO_DATA")
    assert Mnist.create().data_root() == Path.home() / ".cache/ganzoo/data/mnist"


def test_missing_mnist_without_download_says_how_to_obtain_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Mnist, "system_dir", tmp_path / "no-system-copy")
    root = tmp_path / "empty"
    dataset = Mnist.create(root=str(root), download=False)

    with pytest.raises(GanzooError) as caught:
        dataset.load()
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert str(root) in message
    assert "download: true" in message
    assert dataset.data_shape().shape == (1, 28, 28)


def test_missing_fashion_mnist_points_to_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMnist, "system_dir", tmp_path / "no-system-copy")
    dataset = FashionMnist.create(root=str(tmp_path / "empty"), download=False)

    with pytest.raises(GanzooError, match="apt-get install dataset-fashion-mnist"):
        dataset.load("test")


def test_failed_download_says_how_to_obtain_and_leaves_no_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        assert timeout <= 10
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(Mnist, "system_dir", tmp_path / "no-system-copy")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "root"

    with pytest.raises(GanzooError) as caught:
        Mnist.create(root=str(root)).load()
    assert "no network" in str(caught.value)
    assert "put them" in str(caught.value)
    assert list(root.iterdir()) == []


def test_download_saves_the_files_into_the_root(tmp_path, monkeypatch):
    served = write_fake_mnist(tmp_path / "server")

    class Answer:
        def __init__(self, url):
            self.raw = (served / url.rsplit("/", 1)[1]).read_bytes()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return self.raw

    def serve(url, timeout):
        name = url.rsplit("/", 1)[1]
        if not (served / name).exists():
            # The fake server holds one labels file uncompressed: serve it gzipped.
            plain = served / name.removesuffix(".gz")
            (served / name).write_bytes(gzip.compress(plain.read_bytes()))
        return Answer(url)

    monkeypatch.setattr(Mnist, "system_dir", tmp_path / "no-system-copy")
    monkeypatch.setattr(urllib.request, "urlopen", serve)
    root = tmp_path / "root"
    data = Mnist.create(root=str(root)).load("test")

    assert len(data) == 10
    assert sorted(p.name for p in root.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_a_corrupt_data_file_is_named_in_the_error(fake_mnist):
    (fake_mnist / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip, not idx")

    with pytest.raises(GanzooError, match=r"t10k-images-idx3-ubyte\.gz"):
        Mnist.create(root=str(fake_mnist)).load("test")


@needs_fashion
def test_fashion_mnist_real_files_have_the_published_shapes():
    dataset = FashionMnist.create(download=False)
    train, test = dataset.load("train"), dataset.load("test")

    assert train.samples.shape == (60_000, 1, 28, 28)
    assert test.samples.shape == (10_000, 1, 28, 28)
    assert train.samples.dtype == torch.float32
    assert train.samples.min() == 0.0 and train.samples.max() == 1.0
    assert torch.equal(torch.unique(train.labels), torch.arange(10))
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    assert train.shape == dataset.data_shape()
    assert dataset.load("test").fingerprint == test.fingerprint != train.fingerprint


@needs_fashion
def test_fashion_mnist_resolution_and_limit():
    data = FashionMnist.create(resolution=32, limit=100, split="test").load()

    assert data.samples.shape == (100, 1, 32, 32)
    assert data.labels.shape == (100,)
    assert data.shape.resolution == 32
    assert data.samples.min() >= 0.0 and data.samples.max() <= 1.0


# Digits.


def test_digits_splits_and_resolution():
    dataset = Digits.create()
    train, test, both = dataset.load("train"), dataset.load("test"), dataset.load("all")
    resized = Digits.create(resolution=16).load("test")

    assert train.samples.shape == (1437, 1, 8, 8)
    assert test.samples.shape == (360, 1, 8, 8)
    assert both.samples.shape == (1797, 1, 8, 8)
    assert torch.equal(both.samples[1437:], test.samples)
    assert train.samples.min() == 0.0 and train.samples.max() == 1.0
    assert torch.equal(torch.unique(train.labels), torch.arange(10))
    assert resized.samples.shape == (360, 1, 16, 16)
    assert resized.shape == Digits.create(resolution=16).data_shape()
    assert resized.fingerprint != test.fingerprint


# Image folders.


def _save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """Two classes of images in mixed sizes and modes, plus files to skip."""
    root = tmp_path / "images"
    _save(root / "cat" / "rgb.png", Image.new("RGB", (40, 30), (200, 10, 10)))
    _save(root / "cat" / "gray.jpg", Image.new("L", (20, 50), 128))
    _save(root / "cat" / "alpha.png", Image.new("RGBA", (16, 16), (0, 0, 255, 255)))
    _save(root / "dog" / "palette.png", Image.new("P", (12, 18), 3))
    deep = Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16))
    _save(root / "dog" / "deep" / "sixteen-bit.png", deep)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_decodes_mixed_images_and_skips_bad_files(image_tree, caplog):
    dataset = ImageFolder.create(path=str(image_tree), resolution=8, labels=True)

    with caplog.at_level(logging.WARNING):
        data = dataset.load()

    assert data.samples.shape == (5, 3, 8, 8)
    assert data.samples.dtype == torch.float32
    assert data.samples.min() >= 0.0 and data.samples.max() <= 1.0
    assert data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.shape == dataset.data_shape()
    assert data.shape.num_classes == 2
    assert "skipped 2 of 7 files" in caplog.text
    # The 16-bit image is full white, not clipped to a wrong value.
    assert torch.allclose(data.samples[3], torch.ones(3, 8, 8))


def test_image_folder_center_crops_before_resizing(tmp_path):
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, 10:20] = 255
    _save(tmp_path / "wide.png", Image.fromarray(pixels))

    data = ImageFolder.create(path=str(tmp_path), resolution=5, channels=1).load()

    assert data.samples.shape == (1, 1, 5, 5)
    assert data.samples.min() > 0.99
    assert data.labels is None


def test_image_folder_options_change_what_is_read(image_tree):
    flat = ImageFolder.create(path=str(image_tree / "dog"), recursive=False).load()
    gray = ImageFolder.create(path=str(image_tree), channels=1, resolution=4).load()

    assert len(flat) == 1
    assert gray.samples.shape == (5, 1, 4, 4)


def test_image_folder_fingerprint_follows_options_and_contents(image_tree):
    def fingerprint_of(**options):
        return ImageFolder.create(path=str(image_tree), **options).load().fingerprint

    base = fingerprint_of(resolution=8)
    assert fingerprint_of(resolution=8) == base
    assert fingerprint_of(resolution=9) != base
    assert fingerprint_of(resolution=8, channels=1) != base

    _save(image_tree / "cat" / "rgb.png", Image.new("RGB", (40, 30), (0, 10, 10)))
    assert fingerprint_of(resolution=8) != base


def test_image_folder_data_shape_decodes_nothing(image_tree, monkeypatch):
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("decoded"))
    shape = ImageFolder.create(path=str(image_tree), resolution=32, labels=True)

    assert shape.data_shape().shape == (3, 32, 32)
    assert shape.data_shape().num_classes == 2


def test_image_folder_relative_path_is_taken_from_the_current_directory(
    image_tree, monkeypatch
):
    monkeypatch.chdir(image_tree.parent)
    data = ImageFolder.create(path="images/cat", resolution=4).load()

    assert len(data) == 3


def test_image_folder_without_usable_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"garbage")

    for name in ("empty", "junk"):
        with pytest.raises(GanzooError, match="no usable image") as caught:
            ImageFolder.create(path=str(tmp_path / name)).load()
        assert caught.value.key == "path"


def test_image_folder_missing_path_is_an_error_on_path(tmp_path):
    with pytest.raises(GanzooError, match="does not exist") as caught:
        ImageFolder.create(path=str(tmp_path / "nowhere")).data_shape()
    assert caught.value.key == "path"

    with pytest.raises(GanzooError) as caught:
        ImageFolder.create()
    assert caught.value.key == "path"


# Stacked variants.


def _assert_channels_are_base_images(stacked, base):
    lookup = {}
    for image, label in zip(base.samples[:, 0], base.labels.tolist(), strict=True):
        lookup.setdefault(image.numpy().tobytes(), set()).add(label)
    for sample, label in zip(stacked.samples, stacked.labels.tolist(), strict=True):
        digits = (label // 100, label // 10 % 10, label % 10)
        for channel, digit in zip(sample, digits, strict=True):
            assert digit in lookup[channel.numpy().tobytes()]


def test_stacked_mnist_stacks_three_base_images(fake_mnist):
    dataset = StackedMnist.create(root=str(fake_mnist), n=200, seed=1)
    data = dataset.load()
    base = Mnist.create(root=str(fake_mnist)).load()

    assert data.samples.shape == (200, 3, 28, 28)
    assert data.shape == dataset.data_shape()
    assert data.shape.num_classes == 1000
    assert data.labels.min() >= 0 and data.labels.max() <= 999
    assert len(torch.unique(data.labels)) > 150
    _assert_channels_are_base_images(data, base)


def test_stacked_mnist_is_deterministic_given_the_seed(fake_mnist):
    def load(**options):
        return StackedMnist.create(root=str(fake_mnist), n=50, **options).load()

    first, again, other = load(seed=0), load(seed=0), load(seed=1)

    assert torch.equal(first.samples, again.samples)
    assert first.fingerprint == again.fingerprint
    assert not torch.equal(first.samples, other.samples)
    assert first.fingerprint != other.fingerprint
    assert load(seed=0, resolution=14).samples.shape == (50, 3, 14, 14)


@needs_fashion
def test_stacked_fashion_mnist_uses_the_real_files():
    data = StackedFashionMnist.create(n=64, split="test").load()
    base = FashionMnist.create(split="test").load()

    assert data.samples.shape == (64, 3, 28, 28)
    _assert_channels_are_base_images(data, base)
