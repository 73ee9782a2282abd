"""The conformance kit: put any plugin through the contract of its kind.

:func:`check_plugin` runs every check that applies to a plugin class and returns a
:class:`Report` of named violations; :func:`assert_conforms` raises when there is
one, for a plugin's own tests; :func:`registered_entries` lists the registry for
``pytest.mark.parametrize``. ``ganzoo check NAME...`` runs the same checks.

The checks, by rule name:

``options``
    every option has a known type, a help text and a default it accepts
``create``
    the plugin is created from its defaults, or says why not with a GanzooError
``shapes``
    outputs have the documented shapes and types: architectures for every probe
    data shape their ``check`` accepts, data sets, extractors, losses, metrics
``unsupported``
    a data shape (or split) the plugin does not support is a GanzooError
``finite``
    a few training steps keep losses, gradients and weights finite
``state-dict``
    a module's state_dict survives ``torch.save``/``torch.load`` and restores it
``seed``
    the same seed gives identical weights and results
``lifecycle``
    a tracker survives ``start``, ``log_stats``, ``log_image`` and ``finish``

A plugin that needs something absent (a weights file, a data file, a package, a
required option) cannot be checked further; the report says so with the plugin's
own error under ``unavailable``, which is never counted as a pass. The kit never
downloads (a data set's ``download`` option is set to false unless given) and
writes only to a temporary folder. The global random state is left as it was.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from ._errors import GanzooError
from ._options import closest
from ._plugin import KINDS, DataShape, Plugin
from ._registry import Entry, Registry, build_registry
from .kit._base import (
    PROBE_SHAPES,
    ConformanceError,
    Report,
    Unavailable,
    Violation,
    check_options,
)
from .kit._data import (
    check_dataset,
    check_feature_extractor,
    check_metric,
    check_tracker,
)
from .kit._models import (
    check_architecture,
    check_constraint,
    check_loss,
    check_regularizer,
)

__all__ = [
    "PROBE_SHAPES",
    "ConformanceError",
    "Report",
    "Violation",
    "assert_conforms",
    "check_names",
    "check_plugin",
    "entry_id",
    "registered_entries",
]

# Entry points of the kit.


def check_plugin(
    plugin: type[Plugin] | Entry,
    *,
    options: Mapping[str, Any] | None = None,
    shapes: Sequence[DataShape] = PROBE_SHAPES,
) -> Report:
    """Check one plugin class against the contract of its kind.

    ``options`` are given to the plugin instead of its defaults; for an
    architecture they are per role, ``{"generator": {...}, "discriminator":
    {...}}``. ``shapes`` are the data shapes offered to architectures and
    feature extractors. Never raises for a broken plugin: every problem is a
    :class:`Violation` in the report.
    """
    cls = plugin.cls if isinstance(plugin, Entry) else plugin
    if not isinstance(cls, type) or not issubclass(cls, Plugin) or not cls.kind:
        raise GanzooError(f"{cls!r} is not a plugin class (a subclass of a kind)")
    report = Report(cls.kind, cls.name or cls.__qualname__)
    check_options(cls, report)
    with (
        torch.random.fork_rng(devices=[]),
        tempfile.TemporaryDirectory(prefix="ganzoo-check-") as scratch,
    ):
        try:
            CHECKS[cls.kind](cls, dict(options or {}), tuple(shapes), report, scratch)
        except Unavailable as missing:
            report.unavailable = str(missing)
    return report


def assert_conforms(plugin: type[Plugin] | Entry, **kwargs: Any) -> Report:
    """:func:`check_plugin`, raising :class:`ConformanceError` on any violation."""
    report = check_plugin(plugin, **kwargs)
    if not report.ok:
        raise ConformanceError(report)
    return report


def registered_entries(
    registry: Registry | None = None, kinds: Iterable[str] | None = None
) -> list[Entry]:
    """Every registered plugin, for ``pytest.mark.parametrize(..., ids=entry_id)``."""
    registry = registry or build_registry()
    chosen = list(kinds) if kinds is not None else list(KINDS)
    return [entry for kind in chosen for entry in registry.all_entries(kind)]


def entry_id(entry: Entry) -> str:
    """A test id such as ``architecture:mlp``."""
    return f"{entry.kind}:{entry.name}"


def check_names(names: Sequence[str], registry: Registry | None = None) -> list[Report]:
    """Check the plugins ``ganzoo check`` names: ``NAME`` (all kinds) or ``KIND:NAME``.

    Every name is looked up before anything is checked; an unknown one is a
    GanzooError with the closest names and the full list.
    """
    registry = registry or build_registry()
    chosen: list[Entry] = []
    for given in names:
        kind, _, name = given.rpartition(":")
        if kind and kind not in KINDS:
            near = closest(kind, KINDS)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise GanzooError(
                f"check: unknown kind {kind!r} in {given!r}{hint}; "
                f"kinds are: {', '.join(KINDS)}"
            )
        if kind:
            try:
                chosen.append(registry.get(kind, name))
            except GanzooError as error:
                raise GanzooError(f"check: {error}") from None
            continue
        found = [registry.get(k, name) for k in KINDS if name in registry.entries[k]]
        if not found:
            known = sorted({e.name for e in registry.all_entries()})
            near = closest(name, known)
            hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
            broken = (
                f"; {len(registry.problems)} plugin module(s) failed to load, see "
                "`ganzoo plugins`"
                if registry.problems
                else ""
            )
            raise GanzooError(
                f"check: no plugin is named {name!r}{hint}; registered: "
                f"{', '.join(known) or 'none'}{broken}"
            )
        chosen += found
    return [check_plugin(entry) for entry in chosen]


CHECKS: dict[str, Callable[..., None]] = {
    "architecture": check_architecture,
    "loss": check_loss,
    "regularizer": check_regularizer,
    "constraint": check_constraint,
    "dataset": check_dataset,
    "feature-extractor": check_feature_extractor,
    "metric": check_metric,
    "tracker": check_tracker,
}
"""The checks of each kind, after the options (which every kind shares)."""
