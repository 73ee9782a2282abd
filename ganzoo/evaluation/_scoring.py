"""From samples to scores: choose the extractor and metrics, extract, compute.

This is the part shared by ``ganzoo eval``, ``ganzoo metrics`` and the cheap
metric computed during training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._errors import GanzooError
from .._plugin import Dataset, DataShape, FeatureExtractor, Metric, SampleSet
from .._registry import Registry
from ._cache import cached

log = logging.getLogger(__name__)

CLASSIFIER_FOR = {"mnist": "mnist-classifier", "stacked-mnist": "mnist-classifier"}
SCORE_KEYS = (
    "fid",
    "kid",
    "is",
    "precision",
    "recall",
    "density",
    "coverage",
    "modes",
    "high_quality",
    "reverse_kl",
    "classes_covered",
    "class_kl",
    "intra_fid",
    "class_accuracy",
    "l1",
    "psnr",
    "ssim",
)
"""The public score names of an evaluation record, in display order."""

LOWER_IS_BETTER = frozenset({"fid", "kid", "reverse_kl", "class_kl", "intra_fid", "l1"})


class NonFiniteError(RuntimeError):
    """Generated samples or features contain NaN or infinity (a diverged run)."""


def default_extractor(shape: DataShape, dataset_name: str | None) -> str | None:
    """The feature extractor a data shape is scored with when the recipe names none."""
    if shape.kind == "points":
        return None
    if shape.shape[1:] == (28, 28) and shape.channels in (1, 3):
        return CLASSIFIER_FOR.get(dataset_name or "", "fashion-classifier")
    return "inception-v3-compat"


def default_metrics(shape: DataShape, conditional: bool = False) -> list[str]:
    """The metrics a data shape is scored with when the recipe names none.

    ``conditional``: the generator is class-conditional, so the per-class
    scores apply too.
    """
    if shape.kind == "points":
        return ["modes", "prdc"]
    if shape.kind == "features":
        return ["fid", "kid", "prdc"]
    if shape.channels == 3 and shape.shape[1:] == (28, 28):
        return ["stacked-modes"]
    chosen = ["fid", "kid", "is", "prdc", "classes"]
    return [*chosen, "conditional"] if conditional else chosen


@dataclass
class Scorer:
    """The extractor and metrics for one data shape, ready to score sample sets."""

    shape: DataShape
    extractor: FeatureExtractor | None
    metrics: list[Metric]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def create(
        cls,
        registry: Registry,
        shape: DataShape,
        *,
        dataset_name: str | None = None,
        extractor: str | None = None,
        metrics: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        conditional: bool = False,
    ) -> Scorer:
        """Resolve names to plugins and check that they fit ``shape`` (no work done)."""
        name = extractor or default_extractor(shape, dataset_name)
        instance = None
        if name is not None and shape.kind == "image":
            try:
                entry = registry.get("feature-extractor", name)
            except GanzooError as error:
                raise error.at(key="eval.feature_extractor") from None
            instance = entry.cls.create()
            try:
                instance.check(shape)
            except GanzooError as error:
                raise error.at(key="eval.feature_extractor") from None
        chosen = []
        for index, metric in enumerate(metrics or default_metrics(shape, conditional)):
            try:
                chosen.append(registry.get("metric", metric).cls.create())
            except GanzooError as error:
                raise error.at(key=f"eval.metrics[{index}]") from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(shape, instance, chosen, torch.device(device))

    # Features.

    def describe_extractor(self) -> dict[str, Any] | None:
        if self.extractor is None:
            return None
        return {
            "name": self.extractor.name,
            "weights_hash": self.extractor.weights_hash(),
            "preprocessing": self.extractor.preprocessing(),
        }

    def sample_set(
        self,
        name: str,
        samples: torch.Tensor,
        dataset: Dataset | None = None,
        labels: torch.Tensor | None = None,
    ) -> SampleSet:
        """Extract features of in-memory samples (images in [0, 1], or points).

        ``labels`` are the classes a conditional generator was asked for.
        """
        _check_finite(samples, name, "samples")
        side = SampleSet(name=name, samples=samples, dataset=dataset, labels=labels)
        if self.extractor is not None and samples.dim() == 4:
            for key, value in self._extract(samples).items():
                setattr(side, key, value)
            for key in ("features", "logits"):
                value = getattr(side, key)
                if value is not None:
                    _check_finite(value, name, key)
        return side

    def real_set(
        self,
        dataset: Dataset,
        split: str,
        *,
        n_real: int | None = None,
        seed: int = 0,
    ) -> tuple[SampleSet, dict[str, Any]]:
        """The reference side, with its features cached by content."""
        data = dataset.load(split)
        samples, labels = data.samples, data.labels
        if n_real is not None and n_real < len(samples):
            order = torch.randperm(
                len(samples), generator=torch.Generator().manual_seed(seed)
            )
            samples = samples[order[:n_real]]
            labels = None if labels is None else labels[order[:n_real]]
        reference = {
            "dataset": dataset.name,
            "split": split,
            "fingerprint": data.fingerprint,
            "n_real": len(samples),
            "subset_seed": seed if n_real is not None else None,
        }
        side = SampleSet(
            name=f"{dataset.name}:{split}",
            samples=samples,
            dataset=dataset,
            labels=labels,
        )
        if self.extractor is not None and samples.dim() == 4:
            parts = {**reference, "extractor": self.describe_extractor()}
            tensors, hit = cached(parts, lambda: self._extract(samples))
            reference["cache"] = "hit" if hit else "miss"
            for key, value in tensors.items():
                setattr(side, key, value)
            side.cache_key = parts
        return side, reference

    @torch.no_grad()
    def _extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.extractor is not None
        stacked = self.shape.channels == 3 and hasattr(
            self.extractor, "classify_channels"
        )
        parts: dict[str, list[torch.Tensor]] = {}
        for batch in images.split(1000):
            batch = batch.to(self.device)
            if stacked:
                out = {"logits": self.extractor.classify_channels(batch)}
            else:
                out = self.extractor.extract(batch)
            for key, value in out.items():
                parts.setdefault(key, []).append(value.float().cpu())
        return {key: torch.cat(values) for key, values in parts.items()}

    # Scores.

    def score(self, real: SampleSet, fake: SampleSet) -> tuple[dict[str, Any], dict]:
        """Every applicable metric; returns (scores, protocol details)."""
        scores: dict[str, Any] = {}
        protocol: dict[str, Any] = {"metrics": [], "skipped_metrics": []}
        for metric in self.metrics:
            lacking = any(getattr(fake, part) is None for part in metric.requires)
            if lacking or not metric.applies_to(real):
                protocol["skipped_metrics"].append(metric.name)
                continue
            try:
                result = dict(metric.compute(real, fake))
            except GanzooError as error:
                # Say which metric and sets; the error keeps its location.
                error.message = (
                    f"{metric.name} of {fake.name} against {real.name}: {error.message}"
                )
                error.args = (error.message,)
                raise
            protocol.update(result.pop("protocol", {}))
            protocol["metrics"].append(metric.name)
            scores.update(result)
        return scores, protocol


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to 8-bit levels, as saved or real images are."""
    return (images.clamp(0, 1) * 255).round() / 255


def _check_finite(values: torch.Tensor, name: str, what: str) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = int(
            (~torch.isfinite(values)).any(dim=tuple(range(1, values.dim()))).sum()
            if values.dim() > 1
            else (~torch.isfinite(values)).sum()
        )
        raise NonFiniteError(
            f"{name}: {bad} of {len(values)} {what} are NaN or infinite "
            "(the run has diverged); no score is computed from them"
        )
