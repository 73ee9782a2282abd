"""Turn a command-line argument into one side of ``ganzoo metrics``.

A side is a run directory (samples are generated from it), an image folder, a
``.npy``/``.npz`` array (images, feature vectors or 2-D points), or a data set
plugin name with an optional split (``fashion-mnist:test``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._errors import GanzooError
from .._plugin import Dataset, DataShape
from .._registry import Registry
from ..training import FINAL, LAST, generate, load_generator


@dataclass
class Side:
    """Samples (or features) of one side, and what they are."""

    name: str
    values: torch.Tensor
    shape: DataShape | None  # None for feature vectors
    dataset: Dataset | None = None
    split: str | None = None


def load_side(spec: str, registry: Registry, *, n: int, seed: int) -> Side:
    path = Path(spec)
    if path.is_dir() and ((path / FINAL).is_file() or (path / LAST).is_file()):
        loaded = load_generator(path, "final" if (path / FINAL).is_file() else "last")
        return Side(spec, generate(loaded, n, seed=seed), loaded.shape)
    if path.is_dir():
        return _image_folder(spec, registry)
    if path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise GanzooError(f"{spec}: file not found")
        return _array(spec, path)
    name, _, split = spec.partition(":")
    if name in registry.entries["dataset"]:
        dataset = registry.get("dataset", name).cls.create()
        split = split or ("test" if "test" in dataset.splits else dataset.splits[0])
        if split not in dataset.splits:
            raise GanzooError(
                f"{spec}: data set {name!r} has no split {split!r}; its "
                f"splits are: {', '.join(dataset.splits)}"
            )
        return Side(spec, torch.empty(0), dataset.data_shape(), dataset, split)
    known = ", ".join(registry.names("dataset"))
    raise GanzooError(
        f"{spec}: not a run directory, an image folder, a .npy/.npz file "
        f"or a data set name (data sets: {known})"
    )


def _image_folder(spec: str, registry: Registry) -> Side:
    from PIL import Image, UnidentifiedImageError

    first = None
    for candidate in sorted(Path(spec).rglob("*")):
        if candidate.is_file():
            try:
                with Image.open(candidate) as image:
                    first = (image.size, image.mode)
                break
            except (UnidentifiedImageError, OSError):
                continue
    if first is None:
        raise GanzooError(f"{spec}: the folder holds no readable image")
    (width, height), mode = first
    channels = 1 if mode in ("L", "I", "I;16", "1") else 3
    dataset = registry.get("dataset", "image-folder").cls.create(
        path=spec, resolution=min(width, height), channels=channels
    )
    data = dataset.load("train")
    return Side(spec, data.samples, data.shape)


# The first bytes of a .npy file and of a .npz file (a zip archive).
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def _array(spec: str, path: Path) -> Side:
    with path.open("rb") as file:
        head = file.read(6)
    if not head.startswith(_MAGIC[path.suffix]):
        raise GanzooError(
            f"{spec}: not a {path.suffix} file (it lacks the format's header)"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                if len(keys) != 1:
                    raise GanzooError(
                        f"{spec}: expected one array in the .npz file, found "
                        f"{len(keys)}" + (f" ({', '.join(keys)})" if keys else "")
                    )
                array = loaded[keys[0]]
        else:
            array = loaded
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise GanzooError(f"{spec}: cannot read the array ({error})") from None
    if array.dtype == np.uint8:
        values = torch.from_numpy(array.astype(np.float32) / 255)
    elif np.issubdtype(array.dtype, np.number):
        values = torch.from_numpy(array.astype(np.float32))
    else:
        raise GanzooError(f"{spec}: expected a numeric array, got dtype {array.dtype}")
    if values.dim() == 0 or len(values) == 0:
        raise GanzooError(f"{spec}: the array holds no samples")
    finite = torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
    if not bool(finite.all()):
        raise GanzooError(
            f"{spec}: {int((~finite).sum())} of {len(values)} samples hold NaN or "
            f"infinite values (first at index {int((~finite).nonzero()[0])})"
        )

    if values.dim() == 2 and values.shape[1] == 2:
        return Side(spec, values, DataShape("points", (2,)))
    if values.dim() == 2:
        return Side(spec, values, None)
    if values.dim() == 3:
        values = values[:, None]
    if values.dim() == 4:
        if values.shape[-1] in (1, 3) and values.shape[1] not in (1, 3):
            values = values.permute(0, 3, 1, 2).contiguous()
        if values.max() > 1.5:
            values = values / 255
        return Side(spec, values, DataShape("image", tuple(values.shape[1:])))
    raise GanzooError(
        f"{spec}: expected images (N,H,W), (N,C,H,W) or (N,H,W,C), "
        f"features (N,D) or points (N,2); got shape {tuple(array.shape)}"
    )


def score_sides(
    real_spec: str,
    fake_spec: str,
    *,
    extractor: str | None = None,
    metrics: list[str] | None = None,
    n: int = 10000,
    seed: int = 0,
) -> dict:
    """Score two sets given on the command line; returns scores and a protocol."""
    from .._registry import build_registry
    from ._scoring import Scorer, quantize

    if n < 1:
        raise GanzooError(f"--n must be at least 1, got {n}")
    registry = build_registry()
    real = load_side(real_spec, registry, n=n, seed=seed)
    fake = load_side(fake_spec, registry, n=n, seed=seed)
    if (real.shape != fake.shape and not _same_samples(real.shape, fake.shape)) or (
        real.shape is None and real.values.shape[1] != fake.values.shape[1]
    ):
        raise GanzooError(
            f"the sides differ: {real_spec} holds {_describe(real)}, "
            f"{fake_spec} holds {_describe(fake)}"
        )
    shape = real.shape or DataShape("features", (int(real.values.shape[1]),))
    scorer = Scorer.create(
        registry,
        shape,
        dataset_name=real.dataset.name if real.dataset else None,
        extractor=extractor,
        metrics=metrics,
    )

    if real.dataset is not None:
        real_set, reference = scorer.real_set(real.dataset, real.split)
    else:
        real_set = scorer.sample_set(real_spec, real.values)
        reference = {"source": real_spec, "n_real": len(real_set)}
    fake_values = fake.values
    if fake.dataset is not None:
        fake_values = fake.dataset.load(fake.split).samples
    if shape.kind == "image":
        fake_values = quantize(fake_values)
    fake_set = scorer.sample_set(fake_spec, fake_values)
    if shape.kind == "features":
        real_set.features, fake_set.features = real_set.samples, fake_set.samples
    scores, details = scorer.score(real_set, fake_set)
    protocol = {
        "feature_extractor": scorer.describe_extractor(),
        "reference": reference,
        "n_real": len(real_set),
        "n_fake": len(fake_set),
        **details,
    }
    return {**scores, "protocol": protocol}


def _same_samples(a: DataShape | None, b: DataShape | None) -> bool:
    return a is not None and b is not None and a.kind == b.kind and a.shape == b.shape


def _describe(side: Side) -> str:
    if side.shape is None:
        return f"{side.values.shape[1]}-D feature vectors"
    return side.shape.describe()
