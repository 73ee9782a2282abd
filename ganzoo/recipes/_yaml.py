"""Safe YAML loading that remembers the line of every key.

Mappings load as :class:`LinedDict` and sequences as :class:`LinedList`, each
knowing the 1-based line of its keys or items, so an error deep inside a recipe
can name the exact line. Duplicate keys are an error rather than a silent
overwrite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .._errors import GanzooError


class LinedDict(dict):
    """A dict that knows the line of each key in its YAML source."""

    lines: dict[Any, int]


class LinedList(list):
    """A list that knows the line of each item in its YAML source."""

    lines: list[int]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with line-aware containers."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LinedDict:
    loader.flatten_mapping(node)
    result = LinedDict()
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise GanzooError(
                f"keys must be plain scalars, got {type(key).__name__}", line=line
            )
        if key in result:
            raise GanzooError(
                f"duplicate key {key!r} (first on line {result.lines[key]})", line=line
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LinedList:
    result = LinedList(
        loader.construct_object(child, deep=True) for child in node.value
    )
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
)


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse ``text`` safely; errors become GanzooError naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except GanzooError as error:
        raise error.at(file=source) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        if "could not determine a constructor" in str(error):
            problem = (
                f"unsupported YAML tag ({problem.split('tag')[-1].strip()}); "
                "recipes allow plain YAML only"
            )
        raise GanzooError(f"invalid YAML: {problem}", file=source, line=line) from None
    except yaml.YAMLError as error:
        raise GanzooError(f"invalid YAML: {error}", file=source) from None


def read_yaml_file(path: Path) -> Any:
    """Read and parse one recipe file, with clear errors for unreadable files."""
    if not path.exists():
        raise GanzooError("recipe file not found", file=path)
    if not path.is_file():
        raise GanzooError("recipe path is not a file", file=path)
    raw = path.read_bytes()
    if b"\0" in raw:
        raise GanzooError(
            "not a text file (contains NUL bytes); expected a YAML recipe", file=path
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise GanzooError(
            f"not valid UTF-8 text (byte {error.start}); save the recipe as UTF-8",
            file=path,
        ) from None
    return parse_yaml(text, source=str(path))
