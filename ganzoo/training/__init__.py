"""Training: the loop, checkpoints, snapshots and sampling from a run."""

from __future__ import annotations

from .._plugin import Tracker
from ..recipes import Recipe
from ._checkpoint import BEST, FINAL, LAST, load_checkpoint
from ._sampling import LoadedGenerator, checkpoint_path, generate, load_generator, save_samples
from ._trainer import Trainer, prepare_run_dir, software_versions


def build_trackers(recipe: Recipe) -> list[Tracker]:
    """Instantiate the trackers the recipe enables under ``tracking``."""
    return [
        recipe.plugin("tracker", {"name": name, **options})
        for name, options in recipe.config["tracking"].items()
    ]


__all__ = [
    "BEST",
    "FINAL",
    "LAST",
    "LoadedGenerator",
    "Trainer",
    "build_trackers",
    "checkpoint_path",
    "generate",
    "load_checkpoint",
    "load_generator",
    "prepare_run_dir",
    "save_samples",
    "software_versions",
]
