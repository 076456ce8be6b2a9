"""Task logs: from ``logging`` calls on any thread to JSON lines on the logs socket.

Theory of operation
-------------------

The supervisor reads the logs socket line by line and hands every line to
``process_log_messages_from_subprocess`` (protocol.md §8.2). A bad line is either dropped
(not JSON, unknown ``level``) or, worse, crashes the supervisor's event loop (§12 rows
25-30), which leaves the task instance RUNNING until the scheduler's heartbeat timeout. So
the format is the contract, and it is produced in one place, :class:`RecordRenderer`.

Data flow, one direction::

    logging.Logger (any thread)
      -> LogPipeline.handler       filter by level (§8.3) before any formatting
      -> RecordRenderer.render     one JSON object + "\\n", masked, in the emitting thread
      -> bounded in-memory buffer  (list of lines, guarded by one threading.Lock)
      -> LogPipeline.pump          the only writer: joins a batch, one send_all per batch
      -> logs socket, or stderr when the socket is gone (§8.6)

Why the work is split this way: formatting is the expensive part, so it is paid by the
thread that logs, and the Trio thread, which also carries the comm channel, only joins
bytes and writes. The Trio thread is never made to wait: when the buffer is full its own
records are counted and dropped, while a worker thread may wait a short bounded time for
the pump to make room (back-pressure instead of loss in the common "task logs in a tight
loop" case). The pump sleeps on a ``trio.Event`` and is woken with
``TrioToken.run_sync_soon`` only when it is parked, i.e. on the empty -> non-empty
transition; it then lingers a millisecond so that a busy producer is sent in batches of
hundreds, with one wake-up and one ``send_all`` each.

Delivery guarantee: every accepted record is written exactly once to the socket, or, if a
send fails, the whole batch that was in flight is written to the fallback (a record cut in
half on the socket is never lost; it may appear twice). ``drain()`` waits for everything
accepted so far; ``close()`` sends later records straight to the fallback and lets the pump
finish. Records dropped for lack of space are counted and announced by one warning record.
"""

from __future__ import annotations

import contextlib
import json
import json.encoder
import logging
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, BinaryIO, Final, Literal

import trio

from .masking import Masker

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_WORKER_WAIT",
    "LINGER",
    "LevelFilter",
    "LogPipeline",
    "RecordRenderer",
    "exception_chain",
    "level_name",
    "parse_level",
]

#: Buffered records before new ones are dropped. A task that logs in a tight loop on the
#: Trio thread gives the pump no chance to run until it yields, so the buffer must hold a
#: whole burst: the benchmark's 100k records from the Trio thread lost 90% with 10,000
#: slots. The real memory guard is :data:`DEFAULT_MAX_BUFFERED_BYTES`; at a typical 150-400
#: bytes per record it binds first, and this count only bounds per-record overhead.
DEFAULT_CAPACITY: Final = 200_000

#: Second bound, on bytes, so that a few huge records cannot pin unbounded memory. A record
#: is always accepted into an empty buffer, however large, so no record is too big to send.
DEFAULT_MAX_BUFFERED_BYTES: Final = 32 * 1024 * 1024

#: How long a worker thread may wait for room when the buffer is full. Long enough for the
#: pump to empty a full buffer many times over; short enough that a stuck socket degrades to
#: counted drops rather than a hung task. After one wait times out, later records do not
#: wait until the pump makes progress again.
DEFAULT_WORKER_WAIT: Final = 0.5

#: How long the pump waits, after being woken from idle, before taking a batch. Latency
#: of a first record after silence, traded for batching: while a task logs in a loop, the
#: pump then costs a fraction of a microsecond per record instead of several.
LINGER: Final = 0.001

# Logger name of the records this module writes about itself.
_SELF_LOGGER: Final = "trio_coord.logs"

_LEVELS: Final[Mapping[str, int]] = {
    "notset": logging.NOTSET,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

_ENV_LEVEL: Final = "AIRFLOW__LOGGING__LOGGING_LEVEL"
_ENV_NAMESPACES: Final = "AIRFLOW__LOGGING__NAMESPACE_LEVELS"
_NAMESPACE_SEPARATORS: Final = re.compile(r"[\s,]+")

# Logger names are normally a fixed set; the bound keeps a program that invents names
# (one per request id, say) from growing the cache forever.
_THRESHOLD_CACHE_MAX: Final = 4096


def parse_level(text: str) -> int | None:
    """Map a configured level name (any case, surrounding blanks allowed) to its number."""
    return _LEVELS.get(text.strip().lower())


def level_name(levelno: int) -> str:
    """Name a numeric level by range, the way the supervisor's table can read it.

    Levels below DEBUG become ``debug`` rather than ``notset``: the supervisor silently
    drops ``notset`` (level 0 is falsy), and a record that passed our filter is meant to be
    seen.
    """
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warning"
    if levelno < logging.CRITICAL:
        return "error"
    return "critical"


class LevelFilter:
    """Per-logger thresholds: a global level plus dotted-prefix overrides (protocol.md §8.3).

    The supervisor re-logs whatever it receives, so this filter is the only one.
    """

    def __init__(
        self,
        level: int = logging.INFO,
        namespaces: Mapping[str, int] | None = None,
        *,
        problems: Sequence[str] = (),
    ) -> None:
        self._level = level
        self._namespaces = dict(namespaces or {})
        self._cache: dict[str, int] = {}
        #: Human-readable descriptions of ignored configuration, reported once by the
        #: pipeline (it is the only place a report can reach the task log).
        self.problems: tuple[str, ...] = tuple(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LevelFilter:
        """Read ``AIRFLOW__LOGGING__LOGGING_LEVEL`` and ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``.

        An unset or invalid global level means INFO. Namespace entries are ``logger=LEVEL``
        separated by commas and/or whitespace; malformed ones are skipped and listed in
        :attr:`problems`.
        """
        problems: list[str] = []
        level = logging.INFO
        raw_level = environ.get(_ENV_LEVEL, "")
        if raw_level.strip():
            parsed = parse_level(raw_level)
            if parsed is None:
                problems.append(f"{_ENV_LEVEL}={raw_level!r} is not a level; using INFO")
            else:
                level = parsed
        namespaces: dict[str, int] = {}
        for entry in _NAMESPACE_SEPARATORS.split(environ.get(_ENV_NAMESPACES, "").strip()):
            if not entry:
                continue
            name, sep, raw = entry.partition("=")
            parsed = parse_level(raw) if sep else None
            if not name.strip() or parsed is None:
                problems.append(f"{_ENV_NAMESPACES} entry {entry!r} is not logger=LEVEL; ignored")
                continue
            namespaces[name.strip()] = parsed
        return cls(level, namespaces, problems=problems)

    @property
    def lowest(self) -> int:
        """The most permissive threshold in use: what a logger's own level may be set to."""
        return min([self._level, *self._namespaces.values()])

    def threshold(self, logger_name: str) -> int:
        """The minimum level a record from ``logger_name`` needs to be sent."""
        try:
            return self._cache[logger_name]
        except KeyError:
            pass
        found = self._lookup(logger_name)
        if len(self._cache) < _THRESHOLD_CACHE_MAX:
            self._cache[logger_name] = found
        return found

    def allows(self, logger_name: str, levelno: int) -> bool:
        """Whether a record at ``levelno`` from ``logger_name`` is sent."""
        found = self._cache.get(logger_name)
        if found is None:
            found = self.threshold(logger_name)
        return levelno >= found

    def _lookup(self, logger_name: str) -> int:
        if self._namespaces:
            candidate = logger_name
            while True:
                found = self._namespaces.get(candidate)
                if found is not None:
                    return found
                dot = candidate.rfind(".")
                if dot < 0:
                    break
                candidate = candidate[:dot]
        return self._level


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------

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

# Deeper structures are flattened to their str(): a cycle or an abuse, not data.
_MAX_DEPTH: Final = 24
# Exception groups nest; so can our rendering of them.
_MAX_GROUP_DEPTH: Final = 8
# A traceback longer than this keeps its first and last halves.
_MAX_FRAMES: Final = 100
# ``str(int)`` refuses more than 4300 digits; 14000 bits is just under that.
_MAX_INT_BITS: Final = 14_000
_SURROGATES: Final = re.compile("[\ud800-\udfff]")
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
            default=_safe_str,
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
                    out[_free_key(key, out)] = self._jsonable(value, 0)
        chain = exception_chain(record.exc_info) if record.exc_info else None
        if chain:
            out["exception"] = self._jsonable(chain, 0)
        if record.stack_info:
            out["stack"] = mask(_safe_str(record.stack_info))
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
                fields[_free_key(key, fields)] = self._jsonable(value, 0)
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

    def _jsonable(self, value: object, depth: int) -> object:
        """A JSON-safe, masked copy of ``value``; never raises."""
        try:
            return self._convert(value, depth)
        except Exception:
            return self._masker.mask(_safe_str(value))

    def _convert(self, value: object, depth: int) -> object:
        mask = self._masker.mask
        if isinstance(value, str):
            # str.__str__ turns a subclass (an enum member, a lazy string) into a plain str.
            return mask(value if type(value) is str else str.__str__(value))
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            number = int(value)
            # json (and str()) refuse ints of more than 4300 digits; hex has no such limit.
            return number if number.bit_length() <= _MAX_INT_BITS else hex(number)
        if isinstance(value, float):
            real = float(value)
            return real if math.isfinite(real) else str(real)
        if isinstance(value, bytes | bytearray | memoryview):
            return mask(bytes(value).decode("utf-8", "replace"))
        if depth >= _MAX_DEPTH:
            return mask(_safe_str(value))
        if isinstance(value, Mapping):
            return {
                mask(k if type(k) is str else _safe_str(k)): self._jsonable(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self._jsonable(v, depth + 1) for v in value]
        return mask(_safe_str(value))


def _free_key(key: str, taken: Mapping[str, object]) -> str:
    """``key``, or ``key`` with leading underscores if it is reserved (see _RESERVED)."""
    if key not in _RESERVED:
        return key
    key = "_" + key
    while key in _RESERVED or key in taken:
        key = "_" + key
    return key


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:
        return (
            f"{_safe_str(record.msg)} (log message could not be formatted with "
            f"args {_safe_str(record.args)}: {type(exc).__name__}: {_safe_str(exc)})"
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
        entry["exc_value"] = _safe_str(current)
        entry["exc_notes"] = _notes(current)
        entry["is_cause"] = is_cause
        entry["frames"] = _frames(current.__traceback__)
        if isinstance(current, SyntaxError):
            entry["syntax_error"] = {
                "offset": current.offset or 0,
                "filename": current.filename or "?",
                "line": current.text or "",
                "lineno": current.lineno or 0,
                "msg": _safe_str(current.msg),
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
    return [_safe_str(note) for note in notes]


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


# ---------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------


class _PipelineHandler(logging.Handler):
    """The ``logging`` entry point; safe from any thread, never raises into the caller."""

    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    def handle(self, record: logging.LogRecord) -> bool:
        # logging.Handler.handle holds the handler's lock around emit(). Our buffer has its
        # own lock, and a worker thread may wait for room inside emit(); under the handler
        # lock that wait would stall every other thread, the Trio thread included.
        if self.filters and not self.filter(record):
            return False
        self._pipeline._emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._pipeline._emit(record)


_PumpState = Literal["idle", "running", "done"]


class LogPipeline:
    """Buffers rendered records and writes them to the logs socket from one Trio task.

    Args:
        level_filter: decides which records are sent at all.
        masker: hides secrets in every string of every record.
        capacity: records held before new ones are dropped (see :data:`DEFAULT_CAPACITY`).
        fallback: where records go when the socket cannot take them, and after
            :meth:`close`; ``None`` means ``sys.stderr.buffer`` at the time of writing.
        max_buffered_bytes: second bound on the buffer, in bytes.
        worker_wait: longest time a non-Trio thread waits for room in a full buffer.
    """

    def __init__(
        self,
        *,
        level_filter: LevelFilter,
        masker: Masker,
        capacity: int = DEFAULT_CAPACITY,
        fallback: BinaryIO | None = None,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        worker_wait: float = DEFAULT_WORKER_WAIT,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._filter = level_filter
        self._renderer = RecordRenderer(masker)
        self._capacity = capacity
        self._max_bytes = max_buffered_bytes
        self._worker_wait = worker_wait
        self._fallback = fallback

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        # Everything below is guarded by _lock.
        self._lines: list[bytes] = []
        self._buffered_bytes = 0
        self._accepted = 0  # records ever accepted into the buffer
        self._dropped = 0
        self._unreported = 0  # dropped since the last warning record
        self._room_waiters = 0
        self._stalled = False  # a worker's wait timed out; no more waiting until progress
        self._closed = False
        self._direct = False  # new records bypass the buffer: after close() or a dead pump
        self._parked = False  # the pump waits on _wakeup and must be woken
        self._state: _PumpState = "idle"

        # Trio-side state: touched only from the Trio thread (or under _lock for _token).
        self._token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None
        self._wakeup: trio.Event | None = None
        self._progress: trio.Event | None = None
        self._written = 0  # accepted records that reached the socket or the fallback
        self._socket_dead = False

        self._fallback_lock = threading.Lock()
        self.handler: logging.Handler = _PipelineHandler(self)

        for problem in level_filter.problems:
            self._emit(
                logging.LogRecord(_SELF_LOGGER, logging.ERROR, __file__, 0, "%s", (problem,), None)
            )

    # -- configuration ------------------------------------------------------------------

    def bind(self, /, **fields: object) -> None:
        """Add context fields (ti_id, dag_id, ...) to every record emitted from now on."""
        self._renderer.bind(fields)

    def install(self, logger: logging.Logger | None = None) -> None:
        """Attach :attr:`handler` to ``logger`` (the root logger by default).

        Also lowers the logger's own level to the most permissive threshold, so that the
        filter here, not the logger's default WARNING, decides; records below every
        threshold are then rejected by ``logging`` before a LogRecord is even built.
        """
        target = logging.getLogger() if logger is None else logger
        target.setLevel(self._filter.lowest)
        if self.handler not in target.handlers:
            target.addHandler(self.handler)

    def uninstall(self, logger: logging.Logger | None = None) -> None:
        """Detach :attr:`handler` from ``logger`` (the root logger by default)."""
        (logging.getLogger() if logger is None else logger).removeHandler(self.handler)

    @property
    def dropped(self) -> int:
        """Records lost because the buffer was full (or the fallback could not be written)."""
        return self._dropped

    def render(self, record: logging.LogRecord) -> bytes:
        """The exact line this pipeline would write for ``record`` (filtering aside)."""
        return self._renderer.render(record)

    # -- producer side (any thread) -----------------------------------------------------

    def _emit(self, record: logging.LogRecord) -> None:
        try:
            if not self._filter.allows(record.name, record.levelno):
                return
            try:
                line = self._renderer.render(record)
            except Exception as exc:
                line = self._renderer.render_simple(
                    logging.ERROR,
                    _SELF_LOGGER,
                    f"a log record from {record.name!r} could not be rendered: "
                    f"{type(exc).__name__}: {_safe_str(exc)}",
                )
            self._submit(line)
        except Exception:
            # Losing one record beats raising into arbitrary user code.
            with self._lock:
                self._count_drop_locked()

    def _submit(self, line: bytes) -> None:
        wake = False
        direct = b""
        with self._lock:
            if (
                not self._direct
                and not self._has_room_locked(len(line))
                and not (self._may_wait_locked() and self._wait_for_room_locked(len(line)))
            ):
                self._count_drop_locked()
                return
            if self._direct:
                direct = self._drop_warning_locked() if self._unreported else b""
                direct += line
            else:
                if self._unreported:
                    self._append_locked(self._drop_warning_locked())
                self._append_locked(line)
                if self._parked:
                    self._parked = False
                    wake = True
        if direct:
            self._write_fallback(direct)
        elif wake:
            self._wake_pump()

    def _has_room_locked(self, size: int) -> bool:
        lines = self._lines
        return not lines or (
            len(lines) < self._capacity and self._buffered_bytes + size <= self._max_bytes
        )

    def _may_wait_locked(self) -> bool:
        # Only worth waiting if a pump is there to make room, and never on the Trio thread:
        # the pump runs on it, so waiting there would wait for ourselves.
        return (
            self._state == "running"
            and not self._stalled
            and threading.get_ident() != self._trio_thread
        )

    def _wait_for_room_locked(self, size: int) -> bool:
        deadline = time.monotonic() + self._worker_wait
        self._room_waiters += 1
        try:
            while not self._direct and not self._has_room_locked(size):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._state != "running":
                    self._stalled = True
                    return False
                self._room.wait(remaining)
            return True
        finally:
            self._room_waiters -= 1

    def _append_locked(self, line: bytes) -> None:
        self._lines.append(line)
        self._buffered_bytes += len(line)
        self._accepted += 1

    def _count_drop_locked(self) -> None:
        self._dropped += 1
        self._unreported += 1

    def _drop_warning_locked(self) -> bytes:
        count, self._unreported = self._unreported, 0
        return self._renderer.render_simple(
            logging.WARNING, _SELF_LOGGER, f"{count} log records dropped", dropped=count
        )

    def _wake_pump(self) -> None:
        token = self._token
        if token is None:
            return
        # After trio.run has returned nobody is left to wake; close() handles the rest.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._on_wake, idempotent=True)

    def _on_wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        if self._progress is not None and self._state != "running":
            self._notify_progress()

    # -- consumer side (Trio thread) ----------------------------------------------------

    async def pump(
        self,
        stream: trio.abc.SendStream,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Write buffered records to ``stream`` until :meth:`close`, then return.

        The only task that writes to the logs socket. Starts by flushing what was buffered
        before the socket existed. If a write fails (the supervisor closed the socket), the
        batch in flight and every later record go to the fallback instead; nothing is
        raised. If the pump is cancelled, what it holds is written to the fallback
        synchronously and later records go there directly. It does not close ``stream``.
        """
        with self._lock:
            if self._state != "idle":
                raise RuntimeError("LogPipeline.pump() can run only once")
            self._state = "running"
            self._token = trio.lowlevel.current_trio_token()
            self._trio_thread = threading.get_ident()
        if self._progress is None:
            self._progress = trio.Event()
        task_status.started()
        batch: list[bytes] = []
        try:
            while True:
                with self._lock:
                    batch, upto = self._take_locked()
                    if not batch:
                        if self._closed:
                            break
                        self._wakeup = trio.Event()
                        self._parked = True
                if not batch:
                    if self._wakeup is None:  # set under the lock just above
                        raise RuntimeError("the log pump parked without a wake-up event")
                    await self._wakeup.wait()
                    if not self._closed:
                        # Woken by the first record after a quiet spell: let its neighbours
                        # arrive, so a thread logging in a loop is sent in batches of
                        # hundreds rather than a few records per wake-up and GIL hand-off.
                        await trio.sleep(LINGER)
                    continue
                await self._send(stream, b"".join(batch))
                batch = []
                self._written = upto
                self._notify_progress()
        except BaseException:
            # Cancelled (or worse) with records in hand: they go to the fallback, and so
            # does everything after, since nobody will pump any more.
            with self._lock:
                self._direct = True
                self._state = "done"
                rest, upto = self._take_locked()
            leftover = b"".join(batch + rest)
            if leftover:
                self._write_fallback(leftover)
            self._written = max(self._written, upto)
            self._notify_progress()
            raise
        finally:
            with self._lock:
                self._state = "done"
                self._parked = False

    async def drain(self) -> None:
        """Return once every record accepted before the call is written out.

        Written out means sent on the socket or written to the fallback. Waits as long as
        it takes: put it under a cancel scope.
        """
        with self._lock:
            target = self._accepted
            if self._token is None:
                self._token = trio.lowlevel.current_trio_token()
        while self._written < target:
            if self._progress is None:
                self._progress = trio.Event()
            await self._progress.wait()

    def close(self) -> None:
        """Stop buffering: later records go straight to the fallback; the pump flushes and returns.

        Safe from any thread and idempotent. If no pump is running, buffered records are
        written to the fallback here.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._direct = True
            leftover: list[bytes] = []
            upto = 0
            if self._state != "running":
                leftover, upto = self._take_locked()
            wake = self._parked
            self._parked = False
            if self._room_waiters:
                self._room.notify_all()
        if leftover:
            self._write_fallback(b"".join(leftover))
            self._written = max(self._written, upto)
            wake = True
        if wake:
            self._wake_pump()

    def _take_locked(self) -> tuple[list[bytes], int]:
        batch = self._lines
        if self._unreported and (batch or self._direct):
            batch.append(self._drop_warning_locked())
        self._lines = []
        self._buffered_bytes = 0
        self._stalled = False
        if self._room_waiters:
            self._room.notify_all()
        return batch, self._accepted

    def _notify_progress(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = trio.Event()

    async def _send(self, stream: trio.abc.SendStream, data: bytes) -> None:
        if not self._socket_dead:
            try:
                await stream.send_all(data)
                return
            except Exception as exc:
                # Usually BrokenResourceError (peer gone) or ClosedResourceError (the runtime
                # closed the stream); anything else is treated the same: the task's logs
                # matter more than the reason the socket failed. Part of `data` may have
                # reached the supervisor; the cut line is dropped there as malformed JSON,
                # and the whole batch is repeated below. Nothing more is written to this
                # stream: its byte position is unknown.
                self._socket_dead = True
                notice = self._renderer.render_simple(
                    logging.WARNING,
                    _SELF_LOGGER,
                    f"logs socket failed ({type(exc).__name__}); writing task logs to stderr",
                )
                data = notice + data
        await trio.to_thread.run_sync(self._write_fallback, data)

    def _write_fallback(self, data: bytes) -> None:
        """Write whole lines to the fallback; never raises (a failure counts as drops)."""
        with self._fallback_lock:
            try:
                target = self._fallback
                if target is None:
                    stderr = sys.stderr
                    buffer = getattr(stderr, "buffer", None)
                    if buffer is not None:
                        target = buffer
                    else:
                        stderr.write(data.decode("utf-8", "replace"))
                        stderr.flush()
                        return
                target.write(data)
                target.flush()
            except Exception:
                with self._lock:
                    self._dropped += data.count(b"\n")
