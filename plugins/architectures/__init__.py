"""The built-in architectures: the lecture's seed DCGAN, MLPs, DCGAN and timm.

Each family lives in its own module; this one only registers them.
"""

from __future__ import annotations

from ganzoo import hookimpl

from .conditional import ConditionalDcgan
from .dcgan import Dcgan, DcganCritic
from .dcgan_seed import DcganSeed
from .mlp import Mlp
from .timm_backbone import TimmDiscriminator

__all__ = [
    "ConditionalDcgan",
    "Dcgan",
    "DcganCritic",
    "DcganSeed",
    "Mlp",
    "TimmDiscriminator",
]


@hookimpl
def ganzoo_architectures():
    """Register the built-in generator and discriminator families."""
    return [
        DcganSeed,
        Mlp,
        Dcgan,
        DcganCritic,
        TimmDiscriminator,
        ConditionalDcgan,
    ]
