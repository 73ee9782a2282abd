"""Training: the loop, checkpoints, snapshots and sampling from a run."""

from __future__ import annotations

from ._checkpoint import BEST, FINAL, LAST, PREVIOUS, load_checkpoint
from ._guard import TrainingDiverged, TrainingInterrupted
from ._rundir import (
    RunLock,
    default_run_dir,
    prepare_run_dir,
    read_run_info,
    software_versions,
)
from ._sampling import (
    LoadedGenerator,
    checkpoint_path,
    generate,
    load_generator,
    save_samples,
)
from ._trainer import Trainer, build_trackers, train_recipe

__all__ = [
    "BEST",
    "FINAL",
    "LAST",
    "PREVIOUS",
    "LoadedGenerator",
    "RunLock",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_trackers",
    "checkpoint_path",
    "default_run_dir",
    "generate",
    "load_checkpoint",
    "load_generator",
    "prepare_run_dir",
    "read_run_info",
    "save_samples",
    "software_versions",
    "train_recipe",
]
