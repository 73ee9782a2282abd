"""The checks of data and evaluation: data sets, feature extractors, metrics and
trackers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._errors import GanzooError
from .._plugin import (
    Dataset,
    DataShape,
    FeatureExtractor,
    Metric,
    RunInfo,
    SampleSet,
    TensorData,
    Tracker,
)
from ._base import (
    Broken,
    Report,
    Unavailable,
    claimed_shapes,
    create,
    describe,
    probe_batch,
    require,
    require_finite,
    ring_batch,
    run_check,
    shape_of,
)

# Data sets, feature extractors, metrics and trackers.


def check_dataset(
    cls: type[Dataset], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """The declared shape, one loaded split, an unknown split, and a second load."""
    declared = {option.name: option for option in cls.options}
    if "download" in declared and declared["download"].type is bool:
        given.setdefault("download", False)
    dataset = create(cls, given, report)
    try:
        shape = dataset.data_shape()
    except GanzooError as error:
        raise Unavailable(str(error)) from None
    if not run_check(report, "shapes", "data_shape()", _valid_shape, shape):
        return
    _require_splits(cls, report)
    # The test split, where there is one, is usually the smaller.
    split = next((s for s in ("test", "train") if s in cls.splits), cls.splits[0])
    try:
        data = dataset.load(split)
    except GanzooError as error:
        raise Unavailable(str(error)) from None
    except Exception as error:
        report.add("shapes", f"load({split!r}) raised {describe(error)}")
        return
    run_check(report, "shapes", f"load({split!r})", _valid_data, data, shape)
    run_check(report, "unsupported", "load('no-such-split')", _rejects_split, dataset)
    run_check(
        report, "seed", f"load({split!r}) twice", _same_data, cls, given, split, data
    )


def _valid_shape(shape: Any) -> bool:
    require(isinstance(shape, DataShape), f"returned {type(shape).__name__}")
    sizes = {"image": 3, "points": 1}
    require(shape.kind in sizes, f"kind {shape.kind!r}; expected image or points")
    require(
        len(shape.shape) == sizes[shape.kind] and all(n > 0 for n in shape.shape),
        f"{shape.kind} shape {shape.shape}",
    )
    require(shape.num_classes >= 0, f"num_classes is {shape.num_classes}")
    return True


def _require_splits(cls: type[Dataset], report: Report) -> None:
    splits = cls.splits
    if not splits or not all(isinstance(s, str) for s in splits):
        report.add("shapes", f"splits is {splits!r}; expected a tuple of names")
        raise Unavailable("it declares no usable split")


def _valid_data(data: Any, shape: DataShape) -> None:
    require(isinstance(data, TensorData), f"returned {type(data).__name__}")
    samples = data.samples
    require(
        isinstance(samples, torch.Tensor)
        and samples.dtype == torch.float32
        and tuple(samples.shape[1:]) == shape.shape
        and len(samples) > 0,
        f"samples are {shape_of(samples)}; expected float32 (N, {shape.shape})",
    )
    require(data.shape == shape, f"its shape {data.shape} is not data_shape()")
    require_finite(samples, "the samples")
    if shape.kind == "image":
        inside = bool(((samples >= 0) & (samples <= 1)).all())
        require(inside, "image values fall outside [0, 1]")
    require(
        isinstance(data.fingerprint, str) and bool(data.fingerprint),
        "fingerprint is empty",
    )
    if data.labels is not None:
        labels = data.labels
        require(
            labels.shape == (len(samples),) and not labels.is_floating_point(),
            f"labels are {shape_of(labels)}; expected N integers",
        )
        if shape.num_classes:
            require(
                bool(((labels >= 0) & (labels < shape.num_classes)).all()),
                f"labels fall outside 0..{shape.num_classes - 1}",
            )


def _rejects_split(dataset: Dataset) -> None:
    try:
        dataset.load("no-such-split")
    except GanzooError:
        return
    raise Broken("an unknown split gives no GanzooError")


def _same_data(cls: type[Dataset], given: dict, split: str, first: TensorData):
    second = cls.create(**given).load(split)
    require(torch.equal(first.samples, second.samples), "two loads give other samples")
    require(
        first.fingerprint == second.fingerprint, "two loads give other fingerprints"
    )


def check_feature_extractor(
    cls: type[FeatureExtractor],
    given: dict,
    shapes: tuple,
    report: Report,
    scratch: str,
) -> None:
    """check() on the probe shapes, the weights hash, and features of each."""
    extractor = create(cls, given, report)
    claimed = claimed_shapes(report, "check()", extractor.check, shapes)
    run_check(
        report, "shapes", "weights_hash() and preprocessing()", _describes, extractor
    )
    extracted = []
    for shape in claimed:
        what = f"extract() of {shape.describe()}"
        result = run_check(report, "shapes", what, _extract, extractor, shape)
        if result:
            extracted.append(shape)
    if not extracted:
        report.add("shapes", "extract() gives features for none of the probe shapes")
        return
    what = f"extract() of {extracted[0].describe()} twice"
    run_check(report, "seed", what, _same_features, extractor, extracted[0])


def _describes(extractor: FeatureExtractor) -> None:
    digest = extractor.weights_hash()
    require(isinstance(digest, str) and bool(digest), f"weights_hash() is {digest!r}")
    require(digest == extractor.weights_hash(), "weights_hash() changes")
    words = extractor.preprocessing()
    require(isinstance(words, str) and bool(words.strip()), "preprocessing() is empty")


def _extract(extractor: FeatureExtractor, shape: DataShape) -> bool:
    try:
        result = extractor.extract(probe_batch(shape, seed=0, count=4))
    except GanzooError:
        # A clear refusal is allowed (e.g. stacked data scored channel by channel).
        return False
    require(isinstance(result, Mapping), f"returned {type(result).__name__}")
    features = result.get("features")
    require(
        isinstance(features, torch.Tensor)
        and features.dim() == 2
        and features.shape[0] == 4,
        f"features are {shape_of(features)}; expected (4, D)",
    )
    require_finite(features, "the features")
    logits = result.get("logits")
    if logits is not None:
        require(
            isinstance(logits, torch.Tensor) and logits.shape[0] == 4,
            f"logits are {shape_of(logits)}; expected (4, K)",
        )
        require_finite(logits, "the logits")
    return True


def _same_features(extractor: FeatureExtractor, shape: DataShape) -> None:
    images = probe_batch(shape, seed=0, count=4)
    first, second = extractor.extract(images), extractor.extract(images)
    require(torch.equal(first["features"], second["features"]), "features differ")


class _ModesProbe(Dataset):
    """A stand-in for a data set with known modes, as mode-collapse metrics read it."""

    name = "kit-modes"
    std = 0.05

    @classmethod
    def means(cls) -> torch.Tensor:
        angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
        return torch.stack([angles.cos(), angles.sin()], dim=1)


def _probe_sets() -> list[tuple[str, SampleSet, SampleSet]]:
    """Real and generated sets as the evaluator builds them, one pair per data kind."""
    count = 64

    def sides(seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return {
            "features": torch.randn(count, 16, generator=generator),
            "logits": torch.randn(count, 10, generator=generator),
            "stacked": torch.randn(count, 3, 10, generator=generator),
            "images": torch.rand(count, 1, 8, 8, generator=generator),
        }

    real, fake = sides(0), sides(1)
    dataset = _ModesProbe()
    return [
        (
            "2-D points",
            SampleSet("real", samples=ring_batch(0, count), dataset=dataset),
            SampleSet("fake", samples=ring_batch(1, count)),
        ),
        *(
            (
                f"image features with {label}",
                SampleSet(
                    "real",
                    samples=real["images"],
                    features=real["features"],
                    logits=real[logits],
                ),
                SampleSet(
                    "fake",
                    samples=fake["images"],
                    features=fake["features"],
                    logits=fake[logits],
                ),
            )
            for label, logits in (
                ("class logits", "logits"),
                ("stacked logits", "stacked"),
            )
        ),
        (
            "labeled image features with class logits",
            SampleSet(
                "real",
                samples=real["images"],
                features=real["features"],
                logits=real["logits"],
                labels=torch.arange(count) % 10,
            ),
            SampleSet(
                "fake",
                samples=fake["images"],
                features=fake["features"],
                logits=fake["logits"],
                labels=torch.arange(count) % 10,
            ),
        ),
    ]


def check_metric(
    cls: type[Metric], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """Scores on every probe set the metric applies to, computed twice."""
    metric = create(cls, given, report)
    probes = [(what, real, fake) for what, real, fake in _probe_sets()]
    usable = [
        (what, real, fake)
        for what, real, fake in probes
        if metric.applies_to(real)
        and all(getattr(fake, part) is not None for part in metric.requires)
    ]
    if not usable:
        offered = ", ".join(what for what, _, _ in probes)
        raise Unavailable(f"it applies to none of the kit's sets ({offered})")
    for what, real, fake in usable:
        run_check(report, "shapes", f"compute() on {what}", _scores, metric, real, fake)
        run_check(
            report,
            "seed",
            f"compute() twice on {what}",
            _same_scores,
            metric,
            real,
            fake,
        )


def _scores(metric: Metric, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
    result = metric.compute(real, fake)
    require(isinstance(result, Mapping), f"returned {type(result).__name__}")
    scores = {k: v for k, v in result.items() if k != "protocol"}
    require(bool(scores), "returned no score")
    for key, value in scores.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        require(
            isinstance(key, str) and (value is None or number),
            f"score {key!r} is {value!r}; expected a number (or None when undefined)",
        )
        require(value is None or not math.isnan(value), f"score {key!r} is NaN")
    protocol = result.get("protocol", {})
    require(isinstance(protocol, Mapping), "protocol is not a mapping")
    return dict(result)


def _same_scores(metric: Metric, real: SampleSet, fake: SampleSet) -> None:
    first, second = metric.compute(real, fake), metric.compute(real, fake)
    require(first == second, "two computations give other results")


def check_tracker(
    cls: type[Tracker], given: dict, shapes: tuple, report: Report, scratch: str
) -> None:
    """The lifecycle of one run, in the scratch folder."""
    tracker = create(cls, given, report)
    run_check(report, "lifecycle", "start/log/finish", _track, tracker, Path(scratch))


def _track(tracker: Tracker, scratch: Path) -> None:
    from PIL import Image

    run_dir = scratch / "run"
    run_dir.mkdir()
    picture = run_dir / "fakes.png"
    Image.new("RGB", (8, 8)).save(picture)
    info = RunInfo(run_dir=run_dir, recipe={}, recipe_hash="0" * 16, name="kit")
    tracker.start(info)
    try:
        tracker.log_stats({"kimg": 1.0, "d_loss": 0.5, "g_loss": 0.7}, step=1)
        tracker.log_image("fakes", picture, step=1)
    finally:
        tracker.finish()
