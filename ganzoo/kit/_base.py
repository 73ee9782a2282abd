"""What every check shares: reports, the rules' plumbing, probe tensors, options."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._errors import GanzooError
from .._options import REQUIRED, Option
from .._plugin import Architecture, DataShape, Plugin

PROBE_SHAPES: tuple[DataShape, ...] = (
    DataShape("points", (2,)),
    DataShape("image", (1, 8, 8)),
    DataShape("image", (1, 28, 28)),
    DataShape("image", (3, 32, 32)),
    DataShape("image", (3, 64, 64)),
)
"""The data shapes offered to architectures and feature extractors, cheapest first.

A plugin claims the shapes its ``check`` accepts; the training, state-dict and
seed checks use the first one it claims.
"""

BATCH = 8
"""Samples in every probe batch."""

STEPS = 3
"""Optimizer steps in each short training run."""

OPTION_TYPES = (int, float, str, bool, list)


@dataclass(frozen=True)
class Violation:
    """One broken rule of a plugin's contract, said so that it can be fixed."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass
class Report:
    """What the kit found for one plugin."""

    kind: str
    name: str
    violations: list[Violation] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def ok(self) -> bool:
        """No rule is broken (``unavailable`` may still have stopped some checks)."""
        return not self.violations

    def add(self, rule: str, message: str) -> None:
        self.violations.append(Violation(rule, message))

    def line(self) -> str:
        """One line for ``ganzoo check``: ok, or every violation."""
        label = f"{self.kind} {self.name}"
        if self.violations:
            count = len(self.violations)
            found = "; ".join(str(v) for v in self.violations)
            return f"{label}: {count} violation{'s' if count > 1 else ''}: {found}"
        rules = ", ".join(dict.fromkeys(self.passed)) or "none"
        if self.unavailable is not None:
            return f"{label}: unavailable ({self.unavailable}); passed: {rules}"
        return f"{label}: ok ({rules})"


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conforms`; the message lists every violation."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.line())
        self.report = report


class Unavailable(Exception):
    """The plugin needs something absent; the message is its own error."""


class Broken(Exception):
    """A check failed; the message says how."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Broken(message)


# Options, for every kind.


def declared_groups(cls: type[Plugin]) -> dict[str, tuple[Option, ...]]:
    if issubclass(cls, Architecture):
        return {
            "generator": cls.generator_options,
            "discriminator": cls.discriminator_options,
        }
    return {"": cls.options}


def check_options(cls: type[Plugin], report: Report) -> None:
    before = len(report.violations)
    for role, group in declared_groups(cls).items():
        for option in group:
            where = (
                f"{role} option {option.name!r}" if role else f"option {option.name!r}"
            )
            if not option.name.isidentifier():
                report.add("options", f"{where} is not a valid Python identifier")
            if option.type not in OPTION_TYPES:
                report.add(
                    "options",
                    f"{where} has type {option.type!r}; expected int, float, str, "
                    "bool or list",
                )
                continue
            if not isinstance(option.help, str) or not option.help.strip():
                report.add("options", f"{where} has no help text")
            if option.default is REQUIRED:
                continue
            try:
                option.convert(option.default)
            except GanzooError as error:
                report.add("options", f"{where} rejects its own default: {error}")
    if len(report.violations) == before:
        report.passed.append("options")


def create(cls: type[Plugin], given: Mapping[str, Any], report: Report) -> Any:
    """The plugin made from ``given`` and its defaults; Unavailable on a clear error."""
    try:
        instance = cls.create(**given)
    except GanzooError as error:
        raise Unavailable(str(error)) from None
    except Exception as error:
        report.add(
            "create",
            f"creating it raised {describe(error)}; raise GanzooError for what "
            "the user can fix (a missing file, package or option)",
        )
        raise Unavailable("it could not be created") from None
    report.passed.append("create")
    return instance


def run_check(report: Report, rule: str, what: str, check: Callable, *args: Any) -> Any:
    """Run one check; its failure becomes a violation of ``rule``; None then."""
    try:
        result = check(*args)
    except Unavailable:
        raise
    except Broken as broken:
        report.add(rule, f"{what}: {broken}")
        return None
    except Exception as error:
        report.add(rule, f"{what} raised {describe(error)}")
        return None
    report.passed.append(rule)
    return result


def claimed_shapes(
    report: Report,
    what: str,
    check: Callable[[DataShape], Any],
    shapes: Sequence[DataShape],
) -> list[DataShape]:
    """The shapes ``check`` accepts; it must reject the others with a GanzooError."""
    claimed, unclear = [], {}
    for shape in shapes:
        try:
            check(shape)
        except GanzooError:
            continue
        except Exception as error:
            unclear.setdefault(describe(error), []).append(shape.describe())
            continue
        claimed.append(shape)
    for error, rejected in unclear.items():
        report.add(
            "unsupported",
            f"{what} raised {error} for {', '.join(rejected)}; raise GanzooError "
            "for a data shape it does not support",
        )
    if not unclear:
        report.passed.append("unsupported")
    return claimed


# Tensors.


def probe_batch(shape: DataShape, seed: int, count: int = BATCH) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if shape.kind == "points":
        return torch.randn(count, *shape.shape, generator=generator)
    return torch.rand(count, *shape.shape, generator=generator)


def require_finite(tensor: Any, what: str) -> torch.Tensor:
    require(isinstance(tensor, torch.Tensor), f"{what} is {type(tensor).__name__}")
    require(bool(torch.isfinite(tensor).all()), f"{what} is not finite")
    return tensor


def require_scalar(value: Any, what: str) -> torch.Tensor:
    require(
        isinstance(value, torch.Tensor) and value.numel() == 1,
        f"{what} returned {shape_of(value)}; expected a scalar tensor",
    )
    return require_finite(value, what)


def require_trained(module: nn.Module, what: str, before: list[torch.Tensor]) -> None:
    """Every parameter finite, and some of them moved by the optimizer steps."""
    after = list(module.parameters())
    for index, parameter in enumerate(after):
        require(
            bool(torch.isfinite(parameter).all()),
            f"{what}: parameter {index} is not finite after {STEPS} steps",
        )
    moved = any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    require(moved, f"{what}: no parameter changed in {STEPS} steps (no gradient?)")


def require_same_state(first: nn.Module, second: nn.Module, what: str) -> None:
    one, two = first.state_dict(), second.state_dict()
    require(list(one) == list(two), f"{what}: the state_dict keys differ")
    for key in one:
        require(torch.equal(one[key], two[key]), f"{what}: {key!r} differs")


def shape_of(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0][:160] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def ring_batch(seed: int, count: int = BATCH) -> torch.Tensor:
    """Points near eight means on the unit circle, a tiny real data set."""
    generator = torch.Generator().manual_seed(seed)
    angles = torch.randint(8, (count,), generator=generator) * (2 * math.pi / 8)
    means = torch.stack([angles.cos(), angles.sin()], dim=1)
    return means + 0.05 * torch.randn(count, 2, generator=generator)
