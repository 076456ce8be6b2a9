"""DAG params: the schema keywords a ``Param`` may carry, and the values a run ends up with.

Airflow validates params with the full JSON Schema; trio-coord implements the keywords
below itself (no dependency in the runtime) and refuses any other at declaration, so a
schema never silently checks less than its author thinks. The same keywords reach
Airflow unchanged (the export route and the native serializer), where the UI's trigger
form and the API check them again when a run is created.

A run's params are Airflow's: each DAG param's default, then every key of the run's
``conf`` on top (``[core] dag_run_conf_overrides_params``, on by default), then each
declared param's value checked against its schema.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from ..errors import UsageError

__all__ = [
    "SCHEMA_KEYWORDS",
    "ParamError",
    "check_schema",
    "merge_params",
    "resolve_params",
    "validate_value",
]

#: JSON types and the Python values each admits (a bool is not a number, as in JSON Schema).
_TYPES: Final[Mapping[str, Callable[[Any], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
}

#: The ``format`` values checked (the ones Airflow's trigger form offers).
_FORMATS: Final[Mapping[str, Callable[[str], object]]] = {
    "date": datetime.date.fromisoformat,
    "date-time": lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")),
    "time": datetime.time.fromisoformat,
}


def _number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    # An int may be too large for a float (isfinite would raise); it is finite anyway.
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _type_value(v: Any) -> bool:
    names = [v] if isinstance(v, str) else v
    return isinstance(names, list) and bool(names) and all(n in _TYPES for n in names)


def _pattern(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        re.compile(v)
    except re.error:
        return False
    return True


#: Every schema keyword a Param accepts, with the check its own value must pass. The
#: last five only describe the param for Airflow's UI and are never checked at run time.
SCHEMA_KEYWORDS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "type": _type_value,
    "enum": lambda v: isinstance(v, list) and bool(v),
    "const": lambda v: True,
    "minimum": _number,
    "maximum": _number,
    "exclusiveMinimum": _number,
    "exclusiveMaximum": _number,
    "minLength": _count,
    "maxLength": _count,
    "pattern": _pattern,
    "format": lambda v: v in _FORMATS,
    "minItems": _count,
    "maxItems": _count,
    "title": lambda v: isinstance(v, str),
    "description_md": lambda v: isinstance(v, str),
    "examples": lambda v: isinstance(v, list),
    "values_display": lambda v: isinstance(v, dict),
    "section": lambda v: isinstance(v, str),
}


class ParamError(UsageError):
    """A run's param value does not satisfy its schema (or a required one is missing)."""


def check_schema(where: str, schema: Mapping[str, Any]) -> None:
    """Refuse a keyword outside :data:`SCHEMA_KEYWORDS`, or one whose own value is malformed."""
    for key, value in schema.items():
        check = SCHEMA_KEYWORDS.get(key)
        if check is None:
            raise UsageError(
                f"{where}: schema keyword {key!r} is not supported; "
                f"supported: {', '.join(SCHEMA_KEYWORDS)}"
            )
        if not check(value):
            raise UsageError(f"{where}: schema keyword {key}={value!r} is malformed")


def validate_value(value: Any, schema: Mapping[str, Any]) -> str | None:
    """None when ``value`` satisfies ``schema``, else why not (one sentence)."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES[n](value) for n in names):
            return f"{value!r} is not of type {' or '.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        return f"{value!r} is not {schema['const']!r}"
    if _number(value):
        bounds = (
            ("minimum", value < schema.get("minimum", value), "less than the minimum"),
            ("maximum", value > schema.get("maximum", value), "greater than the maximum"),
            ("exclusiveMinimum", value <= schema.get("exclusiveMinimum", value - 1), "not above"),
            ("exclusiveMaximum", value >= schema.get("exclusiveMaximum", value + 1), "not below"),
        )
        for key, fails, word in bounds:
            if key in schema and fails:
                return f"{value!r} is {word} {schema[key]!r}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{value!r} is shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{value!r} is longer than {schema['maxLength']} characters"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return f"{value!r} does not match the pattern {schema['pattern']!r}"
        if "format" in schema:
            try:
                _FORMATS[schema["format"]](value)
            except ValueError:
                return f"{value!r} is not a valid {schema['format']}"
    if isinstance(value, list | tuple):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{value!r} has fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{value!r} has more than {schema['maxItems']} items"
    return None


P = TypeVar("P")


def merge_params(dag: Mapping[str, P], task: Mapping[str, P] | None) -> dict[str, tuple[P, str]]:
    """A task's params with where each comes from (``"dag"`` or ``"task"``), as Airflow merges
    them: the DAG's in order, a task param replacing the DAG's of the same name (schema
    included) in place, the task's new ones after."""
    out = {name: (p, "dag") for name, p in dag.items()}
    out.update({name: (p, "task") for name, p in (task or {}).items()})
    return out


def resolve_params(
    declared: Mapping[str, tuple[Any, Mapping[str, Any]]],
    conf: Mapping[str, Any] | None,
    *,
    conf_overrides: bool = True,
) -> dict[str, Any]:
    """The run's params: defaults, then ``conf`` on top, each declared one validated.

    Args:
        declared: name -> (default, schema), in declaration order.
        conf: the run's conf.
        conf_overrides: Airflow's ``[core] dag_run_conf_overrides_params``.

    Raises:
        ParamError: a value fails its schema; the message names the param.
    """
    values = {name: default for name, (default, _schema) in declared.items()}
    if conf_overrides and conf:
        values.update(conf)
    for name, (_default, schema) in declared.items():
        problem = validate_value(values[name], schema)
        if problem is not None:
            raise ParamError(f"invalid value for param {name!r}: {problem}")
    return values
