"""The built-in architectures: the lecture's seed DCGAN, MLPs, DCGAN and timm.

Each family lives in its own module; this one only registers them.
"""

from __future__ import annotations

from ganzoo import hookimpl

from .conditional import ConditionalDcgan
from .conditional_mlp import ConditionalMlp
from .dcgan import Dcgan, DcganCritic
from .dcgan_seed import DcganSeed
from .mlp import Mlp
from .pix2pix import Pix2pix
from .timm_backbone import TimmDiscriminator

__all__ = [
    "ConditionalDcgan",
    "ConditionalMlp",
    "Dcgan",
    "DcganCritic",
    "DcganSeed",
    "Mlp",
    "Pix2pix",
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
        ConditionalMlp,
        Pix2pix,
    ]
