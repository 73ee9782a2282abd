"""Load, merge, override, validate and hash a recipe.

The result is a :class:`Recipe`: a plain dict with every option filled in (the
"resolved recipe"), the registry that resolved it, and a canonical hash. Nothing
is built and nothing is written here, so an invalid recipe costs nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import GanzooError
from .._options import Option, closest, resolve_options
from .._plugin import Architecture, DataShape, Plugin
from .._registry import Registry, build_registry
from ._sections import (
    EVAL,
    HASHED_UNLESS_DEFAULT,
    NOT_HASHED,
    OPTIMIZER,
    TOP_LEVEL,
    TRAIN,
)
from ._yaml import LinedDict, LinedList, dotted, parse_yaml, read_yaml_file

KeyPath = tuple[Any, ...]
COMMAND_LINE = "command line"


@dataclass
class Recipe:
    """A fully resolved recipe, ready to train."""

    config: dict[str, Any]
    hash: str
    name: str
    source: Path | None
    registry: Registry
    sources: _Sources | None = None

    def locate(self, key: str) -> tuple[str | None, int | None]:
        """The file and line where a dotted key (``model.generator``) was written."""
        if self.sources is None:
            return None, None
        path = tuple(
            int(part) if part.isdigit() else part
            for part in re.split(r"\.|\[|\]\.?", key)
            if part
        )
        return self.sources.locate(path)

    def plugin(self, kind: str, section: Mapping[str, Any]) -> Plugin:
        """Instantiate the plugin a resolved section names, with its options."""
        entry = self.registry.get(kind, section["name"])
        options = {k: v for k, v in section.items() if k != "name"}
        return entry.cls(**options)

    def dataset(self):  # -> ganzoo.Dataset
        return self.plugin("dataset", self.config["data"])

    def network(self, role: str, data: DataShape):  # -> nn.Module
        """Build the generator or the discriminator for ``data``."""
        section = self.config["model"][role]
        architecture = self.registry.get("architecture", section["name"]).cls()
        options = {k: v for k, v in section.items() if k != "name"}
        return architecture.make(role, data, options)

    def plugins(self, kind: str, key: str) -> list[Plugin]:
        return [self.plugin(kind, section) for section in self.config[key]]


class _Sources:
    """Where each key of the merged recipe was written: file and line."""

    def __init__(self) -> None:
        self.places: dict[KeyPath, tuple[str, int | None]] = {}

    def record(self, document: Any, source: str, prefix: KeyPath = ()) -> None:
        if isinstance(document, LinedDict):
            for key, value in document.items():
                self.places[prefix + (key,)] = (source, document.lines.get(key))
                self.record(value, source, prefix + (key,))
        elif isinstance(document, LinedList):
            for index, (value, line) in enumerate(
                zip(document, document.lines, strict=True)
            ):
                self.places[prefix + (index,)] = (source, line)
                self.record(value, source, prefix + (index,))

    def forget(self, prefix: KeyPath) -> None:
        for path in [p for p in self.places if p[: len(prefix)] == prefix]:
            del self.places[path]

    def locate(self, path: KeyPath) -> tuple[str | None, int | None]:
        for end in range(len(path), 0, -1):
            if path[:end] in self.places:
                return self.places[path[:end]]
        return None, None


def load_recipe(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    registry: Registry | None = None,
) -> Recipe:
    """Read ``path`` with its ``extends`` chain, apply ``overrides`` and validate.

    ``overrides`` are ``key.sub=value`` strings; values are parsed as YAML.
    Raises GanzooError naming the file, line and key of the first problem.
    """
    path = Path(path)
    sources = _Sources()
    merged = _read_with_bases(path, sources, chain=())
    for text in overrides:
        _apply_override(merged, sources, text)

    # Plugins the recipe names are loaded before its plugin sections are checked.
    if registry is None:
        registry = build_registry()
    specs = merged.get("plugins") or []
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise _error(
            sources, ("plugins",), "expected a list of plugin files or modules"
        )
    for index, spec in enumerate(specs):
        file, line = sources.locate(("plugins", index))
        base = Path(file).parent if file and file != COMMAND_LINE else Path.cwd()
        try:
            registry.load(spec, base_dir=base)
        except GanzooError as error:
            raise error.at(file=file, line=line, key=f"plugins[{index}]") from None

    config = _Validator(registry, sources).validate(merged)
    digest = recipe_hash(config)
    return Recipe(config, digest, _run_name(path, config), path, registry, sources)


def recipe_hash(config: Mapping[str, Any]) -> str:
    """A canonical hash of what determines the trained weights."""
    hashed = {k: v for k, v in config.items() if k not in NOT_HASHED}
    for key in NOT_HASHED:
        section, _, option = key.partition(".")
        if option and isinstance(hashed.get(section), Mapping):
            hashed[section] = {k: v for k, v in hashed[section].items() if k != option}
    for key in HASHED_UNLESS_DEFAULT:
        section, _, option = key.partition(".")
        values = hashed.get(section)
        if isinstance(values, Mapping) and values.get(option) == _DEFAULTS[key]:
            hashed[section] = {k: v for k, v in values.items() if k != option}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DEFAULTS = {
    f"{section}.{option.name}": option.default
    for section, declared in (("train", TRAIN), ("eval", EVAL))
    for option in declared
}


# Reading and merging.


def _read_with_bases(path: Path, sources: _Sources, chain: tuple[Path, ...]) -> dict:
    document = read_yaml_file(path)
    if document is None:
        raise GanzooError("recipe is empty; expected a mapping of sections", file=path)
    if not isinstance(document, dict):
        raise GanzooError(
            f"expected a mapping of sections at the top, got {_kind(document)}",
            file=path,
            line=1,
        )
    base_name = document.get("extends")
    if base_name is None:
        sources.record(document, str(path))
        return _plain(document)

    line = document.lines.get("extends")
    if not isinstance(base_name, str):
        raise GanzooError(
            "expected a relative path to a base recipe",
            file=path,
            line=line,
            key="extends",
        )
    base_path = path.parent / base_name
    if not base_path.is_file():
        problem = "is not a file" if base_path.exists() else "not found"
        raise GanzooError(
            f"base recipe {problem}: {base_path}", file=path, line=line, key="extends"
        )
    chain += (path.resolve(),)
    if base_path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base_path.resolve()))
        raise GanzooError(
            f"'extends' forms a cycle: {cycle}", file=path, line=line, key="extends"
        )
    merged = _read_with_bases(base_path, sources, chain)
    merged.pop("extends", None)
    _merge(merged, _plain(document), sources, ())
    sources.record(document, str(path))
    return merged


def _merge(base: dict, child: Mapping, sources: _Sources, prefix: KeyPath) -> None:
    """Merge ``child`` into ``base``: mappings recursively, everything else replaced.

    A plugin section whose ``name`` changes is replaced whole, so options of the
    base recipe's plugin do not leak into a different plugin.
    """
    for key, value in child.items():
        old = base.get(key)
        same_plugin = not (
            isinstance(old, dict)
            and isinstance(value, dict)
            and "name" in value
            and old.get("name") != value["name"]
        )
        if isinstance(old, dict) and isinstance(value, dict) and same_plugin:
            _merge(old, value, sources, prefix + (key,))
        else:
            sources.forget(prefix + (key,))
            base[key] = copy.deepcopy(value)


def _names_a_plugin(path: KeyPath) -> bool:
    """Whether a bare name may stand for the section at ``path``: ``loss: hinge``."""
    if path in (
        ("data",),
        ("loss",),
        ("model", "generator"),
        ("model", "discriminator"),
    ):
        return True
    lists = ("regularizers", "constraints")
    return len(path) == 2 and path[0] in lists and isinstance(path[1], int)


def _apply_override(merged: dict, sources: _Sources, text: str) -> None:
    """Set one ``key.sub=value`` in the merged recipe, making mappings on the way.

    As with ``extends``, giving a plugin section the name of another plugin
    starts that section afresh, so the old plugin's options do not leak into it.
    """
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key or any(not part for part in key.split(".")):
        raise GanzooError(
            f"bad override {text!r}: expected KEY=VALUE such as train.kimg=10",
            file=COMMAND_LINE,
        )
    parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if parts[0] == "extends":
        raise GanzooError(
            "cannot be overridden; write a recipe that extends the other one",
            file=COMMAND_LINE,
            key="extends",
        )
    value = _plain(parse_yaml(raw, source=f"{COMMAND_LINE} ({text})"))

    # Walk down to the mapping or list that holds the last part.
    target: Any = merged
    for depth, part in enumerate(parts[:-1]):
        here = tuple(parts[: depth + 1])
        if isinstance(target, list):
            _check_index(target, here)
            child = target[part]
        else:
            child = target.get(part)
            if child is None and isinstance(parts[depth + 1], int):
                raise GanzooError(
                    f"{dotted(here)} is not set, so it has no item to override",
                    file=COMMAND_LINE,
                    key=dotted(here + (parts[depth + 1],)),
                )
            if child is None:
                child = target[part] = {}
                sources.places.setdefault(here, (COMMAND_LINE, None))
        if isinstance(child, str) and _names_a_plugin(here):
            child = target[part] = {"name": child}
        if not isinstance(child, dict | list):
            raise GanzooError(
                f"cannot set {dotted(parts)}: {dotted(here)} is {_kind(child)}, "
                "not a mapping",
                file=COMMAND_LINE,
                key=dotted(here),
            )
        target = child

    # Set it, replacing the section when the plugin changes.
    path = tuple(parts)
    if isinstance(target, list):
        _check_index(target, path)
    elif len(path) > 1 and path[-1] == "name" and target.get("name", value) != value:
        target.clear()
        sources.forget(path[:-1])
        sources.places[path[:-1]] = (COMMAND_LINE, None)
    target[path[-1]] = value
    sources.forget(path)
    sources.places[path] = (COMMAND_LINE, None)


def _check_index(items: list, path: KeyPath) -> None:
    """Raise GanzooError unless the last part of ``path`` indexes ``items``."""
    index = path[-1]
    if isinstance(index, int) and index < len(items):
        return
    count = f"{len(items)} item" + ("" if len(items) == 1 else "s")
    raise GanzooError(
        f"no item {index!r} to override: {dotted(path[:-1])} is a list of {count}"
        + (f", indexed 0 to {len(items) - 1}" if items else ""),
        file=COMMAND_LINE,
        key=dotted(path),
    )


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts and lists (the line-aware types stay in _Sources)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _error(sources: _Sources, path: KeyPath, message: str) -> GanzooError:
    file, line = sources.locate(path)
    return GanzooError(message, file=file, line=line, key=dotted(path))


def _kind(value: Any) -> str:
    """The YAML name of ``value``'s type, for messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"the value {value!r}"


def _run_name(path: Path, config: Mapping[str, Any]) -> str:
    if config.get("name"):
        return str(config["name"])
    parts = path.resolve().with_suffix("").parts
    if "recipes" in parts:
        parts = parts[len(parts) - parts[::-1].index("recipes") :]
        return "-".join(parts)
    return path.stem


# Validation.


class _Validator:
    """Checks the merged recipe section by section and fills in every default."""

    def __init__(self, registry: Registry, sources: _Sources) -> None:
        self.registry = registry
        self.sources = sources

    def validate(self, merged: Mapping[str, Any]) -> dict[str, Any]:
        for key in merged:
            if key not in TOP_LEVEL:
                near = closest(str(key), TOP_LEVEL)
                hint = (
                    f" (did you mean {', '.join(repr(n) for n in near)}?)"
                    if near
                    else ""
                )
                raise _error(
                    self.sources,
                    (key,),
                    f"unknown section{hint}; "
                    f"recipe sections are: {', '.join(TOP_LEVEL)}",
                )
        for key in ("data", "model", "loss"):
            if key not in merged:
                raise GanzooError(
                    f"the recipe has no {key!r} section, which is required",
                    file=self._top_file(),
                    key=key,
                )

        config: dict[str, Any] = {}
        config["name"] = self._name(merged)
        config["description"] = self._scalar(merged, "description", str)
        config["plugins"] = list(merged.get("plugins") or [])
        config["data"] = self.plugin_section("dataset", merged["data"], ("data",))
        data_shape = self._data_shape(config["data"])
        config["model"] = self.model(merged["model"], data_shape)
        config["loss"] = self.plugin_section("loss", merged["loss"], ("loss",))
        for key, kind in (
            ("regularizers", "regularizer"),
            ("constraints", "constraint"),
        ):
            config[key] = self.plugin_list(kind, merged.get(key), (key,))
        config["optim"] = self.optim(merged.get("optim"))
        config["train"] = self.options(TRAIN, merged.get("train"), ("train",), "train")
        config["eval"] = self.evaluation(merged.get("eval"), config["data"]["name"])
        config["tracking"] = self.tracking(merged.get("tracking"))
        return config

    def _top_file(self) -> str | None:
        files = [f for f, _ in self.sources.places.values() if f != COMMAND_LINE]
        return files[-1] if files else None

    def _name(self, merged: Mapping[str, Any]) -> str | None:
        """The ``name`` section, which names the run directory under runs/."""
        name = self._scalar(merged, "name", str)
        if name is not None and any(c in name for c in "/\\\0"):
            raise _error(
                self.sources,
                ("name",),
                f"expected a run name that can be one folder name, without '/' "
                f"or '\\', got {name!r}",
            )
        return name

    def _scalar(self, merged: Mapping[str, Any], key: str, kind: type) -> Any:
        value = merged.get(key)
        if value is not None and not isinstance(value, kind):
            raise _error(
                self.sources, (key,), f"expected a {kind.__name__}, got {value!r}"
            )
        return value

    def options(
        self, declared: Iterable[Option], given: Any, path: KeyPath, what: str
    ) -> dict[str, Any]:
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise _error(
                self.sources,
                path,
                f"expected a mapping of {what} options, got {given!r}",
            )
        try:
            return resolve_options(declared, given, what=what)
        except GanzooError as error:
            key_path = path + ((error.key,) if error.key else ())
            file, line = self.sources.locate(key_path)
            error.key = dotted(key_path)
            raise error.at(file=file or self._top_file(), line=line) from None

    def plugin_section(
        self, kind: str, given: Any, path: KeyPath, role: str | None = None
    ) -> dict[str, Any]:
        if isinstance(given, str):
            given = {"name": given}
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise _error(
                self.sources,
                path,
                f"expected a mapping with the {kind}'s 'name' "
                f"and its options, got {given!r}",
            )
        try:
            entry = self.registry.get(kind, given["name"])
        except GanzooError as error:
            file, line = self.sources.locate(path + ("name",))
            raise error.at(file=file, line=line, key=dotted(path + ("name",))) from None
        rest = {k: v for k, v in given.items() if k != "name"}
        if role is None:
            declared = entry.cls.options
        elif role == "generator":
            declared = entry.cls.generator_options
        else:
            declared = entry.cls.discriminator_options
        label = f"{role or kind} {entry.name!r}"
        return {"name": entry.name, **self.options(declared, rest, path, label)}

    def plugin_list(self, kind: str, given: Any, path: KeyPath) -> list[dict[str, Any]]:
        if given is None:
            return []
        if not isinstance(given, list):
            raise _error(
                self.sources, path, f"expected a list of {kind}s, got {given!r}"
            )
        return [
            self.plugin_section(kind, item, path + (index,))
            for index, item in enumerate(given)
        ]

    def evaluation(self, given: Any, dataset_name: str) -> dict[str, Any]:
        """The eval section, with its plugin names and reference split checked."""
        settings = self.options(EVAL, given, ("eval",), "eval")
        names = [
            (
                "feature-extractor",
                ("eval", "feature_extractor"),
                settings["feature_extractor"],
            )
        ]
        names += [
            ("metric", ("eval", "metrics", i), name)
            for i, name in enumerate(settings["metrics"] or [])
        ]
        for kind, path, name in names:
            if name is None:
                continue
            try:
                self.registry.get(kind, name)
            except GanzooError as error:
                file, line = self.sources.locate(path)
                raise error.at(
                    file=file or self._top_file(), line=line, key=dotted(path)
                ) from None
        splits = self.registry.get("dataset", dataset_name).cls.splits
        if settings["reference_split"] is None:
            settings["reference_split"] = "test" if "test" in splits else splits[0]
        elif settings["reference_split"] not in splits:
            raise _error(
                self.sources,
                ("eval", "reference_split"),
                f"data set {dataset_name!r} has no split "
                f"{settings['reference_split']!r}; its splits are: "
                f"{', '.join(splits)}",
            )
        return settings

    def _data_shape(self, section: Mapping[str, Any]) -> DataShape:
        dataset = self.registry.get("dataset", section["name"]).cls(
            **{k: v for k, v in section.items() if k != "name"}
        )
        try:
            return dataset.data_shape()
        except GanzooError as error:
            key_path = ("data",) + ((error.key,) if error.key else ())
            file, line = self.sources.locate(key_path)
            error.key = dotted(key_path)
            raise error.at(file=file, line=line) from None

    def model(self, given: Any, data: DataShape) -> dict[str, Any]:
        if not isinstance(given, dict):
            raise _error(
                self.sources,
                ("model",),
                "expected a mapping with 'generator' and 'discriminator'",
            )
        for key in given:
            if key not in ("generator", "discriminator"):
                raise _error(
                    self.sources,
                    ("model", key),
                    "unknown key; model has 'generator' and 'discriminator'",
                )
        model = {}
        for role in ("generator", "discriminator"):
            if role not in given:
                raise _error(self.sources, ("model",), f"model needs a {role!r}")
            path = ("model", role)
            section = self.plugin_section("architecture", given[role], path, role=role)
            architecture: Architecture = self.registry.get(
                "architecture", section["name"]
            ).cls()
            if role not in architecture.provides():
                raise _error(
                    self.sources,
                    path + ("name",),
                    f"architecture "
                    f"{architecture.name!r} provides no {role}; it provides: "
                    f"{', '.join(architecture.provides())}",
                )
            options = {k: v for k, v in section.items() if k != "name"}
            try:
                architecture.check(data, role, options)
            except GanzooError as error:
                at = path + ((error.key,) if error.key in options else ("name",))
                raise _error(self.sources, at, error.message) from None
            model[role] = section
        return model

    def optim(self, given: Any) -> dict[str, Any]:
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise _error(
                self.sources,
                ("optim",),
                "expected 'generator' and 'discriminator' optimizer settings",
            )
        for key in given:
            if key not in ("generator", "discriminator"):
                raise _error(
                    self.sources,
                    ("optim", key),
                    "unknown key; optim has 'generator' and 'discriminator'",
                )
        result = {}
        for role in ("generator", "discriminator"):
            path = ("optim", role)
            options = self.options(
                OPTIMIZER, given.get(role), path, f"{role} optimizer"
            )
            if len(options["betas"]) != 2 or not all(
                0 <= b < 1 for b in options["betas"]
            ):
                raise _error(
                    self.sources,
                    path + ("betas",),
                    f"expected two numbers in [0, 1), got {options['betas']}",
                )
            result[role] = options
        return result

    def tracking(self, given: Any) -> dict[str, Any]:
        if given is None:
            return {}
        if not isinstance(given, dict):
            raise _error(
                self.sources,
                ("tracking",),
                "expected a mapping of tracker names to their options",
            )
        result = {}
        for name, options in given.items():
            path = ("tracking", name)
            if options is False or options is None:
                continue
            if options is True:
                options = {}
            if not isinstance(options, dict):
                raise _error(
                    self.sources,
                    path,
                    f"expected a mapping of {name} options "
                    f"or true/false, got {options!r}",
                )
            try:
                self.registry.get("tracker", str(name))
            except GanzooError as error:
                raise _error(self.sources, path, error.message) from None
            section = self.plugin_section("tracker", {"name": name, **options}, path)
            result[name] = {k: v for k, v in section.items() if k != "name"}
        return result
