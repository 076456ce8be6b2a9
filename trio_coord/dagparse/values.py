"""How values are written in a serialized DAG: the typed wrapper, numbers, canonical bytes.

Airflow writes any non-JSON value as ``{"__type": tag, "__var": payload}``; a DAG or task
*field* then keeps only the payload, except the few "decorated" fields (``default_args``
on the DAG) that keep the wrapper. Datetimes become epoch seconds and durations seconds,
both as floats with microsecond precision, because Airflow hashes the document: an int
where Python writes a float would make a new DAG version on every parse.
"""

from __future__ import annotations

import datetime
import json
import math
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["canonical_json", "encode_value", "epoch", "seconds", "timezone_of", "UTC"]

UTC: Final = "UTC"
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
#: Bound on nesting in a value (params, default_args): deeper data is refused, not recursed.
MAX_DEPTH: Final = 64


def epoch(when: datetime.datetime) -> float:
    """Seconds since 1970 of an aware datetime, rounded to the microsecond."""
    delta = when - _EPOCH
    return round(delta.days * 86400 + delta.seconds + delta.microseconds / 1e6, 6)


def seconds(span: datetime.timedelta) -> float:
    """A duration in seconds, rounded to the microsecond."""
    return round(span.total_seconds(), 6)


def timezone_of(when: datetime.datetime | None) -> str | int:
    """The DAG timezone Airflow derives from ``start_date``: "UTC", an IANA name or offset seconds."""
    if when is None or when.tzinfo is None:
        return UTC
    tz = when.tzinfo
    if isinstance(tz, zoneinfo.ZoneInfo):
        return UTC if tz.key in ("UTC", "Etc/UTC") else tz.key
    offset = when.utcoffset()
    if offset is None:  # an aware datetime always has one
        raise ValueError(f"{when!r} has a time zone without a UTC offset")
    if offset == datetime.timedelta(0):
        return UTC
    return int(offset.total_seconds())


def encode_value(value: Any, depth: int = 0) -> Any:
    """A value in Airflow's typed-wrapper form (lists bare, dicts/tuples/sets/dates wrapped)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, list):
        return [encode_value(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {
            "__type": "dict",
            "__var": {str(k): encode_value(v, depth + 1) for k, v in value.items()},
        }
    if isinstance(value, tuple):
        return {"__type": "tuple", "__var": [encode_value(v, depth + 1) for v in value]}
    if isinstance(value, set | frozenset):
        items = [encode_value(v, depth + 1) for v in value]
        return {"__type": "set", "__var": sorted(items, key=repr)}
    if isinstance(value, datetime.datetime) and value.utcoffset() is not None:
        return {"__type": "datetime", "__var": epoch(value)}
    if isinstance(value, datetime.timedelta):
        return {"__type": "timedelta", "__var": seconds(value)}
    raise ValueError(f"cannot serialize a value of type {type(value).__name__}")


def canonical_json(document: Any) -> bytes:
    """Deterministic bytes for a document: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
