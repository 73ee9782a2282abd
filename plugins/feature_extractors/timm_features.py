"""Features from any timm model with a local checkpoint (DINO, CLIP-style, ResNets).

The model is built without its classifier (``num_classes=0``), so its output is
the globally pooled ``forward_features``. Nothing is downloaded: the weights
must be a local file, for example ImageNet weights fetched beforehand with timm
on a machine with internet access. timm is imported only when this extractor is
used, so listing plugins stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import REQUIRED, GanzooError, Option

from ..architectures.timm_backbone import load_backbone_weights, require_timm_model
from ._common import WeightsFileExtractor

BATCH_SIZE = 64
"""Images per forward pass at the model's resolution."""


class TimmFeatures(WeightsFileExtractor):
    """Pooled features of any timm model loaded from a local checkpoint; no logits."""

    name = "timm"
    options = (
        Option("model", str, "resnet18", "timm model name, e.g. 'resnet18'"),
        Option(
            "weights",
            str,
            REQUIRED,
            "local state_dict of the model (timm's own or torch.save(state_dict))",
        ),
        Option(
            "resolution",
            int,
            224,
            "side the images are resized to before the model",
            minimum=16,
        ),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        require_timm_model(self.model, key="model")
        self.path = Path(self.weights).expanduser()
        if not self.path.is_file():
            raise GanzooError(
                f"weights file {str(self.path)!r} does not exist; give the path of a "
                f"state_dict saved for timm model {self.model!r} (relative to the "
                "working directory); nothing is downloaded",
                key="weights",
            )
        self._network: nn.Module | None = None
        self._normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def network(self) -> nn.Module:
        """The model without classifier, weights loaded, in eval mode."""
        if self._network is None:
            import timm
            from timm.data import resolve_model_data_config

            model = timm.create_model(self.model, pretrained=False, num_classes=0)
            load_backbone_weights(model, self.path, self.model)
            config = resolve_model_data_config(model)
            self._normalisation = (tuple(config["mean"]), tuple(config["std"]))
            model.requires_grad_(False)
            self._network = model.eval()
        return self._network

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The per-channel mean and std of the model's pretrained configuration."""
        self.network()
        assert self._normalisation is not None
        return self._normalisation

    # The FeatureExtractor contract.

    def preprocessing(self) -> str:
        mean, std = self.normalisation()
        shown = ", ".join(f"{m:.4g}/{s:.4g}" for m, s in zip(mean, std, strict=True))
        return (
            f"bilinear antialiased resize to {self.resolution}x{self.resolution}, "
            f"grayscale replicated to RGB, normalised with {self.model}'s "
            f"pretrained mean/std per channel ({shown})"
        )

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``features`` (N, D) of (N, 1 or 3, H, W) images; D depends on the model."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise GanzooError(
                f"feature extractor 'timm' takes (N, 1 or 3, H, W) images, got "
                f"{tuple(images.shape)}"
            )
        network = self.network().to(images.device)
        mean, std = (
            torch.tensor(values, device=images.device).view(1, 3, 1, 1)
            for values in self.normalisation()
        )
        size = (self.resolution, self.resolution)
        features = []
        for batch in images.split(BATCH_SIZE):
            batch = batch.float().expand(-1, 3, -1, -1)
            if batch.shape[-2:] != size:
                batch = F.interpolate(batch, size=size, mode="bilinear", antialias=True)
            features.append(network((batch - mean) / std).flatten(1))
        return {"features": torch.cat(features)}
