"""The base classes a plugin subclasses, one per kind, and the data they exchange.

A plugin is a class with a kebab-case ``name``, a docstring whose first line is its
summary, and a tuple of :class:`~ganzoo.Option` declarations. The registry checks
all three when the plugin registers; a recipe instantiates it with the validated
option values, which become attributes of the instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import GanzooError
from ._options import Option, resolve_options

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class DataShape:
    """What one sample of a data set looks like.

    ``kind`` is ``"image"`` (``shape`` is channels, height, width; values in [0, 1])
    or ``"points"`` (``shape`` is the dimension, e.g. ``(2,)``; raw coordinates).
    ``num_classes`` is 0 for unlabeled data. Paired data (image-to-image
    translation) also has ``input_shape``, the shape of the input image A that
    each sample (the target B) is paired with; it is None otherwise.
    """

    kind: str
    shape: tuple[int, ...]
    num_classes: int = 0
    input_shape: tuple[int, ...] | None = None

    @property
    def paired(self) -> bool:
        return self.input_shape is not None

    @property
    def channels(self) -> int:
        return self.shape[0] if self.kind == "image" else 0

    @property
    def resolution(self) -> int:
        return self.shape[1] if self.kind == "image" else 0

    def describe(self) -> str:
        if self.kind == "image":
            c, h, w = self.shape
            return f"{c}x{h}x{w} images"
        return f"{self.shape[0]}-D points"


@dataclass
class TensorData:
    """A whole data set in memory: float32 samples and optional integer labels.

    ``fingerprint`` identifies the content (files, split, preprocessing), so that
    caches of anything derived from the data are keyed by content, not by name.
    """

    samples: torch.Tensor
    shape: DataShape
    fingerprint: str
    labels: torch.Tensor | None = None
    inputs: torch.Tensor | None = None  # paired data: the input A of each sample

    def __len__(self) -> int:
        return int(self.samples.shape[0])


def fingerprint(*parts: Any) -> str:
    """A short stable hash of strings, bytes, numbers and file contents."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class Plugin:
    """Common base of every plugin kind.

    Subclasses set ``name`` and ``options`` and write a docstring. Instances hold
    the resolved option values as attributes and in ``self.options``.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **values: Any) -> None:
        self.options: dict[str, Any] = dict(values)
        for key, value in values.items():
            setattr(self, key, value)

    @classmethod
    def create(cls, **given: Any) -> Plugin:
        """Instantiate with ``given`` checked against ``options``, defaults filled."""
        return cls(
            **resolve_options(cls.options, given, what=f"{cls.kind} {cls.name!r}")
        )

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring, shown by ``ganzoo plugins``."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"<{self.kind} {self.name}({values})>"


class Architecture(Plugin):
    """Builds a generator, a discriminator, or both, for a data shape.

    A generator module takes latents of shape (N, latent_dim) and has the
    attributes ``latent_dim`` (int) and ``output_range`` (``(low, high)`` for
    images, ``None`` for points). A discriminator module maps samples to one
    logit per sample, of shape (N,) or (N, 1). Either builder may be left
    unimplemented; ``generator_options`` and ``discriminator_options`` declare
    what each one accepts.

    A translation generator (for paired data) has ``latent_dim`` 0 and an
    ``input_shape`` attribute (C, H, W): it is called as ``generator(inputs)``
    with input images in its ``output_range``.

    Class-conditional networks say so with ``conditional = True`` and their
    class count in ``num_classes``. A conditional generator is called as
    ``generator(latents, labels)`` and a conditional discriminator as
    ``discriminator(samples, labels)``, ``labels`` being N class indices
    (int64). A discriminator with an auxiliary classifier (ACGAN) sets
    ``auxiliary_classifier = True`` and ``num_classes`` instead: it is called as
    ``discriminator(samples)`` and returns ``(logits, class_logits)``, the
    latter of shape (N, num_classes).
    """

    kind = "architecture"
    generator_options: ClassVar[tuple[Option, ...]] = ()
    discriminator_options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def provides(cls) -> tuple[str, ...]:
        """Which networks this architecture can build."""
        parts = []
        if cls.build_generator is not Architecture.build_generator:
            parts.append("generator")
        if cls.build_discriminator is not Architecture.build_discriminator:
            parts.append("discriminator")
        return tuple(parts)

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        """Raise GanzooError when this architecture cannot serve ``data``.

        Called before anything is built or written, with the resolved options of
        ``role`` (``"generator"`` or ``"discriminator"``).
        """

    def make(self, role: str, data: DataShape, given: Mapping[str, Any]) -> nn.Module:
        """Check ``given`` options for ``role``, check the data shape, then build."""
        if role not in self.provides():
            raise GanzooError(
                f"architecture {self.name!r} provides no {role}; "
                f"it provides: {', '.join(self.provides())}"
            )
        declared = (
            self.generator_options
            if role == "generator"
            else self.discriminator_options
        )
        options = resolve_options(declared, given, what=f"{role} {self.name!r}")
        self.check(data, role, options)
        build = (
            self.build_generator if role == "generator" else self.build_discriminator
        )
        return build(data, **options)

    def build_generator(self, data: DataShape, **options: Any) -> nn.Module:
        raise NotImplementedError

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        raise NotImplementedError


class Loss(Plugin):
    """The discriminator's and the generator's objectives, both to be minimised.

    Both methods receive raw discriminator outputs (logits) as 1-D tensors.
    """

    kind = "loss"

    def discriminator_loss(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Regularizer(Plugin):
    """A term added to the discriminator's loss (gradient penalty, R1, ...)."""

    kind = "regularizer"

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        """The weighted term for one discriminator step, a scalar tensor."""
        raise NotImplementedError


class Constraint(Plugin):
    """A change to the discriminator's parameters after each of its steps."""

    kind = "constraint"

    def apply(self, discriminator: nn.Module) -> None:
        raise NotImplementedError


class Dataset(Plugin):
    """A data set held in memory as one tensor.

    ``data_shape`` must be cheap (no loading): recipes are checked with it before
    any work starts. ``load`` returns the requested split; a missing file is a
    GanzooError that says how to obtain it.
    """

    kind = "dataset"
    splits: ClassVar[tuple[str, ...]] = ("train",)

    def data_shape(self) -> DataShape:
        raise NotImplementedError

    def load(self, split: str = "train") -> TensorData:
        raise NotImplementedError


class FeatureExtractor(Plugin):
    """Maps images to feature vectors (and, for classifiers, logits) for metrics.

    ``extract`` takes float images in [0, 1] of shape (N, C, H, W) on any device
    and returns a mapping with ``"features"`` (N, D) and, for classifiers,
    ``"logits"`` (N, K); it does its own resizing and channel handling and says
    how in ``preprocessing``. ``weights_hash`` identifies the weights, so that
    cached features are invalidated when they change.
    """

    kind = "feature-extractor"

    def check(self, data: DataShape) -> None:
        """Raise GanzooError when this extractor cannot take ``data``."""

    def weights_hash(self) -> str:
        raise NotImplementedError

    def preprocessing(self) -> str:
        """How images are resized and converted before the network, in words."""
        raise NotImplementedError

    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@dataclass
class SampleSet:
    """One side of a comparison, as metrics see it.

    ``samples`` are points (N, d) or images (N, C, H, W) in [0, 1]; ``features``
    (N, D) and ``logits`` (N, K), or (N, 3, K) for stacked data scored channel by
    channel, come from a feature extractor; ``dataset`` is the data set plugin the
    real side came from (mode scores read its protocol, e.g. mixture means).
    ``cache_key`` is the content key of features that came from the on-disk
    cache; statistics derived from them can be cached beside them. ``labels``
    (N class indices) are the real samples' classes, or the classes a
    conditional generator was asked for.
    """

    name: str
    samples: torch.Tensor | None = None
    features: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    dataset: Dataset | None = None
    cache_key: dict[str, Any] | None = None
    labels: torch.Tensor | None = None

    def statistic(
        self,
        name: str,
        params: dict[str, Any],
        compute: Callable[[], dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """``compute()``, cached on disk under this set's key when it has one.

        For costly statistics of a reference set that every evaluation against
        it would otherwise repeat, such as k-NN radii. The key joins the
        features' content key with ``name`` and ``params``, so anything that
        changes the features or the parameters misses the cache.
        """
        if self.cache_key is None:
            return compute()
        from .evaluation._cache import cached

        return cached({**self.cache_key, "statistic": name, **params}, compute)[0]

    def __len__(self) -> int:
        for value in (self.features, self.samples, self.logits):
            if value is not None:
                return int(value.shape[0])
        return 0


class Metric(Plugin):
    """A score computed from a real and a generated :class:`SampleSet`.

    ``requires`` names what both sets must carry (``"features"``, ``"logits"``,
    ``"samples"``, ``"labels"``): a metric is skipped when either lacks one;
    ``applies_to`` says whether the metric makes sense for a real set (e.g. mode
    scores only for data sets with known modes). ``compute``
    returns a flat mapping of score names to numbers, plus any protocol details
    under ``"protocol"``.
    """

    kind = "metric"
    requires: ClassVar[tuple[str, ...]] = ("features",)

    def applies_to(self, real: SampleSet) -> bool:
        return all(getattr(real, part) is not None for part in self.requires)

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class RunInfo:
    """What a tracker is told when a run starts."""

    run_dir: Path
    recipe: dict[str, Any]
    recipe_hash: str
    name: str
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Tracker(Plugin):
    """Receives training statistics and images, e.g. to log them to a service.

    A recipe enables a tracker with ``tracking: {<name>: {options}}``.
    """

    kind = "tracker"

    def start(self, run: RunInfo) -> None:
        """Called once, after the run directory exists and before the first step."""

    def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
        """Called once per tick with the same values written to stats.jsonl."""

    def log_image(self, name: str, path: Path, step: int) -> None:
        """Called each time a sample grid is written."""

    def finish(self) -> None:
        """Called once at the end of the run, also when it fails."""


KINDS: dict[str, type[Plugin]] = {
    base.kind: base
    for base in (
        Architecture,
        Loss,
        Regularizer,
        Constraint,
        Dataset,
        FeatureExtractor,
        Metric,
        Tracker,
    )
}
