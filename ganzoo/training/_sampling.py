"""Generate from a trained run: the ``ganzoo sample`` command and the evaluator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._errors import GanzooError
from .._plugin import DataShape
from .._registry import Registry, build_registry
from ..recipes import Recipe
from . import _checkpoint as ckpt
from ._conditioning import takes_labels
from ._grids import save_picture, to_unit_range


@dataclass
class LoadedGenerator:
    """A generator rebuilt from a checkpoint, with what is needed to use it."""

    generator: nn.Module
    shape: DataShape
    recipe: Recipe
    checkpoint: Path
    kimg: float


def checkpoint_path(run_dir: Path, which: str) -> Path:
    """Resolve ``final``, ``last``, ``best`` or a file path to a checkpoint file."""
    names = {"final": ckpt.FINAL, "last": ckpt.LAST, "best": ckpt.BEST}
    if which in names:
        if not run_dir.is_dir():
            raise GanzooError(f"run directory not found: {run_dir}")
        path = run_dir / names[which]
        if not path.is_file():
            raise GanzooError(
                f"{run_dir} has no {which} checkpoint ({names[which]}); "
                "is the run finished?"
            )
        return path
    return Path(which)


def load_generator(
    run_dir: Path,
    which: str = "final",
    *,
    ema: bool = True,
    device: str = "cpu",
    registry: Registry | None = None,
) -> LoadedGenerator:
    """Rebuild the generator of a run from its checkpoint and stored recipe.

    The architecture is looked up in ``registry`` (by default: entry points and
    ``GANZOO_PLUGINS``). The plugin files a checkpoint names are never imported:
    a checkpoint is data, and importing a path it supplies would run its code.
    """
    path = checkpoint_path(run_dir, which)
    state = ckpt.load_checkpoint(path, device)
    config = state["config"]
    if registry is None:
        registry = build_registry()
    recipe = Recipe(
        config, state["recipe_hash"], config.get("name") or run_dir.name, None, registry
    )
    meta = state["data_shape"]
    shape = DataShape(meta["kind"], tuple(meta["shape"]), meta["num_classes"])
    try:
        generator = recipe.network("generator", shape)
    except GanzooError as error:
        named = config.get("plugins") or []
        if not named:
            raise
        raise GanzooError(
            f"{path}: {error.message}; the run was trained with the plugins "
            f"{', '.join(map(str, named))}, which a checkpoint cannot load by "
            "itself: name them in GANZOO_PLUGINS"
        ) from None
    generator.load_state_dict(state["generator_ema" if ema else "generator"])
    generator.to(device).eval().requires_grad_(False)
    # Convolutions run about twice as fast on a CPU with channels-last weights;
    # only 4-D weights change layout, so other generators are left as they are.
    generator.to(memory_format=torch.channels_last)
    return LoadedGenerator(generator, shape, recipe, path, float(state["kimg"]))


def generate(
    loaded: LoadedGenerator,
    n: int,
    *,
    seed: int,
    batch_size: int = 500,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` samples of a loaded run in the data's range; see :func:`sample_network`."""
    return sample_network(
        loaded.generator,
        n,
        seed=seed,
        batch_size=batch_size,
        labels=labels,
        name=str(loaded.checkpoint),
    )


@torch.no_grad()
def sample_network(
    generator: nn.Module,
    n: int,
    *,
    seed: int,
    batch_size: int = 500,
    labels: torch.Tensor | None = None,
    name: str = "the generator",
) -> torch.Tensor:
    """``n`` samples in the data's range; the same seed gives the same samples.

    A class-conditional generator is asked for ``labels`` (n class indices); by
    default every class in turn, ``0, 1, ..., K-1, 0, 1, ...``, so that any n
    holds the classes as evenly as it can. ``name`` says whose generator it is
    in errors.
    """
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, int(generator.latent_dim), generator=rng)
    output_range = getattr(generator, "output_range", None)
    classes = takes_labels(generator)
    if classes and labels is None:
        labels = balanced_labels(n, classes)
    if labels is not None:
        if not classes:
            raise GanzooError(
                f"{name}: the generator is not class-conditional, "
                "so it cannot be asked for a class"
            )
        labels = labels.long()
        if labels.shape != (n,) or bool(((labels < 0) | (labels >= classes)).any()):
            raise GanzooError(
                f"expected {n} class indices in 0..{classes - 1} for {name}"
            )
    parts = []
    for start in range(0, n, batch_size):
        z = latents[start : start + batch_size].to(device)
        if labels is None:
            out = generator(z)
        else:
            out = generator(z, labels[start : start + batch_size].to(device))
        parts.append(to_unit_range(out, output_range).cpu().contiguous())
    return torch.cat(parts) if parts else torch.empty(0)


def balanced_labels(n: int, classes: int) -> torch.Tensor:
    """Every class in turn: ``0, 1, ..., classes-1, 0, 1, ...`` (n of them)."""
    return torch.arange(n) % classes


def save_samples(loaded: LoadedGenerator, samples: torch.Tensor, out: Path) -> None:
    """Write samples as a PNG picture or as a raw ``.npy`` array."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, samples.numpy().astype(np.float32))
    else:
        save_picture(samples, loaded.shape, out)
