"""The run directory: its checks, its lock, and the ``run.json`` beside the weights.

One training process owns a run directory at a time. It holds an exclusive
``flock`` on ``RUN_DIR/.lock`` for as long as it trains; a second process that
is given the same directory refuses instead of interleaving its checkpoints with
the first. The kernel drops the lock when its holder dies, however it dies, so a
lock file left by a killed process never blocks ``--resume``.

Locks are advisory and local: a run directory on a network file system that
does not support ``flock`` is not protected.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import __version__
from .._errors import GanzooError
from ..recipes import Recipe
from . import _checkpoint as ckpt

log = logging.getLogger("ganzoo.train")

LOCK = ".lock"


class RunLock:
    """An exclusive lock on one run directory, held by this process.

    Creating the lock creates the directory. The lock file holds the owner's
    process id so that a refused process can say who holds it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK
        self.handle: int | None = None
        self.created_dir = False

    def acquire(self) -> RunLock:
        self.created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(handle)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise GanzooError(
                    f"{self.run_dir} is in use by another ganzoo process"
                    f"{self._holder()}; wait for it to finish, or train into "
                    "another --run-dir"
                ) from None
            # The holder before us may have removed the file after we opened it:
            # then our lock is on a deleted file, so start over.
            try:
                same = os.fstat(handle).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(handle)
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self.handle = handle
        return self

    def release(self) -> None:
        """Remove the lock file while still holding the lock, then let go."""
        if self.handle is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.handle)
        self.handle = None
        if self.created_dir:
            # A directory this process created and left empty goes again.
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return ""
        return f" (pid {pid}, lock file {self.path})" if pid.isdigit() else ""

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def default_run_dir(recipe: Recipe, root: Path = Path("runs")) -> Path:
    """``runs/NAME-HASH``: the same recipe always maps to the same directory."""
    return root / f"{recipe.name}-{recipe.hash[:10]}"


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but a lock file and unfinished writes."""
    return run_dir.is_dir() and any(not _leftover(p) for p in run_dir.iterdir())


def _leftover(path: Path) -> bool:
    """The lock file, or a temporary file of a write that never finished."""
    return path.name == LOCK or (path.name.startswith(".") and ".tmp" in path.name)


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name).is_file() for name in (ckpt.LAST, ckpt.PREVIOUS))


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` as a dict; empty when it is missing or unreadable."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def has_resumable_state(run_dir: Path, recipe: Recipe) -> bool:
    """A checkpoint to resume from, or a run of this recipe killed before its first.

    A process killed while it was still setting up leaves its lock file and
    perhaps ``run.json``; either is enough to start that run over.
    """
    if has_checkpoint(run_dir):
        return True
    if read_run_info(run_dir).get("recipe_hash") == recipe.hash:
        return True
    return (run_dir / LOCK).is_file() and not holds_run(run_dir)


def check_run_dir(recipe: Recipe, run_dir: Path, *, resume: bool) -> None:
    """Refuse a run directory that cannot be used, before anything is written."""
    if resume:
        if not run_dir.is_dir() or not has_resumable_state(run_dir, recipe):
            raise GanzooError(f"nothing to resume: {run_dir} has no {ckpt.LAST}")
        return
    if holds_run(run_dir):
        raise GanzooError(
            f"{run_dir} already holds a run; pass --resume to continue it, or "
            "--run-dir to train into another directory"
        )


def prepare_run_dir(recipe: Recipe, run_dir: Path, *, resume: bool) -> None:
    """Check the run directory, then create it and write the resolved recipe."""
    check_run_dir(recipe, run_dir, resume=resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in ckpt.remove_temporaries(run_dir):
        log.info("removed %s, left by an interrupted write", path.name)
    if resume and has_checkpoint(run_dir):
        return

    # A new run, or one killed before its first checkpoint: run.json first, so
    # that a kill from here on leaves a run that --resume recognises.
    update_run_info(
        run_dir,
        name=recipe.name,
        recipe_hash=recipe.hash,
        source=str(recipe.source) if recipe.source else None,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        versions=software_versions(),
        finished=False,
    )
    ckpt.write_text_atomic(
        run_dir / "recipe.yaml",
        yaml.safe_dump(recipe.config, sort_keys=False, default_flow_style=None),
    )


def software_versions() -> dict[str, str]:
    import platform

    versions = {
        "ganzoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import torch_fidelity

        versions["torch_fidelity"] = torch_fidelity.__version__
    except ImportError:
        pass
    return versions


def update_run_info(run_dir: Path, **values: Any) -> None:
    """Merge ``values`` into ``run.json``, replacing the file atomically."""
    info = read_run_info(run_dir)
    info.update(values)
    ckpt.write_text_atomic(run_dir / "run.json", json.dumps(info, indent=2) + "\n")
