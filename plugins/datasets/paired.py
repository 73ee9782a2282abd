"""Paired data for image-to-image translation: each target image B comes with the
input image A it is translated from.

``paired-folder`` reads the user's own pairs; ``fashion-edges`` builds an
offline task from Fashion-MNIST, whose garments are paired with their edge maps.
Both return the targets as ``samples`` and the inputs as ``inputs`` of one
:class:`ganzoo.TensorData`, and declare the input's shape in the data shape.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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

from .idx import FashionMnist
from .image_folder import _convert, _reason
from .toy import check_split

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
"""Subfolders that hold a split, in order of preference (pix2pix's data sets ship
train/, val/ and test/, some without test/)."""


def _side_options() -> tuple[Option, ...]:
    return (
        Option("resolution", int, 64, "side of the square images", minimum=1),
        Option(
            "channels",
            int,
            3,
            "target (B) channels: 1 grayscale, 3 RGB",
            choices=(1, 3),
        ),
        Option(
            "input_channels",
            int,
            3,
            "input (A) channels: 1 grayscale, 3 RGB",
            choices=(1, 3),
        ),
    )


class PairedFolder(Dataset):
    """Your own image pairs: side-by-side A|B files, or A/ and B/ folders.

    ``layout: side-by-side`` (pix2pix's format) reads every image directly in
    the folder as A on the left half and B on the right half; its width must be
    even. ``layout: folders`` reads the subfolders ``a_folder`` and
    ``b_folder`` and pairs files of the same name without extension
    (``A/0001.png`` with ``B/0001.jpg``); the two images of a pair must have one
    size, and files without a partner are skipped with a warning.
    ``direction: b-to-a`` swaps the roles. Both sides are center-cropped to a
    square and resized to ``resolution``, the same way.

    Splits: a folder with a ``train`` subfolder is split by subfolder, as
    pix2pix's data sets are: ``train/`` for training, ``test/`` (or ``val/``
    where there is no ``test/``) for evaluation, each in the chosen layout.
    Otherwise a ``test_fraction`` of the pairs is held out for the test split,
    chosen by a hash of each pair's name, so a pair stays in its split when
    files are added or removed.
    """

    name = "paired-folder"
    splits = ("train", "test")
    options = (
        Option(
            "path", str, REQUIRED, "folder of pairs; relative to the current directory"
        ),
        Option(
            "layout",
            str,
            "side-by-side",
            "side-by-side: A|B in one image; folders: A/ and B/ matched by name",
            choices=("side-by-side", "folders"),
        ),
        Option(
            "direction",
            str,
            "a-to-b",
            "translate A into B, or B into A",
            choices=("a-to-b", "b-to-a"),
        ),
        Option("a_folder", str, "A", "subfolder of the A images (layout: folders)"),
        Option("b_folder", str, "B", "subfolder of the B images (layout: folders)"),
        Option(
            "test_fraction",
            float,
            0.1,
            "pairs held out for the test split when there is no train/ subfolder",
            minimum=0.0,
            maximum=0.9,
        ),
        *_side_options(),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.folder = Path(self.path).expanduser().absolute()

    def data_shape(self) -> DataShape:
        """The shape from the options, after checking that the folder exists."""
        self._checked(self.folder)
        size = self.resolution
        return DataShape(
            "image",
            (self.channels, size, size),
            input_shape=(self.input_channels, size, size),
        )

    def split_folder(self, split: str) -> Path:
        """The folder that holds ``split``: a subfolder, or the whole folder."""
        root = self._checked(self.folder)
        if not (root / "train").is_dir():
            return root
        for name in SPLIT_FOLDERS[split]:
            if (root / name).is_dir():
                return root / name
        raise GanzooError(
            f"{root} has a train/ subfolder, so its splits are subfolders, but "
            f"it has no {' or '.join(n + '/' for n in SPLIT_FOLDERS[split])} for "
            f"the {split} split",
            key="path",
        )

    def load(self, split: str = "train") -> TensorData:
        """Decode every pair of ``split``; A as ``inputs``, B as ``samples``."""
        check_split(self, split)
        folder = self.split_folder(split)
        pairs = self._pairs(folder)
        if folder == self.folder:
            pairs = [
                pair for pair in pairs if self._held_out(pair[0]) == (split == "test")
            ]

        size = self.resolution
        inputs = np.empty((len(pairs), size, size, self.input_channels), np.uint8)
        targets = np.empty((len(pairs), size, size, self.channels), np.uint8)
        names, digests = [], []
        skipped: dict[str, list[Path]] = {}
        for name, a_path, b_path in pairs:
            try:
                a_raw = a_path.read_bytes()
                b_raw = a_raw if b_path == a_path else b_path.read_bytes()
                a_image, b_image = self._decode_pair(a_raw, b_raw, a_path, b_path)
            except GanzooError:
                raise
            # Pillow raises many types for damaged files: any skips the pair.
            except Exception as error:
                skipped.setdefault(_reason(error), []).append(a_path)
                continue
            if self.direction == "b-to-a":
                a_image, b_image = b_image, a_image
            index = len(names)
            inputs[index] = _square(a_image, self.input_channels, size)
            targets[index] = _square(b_image, self.channels, size)
            names.append(name)
            digests.append(hashlib.sha256(a_raw + b"\0" + b_raw).hexdigest())

        if skipped:
            log.warning(
                "skipped %d of %d pairs in %s that are not readable images (%s)",
                sum(len(paths) for paths in skipped.values()),
                len(pairs),
                folder,
                ", ".join(f"{len(v)} {k}" for k, v in sorted(skipped.items())),
            )
        if not names:
            raise GanzooError(
                f"no usable {self.layout} pair for the {split} split in {folder} "
                f"({len(pairs)} looked at)",
                key="path",
            )

        def tensor(pixels: np.ndarray) -> torch.Tensor:
            chosen = torch.from_numpy(pixels[: len(names)]).permute(0, 3, 1, 2)
            return chosen.contiguous().float().div_(255.0)

        return TensorData(
            samples=tensor(targets),
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name,
                split,
                names,
                digests,
                {k: v for k, v in self.options.items() if k != "path"},
            ),
            inputs=tensor(inputs),
        )

    # Finding and decoding pairs.

    def _pairs(self, folder: Path) -> list[tuple[str, Path, Path]]:
        """(name, A file, B file) for every candidate pair in ``folder``, sorted."""
        if self.layout == "side-by-side":
            return [(path.name, path, path) for path in _files(folder)]

        a_files = self._by_stem(self._checked(folder / self.a_folder))
        b_files = self._by_stem(self._checked(folder / self.b_folder))
        lonely = sorted(set(a_files) ^ set(b_files))
        if lonely:
            log.warning(
                "skipped %d files in %s without a partner of the same name in the "
                "other folder (the first: %s)",
                len(lonely),
                folder,
                (a_files.get(lonely[0]) or b_files[lonely[0]]).relative_to(folder),
            )
        return [
            (stem, a_files[stem], b_files[stem])
            for stem in sorted(a_files.keys() & b_files.keys())
        ]

    def _by_stem(self, folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in _files(folder):
            if path.stem in found:
                raise GanzooError(
                    f"{found[path.stem].name} and {path.name} in {folder} have one "
                    "name without extension, so neither can be paired by name; "
                    "rename or remove one",
                    key="path",
                )
            found[path.stem] = path
        return found

    def _decode_pair(
        self, a_raw: bytes, b_raw: bytes, a_path: Path, b_path: Path
    ) -> tuple[Image.Image, Image.Image]:
        """The A and B images, of one size; a size mismatch is a GanzooError."""
        if a_path == b_path:
            whole = _open(a_raw)
            width, height = whole.size
            if width % 2:
                raise GanzooError(
                    f"{a_path} is {width}x{height} pixels: an odd width does not "
                    "split into two equal halves A|B; crop it to an even width or "
                    "use layout: folders",
                    key="path",
                )
            half = width // 2
            return whole.crop((0, 0, half, height)), whole.crop(
                (half, 0, width, height)
            )
        a_image, b_image = _open(a_raw), _open(b_raw)
        if a_image.size != b_image.size:
            (aw, ah), (bw, bh) = a_image.size, b_image.size
            raise GanzooError(
                f"{a_path} is {aw}x{ah} pixels but {b_path} is {bw}x{bh}; the two "
                "images of a pair must have one size",
                key="path",
            )
        return a_image, b_image

    def _held_out(self, name: str) -> bool:
        """Whether the pair ``name`` belongs to the test split (a stable choice)."""
        digest = hashlib.sha256(name.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.test_fraction

    def _checked(self, folder: Path) -> Path:
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise GanzooError(
                f"{folder} {problem}; expected a folder of image pairs (a relative "
                f"path is taken from the current directory, {Path.cwd()})",
                key="path",
            )
        return folder


def _files(folder: Path) -> list[Path]:
    """The visible files directly in ``folder``, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
    )


def _open(raw: bytes) -> Image.Image:
    with Image.open(io.BytesIO(raw)) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    return image


def _square(image: Image.Image, channels: int, size: int) -> np.ndarray:
    """Center-crop to a square, resize to ``size`` and convert, as uint8 HWC."""
    image = _convert(image, "L" if channels == 1 else "RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)


# Edges to garments.


def sobel_edges(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """Binary edge maps of (N, C, H, W) images in [0, 1]: 1 where the Sobel
    gradient magnitude exceeds ``threshold`` times that of a black-to-white step.

    Deterministic: no randomness, no learned part. Outside the image counts as
    black, the background of the 28x28 data sets.
    """
    # In blocks that stay in the cache, and by shifted sums of the separable
    # kernels: on a CPU both are several times faster than one convolution.
    return torch.cat([_sobel_block(b, threshold) for b in images.split(1024)])


def _sobel_block(images: torch.Tensor, threshold: float) -> torch.Tensor:
    padded = F.pad(images, (1, 1, 1, 1))
    # Smooth [1, 2, 1] across each derivative's direction, then difference.
    down = padded[..., :-2, :] + padded[..., 2:, :]
    down.add_(padded[..., 1:-1, :], alpha=2)
    across = padded[..., :, :-2] + padded[..., :, 2:]
    across.add_(padded[..., :, 1:-1], alpha=2)
    gx = down[..., 2:] - down[..., :-2]
    gy = across[..., 2:, :] - across[..., :-2, :]
    squared = gx.square_().add_(gy.square_())
    # A full step from 0 to 1 gives a magnitude of 4 (the kernel's positive sum).
    return (squared > (4.0 * threshold) ** 2).to(images.dtype)


_FORWARDED = ("root", "download", "resolution", "limit", "classes")
"""Options passed on unchanged to the fashion-mnist data set."""


class FashionEdges(Dataset):
    """Edges to garments: Fashion-MNIST images paired with their Sobel edge maps.

    A built-in translation task that needs no download beyond Fashion-MNIST
    itself: the input A is the thresholded Sobel edge map of a garment (white
    edges on black), the target B the garment. The images come from the
    ``fashion-mnist`` data set with the same split, files and options, so its
    train (60,000) and test (10,000) splits are this set's; the labels are the
    garments' classes.
    """

    name = "fashion-edges"
    splits = ("train", "test")
    options = (
        Option(
            "split",
            str,
            "train",
            "split used for training",
            choices=("train", "test"),
        ),
        *(o for o in FashionMnist.options if o.name in _FORWARDED),
        Option(
            "threshold",
            float,
            0.25,
            "edge where the gradient exceeds this fraction of a black-to-white step",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )

    def base_dataset(self) -> FashionMnist:
        """The fashion-mnist data set with the forwarded options."""
        return FashionMnist.create(**{name: getattr(self, name) for name in _FORWARDED})

    def data_shape(self) -> DataShape:
        side = self.resolution
        return DataShape(
            "image", (1, side, side), num_classes=10, input_shape=(1, side, side)
        )

    def load(self, split: str | None = None) -> TensorData:
        """The pairs of ``split`` ("train" or "test"); by default the option."""
        split = self.split if split is None else split
        check_split(self, split)
        garments = self.base_dataset().load(split)
        return TensorData(
            samples=garments.samples,
            shape=self.data_shape(),
            fingerprint=fingerprint(
                self.name, garments.fingerprint, self.threshold, split
            ),
            labels=garments.labels,
            inputs=sobel_edges(garments.samples, self.threshold),
        )
