"""What the extractors that load a weights file from disk have in common."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ganzoo import DataShape, FeatureExtractor, GanzooError


class WeightsFileExtractor(FeatureExtractor):
    """A feature extractor for grayscale or RGB images whose weights sit in ``path``.

    Subclasses provide ``path`` (the weights file in use); the hash of its bytes
    identifies the weights, recomputed only when the file changes.
    """

    path: Path
    _digest: tuple[tuple[int, int], str] | None = None

    def check(self, data: DataShape) -> None:
        if data.kind != "image" or data.channels not in (1, 3):
            raise GanzooError(
                f"feature extractor {self.name!r} takes grayscale or RGB images, but "
                f"the data are {data.describe()}; point data sets are scored on the "
                "samples themselves, with no feature extractor"
            )

    def weights_hash(self) -> str:
        """The first 16 hex digits of the SHA-256 of the weights file."""
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._digest is None or self._digest[0] != stamp:
            digest = hashlib.sha256()
            with self.path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            self._digest = (stamp, digest.hexdigest())
        return self._digest[1][:16]
