"""The built-in data sets: toy 2-D mixtures, IDX image sets, digits, image folders.

Registered through the ``ganzoo`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from ganzoo import Dataset, hookimpl

from .digits import Digits
from .idx import FashionMnist, Mnist
from .image_folder import ImageFolder
from .paired import FashionEdges, PairedFolder
from .stacked import StackedFashionMnist, StackedMnist
from .toy import Grid, Ring

__all__ = [
    "Digits",
    "FashionEdges",
    "FashionMnist",
    "Grid",
    "ImageFolder",
    "Mnist",
    "PairedFolder",
    "Ring",
    "StackedFashionMnist",
    "StackedMnist",
]


@hookimpl
def ganzoo_datasets() -> list[type[Dataset]]:
    """Return the built-in data sets."""
    return [
        Ring,
        Grid,
        FashionMnist,
        Mnist,
        Digits,
        ImageFolder,
        StackedMnist,
        StackedFashionMnist,
        PairedFolder,
        FashionEdges,
    ]
