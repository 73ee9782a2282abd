"""Pictures of samples: image grids, and scatter plots for 2-D point data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .._plugin import DataShape


def to_unit_range(samples: torch.Tensor, output_range: tuple[float, float] | None):
    """Map generator output to the data's own range ([0, 1] for images)."""
    if output_range is None:
        return samples
    low, high = output_range
    return ((samples - low) / (high - low)).clamp(0.0, 1.0)


def from_unit_range(samples: torch.Tensor, output_range: tuple[float, float] | None):
    """Map data in [0, 1] to the generator's output range."""
    if output_range is None:
        return samples
    low, high = output_range
    return samples * (high - low) + low


def save_picture(
    samples: torch.Tensor,
    shape: DataShape,
    path: Path,
    reference: torch.Tensor | None = None,
    title: str | None = None,
) -> None:
    """Save ``samples`` (in the data's range) as a PNG grid or a scatter plot."""
    if shape.kind == "image":
        save_image_grid(samples, path)
    else:
        save_scatter(samples, path, reference=reference, title=title)


def save_image_grid(images: torch.Tensor, path: Path) -> None:
    """Save (N, C, H, W) images in [0, 1] as a near-square grid PNG."""
    from PIL import Image

    images = images.detach().float().cpu().clamp(0, 1)
    count, channels, height, width = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    pad = 2
    canvas = torch.ones(channels, rows * (height + pad) + pad, columns * (width + pad) + pad)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        canvas[:, top : top + height, left : left + width] = images[index]
    array = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    mode = "L" if channels == 1 else "RGB"
    Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode).save(path)


def save_scatter(
    points: torch.Tensor,
    path: Path,
    reference: torch.Tensor | None = None,
    title: str | None = None,
) -> None:
    """Save 2-D points as a scatter plot, with reference points (e.g. modes) in red."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    points = np.asarray(points.detach().float().cpu())
    figure, axes = pyplot.subplots(figsize=(4, 4), dpi=100)
    axes.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color="tab:blue")
    if reference is not None:
        reference = np.asarray(reference.detach().float().cpu())
        axes.scatter(reference[:, 0], reference[:, 1], s=12, marker="x", color="tab:red")
        span = np.abs(reference).max() * 1.5 + 0.5
        axes.set_xlim(-span, span)
        axes.set_ylim(-span, span)
    axes.set_aspect("equal")
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
