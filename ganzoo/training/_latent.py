"""Views of a trained generator: class grids, latent walks, nearest real neighbours.

These are what ``ganzoo sample`` draws besides a plain grid. A latent walk starts
and ends at the latents that a seed draws first, so each end of a path is exactly
the sample ``ganzoo sample RUN --n 1 --seed A`` gives. The nearest-neighbour
view is the quick check for memorisation: a generated image that is almost a
copy of a training image sits much closer to it than held-out real images do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._errors import GanzooError
from .._plugin import DataShape
from ._conditioning import takes_labels
from ._grids import to_unit_range
from ._sampling import LoadedGenerator, generate

log = logging.getLogger(__name__)

INTERPOLATIONS = ("lerp", "slerp")
"""The ways of walking from one latent to another."""

PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
"""One colour per path or class in point pictures (matplotlib's tab10)."""


# Interpolation.


def lerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """The point a fraction ``t`` of the straight way from ``start`` to ``end``.

    Written as ``(1 - t) * start + t * end`` so that t = 0 and t = 1 give the
    endpoints exactly; ``start + t * (end - start)`` can miss ``end`` by a bit.
    """
    return (1.0 - t) * start + t * end


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: along the great circle through both directions.

    Gaussian latents of dimension d have norms close to sqrt(d); the straight
    way between two of them passes through latents of smaller norm, which the
    generator rarely saw, while this way keeps the norm (exactly, for endpoints
    of equal norm). For nearly parallel or opposite vectors the circle is
    ill-defined and the straight way is taken instead.
    """
    start64, end64 = start.double(), end.double()
    norms = start64.norm() * end64.norm()
    if float(norms) == 0.0:
        return lerp(start, end, t)
    cosine = float((start64 @ end64 / norms).clamp(-1.0, 1.0))
    angle = math.acos(cosine)
    if math.sin(angle) < 1e-6:
        return lerp(start, end, t)

    # The weights are exactly 1 and 0 at t = 0 and t = 1, so are the endpoints.
    weight_start = math.sin((1.0 - t) * angle) / math.sin(angle)
    weight_end = math.sin(t * angle) / math.sin(angle)
    return weight_start * start + weight_end * end


def interpolate(
    start: torch.Tensor, end: torch.Tensor, steps: int, mode: str
) -> torch.Tensor:
    """``steps`` latents from ``start`` to ``end`` (both included), shape (steps, d)."""
    if mode not in INTERPOLATIONS:
        raise GanzooError(
            f"unknown interpolation {mode!r}; choose from: {', '.join(INTERPOLATIONS)}"
        )
    if steps < 2:
        raise GanzooError(
            f"an interpolation needs at least 2 steps (its endpoints), got {steps}"
        )
    walk = lerp if mode == "lerp" else slerp
    return torch.stack([walk(start, end, i / (steps - 1)) for i in range(steps)])


def seed_latent(latent_dim: int, seed: int) -> torch.Tensor:
    """The first latent :func:`generate` draws for ``seed``, shape (latent_dim,)."""
    rng = torch.Generator().manual_seed(seed)
    return torch.randn(1, latent_dim, generator=rng)[0]


@torch.no_grad()
def generate_from_latents(
    loaded: LoadedGenerator,
    latents: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Samples in the data's range for given latents (and classes, if conditional).

    One latent per forward pass: batched matrix products may round differently
    for different batch sizes, and a frame should not depend on its neighbours.
    A latent thus gives exactly the sample ``generate`` gives for it alone.
    """
    generator = loaded.generator
    device = next(generator.parameters()).device
    output_range = getattr(generator, "output_range", None)
    parts = []
    for index in range(len(latents)):
        z = latents[index : index + 1].to(device)
        if labels is None:
            out = generator(z)
        else:
            out = generator(z, labels[index : index + 1].long().to(device))
        parts.append(to_unit_range(out, output_range).cpu().contiguous())
    return torch.cat(parts)


def interpolation_rows(
    loaded: LoadedGenerator,
    pairs: Sequence[tuple[int, int]],
    steps: int,
    mode: str,
    labels: Sequence[int] | None = None,
) -> torch.Tensor:
    """One latent walk per seed pair, shape (rows, steps, *sample shape).

    Row r walks from the first latent of seed ``pairs[r][0]`` to that of
    ``pairs[r][1]``; a conditional generator holds the class ``labels[r]`` along
    the whole row.
    """
    classes = takes_labels(loaded.generator)
    if classes and labels is None:
        raise GanzooError("a class-conditional generator needs a class for each row")
    if labels is not None:
        check_classes(loaded, labels)
    latent_dim = int(getattr(loaded.generator, "latent_dim", 0) or 0)
    if not latent_dim:
        raise GanzooError(
            f"{loaded.checkpoint}: the generator takes no latents (it translates "
            "images), so there is nothing to interpolate between"
        )
    rows = []
    for row, (first, second) in enumerate(pairs):
        path = interpolate(
            seed_latent(latent_dim, first), seed_latent(latent_dim, second), steps, mode
        )
        held = None if labels is None else torch.full((steps,), int(labels[row]))
        rows.append(generate_from_latents(loaded, path, held))
    return torch.stack(rows)


def walk_plan(
    classes: int,
    *,
    seed: int,
    rows: int | None = None,
    from_seed: int | None = None,
    to_seed: int | None = None,
    label: int | None = None,
) -> tuple[list[tuple[int, int]], list[int] | None]:
    """The seed pairs of the rows of a latent walk, and each row's class.

    Row r walks from seed ``seed + 2r`` to ``seed + 2r + 1``, or every row from
    ``from_seed`` to ``to_seed``. A conditional generator (``classes`` > 0)
    holds ``label`` on every row when given, else class r on row r, with one
    row per class by default; an unconditional one gets 4 rows, or 1 for a
    given pair.
    """
    given_pair = from_seed is not None and to_seed is not None
    if rows is None and classes and label is None:
        rows = classes
    elif rows is None:
        rows = 1 if given_pair else 4
    if given_pair:
        pairs = [(int(from_seed), int(to_seed))] * rows
    else:
        pairs = [(seed + 2 * row, seed + 2 * row + 1) for row in range(rows)]
    if not classes:
        return pairs, None
    if label is not None:
        return pairs, [label] * rows
    return pairs, [row % classes for row in range(rows)]


def save_walks(
    loaded: LoadedGenerator,
    rows: torch.Tensor,
    out: Path,
    *,
    gif: bool = False,
    mode: str = "",
    seed: int = 0,
) -> list[Path]:
    """Write latent walks to ``out`` (.png strip, .gif or .npy), and a GIF beside it.

    Point runs draw each path over 1,000 samples of the generator (grey) and the
    data's modes (red), so that a path can be seen to cross between modes.
    """
    reference = background = None
    if loaded.shape.kind != "image":
        means = getattr(loaded.recipe.dataset(), "means", None)
        reference = means() if callable(means) else None
        background = generate(loaded, 1000, seed=seed)
    title = f"{mode}, {rows.shape[0]} paths of {rows.shape[1]} steps"
    written = [out]
    if out.suffix == ".gif":
        save_gif(
            rows,
            loaded.shape,
            out,
            reference=reference,
            background=background,
            title=title,
        )
        return written
    save_rows(
        rows,
        loaded.shape,
        out,
        paths=True,
        reference=reference,
        background=background,
        title=title,
    )
    if gif:
        animated = out.with_suffix(".gif")
        save_gif(
            rows,
            loaded.shape,
            animated,
            reference=reference,
            background=background,
            title=title,
        )
        written.append(animated)
    return written


# Classes.


def check_classes(loaded: LoadedGenerator, labels: Sequence[int]) -> None:
    """Raise GanzooError unless the generator is conditional and knows ``labels``."""
    classes = takes_labels(loaded.generator)
    if not classes:
        raise GanzooError(
            f"{loaded.checkpoint}: the generator is not class-conditional, so it "
            "cannot be asked for a class"
        )
    for label in labels:
        if not 0 <= int(label) < classes:
            raise GanzooError(
                f"class {label} is out of range: the generator of "
                f"{loaded.checkpoint} has classes 0..{classes - 1}"
            )


def class_grid(loaded: LoadedGenerator, n: int, *, seed: int) -> torch.Tensor:
    """``n`` samples of every class, shape (classes, n, *sample shape).

    Every row uses the same ``n`` latents, so a column shows one latent in each
    class, and row k is exactly what ``generate`` gives for class k and ``seed``.
    """
    classes = takes_labels(loaded.generator)
    if not classes:
        raise GanzooError(
            f"{loaded.checkpoint}: the generator is not class-conditional, so it "
            "has no classes to show"
        )
    return torch.stack(
        [
            generate(loaded, n, seed=seed, labels=torch.full((n,), label))
            for label in range(classes)
        ]
    )


# Pictures.


def tile(
    cells: Sequence[Sequence[torch.Tensor | None]],
    *,
    pad: int = 2,
    group: int = 0,
    group_pad: int = 0,
    scale: int = 1,
):
    """Images (C, H, W) in [0, 1] laid out row by row on a white canvas (PIL).

    A ``None`` cell stays white. With ``group``, every ``group`` columns are
    followed by ``group_pad`` extra pixels, to set pairs of images apart.
    """
    from PIL import Image

    first = next(cell for row in cells for cell in row if cell is not None)
    channels, height, width = first.shape
    columns = max(len(row) for row in cells)
    gaps = [
        pad + (group_pad if group and column % group == 0 and column else 0)
        for column in range(columns)
    ]
    lefts = np.cumsum(gaps) + np.arange(columns) * width
    canvas = torch.ones(
        channels,
        len(cells) * (height + pad) + pad,
        int(lefts[-1]) + width + pad if columns else pad,
    )
    for row, items in enumerate(cells):
        top = pad + row * (height + pad)
        for column, cell in enumerate(items):
            if cell is not None:
                left = int(lefts[column])
                canvas[:, top : top + height, left : left + width] = (
                    cell.detach().float().cpu().clamp(0, 1)
                )
    array = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    if scale > 1:
        image = image.resize(
            (image.width * scale, image.height * scale), Image.Resampling.NEAREST
        )
    return image


def save_rows(
    rows: torch.Tensor,
    shape: DataShape,
    out: Path,
    *,
    paths: bool = False,
    reference: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    title: str | None = None,
) -> None:
    """Save (rows, columns, *sample shape) samples: ``.npy``, or a ``.png`` picture.

    Images become a grid with one row per row. Points become a scatter with one
    colour per row, drawn as connected ``paths`` (latent walks) or as clouds
    (classes), over the ``background`` samples and the ``reference`` modes.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, rows.numpy().astype(np.float32))
    elif shape.kind == "image":
        tile([list(row) for row in rows]).save(out)
    else:
        draw_points(
            rows, paths=paths, reference=reference, background=background, title=title
        ).save(out)


def save_gif(
    rows: torch.Tensor,
    shape: DataShape,
    out: Path,
    *,
    reference: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    title: str | None = None,
    seconds: float = 2.0,
) -> int:
    """Save latent walks (rows, steps, ...) as a GIF that goes there and back.

    Frame t shows step t of every row: images side by side (enlarged to about
    128 pixels, as a GIF is watched rather than inspected), points as the paths
    drawn up to step t. Returns the number of frames, ``2 * steps - 2``; Pillow
    merges a frame identical to the one before it (a collapsed generator).
    """
    steps = rows.shape[1]
    order = list(range(steps)) + list(range(steps - 2, 0, -1))
    if shape.kind == "image":
        count = rows.shape[0]
        columns = math.ceil(math.sqrt(count))
        scale = max(1, 128 // rows.shape[-1])

        def frame(step: int):
            cells = list(rows[:, step])
            lines = [cells[i : i + columns] for i in range(0, count, columns)]
            return tile(lines, scale=scale)

    else:

        def frame(step: int):
            return draw_points(
                rows,
                paths=True,
                upto=step,
                reference=reference,
                background=background,
                title=title,
            )

    frames = [frame(step) for step in order]

    # The endpoints are held a little longer than the way between them.
    each = max(20, round(seconds * 1000 / max(1, steps - 1)))
    durations = [each * 4 if step in (0, steps - 1) else each for step in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        out,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
    )
    return len(frames)


def draw_points(
    rows: torch.Tensor,
    *,
    paths: bool,
    upto: int | None = None,
    reference: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    title: str | None = None,
    size: int = 400,
):
    """A scatter (PIL image) of 2-D point rows (rows, columns, 2), one colour each.

    The frame fits the reference modes and the rows; background samples that
    fall outside it are left out rather than shrinking everything else.
    """
    from PIL import Image, ImageDraw

    points = rows[:, : None if upto is None else upto + 1].detach().float().cpu()
    framed = rows.reshape(-1, 2).float()
    if reference is not None:
        framed = torch.cat([framed, reference.float()])
    framed = framed[torch.isfinite(framed).all(dim=1)]
    extent = float(framed.abs().max()) if len(framed) else 1.0
    span = extent * 1.2 + 0.3

    def pixel(xy: torch.Tensor) -> tuple[float, float]:
        x, y = float(xy[0]), float(xy[1])
        return (x + span) / (2 * span) * (size - 1), (span - y) / (2 * span) * (
            size - 1
        )

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.line([(0, size // 2), (size, size // 2)], fill=(230, 230, 230))
    draw.line([(size // 2, 0), (size // 2, size)], fill=(230, 230, 230))
    if background is not None:
        for xy in background[torch.isfinite(background).all(dim=1)]:
            c, r = pixel(xy)
            draw.point((c, r), fill=(175, 175, 175))
    if reference is not None:
        for xy in reference:
            c, r = pixel(xy)
            draw.line([(c - 5, r - 5), (c + 5, r + 5)], fill=(214, 39, 40))
            draw.line([(c - 5, r + 5), (c + 5, r - 5)], fill=(214, 39, 40))

    # Each row in its colour: a path is a line through its steps, its start a ring.
    for index, row in enumerate(points):
        colour = PALETTE[index % len(PALETTE)]
        finite = [pixel(xy) for xy in row if bool(torch.isfinite(xy).all())]
        if paths and len(finite) > 1:
            draw.line(finite, fill=colour, width=1)
        for c, r in finite:
            draw.ellipse([c - 2, r - 2, c + 2, r + 2], fill=colour)
        if paths and finite:
            c, r = finite[0]
            draw.ellipse([c - 5, r - 5, c + 5, r + 5], outline=colour, width=2)
    draw.rectangle([0, 0, size - 1, size - 1], outline=(120, 120, 120))
    label = f"[-{span:.2g}, {span:.2g}]^2" + (f"   {title}" if title else "")
    draw.text((6, 4), label, fill=(60, 60, 60))
    return image


# Nearest real neighbours.


def nearest(
    queries: torch.Tensor,
    references: torch.Tensor,
    *,
    candidates: int = 8,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance to, and index of, each query's nearest reference.

    Both are flattened to vectors. Candidates come from the fast distance by
    matrix products, which cancels digits (an exact copy would be 1e-3 away
    rather than 0, and near ties may swap); the exact distance decides among them.
    """
    queries = queries.flatten(1).float()
    references = references.flatten(1).float()
    if not len(references):
        raise GanzooError("there are no reference samples to search")
    found_values, found_indices = [], []
    for start in range(0, len(references), chunk):
        distances = torch.cdist(queries, references[start : start + chunk])
        keep = min(candidates, distances.shape[1])
        values, indices = distances.topk(keep, dim=1, largest=False)
        found_values.append(values)
        found_indices.append(indices + start)
    values, indices = torch.cat(found_values, 1), torch.cat(found_indices, 1)
    best = values.topk(min(candidates, values.shape[1]), dim=1, largest=False).indices
    shortlist = indices.gather(1, best)
    exact = (
        (references[shortlist].double() - queries[:, None].double())
        .square()
        .sum(-1)
        .sqrt()
    )
    distance, position = exact.min(dim=1)
    return distance.float(), shortlist.gather(1, position[:, None])[:, 0]


@dataclass
class Neighbours:
    """Generated samples, each with its nearest training image, closest pair first."""

    samples: torch.Tensor
    neighbours: torch.Tensor
    distances: torch.Tensor
    indices: torch.Tensor
    space: str
    training_split: str
    training_size: int
    held_out_split: str | None = None
    held_out_distance: float | None = None

    @property
    def mean_distance(self) -> float:
        return float(self.distances.mean())

    def summary(self) -> str:
        """One line for a person: the mean distances, and how to read them."""
        line = (
            f"mean distance to the nearest of {self.training_size} "
            f"{self.training_split} images, in {self.space}: "
            f"{self.mean_distance:.4g} for {len(self.samples)} samples"
        )
        if self.held_out_distance is not None:
            line += (
                f", {self.held_out_distance:.4g} for as many held-out "
                f"{self.held_out_split} images (samples much closer than held-out "
                "images suggest memorised training images)"
            )
        return line


def find_neighbours(
    loaded: LoadedGenerator, samples: torch.Tensor, *, seed: int = 0
) -> Neighbours:
    """The nearest training image of each generated image, by the run's features.

    The features are those of the recipe's ``eval.feature_extractor`` (or the
    default extractor for the data); pixels, with a logged note, when it has
    none that applies. Held-out images of the recipe's reference split, as
    many as there are samples, give the distance to expect without copying.
    """
    from ..evaluation._scoring import quantize

    if loaded.shape.kind != "image":
        raise GanzooError(
            f"{loaded.checkpoint}: nearest training images are shown for image "
            f"runs only; this run generates {loaded.shape.describe()}"
        )
    recipe = loaded.recipe
    dataset = recipe.dataset()
    split = recipe.config["data"].get("split", "train")
    training = dataset.load(split).samples
    samples = quantize(samples)

    # Held-out images: the reference split, if it is not the training split.
    held_split = recipe.config.get("eval", {}).get("reference_split")
    held = None
    if held_split and held_split != split:
        pool = dataset.load(held_split).samples
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        held = pool[order[: len(samples)]]

    space, embedded = _embed(loaded, dataset, split, training, samples, held)
    distances, indices = nearest(embedded["samples"], embedded["training"])
    held_distance = None
    if held is not None:
        held_distances = nearest(embedded["held"], embedded["training"])[0]
        if float((held_distances <= 1e-6).float().mean()) > 0.5:
            # Most held-out images are in the training set ("all" holds "test").
            log.info(
                "the %s split is part of the %s split: no held-out comparison",
                held_split,
                split,
            )
            held = None
        else:
            held_distance = float(held_distances.mean())
    order = distances.argsort()
    return Neighbours(
        samples=samples[order],
        neighbours=training[indices[order]],
        distances=distances[order],
        indices=indices[order],
        space=space,
        training_split=split,
        training_size=len(training),
        held_out_split=held_split if held is not None else None,
        held_out_distance=held_distance,
    )


def _embed(loaded, dataset, split, training, samples, held):
    """The feature space's name, and the features of each set (or their pixels)."""
    from ..evaluation._evaluator import scorer_for

    sets = {"samples": samples, "training": training}
    if held is not None:
        sets["held"] = held
    reason = None
    try:
        scorer = scorer_for(loaded.recipe)
        if scorer.extractor is None:
            reason = "the recipe names no feature extractor that applies"
        else:
            name = scorer.extractor.name
            log.info(
                "features of %d %s images by %s (cached for the next time)",
                len(training),
                split,
                name,
            )
            real, _ = scorer.real_set(dataset, split)
            features = {"training": real.features}
            for key in ("samples", "held"):
                if key in sets:
                    features[key] = scorer.sample_set(key, sets[key]).features
            if all(value is not None for value in features.values()):
                width = features["samples"].shape[1]
                return f"{name} features ({width}-D)", features
            reason = f"{name} gives no features for these images"
    except GanzooError as error:
        reason = str(error)
    log.warning("nearest neighbours are searched in pixel space: %s", reason)
    width = int(np.prod(samples.shape[1:]))
    return f"pixel space ({width}-D)", sets


def save_neighbours(found: Neighbours, out: Path) -> None:
    """Save a picture of sample | nearest training image pairs, closest first."""
    count = len(found.samples)
    per_row = max(1, round(math.sqrt(count / 2)))
    cells: list[list[torch.Tensor | None]] = []
    for start in range(0, count, per_row):
        row: list[torch.Tensor | None] = []
        for index in range(start, min(start + per_row, count)):
            row += [found.samples[index], found.neighbours[index]]
        cells.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    tile(cells, group=2, group_pad=6).save(out)
