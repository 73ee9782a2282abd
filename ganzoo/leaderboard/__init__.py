"""The leaderboard: the results store, standings and their rendering."""

from ._standings import Standings, Table, build_standings, compare, default_metric
from ._store import DEFAULT_RESULTS, find_records, read_records, safe_name, write_record

__all__ = [
    "DEFAULT_RESULTS",
    "Standings",
    "Table",
    "build_standings",
    "compare",
    "default_metric",
    "find_records",
    "read_records",
    "safe_name",
    "write_record",
]
