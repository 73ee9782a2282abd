"""The checks of networks and their objectives: architectures, losses,
regularizers and constraints."""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import GanzooError
from .._options import resolve_options
from .._plugin import Architecture, Constraint, DataShape, Loss, Regularizer
from ._base import (
    BATCH,
    STEPS,
    Broken,
    Report,
    Unavailable,
    claimed_shapes,
    create,
    declared_groups,
    probe_batch,
    require,
    require_finite,
    require_same_state,
    require_scalar,
    require_trained,
    ring_batch,
    run_check,
    shape_of,
)

PROBE_CLASSES = 10
"""Classes of the labeled data shapes offered to class-conditional architectures."""

# Architectures.


def check_architecture(
    cls: type[Architecture], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """Per role: check() on the probe shapes, outputs, seed, state dict, training."""
    if cls.options:
        report.add(
            "options",
            "declares `options`, which recipes never set for an architecture; "
            "declare generator_options and discriminator_options instead",
        )
    architecture = create(cls, {}, report)
    for role in cls.provides():
        role_given = dict(given.get(role, {}))
        declared = declared_groups(cls)[role]
        try:
            resolved = resolve_options(
                declared, role_given, what=f"{role} {cls.name!r}"
            )
        except GanzooError as error:
            raise Unavailable(f"the {role} needs options: {error}") from None

        check = functools.partial(_check_role, architecture, role, resolved)
        claimed = claimed_shapes(report, f"the {role}'s check()", check, shapes)
        if not claimed:
            # A class-conditional network refuses unlabeled data; offer the same
            # shapes with labels before concluding that it accepts none.
            labeled = [_with_labels(shape) for shape in shapes]
            claimed = claimed_shapes(report, f"the {role}'s check()", check, labeled)
        if not claimed:
            offered = ", ".join(shape.describe() for shape in shapes)
            report.add(
                "shapes",
                f"the {role}'s check() accepts none of: {offered}, with or "
                "without class labels",
            )
            continue

        # Every claimed shape is built and probed; the first one is also trained,
        # saved and rebuilt.
        built = {}
        for shape in claimed:
            what = f"{role} for {shape.describe()}"
            module = run_check(
                report, "shapes", what, _probe, architecture, role, shape, role_given
            )
            if module is not None:
                built[shape] = module
        if not built:
            continue
        shape, module = next(iter(built.items()))
        what = f"{role} for {shape.describe()}"
        args = (architecture, role, shape, role_given, module)
        run_check(report, "seed", what, _same_seed, *args)
        run_check(report, "state-dict", what, _round_trip, *args)
        run_check(report, "finite", what, _train_network, role, shape, module)


def _check_role(
    architecture: Architecture, role: str, options: dict, shape: DataShape
) -> None:
    architecture.check(shape, role, options)


def _with_labels(shape: DataShape) -> DataShape:
    """``shape`` as a labeled data set of PROBE_CLASSES classes, unless it has some."""
    if shape.num_classes:
        return shape
    return dataclasses.replace(shape, num_classes=PROBE_CLASSES)


def _build(
    architecture: Architecture, role: str, shape: DataShape, given: dict, seed: int
) -> nn.Module:
    torch.manual_seed(seed)
    try:
        module = architecture.make(role, shape, given)
    except GanzooError as error:
        raise Broken(
            f"check() accepts it, but make() raised GanzooError ({error}); reject the "
            "shape in check(), which recipes call before any work starts"
        ) from None
    require(isinstance(module, nn.Module), f"make() returned {type(module).__name__}")
    return module


def _network_input(module: nn.Module, role: str, shape: DataShape) -> torch.Tensor:
    if role == "discriminator":
        return probe_batch(shape, seed=1)
    latent_dim = getattr(module, "latent_dim", None)
    require(
        isinstance(latent_dim, int) and latent_dim > 0,
        f"the generator's latent_dim is {latent_dim!r}; expected a positive integer",
    )
    return torch.randn(BATCH, latent_dim, generator=torch.Generator().manual_seed(1))


def _probe_labels(num_classes: int, count: int = BATCH) -> torch.Tensor:
    """Every class in turn, ``0, 1, ..., K-1, 0, ...``, as int64 class indices."""
    return torch.arange(count) % num_classes


def _call(module: nn.Module, inputs: torch.Tensor) -> Any:
    """Call a network as the contract says: with labels if it is conditional.

    Only ``conditional = True`` counts: many networks (timm's, torchvision's)
    have a ``num_classes`` of their own. A discriminator with an auxiliary
    classifier predicts the class instead of taking it, so it gets no labels.
    """
    if getattr(module, "conditional", False):
        return module(inputs, _probe_labels(module.num_classes, len(inputs)))
    return module(inputs)


def _split_logits(module: nn.Module, output: Any) -> tuple[Any, Any]:
    """A discriminator's logits and class logits (None without a classifier)."""
    if not getattr(module, "auxiliary_classifier", False):
        return output, None
    require(
        isinstance(output, tuple) and len(output) == 2,
        f"an auxiliary classifier returned {shape_of(output)}; expected a tuple "
        "(logits, class_logits)",
    )
    return output


def _check_classes(module: nn.Module, role: str, shape: DataShape) -> None:
    """A class-conditional network is built for the data's classes, and has some."""
    if not (
        getattr(module, "conditional", False)
        or getattr(module, "auxiliary_classifier", False)
    ):
        return
    num_classes = getattr(module, "num_classes", None)
    require(
        shape.num_classes > 0 and num_classes == shape.num_classes,
        f"the {role}'s num_classes is {num_classes!r}, but the data have "
        f"{shape.num_classes} classes; build it for data.num_classes and refuse "
        "unlabeled data in check()",
    )


def _same_outputs(first: Any, second: Any) -> bool:
    """Whether two outputs are equal: tensors, or tuples of them (ACGAN)."""
    if isinstance(first, tuple):
        return len(first) == len(second) and all(map(torch.equal, first, second))
    return torch.equal(first, second)


def _probe(
    architecture: Architecture, role: str, shape: DataShape, given: dict
) -> nn.Module:
    """Build under seed 0 and check one output, in eval mode so no state changes."""
    module = _build(architecture, role, shape, given, seed=0)
    _check_classes(module, role, shape)
    inputs = _network_input(module, role, shape)
    module.eval()
    with torch.no_grad():
        output = _call(module, inputs)
    module.train()
    if role == "discriminator":
        logits, class_logits = _split_logits(module, output)
        require(
            isinstance(logits, torch.Tensor)
            and tuple(logits.shape) in ((BATCH,), (BATCH, 1)),
            f"a batch of {BATCH} gave {shape_of(logits)}; expected ({BATCH},) or "
            f"({BATCH}, 1) logits",
        )
        require_finite(logits, "the logits")
        if class_logits is not None:
            expected = (BATCH, module.num_classes)
            require(
                isinstance(class_logits, torch.Tensor)
                and tuple(class_logits.shape) == expected,
                f"the auxiliary classifier gave {shape_of(class_logits)}; "
                f"expected {expected} class logits",
            )
            require_finite(class_logits, "the class logits")
        return module

    expected = (BATCH, *shape.shape)
    require(
        isinstance(output, torch.Tensor) and tuple(output.shape) == expected,
        f"{BATCH} latents gave {shape_of(output)}; expected {expected}",
    )
    require_finite(output, "the samples")
    require(hasattr(module, "output_range"), "the generator has no output_range")
    value_range = module.output_range
    if value_range is not None:
        require(
            len(value_range) == 2 and value_range[0] < value_range[1],
            f"output_range is {value_range!r}; expected (low, high) or None",
        )
        low, high = value_range
        inside = bool(((output >= low - 1e-5) & (output <= high + 1e-5)).all())
        require(inside, f"samples fall outside output_range {value_range}")
    return module


def _train_network(role: str, shape: DataShape, module: nn.Module) -> None:
    """A few steps of a logistic GAN objective against a fixed partner."""
    before = [p.detach().clone() for p in module.parameters()]
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    partner = nn.Linear(math.prod(shape.shape), 1)
    partner.requires_grad_(False)
    for step in range(STEPS):
        if role == "generator":
            fake = _call(module, _network_input(module, role, shape)).flatten(1)
            loss = F.softplus(-partner(fake)).mean()
        else:
            real_logits, real_classes = _discriminate(
                module, probe_batch(shape, seed=10 + step)
            )
            fake_logits, fake_classes = _discriminate(
                module, torch.randn(BATCH, *shape.shape)
            )
            loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
            if real_classes is not None:
                # An auxiliary classifier learns the probe labels of both sides.
                labels = _probe_labels(module.num_classes)
                loss = loss + F.cross_entropy(real_classes, labels)
                loss = loss + F.cross_entropy(fake_classes, labels)
        require_finite(loss, f"the loss at step {step}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    require_trained(module, f"the {role}", before)


def _discriminate(module: nn.Module, samples: torch.Tensor) -> tuple[Any, Any]:
    """Flat logits (N,) and, with an auxiliary classifier, class logits (N, K)."""
    logits, class_logits = _split_logits(module, _call(module, samples))
    return logits.reshape(-1), class_logits


def _round_trip(
    architecture: Architecture,
    role: str,
    shape: DataShape,
    given: dict,
    original: nn.Module,
) -> None:
    restored = _build(architecture, role, shape, given, seed=1)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True))

    original.eval()
    restored.eval()
    inputs = _network_input(original, role, shape)
    with torch.no_grad():
        same = _same_outputs(_call(original, inputs), _call(restored, inputs))
    original.train()
    require(
        same,
        "a copy built with another seed and loaded with its state_dict computes "
        "other outputs; keep every tensor forward() uses in parameters or buffers",
    )


def _same_seed(
    architecture: Architecture,
    role: str,
    shape: DataShape,
    given: dict,
    first: nn.Module,
) -> None:
    second = _build(architecture, role, shape, given, seed=0)
    require_same_state(first, second, "two networks built under one seed")
    inputs = _network_input(first, role, shape)
    outputs = []
    for module in (first, second):
        torch.manual_seed(2)
        outputs.append(_call(module, inputs))
    require(
        _same_outputs(*outputs),
        "two networks built under one seed give other outputs for the same input",
    )


# Losses, regularizers and constraints.


def _points_discriminator(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def check_loss(
    cls: type[Loss], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """Scalar, differentiable, finite, repeatable losses and a short training run."""
    loss = create(cls, given, report)
    run_check(report, "shapes", "the losses of random logits", _loss_values, loss)
    run_check(report, "finite", "a short training run", _train_with_loss, loss)
    run_check(report, "seed", "the losses under one seed", _loss_repeats, loss)


def _loss_values(loss: Loss) -> None:
    real = torch.randn(BATCH, requires_grad=True)
    fake = torch.randn(BATCH, requires_grad=True)
    d_loss = require_scalar(loss.discriminator_loss(real, fake), "discriminator_loss")
    g_loss = require_scalar(loss.generator_loss(fake), "generator_loss")
    d_loss.backward()
    for logits, side in ((real, "real"), (fake, "fake")):
        require(
            logits.grad is not None and bool(torch.isfinite(logits.grad).all()),
            f"discriminator_loss gives no finite gradient to the {side} logits",
        )
    fake.grad = None
    g_loss.backward()
    require(
        fake.grad is not None and bool(torch.isfinite(fake.grad).all()),
        "generator_loss gives no finite gradient to the fake logits",
    )

    # An ACGAN loss also scores an auxiliary classifier's class logits.
    classification_loss = getattr(loss, "classification_loss", None)
    if callable(classification_loss):
        class_logits = torch.randn(BATCH, PROBE_CLASSES, requires_grad=True)
        labels = _probe_labels(PROBE_CLASSES)
        term = classification_loss(class_logits, labels)
        require_scalar(term, "classification_loss").backward()
        require(
            class_logits.grad is not None
            and bool(torch.isfinite(class_logits.grad).all()),
            "classification_loss gives no finite gradient to the class logits",
        )


def _train_with_loss(loss: Loss) -> None:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    discriminator = _points_discriminator()
    before = [p.detach().clone() for p in generator.parameters()]
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    for step in range(STEPS):
        fake = generator(torch.randn(BATCH, 2)).detach()
        logits = discriminator(torch.cat([fake, ring_batch(step)])).reshape(-1)
        fake_logits, real_logits = logits.chunk(2)
        d_loss = require_scalar(
            loss.discriminator_loss(real_logits, fake_logits), f"step {step}"
        )
        d_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()

        fake_logits = discriminator(generator(torch.randn(BATCH, 2))).reshape(-1)
        g_loss = require_scalar(loss.generator_loss(fake_logits), f"step {step}")
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()
    require_trained(generator, "the generator", before)


def _loss_repeats(loss: Loss) -> None:
    values = []
    for _ in range(2):
        torch.manual_seed(0)
        real, fake = torch.randn(BATCH), torch.randn(BATCH)
        values.append((loss.discriminator_loss(real, fake), loss.generator_loss(fake)))
    (d1, g1), (d2, g2) = values
    require(torch.equal(d1, d2) and torch.equal(g1, g2), "the values differ")


def check_regularizer(
    cls: type[Regularizer], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """A scalar term that trains the discriminator, finite and repeatable."""
    regularizer = create(cls, given, report)
    run_check(report, "shapes", "penalty()", _penalty_value, regularizer)
    run_check(
        report, "finite", "a short training run", _train_with_penalty, regularizer
    )
    run_check(report, "seed", "penalty() under one seed", _penalty_repeats, regularizer)


def _penalty(regularizer: Regularizer, discriminator: nn.Module, seed: int) -> Any:
    torch.manual_seed(seed)
    real, fake = ring_batch(seed), torch.randn(BATCH, 2)
    return regularizer.penalty(discriminator, real, fake)


def _penalty_value(regularizer: Regularizer) -> None:
    discriminator = _points_discriminator()
    term = require_scalar(_penalty(regularizer, discriminator, 0), "penalty()")
    require(term.requires_grad, "the penalty does not depend on the discriminator")
    term.backward()
    grads = [p.grad for p in discriminator.parameters() if p.grad is not None]
    require(bool(grads), "the penalty gives the discriminator no gradient")
    require(all(bool(torch.isfinite(g).all()) for g in grads), "gradients not finite")


def _train_with_penalty(regularizer: Regularizer) -> None:
    discriminator = _points_discriminator()
    before = [p.detach().clone() for p in discriminator.parameters()]
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    for step in range(STEPS):
        real, fake = ring_batch(step), torch.randn(BATCH, 2)
        logits = discriminator(torch.cat([fake, real])).reshape(-1)
        fake_logits, real_logits = logits.chunk(2)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        term = regularizer.penalty(discriminator, real, fake)
        loss = require_scalar(loss + term, f"the loss at step {step}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    require_trained(discriminator, "the discriminator", before)


def _penalty_repeats(regularizer: Regularizer) -> None:
    first = _penalty(regularizer, _points_discriminator(), 3)
    second = _penalty(regularizer, _points_discriminator(), 3)
    require(torch.equal(first, second), "the terms differ")


def check_constraint(
    cls: type[Constraint], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """In-place changes that keep the weights finite, the same for equal runs."""
    constraint = create(cls, given, report)
    run_check(report, "finite", "apply() after a step", _constrained_run, constraint)
    run_check(
        report, "seed", "apply() on equal networks", _constraint_repeats, constraint
    )


def _constrained_run(constraint: Constraint, seed: int = 0) -> nn.Module:
    discriminator = _points_discriminator(seed)
    optimizer = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    for step in range(STEPS):
        loss = F.softplus(-discriminator(ring_batch(step))).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        returned = constraint.apply(discriminator)
        require(returned is None, "apply() must change the parameters in place")
    for parameter in discriminator.parameters():
        require(bool(torch.isfinite(parameter).all()), "parameters not finite")
    return discriminator


def _constraint_repeats(constraint: Constraint) -> None:
    first, second = _constrained_run(constraint), _constrained_run(constraint)
    require_same_state(first, second, "two equal runs")
