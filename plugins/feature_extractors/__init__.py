"""The built-in feature extractors: the project's classifiers, Inception-v3, timm.

Importing this package also registers the classifiers with torch-fidelity, under
the same names, so its ``calculate_metrics`` can use them.
"""

from __future__ import annotations

from ganzoo import FeatureExtractor, hookimpl

from .classifier import FashionClassifier, MnistClassifier
from .inception import InceptionV3Compat
from .timm_features import TimmFeatures

__all__ = ["FashionClassifier", "InceptionV3Compat", "MnistClassifier", "TimmFeatures"]


@hookimpl
def ganzoo_feature_extractors() -> list[type[FeatureExtractor]]:
    """Register the built-in feature extractors."""
    return [FashionClassifier, MnistClassifier, InceptionV3Compat, TimmFeatures]
