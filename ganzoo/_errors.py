"""The one exception type for mistakes a user can fix."""

from __future__ import annotations

from pathlib import Path


class GanzooError(Exception):
    """A user error: bad recipe, unknown plugin, missing file.

    The command line prints it as a single line and exits with status 2. The
    location parts are optional; :meth:`at` fills in the ones a caller knows.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key

    def at(
        self,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> GanzooError:
        """Fill in the location parts that are still unknown, and return self."""
        if self.file is None and file is not None:
            self.file = str(file)
        if self.line is None and line is not None:
            self.line = line
        if self.key is None and key is not None:
            self.key = key
        return self

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "")
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"
