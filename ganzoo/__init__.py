"""ganzoo: a plugin-based GAN zoo.

The public surface for plugin authors and for scripts that drive ganzoo from
Python. Everything not re-exported here is internal.
"""

from __future__ import annotations

import pluggy

from ._errors import GanzooError
from ._options import REQUIRED, Option
from ._plugin import (
    Architecture,
    Constraint,
    Dataset,
    DataShape,
    FeatureExtractor,
    Loss,
    Metric,
    Plugin,
    Regularizer,
    RunInfo,
    SampleSet,
    TensorData,
    Tracker,
    fingerprint,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ganzoo")
"""Marks a function in a plugin module as the implementation of a ganzoo hook."""

__all__ = [
    "REQUIRED",
    "Architecture",
    "Constraint",
    "DataShape",
    "Dataset",
    "FeatureExtractor",
    "GanzooError",
    "Loss",
    "Metric",
    "Option",
    "Plugin",
    "Regularizer",
    "RunInfo",
    "SampleSet",
    "TensorData",
    "Tracker",
    "__version__",
    "fingerprint",
    "hookimpl",
]
