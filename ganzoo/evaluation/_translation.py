"""Scores of image-to-image translation on held-out pairs: L1, PSNR, SSIM and FID.

A translation run is scored on the pairs (A, B) of the reference split (the
test split where there is one): every input A is translated, and the outputs
G(A) are compared with their own targets B pixel by pixel (L1, PSNR, SSIM) and,
as a set, with the reference split's targets by the recipe's metrics on the
recipe's features (by default FID). Outputs are rounded to 8-bit levels first,
as saved images are. The record has the structure of every other record, so
the leaderboard ranks it with the other translation runs of its data set.

The pixel scores, on images in [0, 1]:

- ``l1``: the mean absolute difference over pixels, channels and images;
- ``psnr``: 10 log10(1 / MSE) per image, averaged over images; an image equal
  to its target would be infinite, so each image's MSE is floored at 1e-10
  (100 dB);
- ``ssim``: Wang et al. 2004's structural similarity with an 11x11 Gaussian
  window of standard deviation 1.5, K1 = 0.01, K2 = 0.03 and data range 1, on
  the window positions inside the image (no padding), averaged over positions
  and channels per image, then over images. Images smaller than 11 pixels use
  the largest odd window that fits, and the record says which.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._plugin import Dataset, SampleSet
from .._registry import Registry, build_registry
from ..recipes import Recipe
from ..training._translation import LoadedTranslator, load_translator, translate_images
from ._scoring import NonFiniteError, Scorer, quantize

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("fid",)
"""Set scores of a translation run when the recipe names none."""

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)
PSNR_FLOOR_MSE = 1e-10


# Pixel scores.


def l1_distance(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image, (N,), for (N, C, H, W) in [0, 1]."""
    _check_pairs(outputs, targets)
    return (outputs.double() - targets.double()).abs().flatten(1).mean(dim=1)


def psnr(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, (N,), data range 1."""
    _check_pairs(outputs, targets)
    mse = (outputs.double() - targets.double()).square().flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp(min=PSNR_FLOOR_MSE))


def ssim_window(height: int, width: int) -> int:
    """The SSIM window side for an image: 11, or the largest odd side that fits."""
    side = min(SSIM_WINDOW, height, width)
    return side if side % 2 else side - 1


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps, float64."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def ssim(
    outputs: torch.Tensor, targets: torch.Tensor, *, block: int = 1000
) -> torch.Tensor:
    """Structural similarity per image, (N,), for (N, C, H, W) in [0, 1].

    The local means, variances and covariance are Gaussian-weighted averages
    over the window (the population statistics of Wang et al. 2004, not the
    sample ones), computed with the separable kernel in float64.
    """
    _check_pairs(outputs, targets)
    _, channels, height, width = outputs.shape
    size = ssim_window(height, width)
    if size < 1:
        raise ValueError(f"images of {height}x{width} pixels have no SSIM window")
    kernel = gaussian_kernel(size, SSIM_SIGMA)
    c1, c2 = (SSIM_K[0]) ** 2, (SSIM_K[1]) ** 2
    parts = []
    for start in range(0, len(outputs), block):
        x = outputs[start : start + block].double()
        y = targets[start : start + block].double()

        # The five local statistics, blurred together as 5 * C channels.
        maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        groups = maps.shape[1]
        rows = kernel.view(1, 1, size, 1).expand(groups, 1, size, 1)
        cols = kernel.view(1, 1, 1, size).expand(groups, 1, 1, size)
        blurred = F.conv2d(F.conv2d(maps, rows, groups=groups), cols, groups=groups)
        mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
        var_x, var_y = xx - mu_x.square(), yy - mu_y.square()
        cov = xy - mu_x * mu_y

        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
        parts.append((numerator / denominator).flatten(1).mean(dim=1))
    return torch.cat(parts)


def pixel_scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """``l1``, ``psnr`` and ``ssim`` of outputs against their targets, means."""
    return {
        "l1": float(l1_distance(outputs, targets).mean()),
        "psnr": float(psnr(outputs, targets).mean()),
        "ssim": float(ssim(outputs, targets).mean()),
    }


def pixel_protocol(shape: tuple[int, ...]) -> dict[str, Any]:
    """How the pixel scores were computed, for the record."""
    return {
        "data_range": 1.0,
        "psnr_floor_mse": PSNR_FLOOR_MSE,
        "ssim_window": ssim_window(shape[-2], shape[-1]),
        "ssim_sigma": SSIM_SIGMA,
        "ssim_k": list(SSIM_K),
    }


def _check_pairs(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if outputs.shape != targets.shape or outputs.dim() != 4:
        raise ValueError(
            f"expected outputs and targets of one (N, C, H, W) shape, got "
            f"{tuple(outputs.shape)} and {tuple(targets.shape)}"
        )


# Held-out pairs.


def held_out_pairs(
    dataset: Dataset, split: str, n: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Inputs and targets of ``split``; at most ``n``, drawn with ``seed``."""
    data = dataset.load(split)
    if data.inputs is None:
        raise ValueError(f"data set {dataset.name!r} is not paired")
    inputs, targets = data.inputs, data.samples
    subset = n is not None and n < len(targets)
    if subset:
        order = torch.randperm(
            len(targets), generator=torch.Generator().manual_seed(seed)
        )[:n]
        inputs, targets = inputs[order], targets[order]
    about = {
        "dataset": dataset.name,
        "split": split,
        "fingerprint": data.fingerprint,
        "n_pairs": len(targets),
        "subset_seed": seed if subset else None,
    }
    return inputs, targets, about


def set_scorer(scorer: Scorer, metrics: list[str] | None, registry: Registry) -> Scorer:
    """The recipe's extractor with the set metrics of translation runs."""
    names = metrics or DEFAULT_METRICS
    chosen = [registry.get("metric", name).cls.create() for name in names]
    return dataclasses.replace(scorer, metrics=chosen)


def score_translation(
    generator: nn.Module,
    pairs: tuple[torch.Tensor, torch.Tensor, dict[str, Any]],
    scorer: Scorer,
    real: SampleSet,
    label: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Translate the pairs' inputs; pixel scores against their targets, set
    scores (FID) against ``real``. Returns (scores, protocol details)."""
    inputs, targets, about = pairs
    outputs = quantize(translate_images(generator, inputs))
    if not bool(torch.isfinite(outputs).all()):
        raise NonFiniteError(
            f"{label}: translations are NaN or infinite (the run has diverged); "
            "no score is computed from them"
        )
    scores: dict[str, Any] = pixel_scores(outputs, targets)
    set_scores, details = scorer.score(real, scorer.sample_set(label, outputs))
    scores.update(set_scores)
    details["translation"] = {"pairs": about, **pixel_protocol(tuple(targets.shape))}
    return scores, details


# The evaluator's entry point.


def score_translation_run(
    seed: int,
    run_dir: Path,
    checkpoint: Path | None,
    scorer: Scorer,
    real: SampleSet,
    reference: dict[str, Any],
    settings: dict[str, Any],
    *,
    registry: Registry | None = None,
):
    """Score the final (and best) checkpoint of a translation run: a SeedResult.

    The counterpart of the evaluator's scoring of a generative run, with the
    same record structure: ``n_fake`` is the number of translated pairs.
    """
    from ._evaluator import SeedResult, _failed_seed, _same_weights, _training

    registry = registry or build_registry()
    pairs = held_out_pairs(
        real.dataset, reference["split"], settings["n_fake"], settings["seed"]
    )
    metrics = set_scorer(scorer, settings["metrics"], registry)
    which = ["final"]
    if settings["checkpoint"] in ("best", "both") and (run_dir / "best.pt").is_file():
        which = ["best"] if settings["checkpoint"] == "best" else ["final", "best"]

    results: dict[str, dict[str, Any]] = {}
    protocol: dict[str, Any] = {}
    checkpoints: dict[str, dict[str, Any]] = {}
    scored: dict[str, LoadedTranslator] = {}
    device = str(scorer.device)  # translate where the features are extracted
    for name in which:
        source = str(checkpoint) if checkpoint is not None else name
        loaded = load_translator(run_dir, source, device=device, registry=registry)
        label = f"{run_dir if checkpoint is None else checkpoint} ({name})"
        entry = {"kimg": loaded.kimg, "path": str(loaded.checkpoint)}
        same = next(
            (other for other, net in scored.items() if _same_weights(net, loaded)), None
        )
        if same is not None:  # the best checkpoint is often the final one
            log.info("%s holds the weights of %s: scores reused", label, same)
            results[name] = results[same]
            checkpoints[name] = {**entry, "same_weights_as": same}
            continue
        scored[name] = loaded
        try:
            scores, details = score_translation(
                loaded.generator, pairs, metrics, real, label
            )
        except NonFiniteError as error:
            return _failed_seed(seed, run_dir, str(error), protocol)
        results[name] = {**scores, "kimg": loaded.kimg}
        protocol = {
            "feature_extractor": metrics.describe_extractor(),
            "reference": dict(reference),
            "n_real": len(real),
            "n_fake": len(pairs[1]),
            "fake_quantized_8bit": True,
            "eval_seed": settings["seed"],
            **details,
        }
        checkpoints[name] = entry
    protocol["checkpoints"] = checkpoints
    return SeedResult(seed, run_dir, results, protocol, _training(run_dir))


# The cheap metric during training.


class PeriodicTranslationEval:
    """FID and L1 of ``eval.during_n`` translated held-out pairs; ranked by FID."""

    def __init__(self, recipe: Recipe) -> None:
        self.settings = recipe.config["eval"]
        self.dataset = recipe.dataset()
        self.scorer = Scorer.create(
            recipe.registry,
            self.dataset.data_shape(),
            dataset_name=self.dataset.name,
            extractor=self.settings["feature_extractor"],
            metrics=["fid"],
        )
        self.real: SampleSet | None = None
        self.pairs = None

    def __call__(self, generator: nn.Module) -> dict[str, Any]:
        split = self.settings["reference_split"]
        if self.real is None:
            self.real, _ = self.scorer.real_set(
                self.dataset,
                split,
                n_real=self.settings["n_real"],
                seed=self.settings["seed"],
            )
            self.pairs = held_out_pairs(
                self.dataset, split, self.settings["during_n"], self.settings["seed"]
            )
        scores, _ = score_translation(
            generator, self.pairs, self.scorer, self.real, "training"
        )
        return {"fid": scores["fid"], "l1": scores["l1"]}

    def rank(self, scores: dict[str, Any]) -> tuple:
        """A key where smaller is better."""
        fid = scores["fid"]
        return (fid if math.isfinite(fid) else float("inf"),)
