"""A folder of the user's own images, optionally labeled by subfolder.

Every image is decoded once, at load time: converted to grayscale or RGB,
center-cropped to a square and resized to the requested resolution. Files that
are not images, are damaged or truncated, or claim a size too large to decode,
are skipped with one warning that counts them by reason; a folder with nothing
usable left is an error.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from ganzoo import (
    REQUIRED,
    Dataset,
    DataShape,
    GanzooError,
    Option,
    TensorData,
    fingerprint,
)

from .toy import check_split

log = logging.getLogger(__name__)

_NOT_AN_IMAGE = (Image.UnidentifiedImageError,)
_TOO_LARGE = (Image.DecompressionBombError, MemoryError)


class ImageFolder(Dataset):
    """Your own images from a folder, center-cropped and resized; labels optional."""

    name = "image-folder"
    splits = ("train",)
    options = (
        Option(
            "path", str, REQUIRED, "folder of images; relative to the current directory"
        ),
        Option("resolution", int, 64, "side of the square images", minimum=1),
        Option("channels", int, 3, "1 for grayscale, 3 for RGB", choices=(1, 3)),
        Option(
            "labels",
            bool,
            False,
            "label images by their immediate subfolder, classes sorted by name; "
            "images directly in the folder are then not used",
        ),
        Option("recursive", bool, True, "also read images in nested subfolders"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.folder = Path(self.path).expanduser().absolute()

    def data_shape(self) -> DataShape:
        """The shape from the options, after checking that the folder exists."""
        self._checked_folder()
        classes = self.class_names() if self.labels else []
        size = self.resolution
        return DataShape("image", (self.channels, size, size), num_classes=len(classes))

    def class_names(self) -> list[str]:
        """The sorted names of the immediate, non-hidden subfolders."""
        folder = self._checked_folder()
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_dir() and not p.name.startswith(".")
        )
        if not names:
            raise GanzooError(
                f"labels: true needs one subfolder per class in {folder}, "
                "but it has none; set labels: false or sort the images into "
                "subfolders",
                key="labels",
            )
        return names

    def image_files(self) -> list[tuple[Path, int]]:
        """Every candidate file with its class index (-1 when unlabeled), sorted."""
        if self.labels:
            groups = [(self.folder / n, i) for i, n in enumerate(self.class_names())]
        else:
            groups = [(self._checked_folder(), -1)]

        files = []
        for directory, label in groups:
            entries = directory.rglob("*") if self.recursive else directory.iterdir()
            for path in sorted(entries):
                hidden = any(
                    part.startswith(".") for part in path.relative_to(self.folder).parts
                )
                if path.is_file() and not hidden:
                    files.append((path, label))
        return files

    def load(self, split: str = "train") -> TensorData:
        """Decode every image in the folder; the only split is "train"."""
        check_split(self, split)
        files = self.image_files()
        mode = "L" if self.channels == 1 else "RGB"
        size = self.resolution

        # Decode into one preallocated array; skipped files leave no gap.
        pixels = np.empty((len(files), size, size, self.channels), dtype=np.uint8)
        labels, names, digests = [], [], []
        skipped: dict[str, list[Path]] = {}
        for path, label in files:
            try:
                raw = path.read_bytes()
                image = _decode(raw, mode, size)
            # Pillow raises many types for crafted or damaged files (OSError,
            # ValueError, SyntaxError, struct.error, ...): any of them skips
            # the file, never the folder.
            except Exception as error:
                skipped.setdefault(_reason(error), []).append(path)
                continue
            pixels[len(labels)] = image.reshape(size, size, self.channels)
            labels.append(label)
            names.append(path.relative_to(self.folder).as_posix())
            digests.append(hashlib.sha256(raw).hexdigest())

        if skipped:
            first = min(path for paths in skipped.values() for path in paths)
            log.warning(
                "skipped %d of %d files in %s that are not readable images "
                "(%s; the first: %s)",
                sum(len(paths) for paths in skipped.values()),
                len(files),
                self.folder,
                ", ".join(f"{len(v)} {k}" for k, v in sorted(skipped.items())),
                first.relative_to(self.folder),
            )
        if not labels:
            raise GanzooError(
                f"no usable image in {self.folder} ({len(files)} files looked at, "
                f"none decodable{'' if self.recursive else ', subfolders not read'})",
                key="path",
            )

        samples = torch.from_numpy(pixels[: len(labels)]).permute(0, 3, 1, 2)
        samples = samples.contiguous().float().div_(255.0)
        classes = self.class_names() if self.labels else []
        return TensorData(
            samples=samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, names, digests, classes, size, self.channels, self.recursive
            ),
            labels=torch.tensor(labels, dtype=torch.int64) if self.labels else None,
        )

    def _checked_folder(self) -> Path:
        if not self.folder.is_dir():
            problem = "is not a folder" if self.folder.exists() else "does not exist"
            raise GanzooError(
                f"{self.folder} {problem}; expected a folder of images (a relative "
                f"path is taken from the current directory, {Path.cwd()})",
                key="path",
            )
        return self.folder


def _reason(error: Exception) -> str:
    if isinstance(error, _NOT_AN_IMAGE):
        return "not an image"
    if isinstance(error, _TOO_LARGE):
        return "too large to decode"
    return "damaged or truncated"


def _decode(raw: bytes, mode: str, size: int) -> np.ndarray:
    """Decode one file to a ``size`` x ``size`` uint8 array in ``mode``."""
    with Image.open(io.BytesIO(raw)) as opened:
        image = ImageOps.exif_transpose(opened)
        image = _convert(image, mode)

        # Crop first: resizing with a box would let the filter reach past its edges.
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(image, dtype=np.uint8)


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """Bring any Pillow mode to "L" or "RGB" without clipping or stray alpha."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit grayscale: convert() would clip at 255, so scale to 8 bits first.
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(values.clip(0, 255).round().astype(np.uint8))
    transparent = "A" in image.getbands() or "transparency" in image.info
    if transparent:
        # Transparent pixels hold arbitrary colors; show them as a white background.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert(mode)
