"""The leaderboard: the results store, standings and their rendering."""

from ._store import DEFAULT_RESULTS, read_records, safe_name, write_record

__all__ = ["DEFAULT_RESULTS", "read_records", "safe_name", "write_record"]
