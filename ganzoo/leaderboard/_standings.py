"""Standings: records grouped by data set and protocol, ranked by one metric.

Records whose protocols differ (feature extractor or its weights, sample counts,
reference split or data, k values) are never ranked in one table; each table
says what sets it apart from the others of its data set. A failed record is
listed with its table's data set but not ranked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..evaluation._scoring import LOWER_IS_BETTER, SCORE_KEYS

METRICS = SCORE_KEYS

# The protocol fields that must agree for two scores to be comparable.
PROTOCOL_FIELDS = {
    "feature extractor": lambda p: (p.get("feature_extractor") or {}).get("name"),
    "extractor weights": lambda p: (p.get("feature_extractor") or {}).get(
        "weights_hash"
    ),
    "preprocessing": lambda p: (p.get("feature_extractor") or {}).get("preprocessing"),
    "reference split": lambda p: (p.get("reference") or {}).get("split"),
    "reference data": lambda p: (p.get("reference") or {}).get("fingerprint"),
    "n_real": lambda p: p.get("n_real"),
    "n_fake": lambda p: p.get("n_fake"),
    "k": lambda p: (p.get("k_pr"), p.get("k_dc")),
}


@dataclass
class Table:
    """One ranked table: one data set under one protocol."""

    dataset: str
    metric: str
    protocol: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    apart: list[str] = field(default_factory=list)

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


@dataclass
class Standings:
    tables: list[Table]
    failed: dict[str, list[dict[str, Any]]]

    def datasets(self) -> list[str]:
        return sorted({t.dataset for t in self.tables} | set(self.failed))


def default_metric(records: Iterable[dict[str, Any]]) -> str:
    """FID where it exists, mode coverage for the 2-D mixtures."""
    records = list(records)
    if any(r.get("fid") is not None for r in records):
        return "fid"
    if any(r.get("modes") is not None for r in records):
        return "modes"
    for name in METRICS:
        if any(r.get(name) is not None for r in records):
            return name
    return "fid"


def protocol_key(record: dict[str, Any]) -> tuple:
    protocol = record.get("protocol") or {}
    return tuple(str(read(protocol)) for read in PROTOCOL_FIELDS.values())


def build_standings(
    records: list[dict[str, Any]],
    *,
    dataset: str | None = None,
    metric: str | None = None,
) -> Standings:
    """Group, deduplicate (latest record per recipe and protocol) and rank."""
    chosen = [r for r in records if dataset is None or r.get("dataset") == dataset]
    failed: dict[str, list[dict[str, Any]]] = {}
    latest: dict[tuple, dict[str, Any]] = {}
    for record in sorted(
        chosen, key=lambda r: (r.get("created") or "", r.get("_path", ""))
    ):
        if record.get("status") != "ok":
            failed.setdefault(record.get("dataset", "?"), []).append(record)
            continue
        latest[
            (record.get("dataset"), record.get("recipe_hash"), protocol_key(record))
        ] = record

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for (name, _, key), record in latest.items():
        groups.setdefault((name, key), []).append(record)

    tables = []
    for (name, _), rows in sorted(groups.items(), key=lambda item: str(item[0])):
        chosen_metric = metric or default_metric(rows)
        table = Table(name, chosen_metric, _describe_protocol(rows[0]))
        table.rows = sorted(rows, key=lambda r: _rank_key(r, chosen_metric))
        tables.append(table)

    for table in tables:
        others = [t for t in tables if t.dataset == table.dataset and t is not table]
        for other in others:
            differs = [
                f"{field_name} {table.protocol.get(field_name)} vs "
                f"{other.protocol.get(field_name)}"
                for field_name in PROTOCOL_FIELDS
                if table.protocol.get(field_name) != other.protocol.get(field_name)
            ]
            table.apart.append("; ".join(differs))
    return Standings(tables, failed)


def _describe_protocol(record: dict[str, Any]) -> dict[str, Any]:
    protocol = record.get("protocol") or {}
    return {name: read(protocol) for name, read in PROTOCOL_FIELDS.items()}


# Ties on the ranking metric are broken by a second one where there is a natural
# choice: equal mode counts by the reverse KL of the mode histogram.
TIE_BREAK = {"modes": "reverse_kl", "classes_covered": "class_kl"}


def _rank_key(record: dict[str, Any], metric: str) -> tuple:
    def signed(name: str) -> tuple:
        value = record.get(name)
        if not isinstance(value, int | float):
            return (1, 0.0)
        return (0, value if name in LOWER_IS_BETTER else -value)

    second = TIE_BREAK.get(metric)
    return (
        *signed(metric),
        *(signed(second) if second else ()),
        record.get("name", ""),
    )


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Side by side: every metric, training cost, and where the recipes differ."""
    columns = [r.get("name", "?") for r in records]
    metrics = {
        m: [r.get(m) for r in records]
        for m in METRICS
        if any(r.get(m) is not None for r in records)
    }
    flat = [_flatten(r.get("config") or {}) for r in records]
    keys = sorted(set().union(*flat)) if flat else []
    differences = {
        k: [f.get(k) for f in flat]
        for k in keys
        if len({repr(f.get(k)) for f in flat}) > 1
    }
    training = {
        k: [(r.get("training") or {}).get(k) for r in records]
        for k in ("kimg", "sec_per_kimg", "peak_host_mem_gb", "device")
    }
    return {
        "runs": columns,
        "metrics": metrics,
        "training": training,
        "recipe_differences": differences,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}
