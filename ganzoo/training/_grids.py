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
    canvas = torch.ones(
        channels, rows * (height + pad) + pad, columns * (width + pad) + pad
    )
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
    size: int = 400,
) -> None:
    """Save 2-D points as a scatter picture, with reference points (modes) as red x.

    Drawn directly into a pixel array: a snapshot costs milliseconds, so it does
    not slow down the fast 2-D runs the way a plotting library would.
    """
    from PIL import Image, ImageDraw

    points = points.detach().float().cpu().numpy()
    marks = None if reference is None else reference.detach().float().cpu().numpy()
    extent = (
        np.abs(marks if marks is not None else points).max() if len(points) else 1.0
    )
    span = float(extent) * 1.5 + 0.5

    def pixels(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        column = ((xy[:, 0] + span) / (2 * span) * (size - 1)).round().astype(int)
        row = ((span - xy[:, 1]) / (2 * span) * (size - 1)).round().astype(int)
        return column, row

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.line([(0, size // 2), (size, size // 2)], fill=(225, 225, 225))
    draw.line([(size // 2, 0), (size // 2, size)], fill=(225, 225, 225))
    if marks is not None:
        for c, r in zip(*pixels(marks), strict=True):
            draw.line([(c - 5, r - 5), (c + 5, r + 5)], fill=(214, 39, 40), width=1)
            draw.line([(c - 5, r + 5), (c + 5, r - 5)], fill=(214, 39, 40), width=1)

    # The points go on top, two by two pixels each.
    canvas = np.array(image)
    column, row = pixels(points[np.isfinite(points).all(axis=1)])
    for dx in (0, 1):
        for dy in (0, 1):
            c, r = column + dx, row + dy
            inside = (c >= 0) & (c < size) & (r >= 0) & (r < size)
            canvas[r[inside], c[inside]] = (31, 119, 180)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size - 1, size - 1], outline=(120, 120, 120))
    label = f"[-{span:.2g}, {span:.2g}]^2" + (f"   {title}" if title else "")
    draw.text((6, 4), label, fill=(60, 60, 60))
    image.save(path)
