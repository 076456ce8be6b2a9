"""How a message field's annotation checks values going out and converts values coming in.

Theory of operation
-------------------
Message classes (``messages.py``) are plain frozen dataclasses; their annotations *are*
the wire schema. This module turns each annotation, once per class, into two small
closures:

* an **encoder** that validates an outgoing Python value and returns what msgpack
  should write. It raises :class:`LocalProtocolError` for anything the real
  supervisor would refuse (naive datetimes, non-string map keys, bytes in a JSON
  value, a ``Literal`` outside its set), because the supervisor drops such a request
  without replying (protocol.md §3.4, §12 rows 7-8);
* a **decoder** that checks an incoming wire value and returns the Python value. It
  raises :class:`RemoteProtocolError` naming the field path. Unknown keys in incoming
  maps are ignored (the forward-compatibility rule, §4 and §12 row 43).

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``None``,
``datetime.datetime``, :data:`JsonValue`, :data:`UUIDStr`, :data:`Seconds`,
``list[X]``, ``dict[str, X]``, fixed ``tuple[X, Y]`` (sent as an array),
``Literal[...]``, unions of these, and nested :class:`Model` classes.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple, TypeAlias, Union

from ..errors import LocalProtocolError, RemoteProtocolError, describe
from .framing import WIRE_MAX_FRAME_SIZE

__all__ = [
    "JsonValue",
    "AnyValue",
    "UUIDStr",
    "Seconds",
    "LaxDatetime",
    "Model",
    "Encoder",
    "Decoder",
    "MISSING_REQUIRED",
    "MAX_JSON_DEPTH",
    "MAX_JSON_BYTES",
    "check_json",
    "CheckIncomplete",
]


class _JsonMarker:
    """Annotation marker: any JSON-compatible value (nil, bool, int, float, str, list, map)."""


#: Any JSON value, as pydantic's ``JsonValue`` accepts it on the supervisor side: inbound,
#: bytes, date-times and containers of them are refused, as the real model refuses them.
JsonValue: TypeAlias = Annotated[Any, _JsonMarker]


class _AnyMarker:
    """Annotation marker: a field the real model types ``Any`` (sent as JSON, read as is)."""


#: A field whose real type is ``Any`` or a bare ``dict`` (``dag_run.conf``, ``next_kwargs``,
#: ``context_carrier``...): the real model accepts whatever msgpack carries, so inbound we
#: do too; outbound it is checked as a :data:`JsonValue`, because the supervisor forwards
#: it to the API as JSON.
AnyValue: TypeAlias = Annotated[Any, _AnyMarker]


class _LaxDatetimeMarker:
    """Annotation marker: a date-time field that accepts a naive RFC 3339 string."""


#: The real field is a plain ``datetime`` (only ``StartupDetails.start_date``): a naive
#: string is read as UTC. Every other date-time field is ``AwareDatetime`` in 1.3.2 and
#: refuses a string without an offset.
LaxDatetime: TypeAlias = Annotated[datetime.datetime, _LaxDatetimeMarker]


class _UuidMarker:
    """Annotation marker: a UUID, carried as its canonical string (protocol.md §3.4)."""


#: A UUID field (``ti_id``...): sent canonical, so a malformed id fails here and not
#: silently in the supervisor; a ``uuid.UUID`` is accepted too. Received as ``str``.
UUIDStr: TypeAlias = Annotated[str, _UuidMarker]


class _SecondsMarker:
    """Annotation marker: a duration, carried as a number of seconds (protocol.md §3.4)."""


#: A duration field whose real type is ``timedelta``: sent as seconds; a ``timedelta``
#: is accepted too. Out of ``timedelta``'s range the supervisor would drop the request.
Seconds: TypeAlias = Annotated[float, _SecondsMarker]

Encoder = Callable[[Any, str], Any]
Decoder = Callable[[Any, str], Any]


class _Row(NamedTuple):
    """One field of a compiled schema (unpacked positionally on the hot path).

    ``path``, ``out_ok`` and ``in_ok`` only spare the hot path work: no string formatted
    and no call made per field.
    """

    name: str
    required: bool
    encoder: Encoder
    decoder: Decoder
    #: The field's path when its model is the top-level body (``"GetVariable.key"``).
    path: str
    #: Value types the encoder / decoder return unchanged (see :func:`_compile`).
    out_ok: frozenset[type]
    in_ok: frozenset[type]


#: A compiled annotation: encoder, decoder, and what each returns unchanged (``_compile``).
_Compiled: TypeAlias = tuple[Encoder, Decoder, frozenset[type], frozenset[type]]

MISSING_REQUIRED: Final = object()

_UTC = datetime.UTC


class Model:
    """Base of every wire model: frozen keyword-only dataclasses whose annotations are the schema.

    Subclasses are decorated with ``@dataclass(frozen=True, slots=True, kw_only=True)``.
    Tagged models (every top-level message) carry ``TYPE``; nested ones (``TaskInstance``,
    ``DagRun``...) do not.
    """

    __slots__ = ()

    #: The value of the ``"type"`` key on the wire, or None for untagged nested models.
    TYPE: ClassVar[str | None] = None
    #: Other wire keys accepted for a field when decoding: {wire key: field name}.
    WIRE_ALIASES: ClassVar[dict[str, str]] = {}
    #: Compiled rows, built on first use (see :data:`_Row`).
    _schema: ClassVar[tuple[_Row, ...] | None] = None

    def to_map(self) -> dict[str, Any]:
        """The wire map of this model, validated; ``type`` comes last as the supervisor writes it.

        Raises:
            LocalProtocolError: a field holds a value the supervisor would not accept.
        """
        return _encode_model(self, type(self).__name__)

    def to_map_unchecked(self, field: str) -> dict[str, Any]:
        """:meth:`to_map`, with ``field``'s value put in as it is: the caller checks it
        (``check_json`` on a value that may be large, possibly in another thread)."""
        return _encode_model(self, type(self).__name__, field)

    @classmethod
    def from_map(cls, data: Any, path: str | None = None) -> Any:
        """Build the model from a decoded wire map.

        Raises:
            RemoteProtocolError: a required key is missing or a value has the wrong type;
                the message names the field.
        """
        return _decode_model(cls, data, path or cls.__name__)


def _schema_of(cls: type[Model]) -> tuple[_Row, ...]:
    schema = cls.__dict__.get("_schema")
    if schema is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        rows = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            enc, dec, out_ok, in_ok = _compile(hints[f.name])
            rows.append(_Row(f.name, required, enc, dec, f"{cls.__name__}.{f.name}", out_ok, in_ok))
        schema = tuple(rows)
        cls._schema = schema
    return schema


def _encode_model(obj: Model, path: str, unchecked: str = "") -> dict[str, Any]:
    cls = type(obj)
    out: dict[str, Any] = {}
    top = path == cls.__name__
    for name, _required, enc, _dec, qualified, out_ok, _in_ok in _schema_of(cls):
        value = getattr(obj, name)
        if type(value) in out_ok or name == unchecked:
            out[name] = value
        else:
            out[name] = enc(value, qualified if top else f"{path}.{name}")
    if cls.TYPE is not None:
        out["type"] = cls.TYPE
    return out


def _decode_model(cls: type[Model], data: Any, path: str) -> Any:
    if type(data) is not dict:
        raise RemoteProtocolError(f"{path}: expected a map, got {_kind(data)}")
    kwargs: dict[str, Any] = {}
    if cls.WIRE_ALIASES:
        for alias, name in cls.WIRE_ALIASES.items():
            if name not in data and alias in data:
                data = {**data, name: data[alias]}
    top = path == cls.__name__
    for name, required, _enc, dec, qualified, _out_ok, in_ok in _schema_of(cls):
        if name in data:
            value = data[name]
            if type(value) in in_ok:
                kwargs[name] = value
            else:
                kwargs[name] = dec(value, qualified if top else f"{path}.{name}")
        elif required:
            raise RemoteProtocolError(f"{path}: required key {name!r} is missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, LocalProtocolError) as exc:  # a model's own __post_init__ check
        raise RemoteProtocolError(f"{path}: {exc}") from None


def _kind(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


_NO_TYPES: Final[frozenset[type]] = frozenset()
_NONE_TYPE: Final[frozenset[type]] = frozenset({type(None)})
_STR: Final[frozenset[type]] = frozenset({str})
_BOOL: Final[frozenset[type]] = frozenset({bool})
_INT: Final[frozenset[type]] = frozenset({int})
_FLOAT: Final[frozenset[type]] = frozenset({float})
_DATETIME: Final[frozenset[type]] = frozenset({datetime.datetime})
#: What a JSON value's encoder passes through without looking inside (``_enc_json``):
#: not ``str`` (its size is checked) nor ``int`` (its range is).
_JSON_OUT: Final[frozenset[type]] = frozenset({bool, type(None)})
#: What a JSON value's decoder passes through: scalars pydantic's ``JsonValue`` accepts.
_JSON_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
#: Every type the codec can produce; an ``AnyValue`` decoder passes them all.
_JSON_IN: Final[frozenset[type]] = frozenset(
    {str, int, float, bool, type(None), list, dict, bytes, datetime.datetime}
)


# -- compiling annotations -------------------------------------------------------------


def _compile(tp: Any) -> _Compiled:
    """Compile one annotation: (encoder, decoder, out_ok, in_ok).

    ``out_ok``/``in_ok`` are the value types the encoder/decoder return unchanged, so
    the hot path may skip the call for them. Only exact types whose whole check is
    ``type(value) is T``: ints (64-bit range), floats (finite), date-times (aware),
    UUIDs (canonical form) and literals (the allowed set) are checked further when
    sent, so they never pass outbound. tests/test_fields.py checks these sets against
    the encoders and decoders.
    """
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        if _JsonMarker in extras:
            return _enc_json, _dec_json, _JSON_OUT, _JSON_SCALARS
        if _AnyMarker in extras:
            return _enc_json, _dec_any, _JSON_OUT, _JSON_IN
        if _UuidMarker in extras:
            return _enc_uuid, _dec_uuid, _NO_TYPES, _NO_TYPES
        if _LaxDatetimeMarker in extras:
            return _enc_datetime, _dec_lax_datetime, _NO_TYPES, _DATETIME
        if _SecondsMarker in extras:
            return _enc_seconds, _dec_float, _NO_TYPES, _FLOAT
        return _compile(base)
    if tp is type(None) or tp is None:
        return (*_scalar(type(None), "nil"), _NONE_TYPE, _NONE_TYPE)
    if tp is str:
        return (*_scalar(str, "str"), _STR, _STR)
    if tp is bool:
        return (*_scalar(bool, "bool"), _BOOL, _BOOL)
    if tp is int:
        return _enc_int, _dec_int, _NO_TYPES, _INT
    if tp is float:
        return _enc_float, _dec_float, _NO_TYPES, _FLOAT
    if tp is datetime.datetime:
        return _enc_datetime, _dec_datetime, _NO_TYPES, _NO_TYPES
    if tp is Any:
        return _enc_json, _dec_any, _JSON_OUT, _JSON_IN
    if isinstance(tp, type) and issubclass(tp, Model):
        return (*_nested(tp), _NO_TYPES, _NO_TYPES)
    if origin is Literal:
        return (*_literal(typing.get_args(tp)), _NO_TYPES, _STR)
    if origin is list:
        (item,) = typing.get_args(tp)
        return (*_list(*_compile(item)[:2]), _NO_TYPES, _NO_TYPES)
    if origin is tuple and Ellipsis not in typing.get_args(tp):
        items = [_compile(item)[:2] for item in typing.get_args(tp)]
        return (*_tuple(items), _NO_TYPES, _NO_TYPES)
    if origin is dict:
        key, value = typing.get_args(tp)
        if key is not str:
            raise TypeError(f"map keys must be str in {tp!r}")
        return (*_map(*_compile(value)[:2]), _NO_TYPES, _NO_TYPES)
    if origin is Union or origin is types.UnionType:
        return _union(typing.get_args(tp))
    raise TypeError(f"unsupported field annotation {tp!r}")


def _scalar(kind: type, name: str) -> tuple[Encoder, Decoder]:
    def enc(value: Any, path: str) -> Any:
        if type(value) is not kind:
            raise LocalProtocolError(f"{path}: expected {name}, got {_kind(value)}")
        return value

    def dec(value: Any, path: str) -> Any:
        if type(value) is not kind:
            raise RemoteProtocolError(f"{path}: expected {name}, got {_kind(value)}")
        return value

    return enc, dec


_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1


def _enc_int(value: Any, path: str) -> Any:
    if type(value) is not int:
        raise LocalProtocolError(f"{path}: expected int, got {_kind(value)}")
    if not _INT_MIN <= value <= _UINT_MAX:
        raise LocalProtocolError(f"{path}: integer {value} does not fit in 64 bits")
    return value


def _dec_int(value: Any, path: str) -> Any:
    if type(value) is not int:
        raise RemoteProtocolError(f"{path}: expected int, got {_kind(value)}")
    return value


def _enc_float(value: Any, path: str) -> Any:
    if type(value) is int:
        return _enc_int(value, path)
    if type(value) is not float:
        raise LocalProtocolError(f"{path}: expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        # The supervisor forwards numbers to the API as JSON, which has no NaN or infinity.
        raise LocalProtocolError(f"{path}: {value!r} is not a finite number")
    return value


def _enc_uuid(value: Any, path: str) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if type(value) is not str:
        raise LocalProtocolError(f"{path}: expected a UUID, got {_kind(value)}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise LocalProtocolError(f"{path}: {value!r} is not a UUID") from None


def _dec_uuid(value: Any, path: str) -> Any:
    # pydantic's lax UUID parsing accepts what uuid.UUID() does (hyphens or not, braces,
    # "urn:uuid:"), and 16 raw bytes; anything else fails validation in the real runner.
    if type(value) is str:
        try:
            uuid.UUID(value)
        except ValueError:
            raise RemoteProtocolError(f"{path}: {describe(value)} is not a UUID") from None
        return value
    if type(value) is bytes and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    raise RemoteProtocolError(f"{path}: expected a UUID string, got {_kind(value)}")


# timedelta's range in seconds; 10**9 days (just above timedelta.max) is refused.
_MIN_SECONDS: Final = datetime.timedelta.min.total_seconds()
_END_SECONDS: Final = 86_400.0 * 10**9


def _enc_seconds(value: Any, path: str) -> Any:
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else value
    seconds = _enc_float(seconds, path)
    if not _MIN_SECONDS <= seconds < _END_SECONDS:
        raise LocalProtocolError(f"{path}: {seconds!r} seconds is out of a timedelta's range")
    return seconds


def _dec_float(value: Any, path: str) -> Any:
    if type(value) is int:
        return float(value)
    if type(value) is not float:
        raise RemoteProtocolError(f"{path}: expected a number, got {_kind(value)}")
    return value


def _enc_datetime(value: Any, path: str) -> Any:
    if not isinstance(value, datetime.datetime):
        raise LocalProtocolError(f"{path}: expected an aware datetime, got {_kind(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        # protocol.md §3.4: AwareDatetime fields reject naive values and no reply is sent.
        raise LocalProtocolError(f"{path}: naive datetime {value.isoformat()}; make it aware")
    return value


def _dec_datetime(value: Any, path: str) -> Any:
    return _parse_datetime(value, path, lax=False)


def _dec_lax_datetime(value: Any, path: str) -> Any:
    return _parse_datetime(value, path, lax=True)


def _parse_datetime(value: Any, path: str, *, lax: bool) -> datetime.datetime:
    if type(value) is datetime.datetime:
        if value.utcoffset() is None and not lax:
            raise RemoteProtocolError(f"{path}: naive date-time {value.isoformat()}")
        return value
    if type(value) is str:
        # §3.4: RFC 3339 strings are accepted too (JSON-mode dumps). A string without an
        # offset is a naive value, which only a plain-datetime field (LaxDatetime) takes.
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise RemoteProtocolError(
                f"{path}: {describe(value)} is not an RFC 3339 date-time"
            ) from None
        if parsed.utcoffset() is not None:
            return parsed
        if not lax:
            raise RemoteProtocolError(f"{path}: {describe(value)} has no UTC offset")
        return parsed.replace(tzinfo=_UTC)
    raise RemoteProtocolError(f"{path}: expected a date-time, got {_kind(value)}")


def _nested(model: type[Model]) -> tuple[Encoder, Decoder]:
    def enc(value: Any, path: str) -> Any:
        if not isinstance(value, model):
            raise LocalProtocolError(f"{path}: expected {model.__name__}, got {_kind(value)}")
        return _encode_model(value, path)

    def dec(value: Any, path: str) -> Any:
        return _decode_model(model, value, path)

    return enc, dec


def _literal(allowed: tuple[Any, ...]) -> tuple[Encoder, Decoder]:
    choices = frozenset(allowed)

    def enc(value: Any, path: str) -> Any:
        if type(value) is not str or value not in choices:
            raise LocalProtocolError(f"{path}: {value!r} is not one of {sorted(choices)}")
        return value

    def dec(value: Any, path: str) -> Any:
        # Inbound, any string passes: a newer Airflow may add a state or run type, and
        # refusing the whole StartupDetails for it would break the forward-compatibility
        # rule (protocol.md §4, §12 row 43). Outbound stays strict (enc above).
        if type(value) is not str:
            raise RemoteProtocolError(
                f"{path}: expected one of {sorted(choices)}, got {describe(value)}"
            )
        return value

    return enc, dec


def _list(item_enc: Encoder, item_dec: Decoder) -> tuple[Encoder, Decoder]:
    def enc(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)):
            raise LocalProtocolError(f"{path}: expected a list, got {_kind(value)}")
        return [item_enc(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def dec(value: Any, path: str) -> Any:
        if type(value) is not list:
            raise RemoteProtocolError(f"{path}: expected a list, got {_kind(value)}")
        return [item_dec(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return enc, dec


def _tuple(items: list[tuple[Encoder, Decoder]]) -> tuple[Encoder, Decoder]:
    size = len(items)

    def enc(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != size:
            raise LocalProtocolError(f"{path}: expected an array of {size}, got {_kind(value)}")
        return [
            e(v, f"{path}[{i}]") for i, ((e, _d), v) in enumerate(zip(items, value, strict=True))
        ]

    def dec(value: Any, path: str) -> Any:
        if type(value) is not list or len(value) != size:
            raise RemoteProtocolError(f"{path}: expected an array of {size}, got {_kind(value)}")
        return tuple(
            d(v, f"{path}[{i}]") for i, ((_e, d), v) in enumerate(zip(items, value, strict=True))
        )

    return enc, dec


def _map(value_enc: Encoder, value_dec: Decoder) -> tuple[Encoder, Decoder]:
    def enc(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise LocalProtocolError(f"{path}: expected a map, got {_kind(value)}")
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise LocalProtocolError(f"{path}: map key {k!r} is not a string")
            out[k] = value_enc(v, f"{path}.{k}")
        return out

    def dec(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise RemoteProtocolError(f"{path}: expected a map, got {_kind(value)}")
        return {k: value_dec(v, f"{path}.{k}") for k, v in value.items()}

    return enc, dec


def _union(members: tuple[Any, ...]) -> _Compiled:
    nullable = type(None) in members
    rest = [m for m in members if m is not type(None)]
    compiled = [_compile(m) for m in rest]
    if len(compiled) == 1:
        inner_enc, inner_dec, out_ok, in_ok = compiled[0]
        if nullable:
            out_ok, in_ok = out_ok | _NONE_TYPE, in_ok | _NONE_TYPE

        def enc1(value: Any, path: str) -> Any:
            return None if value is None and nullable else inner_enc(value, path)

        def dec1(value: Any, path: str) -> Any:
            return None if value is None and nullable else inner_dec(value, path)

        return enc1, dec1, out_ok, in_ok

    def enc(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        errors = []
        for e, *_ in compiled:
            try:
                return e(value, path)
            except LocalProtocolError as exc:
                errors.append(str(exc))
        raise LocalProtocolError("; ".join(errors))

    def dec(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        errors = []
        for _e, d, *_ in compiled:
            try:
                return d(value, path)
            except RemoteProtocolError as exc:
                errors.append(str(exc))
        raise RemoteProtocolError("; ".join(errors))

    return enc, dec, _NO_TYPES, _NO_TYPES


# -- JSON values -------------------------------------------------------------------------

#: Deepest nesting of arrays and maps inside one JSON value we send. The 1.3.2
#: supervisor's models accept a ``SetXCom`` value nested 254 deep and refuse one nested
#: 255 deep (pydantic's recursion guard), and a refused request gets no reply at all;
#: tests/test_messages_real.py pins both sides of the line.
MAX_JSON_DEPTH: Final = 254

#: Largest msgpack encoding of one JSON value we send, in bytes. The supervisor's frame
#: reader takes any length its 4-byte prefix can express (2**32 - 1), and neither it nor
#: the Execution API checks an XCom's size; 64 KiB are kept for the rest of the frame
#: (keys, ids, the other fields). Read at call time, so tests can lower it.
MAX_JSON_BYTES: int = WIRE_MAX_FRAME_SIZE - 64 * 1024

#: A container whose encoding reaches this many bytes is remembered by ``id`` while a
#: value is checked, so one that appears many times (a list holding the same dict twice,
#: nested 60 deep) is sized once and not walked 2**60 times. Smaller ones are cheaper to
#: walk again than to remember.
_MEMO_MIN: Final = 64

#: Non-ASCII strings longer than this are measured in chunks of this many characters,
#: so their UTF-8 size is known without a whole second copy.
_UTF8_CHUNK: Final = 1 << 20


def _utf8_size(text: str) -> int:
    """UTF-8 length of ``text``; raises UnicodeEncodeError for a lone surrogate."""
    if text.isascii():  # O(1) for CPython's compact strings
        return len(text)
    if len(text) <= _UTF8_CHUNK:
        return len(text.encode())
    return sum(len(text[i : i + _UTF8_CHUNK].encode()) for i in range(0, len(text), _UTF8_CHUNK))


def _leaf_size(value: Any) -> int:
    """Encoded size (an upper bound for integers) of one scalar; ValueError if it has none."""
    t = type(value)
    if t is str:
        n = _utf8_size(value)
        return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
    if t is bool or value is None:
        return 1
    if t is int:
        if not _INT_MIN <= value <= _UINT_MAX:
            raise ValueError(f"integer {describe(value)} does not fit in 64 bits")
        return 1 if -32 <= value < 128 else 9
    if t is float:
        if not math.isfinite(value):
            # The supervisor forwards the value to the API as JSON, which has no NaN.
            raise ValueError(f"{value!r} is not a JSON number")
        return 9
    raise ValueError(f"a {t.__name__} is not a JSON value")


def _at(path: str, keys: list[Any]) -> str:
    return path + "".join(f"[{k}]" if type(k) is int else f".{k}" for k in keys)


class CheckIncomplete(Exception):
    """``check_json`` reached ``max_items`` before the end: the value is large, so finish
    the check where a long walk blocks nothing (the runtime uses a worker thread)."""


#: Strings at least this long make a ``max_items`` check stop at once (a long non-ASCII
#: string is measured by encoding it, which takes a while).
_LONG_STR: Final = 1 << 20


def check_json(value: Any, path: str, max_items: int | None = None) -> int:
    """Check that ``value`` can be sent as JSON, and return its msgpack size in bytes.

    The walk is iterative, so a deep value cannot raise RecursionError, and it ends in
    time linear in the value: a container met again while still open is a cycle, one
    met again after it was sized is counted without a second walk (``_MEMO_MIN``), and
    the walk stops as soon as the size passes :data:`MAX_JSON_BYTES`. Integers count as
    9 bytes unless they fit one, so the size is an upper bound, exact for the rest.

    Raises:
        LocalProtocolError: naming the path into the value (``SetXCom.value[3].a``) of a
            cycle, a non-string key, a value with no JSON form, a non-finite float, a
            lone surrogate, an integer beyond 64 bits, nesting deeper than
            :data:`MAX_JSON_DEPTH`, or a value larger than :data:`MAX_JSON_BYTES`.
        CheckIncomplete: ``max_items`` was given, and the value has more items than
            that, or a string of a MiB or more; nothing was found wrong before.
    """
    limit = MAX_JSON_BYTES
    t = type(value)
    if t is not list and t is not tuple and t is not dict:
        if max_items is not None and t is str and len(value) >= _LONG_STR:
            raise CheckIncomplete
        try:
            size = _leaf_size(value)
        except (ValueError, UnicodeError) as exc:
            raise LocalProtocolError(f"{path}: {_reason(exc)}") from None
        if size > limit:
            raise LocalProtocolError(f"{path}: {_too_large(size, limit)}")
        return size
    memo: dict[int, int] = {}
    open_ids: set[int] = set()
    keys: list[Any] = []  # the key of each open container but the root, in its parent
    # (children, id, size before it, is a map) of each open container, innermost last.
    frames: list[tuple[Any, int, int, bool]] = []
    total = _open(value, frames, open_ids, 0)
    items_left = -1 if max_items is None else max_items
    while frames:
        children, cid, start, is_map = frames[-1]
        for key, item in children:
            items_left -= 1
            if not items_left:
                raise CheckIncomplete
            try:
                if is_map:
                    if type(key) is not str:
                        raise ValueError(f"map key {describe(key)} is not a string")
                    n = _utf8_size(key)
                    total += n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
                t = type(item)
                if t is list or t is tuple or t is dict:
                    iid = id(item)
                    known = memo.get(iid)
                    if known is not None:
                        total += known
                    else:
                        if iid in open_ids:
                            raise ValueError("the value contains itself (a reference cycle)")
                        if len(frames) >= MAX_JSON_DEPTH:
                            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} arrays and maps")
                        keys.append(key)
                        total = _open(item, frames, open_ids, total)
                        break
                elif t is str and item.isascii() and (max_items is None or len(item) < _LONG_STR):
                    n = len(item)
                    total += n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
                elif t is int and _INT_MIN <= item <= _UINT_MAX:
                    total += 1 if -32 <= item < 128 else 9
                elif t is float and math.isfinite(item):
                    total += 9
                else:
                    if max_items is not None and t is str and len(item) >= _LONG_STR:
                        raise CheckIncomplete
                    total += _leaf_size(item)
            except (ValueError, UnicodeError) as exc:
                raise LocalProtocolError(f"{_at(path, [*keys, key])}: {_reason(exc)}") from None
            if total > limit:
                raise LocalProtocolError(f"{_at(path, [*keys, key])}: {_too_large(total, limit)}")
        else:
            frames.pop()
            open_ids.discard(cid)
            if keys:
                keys.pop()
            if total - start >= _MEMO_MIN:
                memo[cid] = total - start
    return total


def _open(container: Any, frames: list[Any], open_ids: set[int], total: int) -> int:
    cid = id(container)
    open_ids.add(cid)
    is_map = type(container) is dict
    frames.append((iter(container.items()) if is_map else enumerate(container), cid, total, is_map))
    n = len(container)
    return total + (1 if n < 16 else 3 if n < 65536 else 5)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return f"the string holds a lone surrogate at index {exc.start}, which UTF-8 cannot carry"
    return str(exc)


def _too_large(size: int, limit: int) -> str:
    return (
        f"the value encodes to more than {limit} bytes (at least {size}), the most one "
        "frame to the supervisor can carry"
    )


def _enc_json(value: Any, path: str) -> Any:
    check_json(value, path)
    return value


def _dec_json(value: Any, path: str) -> Any:
    """Refuse what pydantic's ``JsonValue`` refuses: bytes and date-times, at any depth."""
    if type(value) in _JSON_SCALARS:
        return value
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is list or t is dict:
            for item in v.values() if t is dict else v:
                if type(item) not in _JSON_SCALARS:
                    stack.append(item)
        else:
            raise RemoteProtocolError(f"{path}: a {_kind(v)} is not a JSON value")
    return value


def _dec_any(value: Any, path: str) -> Any:
    # The real field is ``Any``: whatever the codec produced is what pydantic accepts.
    return value
