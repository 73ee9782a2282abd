"""The results store: one JSON record per evaluation, written atomically.

A record is first written to a hidden temporary file in the same directory and
then hard-linked under its final name, which fails rather than overwrites when
the name is taken. Readers therefore only ever see whole records, and any
number of processes can write at once without losing one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_RESULTS = Path("leaderboard") / "results"


def safe_name(text: str) -> str:
    """A file-name fragment that cannot leave its directory."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return cleaned[:80] or "record"


def write_record(record: dict[str, Any], results_dir: Path = DEFAULT_RESULTS) -> Path:
    """Store ``record`` under a new unique name and return its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{safe_name(record.get('name') or 'run')}-{stamp}"
    text = json.dumps(record, indent=2, sort_keys=False, default=str) + "\n"

    handle, temporary = tempfile.mkstemp(dir=results_dir, prefix=".record-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        while True:
            path = results_dir / f"{base}-{secrets.token_hex(3)}.json"
            try:
                os.link(temporary, path)
                break
            except FileExistsError:
                continue
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def read_records(results_dir: Path = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Every complete record in ``results_dir``, oldest first; unreadable ones skipped."""
    records = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            log.warning("skipping unreadable record %s (%s)", path, error)
            continue
        if isinstance(record, dict):
            record["_path"] = str(path)
            records.append(record)
    return records
