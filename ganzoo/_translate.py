"""``ganzoo translate``: run a trained translation generator on the user's images.

Every readable image directly in the input folder is converted to the run's
input channels (grayscale or RGB), center-cropped to a square and resized to
the run's input size, the way ``paired-folder`` prepares its pairs; the
translation is written into the output folder under the same file name, at the
run's output size. Files that are not images are skipped with one warning.
Everything is checked and translated before the first file is written, so bad
input writes nothing.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ._errors import GanzooError
from .training._checkpoint import write_bytes_atomic
from .training._translation import load_translator

log = logging.getLogger(__name__)


def translate_folder(
    run_dir: Path,
    input_dir: Path,
    output_dir: Path,
    *,
    checkpoint: str = "final",
    ema: bool = True,
) -> list[Path]:
    """Translate the images in ``input_dir`` into ``output_dir``; the files written."""
    if not input_dir.is_dir():
        problem = "is not a folder" if input_dir.exists() else "does not exist"
        raise GanzooError(f"input folder {input_dir} {problem}")
    if output_dir.exists() and not output_dir.is_dir():
        raise GanzooError(f"output folder {output_dir} exists and is not a folder")
    if output_dir.resolve() == input_dir.resolve():
        raise GanzooError(
            f"the output folder is the input folder ({input_dir}); choose another "
            "one, so that no input is overwritten"
        )
    loaded = load_translator(run_dir, checkpoint, ema=ema)
    channels, height, width = loaded.shape.input_shape

    # Read every input first: a folder without a usable image writes nothing.
    files = sorted(
        p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    images, names, skipped = [], [], []
    for path in files:
        try:
            images.append(_read(path, channels, height, width))
        except Exception:  # Pillow raises many types for damaged or foreign files
            skipped.append(path.name)
            continue
        names.append(path.name)
    if not images:
        shown = f"; not images: {', '.join(skipped[:3])}" if skipped else ""
        raise GanzooError(
            f"no readable image in {input_dir} ({len(files)} files looked at{shown})"
        )
    if skipped:
        log.warning(
            "skipped %d of %d files in %s that are not readable images (the first: %s)",
            len(skipped),
            len(files),
            input_dir,
            skipped[0],
        )

    # Translate, then write each output atomically under its input's name.
    inputs = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    outputs = loaded.translate(inputs)
    pixels = (outputs.clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, array in zip(names, pixels, strict=True):
        target = output_dir / _writable_name(name)
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        buffer = io.BytesIO()
        image.save(buffer, format=_format(target))
        write_bytes_atomic(target, buffer.getvalue())
        written.append(target)
    return written


def _read(path: Path, channels: int, height: int, width: int) -> np.ndarray:
    """One image as uint8 (height, width, channels), cropped and resized."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        if "A" in image.getbands() or "transparency" in image.info:
            # Transparent pixels hold arbitrary colors: show them as white.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert("L" if channels == 1 else "RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def _format(path: Path) -> str:
    return Image.registered_extensions()[path.suffix.lower()]


def _writable_name(name: str) -> str:
    """``name`` when Pillow can write its format, else ``name`` + ``.png``."""
    kind = Image.registered_extensions().get(Path(name).suffix.lower())
    if kind is not None and kind in Image.SAVE:
        return name
    log.info("%s: its format cannot be written; the translation is %s.png", name, name)
    return f"{name}.png"


__all__ = ["translate_folder"]
