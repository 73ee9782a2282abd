"""``ganzoo new KIND NAME``: a new plugin package that installs, trains and tests.

The package has a pyproject.toml that registers the module in the ``ganzoo``
entry-point group, the module with a small working plugin of the kind, one recipe
that uses it on the 2-D ring and one pytest file that puts it through the
conformance kit and trains the recipe. Everything is checked before the first
file is written: a bad kind, name or target folder writes nothing.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ._errors import GanzooError
from ._options import closest
from ._plugin import KINDS

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
"""Plugin names ``ganzoo new`` accepts: kebab-case that starts with a letter, so
that the module name derived from it is a Python identifier."""

MAX_NAME = 32
"""Long enough for a descriptive name, short enough for the generated lines."""

IMPORTED = {
    "Architecture",
    "Constraint",
    "Dataset",
    "DataShape",
    "GanzooError",
    "Loss",
    "Metric",
    "Option",
    "Regularizer",
    "SampleSet",
    "TensorData",
}
"""Names the templates import, which a generated class must not shadow."""


@dataclass(frozen=True)
class Scaffold:
    """What is generated for one kind: the plugin's summary, code and recipe."""

    summary: str
    code: str
    recipe: str


ARCHITECTURE = '''\
"""$summary"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from ganzoo import Architecture, DataShape, GanzooError, Option, hookimpl
from torch import nn


class ${cls}Generator(nn.Module):
    """Latent vector -> one hidden layer -> point."""

    def __init__(self, dim: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_range = None  # raw coordinates; an image generator gives (0, 1)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class $cls(Architecture):
    """$summary"""

    name = "$name"
    generator_options = (
        Option("latent_dim", int, 2, "Length of the latent vector z.", minimum=1),
        Option("hidden", int, 64, "Units in the hidden layer.", minimum=1),
    )
    discriminator_options = (
        Option("hidden", int, 64, "Units in the hidden layer.", minimum=1),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind != "points":
            raise GanzooError(
                f"architecture {self.name!r} needs point data, but the data are "
                f"{data.describe()}"
            )

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        return ${cls}Generator(data.shape[0], **options)

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        hidden = options["hidden"]
        return nn.Sequential(
            nn.Linear(data.shape[0], hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )


@hookimpl
def ganzoo_architectures() -> list[type[Architecture]]:
    return [$cls]
'''

LOSS = '''\
"""$summary"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ganzoo import Loss, Option, hookimpl


class $cls(Loss):
    """$summary

    The discriminator minimises softplus(-s D(real)) + softplus(s D(fake)), the
    generator softplus(-s D(fake)), where s is ``scale``; s = 1 is the
    non-saturating GAN loss.
    """

    name = "$name"
    options = (
        Option(
            "scale",
            float,
            1.0,
            "factor s applied to the logits",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    scale: float

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        real_term = F.softplus(-self.scale * real_logits).mean()
        return real_term + F.softplus(self.scale * fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-self.scale * fake_logits).mean()


@hookimpl
def ganzoo_losses() -> list[type[Loss]]:
    return [$cls]
'''

REGULARIZER = '''\
"""$summary"""

from __future__ import annotations

import torch
from ganzoo import Option, Regularizer, hookimpl
from torch import nn


class $cls(Regularizer):
    """$summary

    The term is weight * E[D(real)^2]; it keeps the logits near zero, like the
    drift penalty of Karras et al. 2018 (Progressive GAN).
    """

    name = "$name"
    options = (
        Option("weight", float, 0.001, "factor in front of the term", minimum=0.0),
    )

    weight: float

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        return self.weight * discriminator(real).pow(2).mean()


@hookimpl
def ganzoo_regularizers() -> list[type[Regularizer]]:
    return [$cls]
'''

CONSTRAINT = '''\
"""$summary"""

from __future__ import annotations

import torch
from ganzoo import Constraint, Option, hookimpl
from torch import nn


class $cls(Constraint):
    """$summary

    After each discriminator step, every row of every weight matrix (every output
    filter of a convolution) longer than ``max_norm`` is scaled back to it.
    """

    name = "$name"
    options = (
        Option(
            "max_norm",
            float,
            2.0,
            "largest allowed L2 norm of a weight row",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    max_norm: float

    def apply(self, discriminator: nn.Module) -> None:
        with torch.no_grad():
            for parameter in discriminator.parameters():
                if parameter.dim() < 2:
                    continue
                norms = parameter.reshape(parameter.shape[0], -1).norm(dim=1)
                factor = (self.max_norm / norms.clamp(min=self.max_norm)).reshape(
                    -1, *[1] * (parameter.dim() - 1)
                )
                parameter.mul_(factor)


@hookimpl
def ganzoo_constraints() -> list[type[Constraint]]:
    return [$cls]
'''

DATASET = '''\
"""$summary"""

from __future__ import annotations

import math

import torch
from ganzoo import (
    Dataset,
    DataShape,
    GanzooError,
    Option,
    TensorData,
    fingerprint,
    hookimpl,
)

SPLIT_OFFSETS = {"train": 0, "test": 1}
"""Each split draws from its own seed, so train and test never share points."""


class $cls(Dataset):
    """$summary"""

    name = "$name"
    splits = ("train", "test")
    options = (
        Option("n", int, 10_000, "number of points to draw", minimum=1),
        Option("radius", float, 1.0, "radius of the circle", minimum=0.0),
        Option("noise", float, 0.05, "std of the Gaussian noise", minimum=0.0),
        Option("seed", int, 0, "seed of the draw", minimum=0),
    )

    n: int
    radius: float
    noise: float
    seed: int

    def data_shape(self) -> DataShape:
        return DataShape("points", (2,))

    def load(self, split: str = "train") -> TensorData:
        if split not in SPLIT_OFFSETS:
            raise GanzooError(
                f"data set {self.name!r} has no split {split!r}; its splits are: "
                f"{', '.join(self.splits)}",
                key="split",
            )
        generator = torch.Generator().manual_seed(2 * self.seed + SPLIT_OFFSETS[split])
        angles = torch.rand(self.n, generator=generator) * 2 * math.pi
        points = torch.stack([angles.cos(), angles.sin()], dim=1) * self.radius
        points += self.noise * torch.randn(self.n, 2, generator=generator)
        return TensorData(
            samples=points,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, self.n, self.radius, self.noise, self.seed, split
            ),
        )


@hookimpl
def ganzoo_datasets() -> list[type[Dataset]]:
    return [$cls]
'''

METRIC = '''\
"""$summary"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from ganzoo import Metric, SampleSet, hookimpl


def _vectors(side: SampleSet) -> torch.Tensor:
    values = side.features if side.features is not None else side.samples
    return values.detach().double().flatten(1)


class $cls(Metric):
    """$summary

    The score ``$key`` is ||mean(real) - mean(fake)||_2 over the features, or over
    the points themselves for point data; lower is better.
    """

    name = "$name"
    requires: ClassVar[tuple[str, ...]] = ()

    def applies_to(self, real: SampleSet) -> bool:
        return real.features is not None or (
            real.samples is not None and real.samples.dim() == 2
        )

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        gap = _vectors(real).mean(dim=0) - _vectors(fake).mean(dim=0)
        return {
            "$key": float(torch.linalg.vector_norm(gap)),
            "protocol": {
                "${key}_n_real": len(real),
                "${key}_n_fake": len(fake),
            },
        }


@hookimpl
def ganzoo_metrics() -> list[type[Metric]]:
    return [$cls]
'''

RING = """\
# $name on the 2-D ring of eight Gaussians: a smoke test of a few seconds, not a
# result. Raise train.kimg (e.g. train.kimg=200 on the command line) for one.
data: {name: ring, n: 2000}
model:
  generator: {name: mlp, hidden: 32, depth: 2}
  discriminator: {name: mlp, hidden: 32, depth: 2}
loss: {name: bce}
train: {batch_size: 100, kimg: 2, tick_kimg: 1, snapshot_kimg: 1, ema: 0.9}
eval: {n_fake: 1000}
"""

SCAFFOLDS = {
    "architecture": Scaffold(
        "A small fully connected generator and discriminator for point data.",
        ARCHITECTURE,
        RING.replace("mlp, hidden: 32, depth: 2", "$name"),
    ),
    "loss": Scaffold(
        "The logistic GAN loss with a temperature on the logits.",
        LOSS,
        RING.replace("loss: {name: bce}", "loss: {name: $name}"),
    ),
    "regularizer": Scaffold(
        "A penalty on the discriminator's squared outputs for real data.",
        REGULARIZER,
        RING + "regularizers: [{name: $name}]\n",
    ),
    "constraint": Scaffold(
        "Caps the norm of each weight row of the discriminator after each step.",
        CONSTRAINT,
        RING + "constraints: [{name: $name}]\n",
    ),
    "dataset": Scaffold(
        "Points spread evenly around a circle, with Gaussian noise.",
        DATASET,
        RING.replace("{name: ring, n: 2000}", "{name: $name, n: 2000}").replace(
            "on the 2-D ring of eight Gaussians", "with the mlp networks"
        ),
    ),
    "metric": Scaffold(
        "Distance between the means of the real and the generated features.",
        METRIC,
        RING.replace("eval: {n_fake: 1000}", "eval: {n_fake: 1000, metrics: [$name]}"),
    ),
}
"""The kinds ``ganzoo new`` can scaffold, with their templates."""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "ganzoo-$name"
version = "0.1.0"
description = "$summary"
requires-python = ">=3.10"
dependencies = ["ganzoo"]

# ganzoo imports every module of this group when it builds its registry.
[project.entry-points.ganzoo]
$name = "$module"

[tool.setuptools]
packages = ["$module"]
"""

README = """\
# ganzoo-$name

A ganzoo $kind plugin: $summary

    pip install -e .
    ganzoo plugins --kind $kind
    ganzoo train recipes/$name.yaml
    ganzoo check $name
    python -m pytest tests
"""

TEST = '''\
"""The $name plugin: its contract, its registration and its recipe."""

from __future__ import annotations

import json
from pathlib import Path

from ganzoo.cli import main
from ganzoo.testing import assert_conforms, registered_entries

from $module import $cls

NAME = "$name"
HERE = Path(__file__).resolve().parent
RECIPE = HERE.parent / "recipes" / f"{NAME}.yaml"


def test_${snake}_meets_the_plugin_contract():
    report = assert_conforms($cls)
    assert report.unavailable is None, report.unavailable


def test_${snake}_is_found_through_its_entry_point():
    entries = registered_entries(kinds=["$kind"])
    found = [e.cls for e in entries if e.name == NAME]
    assert found == [$cls]


def test_${snake}_is_listed_by_ganzoo_plugins(capsys):
    assert main(["plugins", "--kind", "$kind", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["$kind"]
    [origin] = [item["origin"] for item in listed if item["name"] == NAME]
    module = ${cls}.__module__
    assert origin.startswith(f"entry point {NAME} = {module} ")


def test_${snake}_trains_in_its_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    status = main(["eval", str(RECIPE), "--results", str(results)])
    assert status == 0
    [record] = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert record["status"] == "ok" and record["kimg"] > 0
$extra'''


def scaffold(kind: str, name: str, target: Path | None = None) -> list[Path]:
    """Write a plugin package for ``kind`` named ``name`` into ``target``.

    ``target`` defaults to ``./ganzoo-NAME``; it must not exist, or be an empty
    folder. Returns the files written. Raises GanzooError, before writing
    anything, for an unknown kind, an invalid name or an unusable target.
    """
    parts = _parts(kind, name)
    target = Path(target) if target is not None else Path(f"ganzoo-{name}")
    _check_target(target)
    files = _render(kind, parts)

    # Every path is built from a checked name, but make sure none leaves target.
    root = target.resolve()
    for relative in files:
        if not (root / relative).resolve().is_relative_to(root):
            raise GanzooError(f"new: {relative} would be written outside {target}")

    # Write; on failure remove what was written, so that a retry starts clean.
    existed = target.is_dir()
    written = []
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    except OSError as error:
        if existed:
            for path in written:
                path.unlink(missing_ok=True)
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise GanzooError(f"new: cannot write into {target}: {error}") from None
    return written


def _parts(kind: str, name: str) -> dict[str, str]:
    """The values the templates are filled with; GanzooError for bad input."""
    if kind not in SCAFFOLDS:
        supported = ", ".join(SCAFFOLDS)
        if kind in KINDS:
            raise GanzooError(
                f"new: {kind} plugins are not scaffolded; ganzoo new makes: "
                f"{supported} (see docs/plugins.md to write a {kind} by hand)"
            )
        near = closest(kind, SCAFFOLDS)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise GanzooError(f"new: unknown kind {kind!r}{hint}; kinds: {supported}")
    if len(name) > MAX_NAME or not NAME.match(name):
        raise GanzooError(
            f"new: invalid plugin name {name!r}; expected lower-case kebab-case of "
            f"at most {MAX_NAME} characters that starts with a letter, such as "
            f"'my-{kind}'"
        )
    snake = name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-"))
    if cls in IMPORTED:
        cls += "Plugin"
    return {
        "kind": kind,
        "name": name,
        "snake": snake,
        "key": snake,
        "module": f"ganzoo_{snake}",
        "cls": cls,
        "summary": SCAFFOLDS[kind].summary,
        "extra": f'    assert record["{snake}"] >= 0\n' if kind == "metric" else "",
    }


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise GanzooError(f"new: {target} exists and is not a folder; choose --dir")
    if target.is_dir() and any(target.iterdir()):
        raise GanzooError(
            f"new: {target} is not empty; choose another --dir or remove it first"
        )


def _render(kind: str, parts: dict[str, str]) -> dict[str, str]:
    """Every file of the package, by path relative to its folder."""
    chosen = SCAFFOLDS[kind]
    fill = {key: Template(text).substitute(parts) for key, text in _sources(chosen)}
    module, name = parts["module"], parts["name"]
    return {
        "pyproject.toml": fill["pyproject"],
        "README.md": fill["readme"],
        f"{module}/__init__.py": fill["code"],
        f"recipes/{name}.yaml": fill["recipe"],
        f"tests/test_{parts['snake']}.py": fill["test"],
    }


def _sources(chosen: Scaffold) -> list[tuple[str, str]]:
    return [
        ("pyproject", PYPROJECT),
        ("readme", README),
        ("code", chosen.code),
        ("recipe", chosen.recipe),
        ("test", TEST),
    ]
