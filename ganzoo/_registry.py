"""Plugin discovery and lookup.

Plugins come from three places, all handled the same way once imported:

1. the ``ganzoo`` entry-point group (the built-ins and installed packages),
2. the ``GANZOO_PLUGINS`` environment variable (files or module names separated
   by ``os.pathsep`` or commas),
3. a recipe's ``plugins:`` list (files relative to the recipe, or module names).

A module that fails to import, or that returns something malformed from a hook,
is recorded as a :class:`Problem` with its origin; every other plugin still works.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pluggy

from . import hookspecs
from ._errors import GanzooError
from ._options import Option, closest
from ._plugin import KINDS, Architecture, Plugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ganzoo"
ENV_VAR = "GANZOO_PLUGINS"
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)?$")


@dataclass(frozen=True)
class Entry:
    """One registered plugin class and where it came from."""

    kind: str
    name: str
    cls: type[Plugin]
    origin: str

    @property
    def summary(self) -> str:
        return self.cls.summary()


@dataclass(frozen=True)
class Problem:
    """A plugin module or registration that could not be used."""

    origin: str
    message: str


@dataclass
class Registry:
    """All plugins known to this process, by kind and name."""

    manager: pluggy.PluginManager = field(init=False)
    entries: dict[str, dict[str, list[Entry]]] = field(init=False)
    problems: list[Problem] = field(default_factory=list)
    _origins: dict[str, str] = field(default_factory=dict)
    _loaded_files: dict[Path, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.manager = pluggy.PluginManager("ganzoo")
        self.manager.add_hookspecs(hookspecs)
        self.entries = {kind: {} for kind in KINDS}

    # Discovery.

    def load_entry_points(self) -> None:
        """Import every module of the ``ganzoo`` entry-point group."""
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = point.dist
            where = f" ({dist.name} {dist.version})" if dist is not None else ""
            origin = f"entry point {point.name} = {point.value}{where}"
            try:
                module = point.load()
            except Exception as error:  # a broken plugin must not break the zoo
                self._problem(origin, f"failed to import: {_describe(error)}")
                continue
            self._register(module, origin)

    def load_environment(self) -> None:
        """Import the plugins named in ``GANZOO_PLUGINS``."""
        value = os.environ.get(ENV_VAR, "")
        for spec in re.split(rf"[,{re.escape(os.pathsep)}]", value):
            if spec.strip():
                self.load(spec.strip(), via=ENV_VAR, strict=False)

    def load(
        self,
        spec: str,
        *,
        base_dir: Path | None = None,
        via: str = "recipe",
        strict: bool = True,
    ) -> None:
        """Import one plugin file or module and register its hooks.

        ``spec`` is a path to a ``.py`` file (relative to ``base_dir``) or a dotted
        module name. With ``strict`` an import failure raises GanzooError; without
        it the failure is recorded as a problem.
        """
        looks_like_file = spec.endswith(".py") or os.sep in spec or "/" in spec
        if looks_like_file:
            path = Path(spec).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            path = path.resolve()
            if path in self._loaded_files:
                return
            origin = f"file {path} (from {via})"
            if not path.is_file():
                self._fail(origin, f"plugin file not found: {path}", strict)
                return
            try:
                module = _import_file(path)
            except Exception as error:
                self._fail(origin, f"failed to import: {_describe(error)}", strict)
                return
            self._loaded_files[path] = origin
        else:
            origin = f"module {spec} (from {via})"
            if self.manager.get_plugin(spec) is not None:
                return
            try:
                module = importlib.import_module(spec)
            except Exception as error:
                self._fail(origin, f"failed to import: {_describe(error)}", strict)
                return
        before = len(self.problems)
        self._register(module, origin)
        if strict and len(self.problems) > before:
            raise GanzooError(f"{origin}: {self.problems[-1].message}")

    def _register(self, module: ModuleType, origin: str) -> None:
        name = module.__name__
        if self.manager.get_plugin(name) is not None:
            return
        try:
            self.manager.register(module, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            self.manager.unregister(name=name)
            self._problem(origin, f"invalid hook implementation: {error}")
            return
        self._origins[name] = origin
        self._collect(module, origin)

    def _collect(self, module: ModuleType, origin: str) -> None:
        """Call the module's hooks and register the classes they return."""
        hooks = 0
        for kind, hook_name in hookspecs.HOOKS.items():
            function = getattr(module, hook_name, None)
            if function is None or not hasattr(function, "ganzoo_impl"):
                continue
            hooks += 1
            try:
                returned = function()
            except Exception as error:
                self._problem(origin, f"{hook_name}() raised {_describe(error)}")
                continue
            if not isinstance(returned, list | tuple):
                self._problem(
                    origin,
                    f"{hook_name}() must return a list of classes, got "
                    f"{type(returned).__name__}",
                )
                continue
            for cls in returned:
                message = _malformed(kind, cls)
                if message:
                    self._problem(origin, f"{hook_name}(): {message}")
                    continue
                self.entries[kind].setdefault(cls.name, []).append(
                    Entry(kind, cls.name, cls, origin)
                )
        if hooks == 0:
            self._problem(origin, "implements no ganzoo hook (see ganzoo.hookspecs)")

    def _fail(self, origin: str, message: str, strict: bool) -> None:
        if strict:
            raise GanzooError(f"{origin}: {message}")
        self._problem(origin, message)

    def _problem(self, origin: str, message: str) -> None:
        log.warning("plugin %s: %s", origin, message)
        self.problems.append(Problem(origin, message))

    # Lookup.

    def names(self, kind: str) -> list[str]:
        """All names registered for ``kind``, sorted."""
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """The entry ``name`` of ``kind``; GanzooError when unknown or ambiguous."""
        found = self.entries[kind].get(name)
        if not found:
            known = self.names(kind)
            near = closest(name, known)
            hint = (
                f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
            )
            listing = ", ".join(known) if known else "none are registered"
            raise GanzooError(f"unknown {kind} {name!r}{hint}; known: {listing}")
        if len(found) > 1:
            origins = " and ".join(e.origin for e in found)
            raise GanzooError(f"{kind} name {name!r} is registered twice: by {origins}")
        return found[0]

    def all_entries(self, kind: str | None = None) -> Iterable[Entry]:
        kinds = [kind] if kind else list(KINDS)
        for each in kinds:
            for name in self.names(each):
                yield from self.entries[each][name]


def build_registry(extra: Iterable[str] = (), base_dir: Path | None = None) -> Registry:
    """A registry with entry points, ``GANZOO_PLUGINS`` and ``extra`` specs loaded."""
    registry = Registry()
    registry.load_entry_points()
    registry.load_environment()
    for spec in extra:
        registry.load(spec, base_dir=base_dir)
    return registry


def _malformed(kind: str, cls: object) -> str | None:
    """Why ``cls`` cannot be registered as a ``kind`` plugin, or None."""
    base = KINDS[kind]
    if not isinstance(cls, type) or not issubclass(cls, base):
        return f"{cls!r} is not a subclass of ganzoo.{base.__name__}"
    label = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(cls.name, str) or not NAME_PATTERN.match(cls.name):
        return (
            f"{label} has name {cls.name!r}; expected lower-case kebab-case such as "
            f"'my-{kind}' (optionally with a '.variant' tag)"
        )
    if not cls.summary():
        return f"{label} ({cls.name!r}) has no docstring; its first line is the summary"
    declared: list[Option] = list(cls.options)
    if issubclass(cls, Architecture):
        if not cls.provides():
            return (
                f"{label} ({cls.name!r}) builds neither a generator nor a discriminator"
            )
        declared = list(cls.generator_options) + list(cls.discriminator_options)
        groups = [cls.options, cls.generator_options, cls.discriminator_options]
    else:
        groups = [cls.options]
    for group in groups:
        if not isinstance(group, tuple) or not all(
            isinstance(o, Option) for o in group
        ):
            return f"{label} ({cls.name!r}) options must be a tuple of ganzoo.Option"
        names = [o.name for o in group]
        if len(set(names)) != len(names):
            return f"{label} ({cls.name!r}) declares an option twice: {names}"
    for option in declared:
        if not issubclass(cls, Architecture) and hasattr(base, option.name):
            return f"{label} ({cls.name!r}) option {option.name!r} shadows a method"
    return None


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"ganzoo_local_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # A plugin named by a recipe may be rejected later; leave no __pycache__ behind.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
