"""Airflow's *serde* encoding of Python values, written and read without Airflow.

A deferring task hands the triggerer two maps that cross Airflow's processes as JSON:
the trigger's keyword arguments (``DeferTask.trigger_kwargs``) and the arguments of the
method that resumes the task (``next_kwargs``). Airflow's task runner encodes both with
``airflow.sdk.serde.serialize``; the API server stores the first as the trigger row's
JSON, and the triggerer rebuilds the trigger with ``serde.deserialize`` before calling
``TriggerClass(**kwargs)``. A value the triggerer cannot decode is a trigger that never
starts, so this module writes exactly serde's shapes:

* JSON scalars, lists and string-keyed maps stay themselves;
* anything else is an envelope ``{"__classname__": qualname, "__version__": n,
  "__data__": encoded}``: tuples, sets and frozensets (version 1, a list), aware or naive
  ``datetime`` (version 2, ``{"timestamp": float, "tz": zone}``), ``date`` (version 2,
  ISO text) and ``timedelta`` (version 2, float seconds).

A datetime's ``tz`` is itself a tuple envelope of ``[zone, zone class, 1, True]``: the
zone is ``"UTC"`` for a zero offset, an IANA name for a ``zoneinfo`` zone, or the offset
in seconds for any other fixed offset (serde would write an undecodable empty name for a
stdlib ``timezone(timedelta(hours=2))``; the offset form decodes to the same instant).

The reader (:func:`decode`) is the other direction, for ``next_kwargs`` on resume: it
undoes those envelopes and the older ``{"__type": ..., "__var": ...}`` form the API
server still serves to old workers, and leaves any envelope it does not know as the
map it received, so a payload of an unknown class still reaches the task. Pure: no
trio, no Airflow, no I/O.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final

from ..errors import UsageError

__all__ = ["CLASSNAME", "DATA", "VERSION", "decode", "encode", "encode_datetime"]

CLASSNAME: Final = "__classname__"
VERSION: Final = "__version__"
DATA: Final = "__data__"
#: Keys serde refuses in a plain map: they would read back as an envelope.
_RESERVED: Final = frozenset({CLASSNAME, "__schema_id__"})

_COLLECTIONS: Final[Mapping[type, str]] = {
    tuple: "builtins.tuple",
    set: "builtins.set",
    frozenset: "builtins.frozenset",
}
_DATETIME_CLASSES: Final = ("datetime.datetime", "pendulum.datetime.DateTime")
_DATE_CLASSES: Final = ("datetime.date", "pendulum.date.Date")
_FIXED_ZONE: Final = "pendulum.tz.timezone.FixedTimezone"
_NAMED_ZONE: Final = "zoneinfo.ZoneInfo"
#: The zone class serde writes for a pendulum UTC datetime (what the temporal triggers send).
PENDULUM_ZONE: Final = "pendulum.tz.timezone.Timezone"
#: What :func:`encode` accepts, for error messages.
ACCEPTED: Final = (
    "None, bool, int, float, str, list, tuple, set, frozenset, dict with string keys, "
    "datetime, date and timedelta"
)


def _envelope(classname: str, version: int, data: Any) -> dict[str, Any]:
    return {CLASSNAME: classname, VERSION: version, DATA: data}


def _zone(tz: datetime.tzinfo, at: datetime.datetime, zone_class: str | None) -> Any:
    key = getattr(tz, "key", None)
    if isinstance(key, str) and key:
        return _envelope("builtins.tuple", 1, [key, _NAMED_ZONE, 1, True])
    offset = tz.utcoffset(at)
    if offset is None or offset == datetime.timedelta(0):
        return _envelope("builtins.tuple", 1, ["UTC", zone_class or _FIXED_ZONE, 1, True])
    seconds = int(offset.total_seconds())
    return _envelope("builtins.tuple", 1, [seconds, _FIXED_ZONE, 1, True])


def encode_datetime(
    value: datetime.datetime,
    *,
    classname: str = "datetime.datetime",
    zone_class: str | None = None,
) -> dict[str, Any]:
    """One datetime as serde writes it; ``classname``/``zone_class`` choose the class names
    a given Airflow object would carry (a pendulum ``DateTime`` in UTC for the triggers)."""
    tz = value.tzinfo
    data = {
        "timestamp": value.timestamp(),
        "tz": None if tz is None else _zone(tz, value, zone_class),
    }
    return _envelope(classname, 2, data)


def encode(value: Any, where: str = "value", _depth: int = 0) -> Any:
    """``value`` in serde's JSON shape.

    Raises:
        UsageError: a value serde-encoding cannot carry here (an object of another class,
            a map with a reserved key), or nesting deeper than 200 levels.
    """
    if _depth > 200:
        raise UsageError(f"{where} is nested more than 200 levels deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v, where, _depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise UsageError(f"{where}: map keys must be strings, got {k!r}")
            if k in _RESERVED:
                raise UsageError(f"{where}: the key {k!r} is reserved by Airflow's encoding")
            out[k] = encode(v, where, _depth + 1)
        return out
    if isinstance(value, (tuple, set, frozenset)) and type(value) in _COLLECTIONS:
        items = list(value) if isinstance(value, tuple) else sorted(value, key=repr)
        data = [encode(v, where, _depth + 1) for v in items]
        return _envelope(_COLLECTIONS[type(value)], 1, data)
    if isinstance(value, datetime.datetime):
        return encode_datetime(value)
    if isinstance(value, datetime.date):
        return _envelope("datetime.date", 2, value.isoformat())
    if isinstance(value, datetime.timedelta):
        return _envelope("datetime.timedelta", 2, value.total_seconds())
    raise UsageError(
        f"{where}: cannot encode a {type(value).__name__} for Airflow; accepted: {ACCEPTED}"
    )


def _tzinfo(raw: Any) -> datetime.tzinfo | None:
    """A zone from serde's ``tz`` field (already decoded: a tuple, or a bare name/offset)."""
    if raw is None:
        return None
    name = raw[0] if isinstance(raw, (tuple, list)) and raw else raw
    if isinstance(name, bool):
        return None
    if isinstance(name, int):
        return datetime.timezone(datetime.timedelta(seconds=name))
    if isinstance(name, str):
        if name in ("UTC", "Z", ""):
            return datetime.UTC
        try:
            return zoneinfo.ZoneInfo(name)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            return datetime.UTC
    return None


def _from_envelope(classname: str, data: Any) -> Any:
    if classname == "builtins.tuple":
        return tuple(data) if isinstance(data, list) else data
    if classname == "builtins.set":
        return set(data) if isinstance(data, list) else data
    if classname == "builtins.frozenset":
        return frozenset(data) if isinstance(data, list) else data
    if classname in _DATETIME_CLASSES and isinstance(data, dict):
        stamp = data.get("timestamp")
        if isinstance(stamp, (int, float)):
            tz = _tzinfo(data.get("tz"))
            when = datetime.datetime.fromtimestamp(stamp, tz or datetime.UTC)
            return when if tz is not None else when.replace(tzinfo=None)
    if classname in _DATE_CLASSES and isinstance(data, str):
        return datetime.date.fromisoformat(data)
    if classname == "datetime.timedelta" and isinstance(data, (int, float)):
        return datetime.timedelta(seconds=data)
    return None


_UNKNOWN: Final = object()


def decode(value: Any) -> Any:
    """The Python value of a serde (or older BaseSerialization) document.

    Envelopes of classes this module does not know stay the maps they are. Never raises
    for a JSON-shaped input: a resumed task gets whatever could be read.
    """
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    classname = value.get(CLASSNAME)
    if isinstance(classname, str) and DATA in value:
        data = decode(value[DATA])
        try:
            result = _from_envelope(classname, data)
        except (ValueError, TypeError, OverflowError, OSError):
            result = None
        return result if result is not None else {**value, DATA: data}
    if set(value) == {"__type", "__var"} and isinstance(value["__type"], str):
        old = _from_base_serialization(value["__type"], value["__var"])
        if old is not _UNKNOWN:
            return old
    return {k: decode(v) for k, v in value.items()}


def _from_base_serialization(kind: str, var: Any) -> Any:
    """Airflow's pre-serde ``{"__type", "__var"}`` encoding, for the common types."""
    try:
        if kind == "dict" and isinstance(var, dict):
            return {k: decode(v) for k, v in var.items()}
        if kind in ("tuple", "set") and isinstance(var, list):
            items = [decode(v) for v in var]
            return tuple(items) if kind == "tuple" else set(items)
        if kind == "datetime" and isinstance(var, (int, float)):
            return datetime.datetime.fromtimestamp(var, datetime.UTC)
        if kind == "timedelta" and isinstance(var, (int, float)):
            return datetime.timedelta(seconds=var)
    except (ValueError, TypeError, OverflowError, OSError):
        return _UNKNOWN
    return _UNKNOWN
