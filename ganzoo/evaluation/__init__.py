"""Evaluation: feature extraction with a content-keyed cache, metrics, records."""

from ._evaluator import build_record, evaluate_recipe, score_checkpoint, scorer_for
from ._scoring import (
    NonFiniteError,
    Scorer,
    default_extractor,
    default_metrics,
    quantize,
)

__all__ = [
    "NonFiniteError",
    "Scorer",
    "build_record",
    "default_extractor",
    "default_metrics",
    "evaluate_recipe",
    "quantize",
    "score_checkpoint",
    "scorer_for",
]
