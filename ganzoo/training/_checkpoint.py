"""Checkpoints written atomically, checked when read, and the random state they carry.

A checkpoint is serialized in memory, written to a hidden temporary file in the
same directory, flushed to disk, then renamed over the old one, so a crash at any
moment leaves either the previous checkpoint or the new one, never half of one.
Before the last checkpoint is replaced, it is kept as ``checkpoint-previous.pt``,
so that a resume still has a good file when the newest is damaged later (a disk
fault, a copy cut short).

Each checkpoint carries a digest of its own contents. PyTorch does not check
the CRCs of its zip archive when loading, so without the digest a flipped byte
in a weight would load silently.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import GanzooError

log = logging.getLogger("ganzoo.train")

LAST = "checkpoint-last.pt"
PREVIOUS = "checkpoint-previous.pt"
FINAL = "final.pt"
BEST = "best.pt"

DIGEST_KEY = "content_digest"


# Writing.


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` so that readers see the old or the new file only."""
    buffer = io.BytesIO()
    torch.save({**state, DIGEST_KEY: content_digest(state)}, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def keep_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` a second name of ``path`` before ``path`` is replaced.

    The link replaces ``previous`` atomically, so at every moment both names
    hold a complete checkpoint.
    """
    if not path.is_file():
        return
    temporary = previous.with_name(f".{previous.name}.link.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(path, temporary)
        os.replace(temporary, previous)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _naming(error, previous) from None


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` through a flushed temporary file and a rename.

    A failed write (disk full, file too large, read-only folder) leaves no
    temporary file behind and raises OSError naming ``path``.
    """
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise _naming(error, path) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            # mkstemp makes files only the owner can read; records, checkpoints
            # and pictures are meant to be shared.
            os.fchmod(file.fileno(), 0o644)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _naming(error, path) from None
        raise
    _sync_directory(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the hidden temporary files a killed writer left in ``run_dir``.

    Only call this while holding the run directory's lock: then no other
    process can be writing one of them.
    """
    removed = []
    for path in run_dir.glob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, naming the file the caller meant to write."""
    named = OSError(error.errno, error.strerror or str(error), str(path))
    return named


# Reading.


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a ganzoo checkpoint; a damaged or unsafe file is a GanzooError naming it.

    Only tensors and plain containers are unpickled (``weights_only``), so a
    file carrying Python objects is refused before any of its code can run.
    """
    if not path.is_file():
        raise GanzooError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            raise _damaged(path, error) from None
        raise GanzooError(
            f"refused to load checkpoint {path}: it holds Python objects other "
            f"than tensors and plain containers ({_unsafe_part(error)}), and "
            "unpickling them could run code; only files written by ganzoo load"
        ) from None
    except Exception as error:  # torch raises many types for a damaged file
        raise _damaged(path, error) from None
    if not isinstance(state, dict) or "generator" not in state:
        raise GanzooError(f"{path} is not a ganzoo checkpoint")
    stored = state.pop(DIGEST_KEY, None)
    if stored is not None and stored != content_digest(state):
        raise GanzooError(
            f"checkpoint {path} is damaged: its contents do not match the "
            "digest written with them"
        )
    return state


def load_resumable(
    run_dir: Path, device: torch.device | str = "cpu"
) -> tuple[dict[str, Any], Path] | None:
    """The newest good checkpoint to resume from: the last one, else the previous.

    Returns None when the run directory holds neither; raises GanzooError naming
    every file and its problem when all that are present are damaged.
    """
    problems = []
    for name in (LAST, PREVIOUS):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path, device)
        except GanzooError as error:
            log.warning("%s; trying an older checkpoint", error)
            problems.append(str(error))
            continue
        if problems:
            log.warning("resuming from %s (step %d) instead", path, state["step"])
        return state, path
    if problems:
        raise GanzooError(
            f"cannot resume {run_dir}: no good checkpoint is left "
            f"({'; '.join(problems)}); train again into a new --run-dir"
        )
    return None


def content_digest(state: Any) -> str:
    """A digest of every value in ``state``, tensors included, in a fixed order."""
    hasher = hashlib.blake2b(digest_size=16)
    for part in _digest_parts(state):
        hasher.update(part)
    return hasher.hexdigest()


def _digest_parts(value: Any) -> Iterator[bytes | memoryview]:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        yield f"tensor {flat.dtype} {tuple(value.shape)};".encode()
        yield memoryview(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        yield f"dict {len(value)};".encode()
        for key, item in value.items():
            yield f"key {key!r};".encode()
            yield from _digest_parts(item)
    elif isinstance(value, list | tuple):
        yield f"{type(value).__name__} {len(value)};".encode()
        for item in value:
            yield from _digest_parts(item)
    else:
        yield f"{type(value).__name__} {value!r};".encode()


def _damaged(path: Path, error: Exception) -> GanzooError:
    return GanzooError(
        f"checkpoint {path} cannot be read ({type(error).__name__}: "
        f"{_first_sentence(error)}); it is truncated, damaged or not a ganzoo "
        "checkpoint"
    )


def _unsafe_part(error: Exception) -> str:
    """``GLOBAL io.open`` from torch's long weights-only message."""
    found = re.search(r"GLOBAL [\w.]+", str(error))
    return found.group(0) if found else "an unsupported global"


def _first_sentence(error: Exception) -> str:
    """The first sentence of an error's message, which says what went wrong."""
    lines = str(error).strip().splitlines()
    if not lines:
        return "no detail"
    sentence, stop, _ = lines[0].partition(". ")
    return (sentence + stop.strip())[:200]


# Random-number state.


def capture_rng() -> dict[str, Any]:
    """Every random-number state a training step can touch."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_tensors(np.random.get_state()),
        "python": _python_state_to_tensor(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(_numpy_state_from_tensors(state["numpy"]))
    random.setstate(_python_state_from_tensor(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# weights_only loading accepts tensors and plain containers only, so the numpy
# and Python generator states are stored as tensors.


def _numpy_state_to_tensors(state: tuple) -> dict[str, Any]:
    name, keys, position, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _numpy_state_from_tensors(state: dict[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["position"], state["has_gauss"], state["cached"])


def _python_state_to_tensor(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _python_state_from_tensor(state: dict[str, Any]) -> tuple:
    return (state["version"], tuple(int(v) for v in state["internal"]), state["gauss"])
