"""The project's own 28x28 classifiers, as feature extractors (also for torch-fidelity).

``fashion-classifier`` is a small CNN trained on Fashion-MNIST by
``scripts/train_classifier.py``; its weights ship in ``plugins/weights/``.
``mnist-classifier`` is the same network trained on MNIST with
``--dataset mnist``; no checkpoint ships for it, since the MNIST files are not
part of the system packages.

Both are registered with torch-fidelity under the same names when this module is
imported, so ``torch_fidelity.calculate_metrics(feature_extractor=
"fashion-classifier", ...)`` scores with exactly the network ganzoo uses.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import (
    FEATURE_EXTRACTORS_REGISTRY,
    register_feature_extractor,
)

from ganzoo import DataShape, FeatureExtractor, GanzooError, Option

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
"""Where the shipped checkpoints live (``plugins/weights/``)."""

RESOLUTION = 28
FEATURE_DIM = 256
NUM_CLASSES = 10
BATCH_SIZE = 1000
"""Images per forward pass inside ``extract``, to bound memory."""


class SmallCnn(nn.Module):
    """Three strided conv blocks and two linear layers for 28x28 grayscale images.

    conv 5x5/2 (32) -> conv 3x3/2 (64) -> conv 3x3/2 (128) -> fc 256 -> fc 10,
    with batch norm after each convolution and dropout before each linear layer.
    Strided convolutions stand in for pooling: on a CPU the full-size feature
    maps cost far more than they add on 28x28 images, and this keeps training
    to a few minutes. The input normalisation (the training set's pixel mean and
    std) is stored as buffers, so a checkpoint carries all it needs.
    """

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.0))
        self.register_buffer("std", torch.tensor(1.0))
        self.body = nn.Sequential(
            _conv_block(1, 32, kernel_size=5, stride=2),  # 14x14
            _conv_block(32, 64, stride=2),  # 7x7
            _conv_block(64, 128, stride=2),  # 4x4
            nn.Flatten(),
        )
        self.embed = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(128 * 4 * 4, FEATURE_DIM), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(FEATURE_DIM, NUM_CLASSES)
        )

    def features_and_logits(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate activations (N, 256) and logits (N, 10) of (N, 1, 28, 28)."""
        features = self.embed(self.body((images - self.mean) / self.std))
        return features, self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[1]


def _conv_block(
    channels_in: int, channels_out: int, kernel_size: int = 3, stride: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            channels_in,
            channels_out,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    )


def read_network(raw: bytes, source: Path) -> SmallCnn:
    """A network in eval mode from the bytes of a state_dict file."""
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable files
        raise GanzooError(
            f"cannot read weights file {str(source)!r} as a PyTorch state_dict "
            f"({type(error).__name__}); train one with scripts/train_classifier.py"
        ) from None
    network = SmallCnn()
    try:
        network.load_state_dict(dict(state))
    except (RuntimeError, TypeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise GanzooError(
            f"weights file {str(source)!r} does not fit the 28x28 classifier "
            f"({reason[:120]}); train one with scripts/train_classifier.py"
        ) from None
    network.requires_grad_(False)
    return network.eval()


class Classifier(FeatureExtractor):
    """A 28x28 grayscale classifier; its penultimate layer gives the features.

    ``extract`` takes (N, 1, 28, 28) images in [0, 1] and returns ``features``
    (N, 256) and ``logits`` (N, 10). Stacked data (three images on the three
    channels) is not one image: the caller scores it channel by channel with
    :meth:`classify_channels`, and ``extract`` refuses three channels.
    """

    dataset: ClassVar[str] = ""
    weights_file: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.path = self.locate()
        self._loaded: tuple[tuple[int, int], str, SmallCnn] | None = None

    @classmethod
    def default_weights(cls) -> Path:
        return WEIGHTS_DIR / cls.weights_file

    def locate(self) -> Path:
        """The weights file; GanzooError, saying how to make it, when it is missing."""
        if self.weights is not None:
            path = Path(self.weights).expanduser()
            if not path.is_file():
                raise GanzooError(
                    f"weights file {str(path)!r} does not exist; give the path of a "
                    f"state_dict saved by scripts/train_classifier.py (relative to "
                    f"the working directory), or weights: null for the shipped "
                    f"{self.weights_file}",
                    key="weights",
                )
            return path
        path = self.default_weights()
        if not path.is_file():
            raise GanzooError(
                f"{self.name!r} has no weights: {path} does not exist. Train them "
                f"with `python scripts/train_classifier.py --dataset {self.dataset}` "
                "(a few minutes on a CPU), or set weights to a checkpoint"
            )
        return path

    def network(self) -> SmallCnn:
        """The network in eval mode, read again whenever the file has changed."""
        return self._load()[2]

    def _load(self) -> tuple[tuple[int, int], str, SmallCnn]:
        try:
            stat = self.path.stat()
        except OSError as error:
            raise GanzooError(
                f"cannot read weights file {str(self.path)!r}: {error}"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._loaded is None or self._loaded[0] != stamp:
            raw = self.path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            self._loaded = (stamp, digest, read_network(raw, self.path))
        return self._loaded

    # The FeatureExtractor contract.

    def check(self, data: DataShape) -> None:
        if data.kind != "image":
            raise GanzooError(
                f"feature extractor {self.name!r} takes images, but the data are "
                f"{data.describe()}; point data sets are scored on the samples "
                "themselves, with no feature extractor"
            )
        channels, height, width = data.shape
        if (height, width) != (RESOLUTION, RESOLUTION):
            raise GanzooError(
                f"feature extractor {self.name!r} takes 28x28 images, but the data "
                f"are {data.describe()}; use 'inception-v3-compat' or 'timm' for "
                "other sizes, or set the data set's resolution to 28"
            )
        if channels not in (1, 3):
            raise GanzooError(
                f"feature extractor {self.name!r} takes 1-channel images (or "
                f"3-channel stacked data, scored channel by channel), but the data "
                f"are {data.describe()}; use 'inception-v3-compat' or 'timm' instead"
            )

    def weights_hash(self) -> str:
        """The first 16 hex digits of the SHA-256 of the weights file in use."""
        return self._load()[1][:16]

    def preprocessing(self) -> str:
        return (
            "none: 28x28 grayscale in [0, 1] taken as is, normalised with the "
            "training set's pixel mean and std (stored in the weights); stacked "
            "3-channel data is classified channel by channel"
        )

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features`` (N, 256) and ``logits`` (N, 10) of (N, 1, 28, 28) images."""
        _check_images(images, self.name)
        if images.shape[1] != 1:
            raise GanzooError(
                f"feature extractor {self.name!r} takes (N, 1, 28, 28) images, got "
                f"{tuple(images.shape)}; stacked data is scored channel by channel "
                "with classify_channels"
            )
        network = self.network().to(images.device)
        features, logits = [], []
        for batch in images.split(BATCH_SIZE):
            batch_features, batch_logits = network.features_and_logits(batch.float())
            features.append(batch_features)
            logits.append(batch_logits)
        return {"features": torch.cat(features), "logits": torch.cat(logits)}

    @torch.no_grad()
    def classify_channels(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, 10) of each channel of (N, C, 28, 28) images, e.g. stacked."""
        _check_images(images, self.name)
        count, channels = images.shape[:2]
        single = images.reshape(count * channels, 1, RESOLUTION, RESOLUTION)
        logits = self.extract(single)["logits"]
        return logits.reshape(count, channels, NUM_CLASSES)


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.dim() != 4 or tuple(images.shape[2:]) != (RESOLUTION, RESOLUTION):
        raise GanzooError(
            f"feature extractor {name!r} takes (N, C, 28, 28) images, got "
            f"{tuple(images.shape)}; use 'inception-v3-compat' or 'timm' for other "
            "sizes"
        )


_WEIGHTS_OPTION_HELP = (
    "state_dict saved by scripts/train_classifier.py; null for the file in "
    "plugins/weights/"
)


class FashionClassifier(Classifier):
    """Small CNN trained on Fashion-MNIST (~92% test accuracy); 256-d features."""

    name = "fashion-classifier"
    dataset = "fashion-mnist"
    weights_file = "fashion-classifier.pt"
    options = (Option("weights", str, None, _WEIGHTS_OPTION_HELP, nullable=True),)


class MnistClassifier(Classifier):
    """Small CNN trained on MNIST (train it first; no weights ship); 256-d features."""

    name = "mnist-classifier"
    dataset = "mnist"
    weights_file = "mnist-classifier.pt"
    options = (Option("weights", str, None, _WEIGHTS_OPTION_HELP, nullable=True),)


# torch-fidelity.


class FidelityClassifier(FeatureExtractorBase):
    """The same network behind torch-fidelity's feature extractor interface.

    torch-fidelity hands over uint8 images of shape (B, 3, H, W). They are turned
    back into grayscale by averaging the channels (exact for replicated gray),
    resized to 28x28 if needed (bilinear, antialiased) and scaled to [0, 1].
    ``features`` serves FID, KID and precision/recall, ``logits`` the Inception
    Score. ``feature_extractor_weights_path`` overrides the shipped weights.
    """

    plugin: ClassVar[type[Classifier]] = Classifier

    def __init__(
        self,
        name: str,
        features_list: list[str] | tuple[str, ...],
        feature_extractor_weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        extractor = self.plugin.create(weights=feature_extractor_weights_path)
        self.network = extractor.network()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        # Compiling a network this small saves nothing worth the compile time.
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, RESOLUTION, RESOLUTION, dtype=torch.uint8)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name} expects uint8 images of shape (B, 3, H, W), got "
                f"{images.dtype} of shape {tuple(images.shape)}"
            )
        gray = images.float().mean(dim=1, keepdim=True) / 255.0
        if gray.shape[-2:] != (RESOLUTION, RESOLUTION):
            gray = F.interpolate(
                gray, size=(RESOLUTION, RESOLUTION), mode="bilinear", antialias=True
            ).clamp(0.0, 1.0)
        features, logits = self.network.features_and_logits(gray)
        outputs = {"features": features, "logits": logits}
        return tuple(outputs[name] for name in self.features_list)


class FidelityFashionClassifier(FidelityClassifier):
    """``fashion-classifier`` for torch-fidelity."""

    plugin = FashionClassifier


class FidelityMnistClassifier(FidelityClassifier):
    """``mnist-classifier`` for torch-fidelity."""

    plugin = MnistClassifier


def register_with_torch_fidelity() -> None:
    """Make the classifiers known to torch-fidelity; a name already taken is kept.

    Safe to call any number of times. A name already registered (by an earlier
    import of this module under another package name, or by someone else) is left
    as it is, since torch-fidelity cannot unregister.
    """
    for cls in (FidelityFashionClassifier, FidelityMnistClassifier):
        name = cls.plugin.name
        existing = FEATURE_EXTRACTORS_REGISTRY.get(name)
        if existing is None:
            register_feature_extractor(name, cls)
        elif existing.__qualname__ != cls.__qualname__:
            log.warning(
                "torch-fidelity already has a feature extractor named %r (%s.%s); "
                "ganzoo's is not registered",
                name,
                existing.__module__,
                existing.__qualname__,
            )


register_with_torch_fidelity()
