"""One ``LogRecord`` -> one masked JSON line the supervisor's parser accepts (protocol.md §8.2).

The supervisor reads the logs socket line by line; a bad line is dropped (not JSON, unknown
``level``) or, worse, crashes its event loop (§12 rows 25-30), which leaves the task
instance RUNNING until the scheduler's heartbeat timeout. So the format is the contract,
and it is produced here only. Every string in a line has been through the process's
:class:`~trio_coord.runtime.masking.Masker` (its one value walker, ``Masker.redact``).
"""

from __future__ import annotations

import json
import json.encoder
import logging
import re
import threading
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from ..masking import Masker, safe_str
from .levels import level_name

__all__ = ["RecordRenderer", "exception_chain"]


# Attributes every LogRecord has; anything else in record.__dict__ came from ``extra=``.
# ``message`` and ``asctime`` appear once another handler has run a Formatter on the record.
_STANDARD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# How many attributes a record without extras has; checking the length is cheaper than
# computing the set difference on every record.
_PLAIN_RECORD_SIZE: Final = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)

# Field names that cannot be sent as they are (checked against the 1.3.2 supervisor):
# ours, fixed by protocol.md §8.2; the supervisor's own call parameters, which raise
# TypeError there (``_log_to_target(target, level, msg, **event)`` and structlog's
# ``log(self, ...)`` / ``_proxy_to_logger(self, method_name, ...)``); and names its
# task-log processors consume with another meaning (``positional_args`` is %-applied to
# the event, ``exc_info``/``stack_info`` trigger traceback rendering of the *supervisor's*
# stack, ``logger_name`` overrides ``logger``, ``error_detail`` is where ``exception`` goes).
_RESERVED: Final = frozenset(
    {
        "timestamp",
        "level",
        "event",
        "logger",
        "exception",
        "stack",
        "self",
        "method_name",
        "target",
        "msg",
        "error_detail",
        "positional_args",
        "exc_info",
        "stack_info",
        "logger_name",
    }
)

# Exception groups nest; so can our rendering of them.
_MAX_GROUP_DEPTH: Final = 8
# A traceback longer than this keeps its first and last halves.
_MAX_FRAMES: Final = 100
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
# Room a truncated record keeps for everything but its message: time, level, logger,
# bound fields and the marker's own JSON.
_TRUNCATION_HEADROOM: Final = 1024
# Logger names are few; the bound only guards against names made up per call.
_TAIL_CACHE_MAX: Final = 4096


class _Context:
    """The bound fields as the renderer needs them, for one masker version.

    Replaced whole (never mutated, except for the ``tails`` cache) when fields are bound or
    a secret is added, so a thread that read an old one builds a consistent, if stale, line.
    """

    __slots__ = ("fields", "fragment", "tails", "version")

    def __init__(self, version: int, fields: dict[str, object], fragment: str) -> None:
        self.version = version
        #: Bound fields, JSON-safe and masked.
        self.fields = fields
        #: The same, as JSON object members without braces (``"a":1,"b":2``), or "".
        self.fragment = fragment
        #: logger name -> ``,"logger":"name",<fragment>}\n``
        self.tails: dict[str, str] = {}


class RecordRenderer:
    """Turns a ``LogRecord`` into one masked, supervisor-safe JSON line (bytes).

    Thread-safe. The common record (no ``extra=``, no exception, no stack) is assembled
    from cached pieces, because stdlib ``logging`` already spends ~5 us per call before we
    see the record and the benchmark budget is ~6.7 us per record for everything.
    """

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        # Guards _bound and the rebuilding of _context, so that a bind() racing with a
        # rebuild in another thread cannot be overwritten by a context built from the old
        # fields. Reentrant: building calls str() on bound values, which might log.
        self._context_lock = threading.RLock()
        self._bound: dict[str, object] = {}
        self._context = _Context(-1, {}, "")
        # (whole second, '{"timestamp":"YYYY-MM-DDTHH:MM:SS.'): most records share the
        # second of the record before.
        self._second: tuple[int, str] = (-1, "")
        self._encode = json.JSONEncoder(
            ensure_ascii=False,
            separators=(",", ":"),
            check_circular=False,  # values are made JSON-safe first, with a depth bound
            allow_nan=False,  # NaN is not JSON; the supervisor would drop the line
            # Never reached with redacted values; masked all the same should that change.
            default=lambda value: masker.mask(safe_str(value)),
        ).encode

    def bind(self, fields: Mapping[str, object]) -> None:
        """Add context fields to every later record (a later binding of a name wins)."""
        with self._context_lock:
            self._bound = {**self._bound, **fields}
            self._context = _Context(-1, {}, "")

    def render(self, record: logging.LogRecord) -> bytes:
        """The record as one JSON object plus ``\\n``, UTF-8."""
        attrs = record.__dict__
        if (
            record.exc_info
            or record.stack_info
            or (len(attrs) != _PLAIN_RECORD_SIZE and attrs.keys() - _STANDARD_ATTRS)
        ):
            return self._render_full(record)
        masker = self._masker
        context = self._context
        if context.version != masker.version:
            context = self._current_context()
        name = record.name
        tail = context.tails.get(name)
        if tail is None:
            tail = self._tail(context, name)
        level = _LEVEL_PIECES.get(record.levelno)
        if level is None:
            level = _level_piece(record.levelno)
        created = record.created
        second = int(created)
        prefix = self._second
        if prefix[0] != second:
            prefix = self._new_second(second)
        text = (
            prefix[1]
            + _micros(created - second)
            + level
            + _json_string(masker.mask(_message(record)))
            + tail
        )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return _without_surrogates(text)

    def _render_full(self, record: logging.LogRecord) -> bytes:
        mask = self._masker.mask
        out: dict[str, object] = {
            "timestamp": self._timestamp(record.created),
            "level": level_name(record.levelno),
            "event": mask(_message(record)),
            "logger": mask(record.name),
        }
        out.update(self._current_context().fields)
        extra = record.__dict__.keys() - _STANDARD_ATTRS
        if extra:
            for key, value in record.__dict__.items():
                if key in extra:
                    out[_free_key(key, out)] = self._masker.redact(value, key)
        chain = exception_chain(record.exc_info) if record.exc_info else None
        if chain:
            out["exception"] = self._masker.redact(chain)
        if record.stack_info:
            out["stack"] = mask(safe_str(record.stack_info))
        text = self._encode(out) + "\n"
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return _without_surrogates(text)

    def render_simple(self, levelno: int, logger: str, event: str, **fields: object) -> bytes:
        """A record written by the pipeline itself (drops, fallback notices, failures)."""
        record = logging.LogRecord(logger, levelno, __file__, 0, event, None, None)
        record.__dict__.update(fields)
        return self._render_full(record)

    def render_truncated(self, record: logging.LogRecord, size: int, limit: int) -> bytes:
        """A stand-in, at most ``limit`` bytes, for ``record`` whose line is ``size`` bytes.

        Keeps the level, logger, time, bound fields and the start of the masked message
        (masked first, then cut, so a cut can never expose part of a secret), followed by
        a marker; extra fields, traceback and stack are left out.
        """
        marker = (
            f" [... truncated by trio-coord: this log record was {size} bytes, "
            f"over the {limit}-byte limit]"
        )
        message = self._masker.mask(_message(record)).encode("utf-8", "replace")
        room = max(0, limit - len(marker) - _TRUNCATION_HEADROOM)
        while True:
            head = message[:room].decode("utf-8", "ignore")
            stand_in = logging.LogRecord(
                record.name, record.levelno, "", 0, head + marker, None, None
            )
            stand_in.created = record.created
            stand_in.__dict__["truncated_from"] = size
            line = self._render_full(stand_in)
            # JSON escapes can make the message up to six times longer than its bytes.
            if len(line) <= limit or room == 0:
                return line
            room //= 2

    def _timestamp(self, created: float) -> str:
        second = int(created)
        prefix = self._second
        if prefix[0] != second:
            prefix = self._new_second(second)
        return prefix[1][len(_LINE_START) :] + _micros(created - second)

    def _new_second(self, second: int) -> tuple[int, str]:
        # RFC 3339 in UTC with a "Z" and microseconds: the form protocol.md §8.2 recommends
        # and the supervisor's msgspec datetime decoder accepts.
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        prefix = (second, _LINE_START + stamp)
        self._second = prefix
        return prefix

    def _current_context(self) -> _Context:
        with self._context_lock:
            version = self._masker.version
            context = self._context
            if context.version == version:
                return context
            fields: dict[str, object] = {}
            for key, value in self._bound.items():
                fields[_free_key(key, fields)] = self._masker.redact(value, key)
            fragment = self._encode(fields)[1:-1]
            context = _Context(version, fields, fragment)
            self._context = context
            return context

    def _tail(self, context: _Context, name: str) -> str:
        tail = ',"logger":' + self._encode(self._masker.mask(name))
        if context.fragment:
            tail += "," + context.fragment
        tail += "}\n"
        if len(context.tails) < _TAIL_CACHE_MAX:
            context.tails[name] = tail
        return tail


def _free_key(key: str, taken: Mapping[str, object]) -> str:
    """``key``, or ``key`` with leading underscores if it is reserved (see _RESERVED)."""
    if key not in _RESERVED:
        return key
    key = "_" + key
    while key in _RESERVED or key in taken:
        key = "_" + key
    return key


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:
        return (
            f"{safe_str(record.msg)} (log message could not be formatted with "
            f"args {safe_str(record.args)}: {type(exc).__name__}: {safe_str(exc)})"
        )


def _without_surrogates(text: str) -> bytes:
    # Lone surrogates (os.fsdecode, surrogateescape, careless C extensions) are not UTF-8,
    # and the supervisor rejects a line that is not; replace them with U+FFFD.
    return _SURROGATES.sub("\ufffd", text).encode("utf-8")


# The JSON text of a str, as JSONEncoder(ensure_ascii=False) writes it: this is the C
# function that encoder calls for a top-level str, minus the method call around it.
_json_string: Final = json.encoder.encode_basestring

_LINE_START: Final = '{"timestamp":"'


def _micros(fraction: float) -> str:
    # %d truncates the float itself: cheaper than int() plus an f-string, and the hot path
    # runs once per record. ``fraction`` is in [0, 1), so the result is 6 digits.
    return "%06dZ" % (fraction * 1_000_000)  # noqa: UP031


def _level_piece(levelno: int) -> str:
    return f'","level":"{level_name(levelno)}","event":'


_LEVEL_PIECES: Final = {n: _level_piece(n) for n in range(0, logging.CRITICAL + 1)}


_ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def exception_chain(exc_info: _ExcInfo | BaseException) -> list[dict[str, Any]]:
    """The exception as the list of chain entries the supervisor's UI renders.

    Outermost (the one being handled) first; each later entry is the ``__cause__``
    (``is_cause`` true) or the unsuppressed ``__context__`` of the one before. Exception
    groups carry their members, each as a chain of its own, in ``exceptions``.
    """
    if isinstance(exc_info, BaseException):
        return _chain(exc_info, set(), 0)
    exc_type, exc, _tb = exc_info
    if exc is not None:
        return _chain(exc, set(), 0)
    if exc_type is not None:
        return [_entry_for_type(exc_type)]
    return []


def _chain(exc: BaseException, seen: set[int], depth: int) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    current: BaseException | None = exc
    is_cause = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        entry = _entry_for_type(type(current))
        entry["exc_value"] = safe_str(current)
        entry["exc_notes"] = _notes(current)
        entry["is_cause"] = is_cause
        entry["frames"] = _frames(current.__traceback__)
        if isinstance(current, SyntaxError):
            entry["syntax_error"] = {
                "offset": current.offset or 0,
                "filename": current.filename or "?",
                "line": current.text or "",
                "lineno": current.lineno or 0,
                "msg": safe_str(current.msg),
            }
        if isinstance(current, BaseExceptionGroup):
            entry["is_group"] = True
            if depth < _MAX_GROUP_DEPTH:
                entry["exceptions"] = [_chain(sub, seen, depth + 1) for sub in current.exceptions]
        chain.append(entry)
        if current.__cause__ is not None:
            current, is_cause = current.__cause__, True
        elif current.__context__ is not None and not current.__suppress_context__:
            current, is_cause = current.__context__, False
        else:
            current = None
    return chain


def _entry_for_type(exc_type: type[BaseException]) -> dict[str, Any]:
    module = getattr(exc_type, "__module__", "builtins")
    name = getattr(exc_type, "__qualname__", exc_type.__name__)
    return {
        "exc_type": name if module in ("builtins", "__main__") else f"{module}.{name}",
        "exc_value": "",
        "exc_notes": [],
        "syntax_error": None,
        "is_cause": False,
        "frames": [],
        "is_group": False,
        "exceptions": [],
    }


def _notes(exc: BaseException) -> list[str]:
    notes = getattr(exc, "__notes__", None)
    if not isinstance(notes, list | tuple):
        return []
    return [safe_str(note) for note in notes]


def _frames(tb: TracebackType | None) -> list[dict[str, object]]:
    frames = [
        {"filename": frame.f_code.co_filename, "lineno": lineno or 0, "name": frame.f_code.co_name}
        for frame, lineno in traceback.walk_tb(tb)
    ]
    if len(frames) > _MAX_FRAMES:
        half = _MAX_FRAMES // 2
        skipped = len(frames) - 2 * half
        marker = {"filename": "", "lineno": 0, "name": f"... {skipped} frames omitted ..."}
        frames = [*frames[:half], marker, *frames[-half:]]
    return frames
