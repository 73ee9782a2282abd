"""The feature extractors: the shipped classifier, Inception-v3 loading, timm."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import torch
import torch_fidelity
from ganzoo_plugins.datasets import FashionMnist
from ganzoo_plugins.feature_extractors import (
    FashionClassifier,
    InceptionV3Compat,
    MnistClassifier,
    TimmFeatures,
    classifier,
    inception,
)
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ganzoo import DataShape, GanzooError
from ganzoo._registry import build_registry

from .conftest import needs_fashion

SHIPPED = classifier.WEIGHTS_DIR / "fashion-classifier.pt"


def _images(count: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Blurry random blobs in [0, 1], quantised to 8 bits like real images."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(count, channels, 7, 7, generator=generator)
    images = torch.nn.functional.interpolate(noise, size=(28, 28), mode="bilinear")
    return (images * 255).round() / 255


# The shipped fashion-classifier.


@needs_fashion
def test_shipped_fashion_classifier_reaches_90_percent_on_the_test_split():
    test = FashionMnist.create().load("test")
    assert len(test) == 10_000

    logits = FashionClassifier.create().extract(test.samples)["logits"]
    measured = float((logits.argmax(dim=1) == test.labels).double().mean())

    record = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert measured >= 0.90
    assert abs(measured - record["test_accuracy"]) <= 0.001
    assert record["sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()


def test_shipped_weights_are_small_and_documented():
    record = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert SHIPPED.stat().st_size < 5_000_000
    for key in ("test_accuracy", "epochs", "seed", "sha256", "torch", "date"):
        assert key in record, key
    assert record["command"].startswith("python scripts/train_classifier.py")
    assert FashionClassifier.create().weights_hash() == record["sha256"][:16]


def test_extract_gives_256_features_and_10_logits_per_image():
    out = FashionClassifier.create().extract(_images(5))
    assert set(out) == {"features", "logits"}
    assert out["features"].shape == (5, 256)
    assert out["logits"].shape == (5, 10)
    assert out["features"].dtype == torch.float32
    assert bool(torch.isfinite(out["features"]).all())
    assert bool((out["features"] >= 0).all())  # after the ReLU


def test_extract_refuses_stacked_images_and_classify_channels_scores_each():
    extractor = FashionClassifier.create()
    stacked = _images(4, channels=3)
    with pytest.raises(GanzooError, match="classify_channels"):
        extractor.extract(stacked)

    per_channel = extractor.classify_channels(stacked)
    assert per_channel.shape == (4, 3, 10)
    middle = extractor.extract(stacked[:, 1:2])["logits"]
    torch.testing.assert_close(per_channel[:, 1], middle)


def test_extract_refuses_other_sizes():
    with pytest.raises(GanzooError, match="inception-v3-compat"):
        FashionClassifier.create().extract(torch.rand(2, 1, 32, 32))


def test_weights_hash_follows_the_weights_file(tmp_path: Path):
    path = tmp_path / "copy.pt"
    path.write_bytes(SHIPPED.read_bytes())
    extractor = FashionClassifier.create(weights=str(path))
    before = extractor.weights_hash()
    images = _images(3)
    logits_before = extractor.extract(images)["logits"]

    # Change one weight and save over the same file: the hash and outputs follow.
    state = torch.load(path, weights_only=True)
    state["head.1.bias"] = state["head.1.bias"] + 1.0
    torch.save(state, path)
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse file system clocks

    assert extractor.weights_hash() != before
    assert len(before) == 16
    torch.testing.assert_close(extractor.extract(images)["logits"], logits_before + 1)


def test_check_accepts_gray_and_stacked_28x28_only():
    extractor = FashionClassifier.create()
    extractor.check(DataShape("image", (1, 28, 28), num_classes=10))
    extractor.check(DataShape("image", (3, 28, 28), num_classes=1000))
    with pytest.raises(GanzooError, match="'inception-v3-compat' or 'timm'"):
        extractor.check(DataShape("image", (1, 32, 32)))
    with pytest.raises(GanzooError, match="'inception-v3-compat' or 'timm'"):
        extractor.check(DataShape("image", (4, 28, 28)))
    with pytest.raises(GanzooError, match="no feature extractor"):
        extractor.check(DataShape("points", (2,)))


def test_missing_weights_file_is_named(tmp_path: Path):
    with pytest.raises(GanzooError, match="does not exist") as caught:
        FashionClassifier.create(weights=str(tmp_path / "nope.pt"))
    assert "nope.pt" in str(caught.value)


def test_unreadable_weights_file_says_how_to_make_one(tmp_path: Path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(GanzooError, match=r"train_classifier\.py"):
        FashionClassifier.create(weights=str(path)).extract(_images(1))


def test_mnist_classifier_without_weights_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setattr(classifier, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(GanzooError) as caught:
        MnistClassifier.create()
    assert "python scripts/train_classifier.py --dataset mnist" in str(caught.value)
    assert str(tmp_path / "mnist-classifier.pt") in str(caught.value)


def test_classifier_weights_option_loads_another_checkpoint(tmp_path: Path):
    path = tmp_path / "mnist.pt"
    path.write_bytes(SHIPPED.read_bytes())
    out = MnistClassifier.create(weights=str(path)).extract(_images(2))
    assert out["logits"].shape == (2, 10)


# torch-fidelity on the same network.


class _Uint8Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: uint8 tensors of shape (3, H, W), not tuples."""

    def __init__(self, images: torch.Tensor) -> None:
        pixels = (images * 255).round().to(torch.uint8)
        self.pixels = pixels.expand(-1, 3, -1, -1).contiguous()

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.pixels[index]


def test_classifiers_are_registered_with_torch_fidelity_once():
    registered = FEATURE_EXTRACTORS_REGISTRY["fashion-classifier"]
    assert registered.plugin is FashionClassifier
    assert FEATURE_EXTRACTORS_REGISTRY["mnist-classifier"].plugin is MnistClassifier
    classifier.register_with_torch_fidelity()  # a second time must not fail
    assert FEATURE_EXTRACTORS_REGISTRY["fashion-classifier"] is registered


def test_torch_fidelity_features_equal_the_plugin_features():
    images = _images(6)
    fidelity = FEATURE_EXTRACTORS_REGISTRY["fashion-classifier"](
        "fashion-classifier", ["logits", "features"]
    )
    logits, features = fidelity(_Uint8Images(images).pixels)
    ours = FashionClassifier.create().extract(images)
    torch.testing.assert_close(features, ours["features"])
    torch.testing.assert_close(logits, ours["logits"])


def test_torch_fidelity_scores_with_fashion_classifier():
    same_a, same_b = _images(300, seed=1), _images(300, seed=2)
    darker = _images(300, seed=3) * 0.5

    def metrics(first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
        return torch_fidelity.calculate_metrics(
            input1=_Uint8Images(first),
            input2=_Uint8Images(second),
            feature_extractor="fashion-classifier",
            fid=True,
            kid=True,
            kid_subsets=10,
            kid_subset_size=100,
            isc=True,
            isc_splits=2,
            cuda=False,
            batch_size=100,
            save_cpu_ram=True,  # also no data loader worker processes
            verbose=False,
        )

    near, far = metrics(same_a, same_b), metrics(same_a, darker)
    assert all(torch.isfinite(torch.tensor(list(near.values()))))
    assert 0 <= near["frechet_inception_distance"] < far["frechet_inception_distance"]
    assert near["inception_score_mean"] >= 1.0


# inception-v3-compat.


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    """A random-weight Inception state_dict of the real architecture, saved once."""
    path = tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE
    torch.save(inception.random_inception_weights(seed=0), path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No download can happen, and no real weights or cache are found by accident."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", refuse
    )
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))


def test_inception_loads_from_the_weights_option(offline, inception_weights):
    extractor = InceptionV3Compat.create(weights=str(inception_weights))
    gray = _images(1)
    out = extractor.extract(gray)
    assert out["features"].shape == (1, 2048)
    assert out["logits"].shape == (1, 1008)
    assert bool(torch.isfinite(out["features"]).all())
    assert float(out["features"].std()) > 0

    # Grayscale is replicated to RGB, so both give the same features.
    rgb = extractor.extract(gray.expand(-1, 3, -1, -1))
    torch.testing.assert_close(rgb["features"], out["features"])
    assert "299x299" in extractor.preprocessing()


def test_inception_loads_from_the_environment_variable(
    offline, monkeypatch, inception_weights
):
    monkeypatch.setenv(inception.ENV_VAR, str(inception_weights))
    extractor = InceptionV3Compat.create()
    assert extractor.path == inception_weights
    assert extractor.network().fc.out_features == 1008
    digest = hashlib.sha256(inception_weights.read_bytes()).hexdigest()
    assert extractor.weights_hash() == digest[:16]


def test_inception_loads_from_the_torch_hub_cache(
    offline, monkeypatch, tmp_path, inception_weights
):
    checkpoints = tmp_path / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / inception.WEIGHTS_FILE).symlink_to(inception_weights)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    extractor = InceptionV3Compat.create()
    assert extractor.path == checkpoints / inception.WEIGHTS_FILE
    assert extractor.network().fc.out_features == 1008


def test_missing_inception_weights_say_which_file_goes_where(offline, tmp_path):
    with pytest.raises(GanzooError) as caught:
        InceptionV3Compat.create()
    message = str(caught.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert str(tmp_path / "empty-torch-home" / "hub" / "checkpoints") in message
    assert "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" in (
        message
    )
    assert inception.ENV_VAR in message


def test_inception_environment_variable_to_a_missing_file_is_named(
    offline, monkeypatch, tmp_path
):
    monkeypatch.setenv(inception.ENV_VAR, str(tmp_path / "gone.pth"))
    expected = re.escape(f"gone.pth' (from ${inception.ENV_VAR})")
    with pytest.raises(GanzooError, match=expected):
        InceptionV3Compat.create()


def test_inception_rejects_points(offline, inception_weights):
    extractor = InceptionV3Compat.create(weights=str(inception_weights))
    extractor.check(DataShape("image", (1, 28, 28)))
    with pytest.raises(GanzooError, match="grayscale or RGB"):
        extractor.check(DataShape("points", (2,)))


# timm.


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    """A random resnet18 checkpoint with its ImageNet head, as timm would save it."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False)
    path = tmp_path_factory.mktemp("timm") / "resnet18.pt"
    torch.save(model.state_dict(), path)
    return path


def test_timm_gives_pooled_resnet18_features_and_no_logits(resnet18_weights):
    extractor = TimmFeatures.create(weights=str(resnet18_weights), resolution=64)
    out = extractor.extract(_images(3))
    assert set(out) == {"features"}
    assert out["features"].shape == (3, 512)
    assert bool(torch.isfinite(out["features"]).all())
    assert "64x64" in extractor.preprocessing()
    assert "0.485" in extractor.preprocessing()  # ImageNet mean of resnet18
    assert len(extractor.weights_hash()) == 16


def test_timm_requires_an_existing_weights_file(tmp_path: Path):
    with pytest.raises(GanzooError, match="required"):
        TimmFeatures.create()
    with pytest.raises(GanzooError, match="does not exist"):
        TimmFeatures.create(weights=str(tmp_path / "none.pt"))


def test_timm_unknown_model_suggests_close_names(resnet18_weights):
    with pytest.raises(GanzooError, match="did you mean 'resnet18'"):
        TimmFeatures.create(model="resnet1", weights=str(resnet18_weights))


# Registration with ganzoo.


def test_feature_extractors_register_through_the_entry_point_group():
    registry = build_registry()
    names = registry.names("feature-extractor")
    for name in ("fashion-classifier", "mnist-classifier", "inception-v3-compat"):
        assert name in names
        entry = registry.get("feature-extractor", name)
        assert entry.origin.startswith("entry point feature_extractors")
    assert registry.get("feature-extractor", "timm").cls is TimmFeatures
    assert not [p for p in registry.problems if "feature_extractors" in p.origin]
