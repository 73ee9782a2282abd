"""The whole plugin contract: one hook per plugin kind.

A plugin module implements any of these hooks with :data:`ganzoo.hookimpl`. Every
hook takes no arguments and returns a list of plugin classes of its kind; ganzoo
calls each hook once, when the registry is built, and concatenates the lists of
all plugins. Names must be unique within a kind: two classes with the same name
make that name unusable until one is removed, and the error names both origins.
"""

from __future__ import annotations

import pluggy

from ._plugin import (
    Architecture,
    Constraint,
    Dataset,
    FeatureExtractor,
    Loss,
    Metric,
    Regularizer,
    Tracker,
)

hookspec = pluggy.HookspecMarker("ganzoo")


# Models and objectives.


@hookspec
def ganzoo_architectures() -> list[type[Architecture]]:
    """Return generator/discriminator families (``dcgan-seed``, ``mlp``, ...).

    Called once at registry build. Each class subclasses
    :class:`ganzoo.Architecture`; a recipe names it under ``model.generator`` and
    ``model.discriminator``.
    """


@hookspec
def ganzoo_losses() -> list[type[Loss]]:
    """Return adversarial objectives (``bce``, ``wasserstein``, ...).

    Called once at registry build; a recipe names one under ``loss``.
    """


@hookspec
def ganzoo_regularizers() -> list[type[Regularizer]]:
    """Return terms added to the discriminator loss (``gradient-penalty``, ``r1``).

    Called once at registry build; a recipe lists any number under
    ``regularizers`` and their terms are summed.
    """


@hookspec
def ganzoo_constraints() -> list[type[Constraint]]:
    """Return parameter constraints applied after each discriminator step.

    Called once at registry build; a recipe lists any number under
    ``constraints``, applied in order.
    """


# Data.


@hookspec
def ganzoo_datasets() -> list[type[Dataset]]:
    """Return data sets (``ring``, ``fashion-mnist``, ``image-folder``, ...).

    Called once at registry build; a recipe names one under ``data``.
    """


# Evaluation.


@hookspec
def ganzoo_feature_extractors() -> list[type[FeatureExtractor]]:
    """Return feature extractors used by metrics (``fashion-classifier``, ...).

    Called once at registry build; a recipe names one under
    ``eval.feature_extractor``.
    """


@hookspec
def ganzoo_metrics() -> list[type[Metric]]:
    """Return metrics computed from real and generated sets.

    Called once at registry build; a recipe lists them under ``eval.metrics``.
    """


# Logging.


@hookspec
def ganzoo_trackers() -> list[type[Tracker]]:
    """Return training trackers (``wandb``, ``tensorboard``).

    Called once at registry build; a recipe enables one with
    ``tracking: {<name>: {...}}``. Console and JSONL logging are always on.
    """


HOOKS: dict[str, str] = {
    "architecture": "ganzoo_architectures",
    "loss": "ganzoo_losses",
    "regularizer": "ganzoo_regularizers",
    "constraint": "ganzoo_constraints",
    "dataset": "ganzoo_datasets",
    "feature-extractor": "ganzoo_feature_extractors",
    "metric": "ganzoo_metrics",
    "tracker": "ganzoo_trackers",
}
"""Which hook returns the plugins of each kind."""
