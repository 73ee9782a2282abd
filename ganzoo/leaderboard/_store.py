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

    try:
        handle, temporary = tempfile.mkstemp(
            dir=results_dir, prefix=".record-", suffix=".tmp"
        )
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(results_dir)) from None
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
    except OSError as error:
        # Disk full or a read-only folder: say where; the temporary goes below.
        where = error.filename or str(results_dir / f"{base}-*.json")
        raise OSError(error.errno, error.strerror, where) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def read_records(results_dir: Path = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Every complete record in ``results_dir`` by name; unreadable ones skipped."""
    records = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            log.warning("skipping unreadable record %s (%s)", path, error)
            continue
        if isinstance(record, dict):
            record["_path"] = str(path)
            records.append(record)
    return records


def find_records(items: list[str], results_dir: Path = DEFAULT_RESULTS) -> list[dict]:
    """The latest record for each item: a record file, a run directory or a recipe."""
    from .._errors import GanzooError

    records = read_records(results_dir) if results_dir.is_dir() else []
    found = []
    for item in items:
        path = Path(item)
        if path.suffix == ".json" and path.is_file():
            try:
                record = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise GanzooError(f"{item}: not a readable record ({error})") from None
            if not isinstance(record, dict):
                raise GanzooError(
                    f"{item}: not an evaluation record (expected a JSON object)"
                )
            found.append(record)
            continue
        if path.is_dir():
            target = path.resolve()
            matches = [
                r
                for r in records
                if any(
                    s.get("run_dir") and Path(s["run_dir"]).resolve() == target
                    for s in r.get("seeds", [])
                )
            ]
            what = f"run directory {item}"
        elif path.suffix in (".yaml", ".yml") and path.is_file():
            from ..recipes import load_recipe

            digest = load_recipe(path).hash
            matches = [r for r in records if r.get("recipe_hash") == digest]
            what = f"recipe {item} (hash {digest})"
        else:
            raise GanzooError(
                f"{item}: expected a record (.json), a run directory or a "
                "recipe (.yaml)"
            )
        if not matches:
            raise GanzooError(
                f"no evaluation record for {what} in {results_dir}; run "
                "`ganzoo eval` first"
            )
        found.append(max(matches, key=lambda r: (r.get("created") or "", r["_path"])))
    return found
