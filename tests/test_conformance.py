"""The conformance kit over every built-in plugin, and on plugins that break it.

The built-ins are parametrized from the registry, so a new built-in is checked
without anyone writing a test for it. A plugin that needs something absent here (a
data file, a weights file) must say so with a GanzooError; its test is then
skipped with that message as the reason.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo import GanzooError
from ganzoo._plugin import KINDS
from ganzoo._registry import Registry
from ganzoo.testing import (
    ConformanceError,
    assert_conforms,
    check_plugin,
    entry_id,
    registered_entries,
)

from .conftest import REPO, listing, loss_plugin, write


def _builtin_entries() -> list:
    registry = Registry()
    registry.load_entry_points()
    return [
        entry
        for entry in registered_entries(registry)
        if entry.cls.__module__.startswith("ganzoo_plugins.")
    ]


BUILTINS = _builtin_entries()


def _image_folder(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "images"
    folder.mkdir()
    for index, color in enumerate(("red", "green", "blue")):
        Image.new("RGB", (12, 10), color).save(folder / f"{index}.png")
    return {"path": str(folder), "resolution": 8}


def _timm_weights(tmp_path: Path) -> dict[str, Any]:
    import timm

    path = tmp_path / "resnet18.pt"
    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), path)
    return {"model": "resnet18", "weights": str(path), "resolution": 32}


def _small_stacks(tmp_path: Path) -> dict[str, Any]:
    # Stacking draws n samples of three images each; the default 50,000 is slow.
    return {"n": 500}


def _idx_files(tmp_path: Path) -> dict[str, Any]:
    """MNIST-format files of random digits, where the real ones are not installed."""
    if Path("/usr/share/datasets/mnist").is_dir():
        return {}
    root = tmp_path / "mnist"
    root.mkdir()
    generator = np.random.default_rng(0)
    for images, labels in (
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ):
        pixels = generator.integers(0, 256, (20, 28, 28), dtype=np.uint8)
        digits = generator.integers(0, 10, 20, dtype=np.uint8)
        header = struct.pack(">IIII", 0x0803, 20, 28, 28)
        (root / images).write_bytes(header + pixels.tobytes())
        (root / labels).write_bytes(struct.pack(">II", 0x0801, 20) + digits.tobytes())
    return {"root": str(root)}


RESOURCES: dict[tuple[str, str], Callable[[Path], dict[str, Any]]] = {
    ("dataset", "image-folder"): _image_folder,
    ("dataset", "mnist"): _idx_files,
    ("dataset", "stacked-fashion-mnist"): _small_stacks,
    ("dataset", "stacked-mnist"): lambda tmp_path: {
        **_small_stacks(tmp_path),
        **_idx_files(tmp_path),
    },
    ("feature-extractor", "timm"): _timm_weights,
    # The MNIST classifier shares the Fashion-MNIST classifier's network, so the
    # shipped Fashion-MNIST weights exercise its code when its own are absent.
    ("feature-extractor", "mnist-classifier"): lambda _: {
        "weights": str(REPO / "plugins" / "weights" / "fashion-classifier.pt")
    },
    # The wandb tracker runs the same code in "disabled" mode, without starting
    # the service process that offline runs need.
    ("tracker", "wandb"): lambda _: {"mode": "disabled"},
}
"""Options that give a built-in what it needs here, by (kind, name)."""


def test_every_kind_has_built_ins_to_check():
    kinds = {entry.kind for entry in BUILTINS}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("entry", BUILTINS, ids=entry_id)
def test_builtin_plugin_meets_its_contract(entry, tmp_path):
    provide = RESOURCES.get((entry.kind, entry.name))
    options = provide(tmp_path) if provide else {}
    report = check_plugin(entry, options=options)
    assert report.ok, report.line()
    if report.unavailable is not None:
        pytest.skip(f"{entry_id(entry)} cannot run here: {report.unavailable}")
    assert {"options", "create"} <= set(report.passed), report.line()
    assert len(set(report.passed)) >= 3, report.line()


BROKEN = '''\
import random

import torch
from torch import nn

from ganzoo import (
    Architecture, Constraint, Dataset, DataShape, Loss, Metric, Option, TensorData,
    Tracker, hookimpl,
)


class Forgetful(nn.Module):
    """Keeps a factor outside its state_dict, drawn from an unseeded generator."""

    def __init__(self, dim):
        super().__init__()
        self.latent_dim = 2
        self.output_range = None
        self.factor = torch.tensor(1.0 + random.random())
        self.net = nn.Linear(2, dim)

    def forward(self, z):
        return self.net(z) * self.factor


class BrokenArchitecture(Architecture):
    """Breaks the option, shape, state-dict and seed rules."""

    name = "broken-architecture"
    generator_options = (Option("width", int, 0, "", minimum=1),)

    def check(self, data, role, options):
        if data.kind != "points":
            raise ValueError("points only")

    def build_generator(self, data, **options):
        return Forgetful(data.shape[0])

    def build_discriminator(self, data, **options):
        return nn.Linear(data.shape[0], 2)


class BrokenLoss(Loss):
    """Returns a vector for the discriminator and NaN for the generator."""

    name = "broken-loss"

    def discriminator_loss(self, real_logits, fake_logits):
        return fake_logits - real_logits

    def generator_loss(self, fake_logits):
        return torch.log(fake_logits.mean() * 0.0 - 1.0)


class BrokenData(Dataset):
    """Images in 0..255, ignoring the split and the seed."""

    name = "broken-data"

    def data_shape(self):
        return DataShape("image", (1, 4, 4))

    def load(self, split="train"):
        samples = torch.randint(0, 256, (10, 1, 4, 4)).float()
        return TensorData(samples, self.data_shape(), fingerprint="same")


class BrokenConstraint(Constraint):
    """Fails with an error that is not a GanzooError when created."""

    name = "broken-constraint"

    def __init__(self, **values):
        raise KeyError("clip")


class BrokenMetric(Metric):
    """Returns words instead of numbers."""

    name = "broken-metric"
    requires = ()

    def compute(self, real, fake):
        return {"quality": "high"}


class BrokenTracker(Tracker):
    """Cannot log an image."""

    name = "broken-tracker"

    def log_image(self, name, path, step):
        raise OSError("disk full")


@hookimpl
def ganzoo_architectures():
    return [BrokenArchitecture]


@hookimpl
def ganzoo_losses():
    return [BrokenLoss]


@hookimpl
def ganzoo_datasets():
    return [BrokenData]


@hookimpl
def ganzoo_constraints():
    return [BrokenConstraint]


@hookimpl
def ganzoo_metrics():
    return [BrokenMetric]


@hookimpl
def ganzoo_trackers():
    return [BrokenTracker]
'''

VIOLATIONS = {
    "architecture broken-architecture": [
        "options: generator option 'width' has no help text",
        "options: generator option 'width' rejects its own default",
        "unsupported: the generator's check() raised ValueError: points only for "
        "1x8x8 images, 1x28x28 images, 3x32x32 images, 3x64x64 images; raise "
        "GanzooError",
        "shapes: discriminator for 2-D points: a batch of 8 gave a tensor of shape "
        "(8, 2)",
        "state-dict: generator for 2-D points",
        "seed: generator for 2-D points",
    ],
    "loss broken-loss": [
        "shapes: the losses of random logits: discriminator_loss returned a tensor "
        "of shape (8,); expected a scalar tensor",
        "finite: a short training run",
    ],
    "dataset broken-data": [
        "shapes: load('train'): image values fall outside [0, 1]",
        "unsupported: load('no-such-split'): an unknown split gives no GanzooError",
        "seed: load('train') twice: two loads give other samples",
    ],
    "constraint broken-constraint": ["create: creating it raised KeyError"],
    "metric broken-metric": ["shapes: compute() on 2-D points: score 'quality' is"],
    "tracker broken-tracker": ["lifecycle: start/log/finish raised OSError"],
}


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_PLUGINS", str(write(tmp_path / "broken.py", BROKEN)))


def test_check_names_every_violation_of_broken_plugins(
    broken_plugins, tmp_path, monkeypatch, cli
):
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    names = [label.split()[1] for label in VIOLATIONS]
    status, out, _ = cli("check", *names)
    assert status == 1
    lines = out.strip().splitlines()
    assert len(lines) == len(VIOLATIONS)
    for line, (label, expected) in zip(lines, VIOLATIONS.items(), strict=True):
        assert re.match(rf"{label}: \d+ violations?: ", line), line
        for violation in expected:
            assert violation in line, f"{violation!r} not in {line!r}"
    assert listing(tmp_path) == before


def test_check_prints_ok_and_exits_0_for_good_plugins(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("GANZOO_PLUGINS", str(loss_plugin(tmp_path / "gap.py")))
    status, out, err = cli("check", "gap", "architecture:mlp")
    assert status == 0, err
    assert out.splitlines() == [
        "loss gap: ok (options, create, shapes, finite, seed)",
        "architecture mlp: ok (options, create, unsupported, shapes, seed, "
        "state-dict, finite)",
    ]


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("mpl", "no plugin is named 'mpl' (did you mean 'mlp'?); registered: "),
        ("los:bce", "unknown kind 'los' in 'los:bce' (did you mean 'loss'?)"),
        ("loss:mlp", "check: unknown loss 'mlp'"),
    ],
)
def test_check_of_an_unknown_name_is_one_line_and_exit_2(name, complaint, cli):
    status, out, err = cli("check", name)
    assert status == 2 and out == ""
    assert complaint in err and len(err.strip().splitlines()) == 1


def test_assert_conforms_raises_with_every_violation(broken_plugins):
    [entry] = [e for e in registered_entries() if e.name == "broken-loss"]
    with pytest.raises(ConformanceError) as raised:
        assert_conforms(entry)
    assert "shapes: the losses of random logits" in str(raised.value)
    assert raised.value.report.violations[0].rule == "shapes"


def test_a_plugin_without_its_resources_is_unavailable_not_passed(tmp_path):
    [inception] = [e for e in BUILTINS if e.name == "inception-v3-compat"]
    missing = tmp_path / "absent.pth"
    report = check_plugin(inception, options={"weights": str(missing)})
    assert report.ok and report.unavailable is not None
    assert str(missing) in report.unavailable
    assert "unavailable" in report.line() and ": ok" not in report.line()


def test_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    [mlp] = [e for e in BUILTINS if e.name == "mlp" and e.kind == "architecture"]
    check_plugin(mlp)
    assert torch.equal(torch.rand(3), expected)


def test_check_plugin_refuses_what_is_not_a_plugin_class():
    with pytest.raises(GanzooError, match="is not a plugin class"):
        check_plugin(dict)
