"""Typed option declarations, shared by plugins and the recipe's own sections.

Every configurable value in ganzoo is declared once as an :class:`Option`, so a
recipe is checked completely before any work starts and the recipe reference can
be generated from the declarations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import GanzooError

_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true/false",
}

REQUIRED: Any = object()
"""Default of an option that the recipe must set."""


@dataclass(frozen=True)
class Option:
    """One named, typed setting with a default and a one-line help text.

    ``type`` is one of ``int``, ``float``, ``str``, ``bool`` or ``list`` (a list of
    scalars). ``minimum``/``maximum`` bound numbers (inclusive unless
    ``exclusive_minimum``), ``choices`` restricts strings. ``nullable`` allows
    ``null`` in a recipe.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    nullable: bool = False
    item_type: type | None = field(default=None)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def expected(self) -> str:
        """Describe the accepted values in words, for error messages and docs."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is list:
            plural = {
                int: "integers",
                float: "numbers",
                str: "strings",
                bool: "true/false",
            }
            inner = plural.get(self.item_type) if self.item_type else None
            text = f"a list of {inner}" if inner else "a list"
            return text + (" or null" if self.nullable else "")
        text = _TYPE_NAMES.get(self.type, self.type.__name__)
        if self.minimum is not None and self.maximum is not None:
            text += f" in [{self.minimum:g}, {self.maximum:g}]"
        elif self.minimum is not None:
            text += f" {'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        elif self.maximum is not None:
            text += f" <= {self.maximum:g}"
        if self.nullable:
            text += " or null"
        return text

    def convert(self, value: Any) -> Any:
        """Return ``value`` checked against this option, or raise GanzooError."""
        if value is None and self.nullable:
            return None
        problem = f"expected {self.expected()}, got {_show(value)}"
        if self.type is list:
            if not isinstance(value, list):
                raise GanzooError(problem)
            if self.item_type is None:
                return list(value)
            item = Option(self.name, self.item_type, None, self.help)
            converted = []
            for index, each in enumerate(value):
                try:
                    converted.append(item.convert(each))
                except GanzooError:
                    raise GanzooError(
                        f"{problem}: item {index} is not {item.expected()}"
                    ) from None
            return converted
        if self.type is bool:
            if not isinstance(value, bool):
                raise GanzooError(problem)
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise GanzooError(problem)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GanzooError(problem)
            value = float(value)
            if not math.isfinite(value):
                raise GanzooError(problem)
        elif self.type is str and not isinstance(value, str):
            raise GanzooError(problem)
        if self.choices is not None and value not in self.choices:
            raise GanzooError(problem + _suggest(value, self.choices))
        if self.minimum is not None:
            too_small = (
                value <= self.minimum
                if self.exclusive_minimum
                else value < self.minimum
            )
            if too_small:
                raise GanzooError(problem)
        if self.maximum is not None and value > self.maximum:
            raise GanzooError(problem)
        return value


def resolve_options(
    options: Iterable[Option], given: Mapping[str, Any], *, what: str
) -> dict[str, Any]:
    """Check ``given`` against ``options`` and fill in the defaults.

    Raises GanzooError with ``key`` set to the offending option name, so the recipe
    layer can prefix its section and add the file and line.
    """
    declared = {o.name: o for o in options}
    for key in given:
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise GanzooError(
                f"unknown option for {what}{_suggest(key, declared)}; "
                f"its options are: {known}",
                key=str(key),
            )
    resolved: dict[str, Any] = {}
    for name, option in declared.items():
        if name in given:
            try:
                resolved[name] = option.convert(given[name])
            except GanzooError as error:
                raise error.at(key=name) from None
        elif option.required:
            raise GanzooError(
                f"required by {what} but not set; expected {option.expected()} "
                f"({option.help})",
                key=name,
            )
        else:
            resolved[name] = option.default
    return resolved


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``word``, best first."""
    import difflib

    return difflib.get_close_matches(str(word), list(candidates), n=n, cutoff=0.5)


def _suggest(word: Any, candidates: Iterable[Any]) -> str:
    near = closest(str(word), [str(c) for c in candidates])
    return f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
