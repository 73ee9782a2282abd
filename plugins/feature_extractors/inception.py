"""torch-fidelity's Inception-v3, the network behind published FID, KID and IS.

The weights are the TF1 Inception graph of 2015-12-05 converted to PyTorch by
torch-fidelity. They are never downloaded here: the file is taken from the
``weights`` option, else from ``$GANZOO_INCEPTION_WEIGHTS``, else from the torch
hub cache where torch-fidelity itself would have put it. On a machine without
internet access, copy the file there beforehand.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)

from ganzoo import GanzooError, Option

from ._common import WeightsFileExtractor

ENV_VAR = "GANZOO_INCEPTION_WEIGHTS"
WEIGHTS_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]
FEATURES = ("2048", "logits_unbiased")
"""Pool features for FID, KID and precision/recall; logits without bias for IS."""

BATCH_SIZE = 50
"""Images per forward pass: a batch at 299x299 needs about 20 MB per image."""


def hub_checkpoint() -> Path:
    """Where torch-fidelity caches the weights: ``$TORCH_HOME/hub/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def random_inception_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict of the same network with random weights, built offline.

    For tests and for trying the pipeline on machines without the real file;
    scores computed with it mean nothing. Convolutions get He initialisation so
    that activations neither vanish nor explode through the 90-odd layers.
    """

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return None

    # torch.load reads an empty mapping from memory, so nothing is downloaded.
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = Unloaded("inception-v3-compat", ["2048"], empty)
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return network.state_dict()


class InceptionV3Compat(WeightsFileExtractor):
    """torch-fidelity's TF1-exact Inception-v3: 2048-d pool features, IS logits."""

    name = "inception-v3-compat"
    options = (
        Option(
            "weights",
            str,
            None,
            f"{WEIGHTS_FILE} path; null for ${ENV_VAR}, then the torch hub cache",
            nullable=True,
        ),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.path = self.locate()
        self._network: FeatureExtractorInceptionV3 | None = None

    def locate(self) -> Path:
        """The weights file, or GanzooError saying where to put it."""
        if self.weights is not None:
            given, source = self.weights, "the weights option"
        else:
            given, source = os.environ.get(ENV_VAR, ""), f"${ENV_VAR}"
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise GanzooError(
                    f"Inception weights {str(path)!r} (from {source}) do not exist; "
                    f"give the path of {WEIGHTS_FILE}, downloaded from "
                    f"{URL_INCEPTION_V3}",
                    key="weights" if self.weights is not None else None,
                )
            return path
        path = hub_checkpoint()
        if not path.is_file():
            raise GanzooError(
                f"Inception weights not found: put {WEIGHTS_FILE} into "
                f"{path.parent}/ (download it from {URL_INCEPTION_V3} on a machine "
                f"with internet access), or set ${ENV_VAR} or the weights option "
                "to its path; ganzoo never downloads it"
            )
        return path

    def network(self) -> FeatureExtractorInceptionV3:
        """torch-fidelity's module with the weights loaded, in eval mode."""
        if self._network is None:
            try:
                self._network = FeatureExtractorInceptionV3(
                    self.name, list(FEATURES), str(self.path)
                )
            except Exception as error:  # torch raises several types for bad files
                reason = (
                    str(error).strip().splitlines()[0] if str(error).strip() else ""
                )
                raise GanzooError(
                    f"cannot load Inception weights from {str(self.path)!r} "
                    f"({type(error).__name__}: {reason[:120]}); expected "
                    f"{WEIGHTS_FILE} from {URL_INCEPTION_V3}"
                ) from None
        return self._network

    # The FeatureExtractor contract.

    def preprocessing(self) -> str:
        return (
            "TF1-compatible bilinear resize to 299x299, grayscale replicated to "
            "RGB, uint8 quantisation (round(255 x)), then (x - 128) / 128"
        )

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features`` (N, 2048) and ``logits`` (N, 1008, unbiased) of images."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GanzooError(
                f"feature extractor {self.name!r} takes (N, 1 or 3, H, W) images, "
                f"got {tuple(images.shape)}"
            )
        network = self.network().to(images.device)
        features, logits = [], []
        for batch in images.split(BATCH_SIZE):
            pixels = (batch.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
            if pixels.shape[1] == 1:
                pixels = pixels.expand(-1, 3, -1, -1)
            pool, unbiased = network(pixels)
            features.append(pool)
            logits.append(unbiased)
        return {"features": torch.cat(features), "logits": torch.cat(logits)}
