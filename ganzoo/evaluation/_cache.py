"""On-disk cache of real-data features, keyed by the content that determines them.

The key hashes the data set's content fingerprint, the split and subset, the
extractor's name, weights hash and preprocessing: change any of them and the
cache misses. A file that fails to load, or whose stored key differs, is
recomputed rather than trusted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._plugin import fingerprint

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_root() -> Path:
    """``$GANZOO_CACHE``, else ``~/.cache/ganzoo``."""
    root = os.environ.get("GANZOO_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ganzoo"


def cache_key(parts: dict[str, Any]) -> str:
    return fingerprint(CACHE_FORMAT, json.dumps(parts, sort_keys=True, default=str))


def cached(
    parts: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], bool]:
    """Load the tensors stored under ``parts``, or compute and store them.

    Returns the tensors and whether they came from the cache.
    """
    key = cache_key(parts)
    path = cache_root() / "features" / f"{key}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == key and stored.get("parts") == _jsonable(parts):
                return stored["tensors"], True
            log.warning("feature cache %s does not match its key; recomputing", path)
        except Exception as error:  # a damaged cache file is recomputed, not trusted
            log.warning(
                "feature cache %s is unreadable (%s); recomputing",
                path,
                type(error).__name__,
            )
    tensors = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        torch.save({"key": key, "parts": _jsonable(parts), "tensors": tensors}, file)
    os.replace(temporary, path)
    return tensors, False


def _jsonable(parts: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(parts, sort_keys=True, default=str))
