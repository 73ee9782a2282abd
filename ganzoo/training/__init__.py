"""Training: the loop, checkpoints, snapshots and sampling from a run."""

from __future__ import annotations

from ._checkpoint import BEST, FINAL, LAST, load_checkpoint
from ._sampling import (
    LoadedGenerator,
    checkpoint_path,
    generate,
    load_generator,
    save_samples,
)
from ._trainer import (
    Trainer,
    build_trackers,
    default_run_dir,
    prepare_run_dir,
    software_versions,
    train_recipe,
)

__all__ = [
    "BEST",
    "FINAL",
    "LAST",
    "LoadedGenerator",
    "Trainer",
    "build_trackers",
    "checkpoint_path",
    "default_run_dir",
    "generate",
    "load_checkpoint",
    "load_generator",
    "prepare_run_dir",
    "save_samples",
    "software_versions",
    "train_recipe",
]
