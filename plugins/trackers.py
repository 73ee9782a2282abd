"""Trackers that send training statistics and sample grids to logging services.

Console lines and ``stats.jsonl`` are always written by ganzoo itself; these add
Weights & Biases and TensorBoard, each imported only when a recipe enables it.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ganzoo import GanzooError, Option, RunInfo, Tracker, hookimpl


def _require(module: str, tracker: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise GanzooError(
            f"the {tracker} tracker needs the {module!r} package: pip install {module}",
            key=f"tracking.{tracker}",
        )


def _numbers(stats: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in stats.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class WandbTracker(Tracker):
    """A Weights & Biases run: losses, diagnostics and sample grids, offline by default.

    Offline runs are written under the run directory's ``wandb/`` folder and can be
    uploaded later with ``wandb sync``.
    """

    name = "wandb"
    options = (
        Option(
            "mode",
            str,
            "offline",
            "wandb mode",
            choices=("offline", "online", "disabled"),
        ),
        Option("project", str, "ganzoo", "wandb project"),
        Option("entity", str, None, "wandb entity (team or user)", nullable=True),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        _require("wandb", "wandb")
        self.run = None

    def start(self, run: RunInfo) -> None:
        import wandb

        # A stable id stored in the run directory makes a resumed run continue
        # the same wandb run instead of starting a new one.
        id_file = run.run_dir / "wandb-id.txt"
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:8]
            id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=run.name,
            id=run_id,
            resume="allow",
            dir=str(run.run_dir),
            mode=self.mode,
            config=json.loads(json.dumps(run.recipe, default=str)),
            tags=[f"recipe-{run.recipe_hash}"],
        )

    def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(_numbers(stats), step=step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        if self.run is not None:
            import wandb

            self.run.log({name: wandb.Image(str(path))}, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class TensorBoardTracker(Tracker):
    """TensorBoard event files under the run directory's ``tensorboard/`` folder."""

    name = "tensorboard"
    options = (
        Option("flush_secs", int, 30, "seconds between flushes to disk", minimum=1),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        _require("tensorboard", "tensorboard")
        self.writer = None

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            str(run.run_dir / "tensorboard"), flush_secs=self.flush_secs
        )

    def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
        if self.writer is not None:
            for key, value in _numbers(stats).items():
                self.writer.add_scalar(key, value, step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        if self.writer is not None:
            from PIL import Image

            array = np.asarray(Image.open(path).convert("RGB"))
            self.writer.add_image(name, array, step, dataformats="HWC")

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@hookimpl
def ganzoo_trackers() -> list[type[Tracker]]:
    return [WandbTracker, TensorBoardTracker]
