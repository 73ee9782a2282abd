"""MNIST and Fashion-MNIST, read from the IDX files their authors publish.

The files are looked for in the system location first (Debian's
``dataset-fashion-mnist`` package installs Fashion-MNIST under
``/usr/share/datasets/fashion-mnist/``), then in the data root. Where neither has
them, they are downloaded into the data root if a network exists; otherwise the
error says exactly how to obtain them.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ganzoo import Dataset, DataShape, GanzooError, Option, TensorData, fingerprint

from .toy import check_split

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 10.0
"""Seconds to wait for a server before giving up on a download."""

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_DIGESTS: dict[tuple[str, int, int], str] = {}
"""SHA-256 of data files already hashed in this process, by path, mtime and size."""


def parse_idx(raw: bytes, source: str | Path) -> np.ndarray:
    """Decode IDX bytes (gzip-compressed or plain) into an array.

    The format is two zero bytes, a type code, the number of dimensions, then
    each dimension as a big-endian uint32, then the values in C order.
    ``source`` names the file in errors.
    """
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise GanzooError(
                f"not a readable gzip file ({error}); delete it and obtain it again",
                file=source,
            ) from None

    # Check the header before trusting the dimensions it declares.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise GanzooError(
            f"not an IDX file (bad magic number {raw[:4].hex() or 'none'}); "
            "delete it and obtain it again",
            file=source,
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise GanzooError(
            f"IDX header declares {ndim} dimensions but is cut short", file=source
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])

    # The payload must hold exactly the declared number of values.
    dtype = _IDX_TYPES[raw[2]]
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise GanzooError(
            f"IDX file declares shape {dims}, i.e. {expected} bytes of data, but "
            f"holds {len(raw) - header}; the file is truncated or corrupt, delete "
            "it and obtain it again",
            file=source,
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or plain."""
    return parse_idx(path.read_bytes(), path)


def file_digest(path: Path, raw: bytes | None = None) -> str:
    """The SHA-256 of a file's bytes, computed once per path, mtime and size.

    ``raw`` spares reading the file again when the caller already holds it.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(
            path.read_bytes() if raw is None else raw
        ).hexdigest()
    return _DIGESTS[key]


def resize_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``resolution`` squared, antialiased."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = images.new_empty(*images.shape[:2], resolution, resolution)

    # In blocks, so that the intermediate buffers stay small for 70,000 images.
    for start in range(0, len(images), 4096):
        block = images[start : start + 4096]
        out[start : start + 4096] = F.interpolate(
            block, size=(resolution, resolution), mode="bilinear", antialias=True
        )
    return out.clamp_(0.0, 1.0)


def _idx_options(name: str) -> tuple[Option, ...]:
    return (
        Option(
            "split",
            str,
            "train",
            "split used for training; 'all' is train and test together",
            choices=("train", "test", "all"),
        ),
        Option(
            "root",
            str,
            None,
            f"folder for the files when the system has none; default "
            f"$GANZOO_DATA/{name} or ~/.cache/ganzoo/data/{name}",
            nullable=True,
        ),
        Option("download", bool, True, "download missing files where a network exists"),
        Option(
            "resolution", int, 28, "side of the images, resized once at load", minimum=1
        ),
        Option(
            "limit",
            int,
            None,
            "keep only the first N samples",
            minimum=1,
            nullable=True,
        ),
        Option(
            "classes",
            list,
            None,
            "keep only these labels (0-9)",
            nullable=True,
            item_type=int,
        ),
    )


class IdxImages(Dataset):
    """28x28 grayscale images with labels 0-9, stored as four IDX files."""

    splits = ("train", "test", "all")
    title: ClassVar[str] = ""
    system_dir: ClassVar[Path] = Path()
    urls: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        classes = values.get("classes")
        if classes is not None:
            wrong = [c for c in classes if not 0 <= c <= 9]
            if not classes or wrong:
                raise GanzooError(
                    f"expected a non-empty list of labels in 0-9, got {classes!r}",
                    key="classes",
                )

    def data_shape(self) -> DataShape:
        return DataShape("image", (1, self.resolution, self.resolution), num_classes=10)

    def data_root(self) -> Path:
        """Where the files go when the system location has none."""
        if self.root is not None:
            return Path(self.root).expanduser()
        base = os.environ.get("GANZOO_DATA")
        if base:
            return Path(base).expanduser() / self.name
        return Path.home() / ".cache" / "ganzoo" / "data" / self.name

    def load(self, split: str | None = None) -> TensorData:
        """Load ``split`` ("train", "test", "all"); by default the ``split`` option."""
        split = self.split if split is None else split
        check_split(self, split)

        # Read and check each part; "all" is train followed by test.
        parts = ("train", "test") if split == "all" else (split,)
        images, labels, digests = [], [], []
        for part in parts:
            image_path, label_path = self.locate(part)
            image_raw, label_raw = image_path.read_bytes(), label_path.read_bytes()
            part_images = parse_idx(image_raw, image_path)
            part_labels = parse_idx(label_raw, label_path)
            _check_pair(part_images, part_labels, image_path, label_path)
            images.append(part_images)
            labels.append(part_labels)
            digests += [
                file_digest(image_path, image_raw),
                file_digest(label_path, label_raw),
            ]
        pixels = np.concatenate(images) if len(images) > 1 else images[0]
        targets = np.concatenate(labels) if len(labels) > 1 else labels[0]

        # Select before converting, so that limit and classes make loading cheaper.
        if self.classes is not None:
            keep = np.isin(targets, self.classes)
            pixels, targets = pixels[keep], targets[keep]
        if self.limit is not None:
            pixels, targets = pixels[: self.limit], targets[: self.limit]

        samples = torch.from_numpy(pixels.astype(np.float32)).div_(255.0).unsqueeze_(1)
        samples = resize_images(samples, self.resolution)
        return TensorData(
            samples=samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, *digests, split, self.resolution, self.limit, self.classes
            ),
            labels=torch.from_numpy(targets.astype(np.int64)),
        )

    def locate(self, part: str) -> tuple[Path, Path]:
        """The image and label files of ``part`` ("train" or "test")."""
        for folder in (self.system_dir, self.data_root()):
            found = [_find(folder, name) for name in _FILES[part]]
            if found[0] is not None and found[1] is not None:
                return found[0], found[1]
        if not self.download:
            raise self.missing(part)
        return self.fetch(part)

    def fetch(self, part: str) -> tuple[Path, Path]:
        """Download the files of ``part`` into the data root, each atomically."""
        root = self.data_root()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self.missing(part, f"cannot create {root}: {error}") from None

        paths = []
        for name in _FILES[part]:
            path = _find(root, name)
            if path is None:
                path = root / f"{name}.gz"
                problem = self._download_one(path)
                if problem:
                    raise self.missing(part, problem)
            paths.append(path)
        return paths[0], paths[1]

    def _download_one(self, target: Path) -> str:
        """Download ``target``'s file from the first URL that works; "" on success."""
        problems = []
        for base in self.urls:
            url = base + target.name
            log.info("downloading %s to %s", url, target)
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as answer:
                    raw = answer.read()
                parse_idx(raw, url)
            except (OSError, HTTPException, ValueError, GanzooError) as error:
                problems.append(f"{url}: {error}")
                continue

            # Write next to the target and rename, so no half file is ever found.
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(raw)
                os.replace(temporary, target)
            except OSError as error:
                Path(temporary).unlink(missing_ok=True)
                return f"cannot write {target}: {error}"
            return ""
        return "downloading failed (" + "; ".join(problems) + ")"

    def missing(self, part: str, problem: str = "") -> GanzooError:
        """The error for files that are not there, saying how to obtain them."""
        names = ", ".join(f"{n}.gz" for pair in _FILES.values() for n in pair)
        looked = f"{self.system_dir} and {self.data_root()}"
        message = (
            f"{self.title} {part} files not found in {looked}"
            + (f"; {problem}" if problem else "")
            + f". {self.how_to_obtain(names)}"
        )
        if not self.download:
            message += ", or set download: true where a network exists"
        return GanzooError(message)

    def how_to_obtain(self, names: str) -> str:
        """One sentence on getting the files, ending without a full stop."""
        raise NotImplementedError


class FashionMnist(IdxImages):
    """Zalando's Fashion-MNIST: 70,000 28x28 grayscale clothing images, 10 classes."""

    name = "fashion-mnist"
    title = "Fashion-MNIST"
    options = _idx_options(name)
    system_dir = Path("/usr/share/datasets/fashion-mnist")
    urls = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

    def how_to_obtain(self, names: str) -> str:
        return (
            "Install them with `apt-get install dataset-fashion-mnist` (Debian and "
            f"Ubuntu), or put the four files {names} (gzip or plain) into "
            f"{self.data_root()}, or set root to a folder that holds them"
        )


class Mnist(IdxImages):
    """LeCun's MNIST: 70,000 28x28 grayscale handwritten digits, 10 classes."""

    name = "mnist"
    title = "MNIST"
    options = _idx_options(name)
    system_dir = Path("/usr/share/datasets/mnist")
    # LeCun's page, then the copy PyTorch hosts for torchvision, since the
    # original page often refuses automated downloads.
    urls = (
        "https://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    )

    def how_to_obtain(self, names: str) -> str:
        return (
            "No system package ships MNIST: download the four files "
            f"{names} from {self.urls[0]} and put them (gzip or plain) into "
            f"{self.data_root()}, or set root to a folder that holds them"
        )


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _check_pair(
    images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path
) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise GanzooError(
            f"expected 8-bit images of shape (N, H, W), got {images.dtype} of shape "
            f"{images.shape}",
            file=image_path,
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise GanzooError(
            f"expected {len(images)} labels to match {image_path.name}, got shape "
            f"{labels.shape}",
            file=label_path,
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise GanzooError(
            f"expected labels 0-9, found {labels.min()}..{labels.max()}",
            file=label_path,
        )
