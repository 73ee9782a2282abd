"""Safe YAML loading that remembers the line of every key.

Mappings load as :class:`LinedDict` and sequences as :class:`LinedList`, each
knowing the 1-based line of its keys or items, so an error deep inside a recipe
can name the exact line. Duplicate keys are an error rather than a silent
overwrite, and so are tags beyond plain YAML and aliases that expand a small file
into a huge document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .._errors import GanzooError

MAX_VALUES = 100_000
"""The most values a recipe may hold once its YAML aliases are expanded."""


class LinedDict(dict):
    """A dict that knows the line of each key in its YAML source."""

    lines: dict[Any, int]


class LinedList(list):
    """A list that knows the line of each item in its YAML source."""

    lines: list[int]


def dotted(path: Sequence[Any]) -> str:
    """A key path as a recipe author writes it: ``optim.generator.betas[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with line-aware containers.

    ``key_path`` is the path of the value being constructed, so that an error
    deep inside the document can name its key.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.key_path: list[Any] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LinedDict:
    loader.flatten_mapping(node)
    result = LinedDict()
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise GanzooError(
                f"keys must be plain scalars, got {type(key).__name__}",
                line=line,
                key=dotted(loader.key_path) or None,
            )
        here = dotted([*loader.key_path, key])
        if key in result:
            first = result.lines[key]
            where = f"lines {first} and {line}" if first != line else f"line {line}"
            raise GanzooError(
                f"duplicate key {key!r} on {where}; keep only one",
                line=line,
                key=here,
            )
        loader.key_path.append(key)
        result[key] = loader.construct_object(value_node, deep=True)
        loader.key_path.pop()
        result.lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LinedList:
    result = LinedList()
    for index, child in enumerate(node.value):
        loader.key_path.append(index)
        result.append(loader.construct_object(child, deep=True))
        loader.key_path.pop()
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _reject_tag(loader: _Loader, node: yaml.Node) -> NoReturn:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise GanzooError(
        f"unsupported YAML tag {tag!r}; recipes allow plain YAML only "
        "(mappings, lists, strings, numbers, booleans and null)",
        line=node.start_mark.line + 1,
        key=dotted(loader.key_path) or None,
    )


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence
)
_Loader.add_constructor(None, _reject_tag)

# PyYAML follows YAML 1.1, where 2e-4 and 1.0e3 are strings; read them as numbers,
# as YAML 1.2 does, since learning rates are written that way.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _count_values(
    node: yaml.Node, path: tuple[Any, ...], counted: dict[int, int], open_: set[int]
) -> int:
    """How many values ``node`` at ``path`` holds once every alias is expanded."""
    if id(node) in counted:
        return counted[id(node)]
    if id(node) in open_:
        raise GanzooError(
            "an alias refers to the mapping or list that contains it; "
            "recipes cannot be recursive",
            line=node.start_mark.line + 1,
            key=dotted(path) or None,
        )
    total = 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        open_.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [(path + (k.value,), v) for k, v in node.value]
        else:
            children = [(path + (i,), v) for i, v in enumerate(node.value)]
        for where, child in children:
            total += _count_values(child, where, counted, open_)
            if total > MAX_VALUES:
                raise GanzooError(
                    f"the document expands to more than {MAX_VALUES:,} values "
                    "through its aliases; a recipe is much smaller",
                    line=node.start_mark.line + 1,
                    key=dotted(path) or None,
                )
        open_.discard(id(node))
    counted[id(node)] = total
    return total


def parse_yaml(text: str, *, source: str) -> Any:
    """Parse ``text`` safely; errors become GanzooError naming ``source``, line, key."""
    loader = _Loader(text)  # derives from SafeLoader: no Python objects
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_values(node, (), {}, set())
        return loader.construct_document(node)
    except GanzooError as error:
        raise error.at(file=source) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        if error.context and problem.startswith("but "):
            problem = f"{error.context}, {problem}"
        if "'\\t'" in problem:
            problem += "; indent YAML with spaces, not tabs"
        raise GanzooError(f"invalid YAML: {problem}", file=source, line=line) from None
    except yaml.YAMLError as error:
        raise GanzooError(f"invalid YAML: {error}", file=source) from None
    except RecursionError:
        raise GanzooError(
            "invalid YAML: nested too deeply; a recipe has a few levels", file=source
        ) from None
    finally:
        loader.dispose()


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
            line=raw[: error.start].count(b"\n") + 1,
        ) from None
    return parse_yaml(text, source=str(path))
