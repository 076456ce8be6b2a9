"""Task-log lines as the supervisor judges them (protocol.md §8.2) and as a developer reads them.

Theory of operation
-------------------
The runtime writes one JSON object per line on the logs socket; the real supervisor
parses each one and either renders it into the task log, drops it (bad JSON, a level
it does not know) or dies on it (not an object, no ``level``, a bad ``timestamp``, a
``self`` key). :func:`check_log_line` applies those same rules, so a local run reports
the line that would have wedged a worker instead of printing it happily.

:class:`Printer` turns what passes into ``HH:MM:SS.mmm LEVEL logger: event key=value``
lines, in arrival order, masked with the supervisor-side masker (secrets of 5 characters
or more registered by ``MaskSecret``, connection passwords and extras, sensitive
variables). The fields every record of the try carries (``ti_id``, ``dag_id``...) are
left out while they match the try, to keep lines short. stdout and stderr lines of the
process become ``task.stdout`` (INFO) and ``task.stderr`` (ERROR) records, as §8.6 says.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TextIO

from ..protocol.messages import TaskInstance
from ..runtime.masking import Masker

__all__ = [
    "LogLine",
    "Printer",
    "SUPERVISOR_LEVELS",
    "check_log_line",
    "format_record",
    "try_context",
]

#: The supervisor's level table (§8.2 step 5); anything else is dropped, and so is 0.
SUPERVISOR_LEVELS: Final[Mapping[str, int]] = {
    "critical": 50,
    "exception": 40,
    "error": 40,
    "warn": 30,
    "warning": 30,
    "info": 20,
    "debug": 10,
    "notset": 0,
}

_DISPLAY_LEVELS: Final = {"warn": "WARNING", "exception": "ERROR"}

# §8.2 step 3: RFC 3339 with seconds; "T" or a space; "Z", "z", an offset, or nothing.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?"
)

_RESERVED: Final = frozenset({"timestamp", "level", "event", "logger", "exception"})

_MAX_FIELD: Final = 200


@dataclass(frozen=True, slots=True)
class LogLine:
    """One logs-socket line, judged: exactly one attribute is set (or none, for a blank line)."""

    record: dict[str, Any] | None = None
    #: Why the real supervisor would drop the line (it says so only in its own log).
    dropped: str | None = None
    #: Why the real supervisor would crash on the line (§12 rows 25-30).
    fatal: str | None = None


def check_log_line(raw: bytes) -> LogLine:
    """Judge one line (without its ``\\n``) by the supervisor's rules."""
    text = raw.strip()
    if not text:
        return LogLine()
    try:
        value = json.loads(text)
    except ValueError:
        return LogLine(dropped=f"malformed JSON log line {_clip(text.decode('utf-8', 'replace'))}")
    if not isinstance(value, dict):
        return LogLine(fatal=f"a log line that is a JSON {type(value).__name__}, not an object")
    if "level" not in value:
        return LogLine(fatal="a log record without 'level'")
    level = value["level"]
    if isinstance(level, dict | list):
        return LogLine(fatal=f"a log record whose level is a {type(level).__name__}")
    for key in ("self", "method_name"):
        if key in value:
            return LogLine(fatal=f"a log record with the key {key!r}")
    stamp = value.get("timestamp")
    if stamp and not (isinstance(stamp, str) and _RFC3339.fullmatch(stamp)):
        return LogLine(fatal=f"a log record whose timestamp {stamp!r} is not RFC 3339")
    if not isinstance(level, str) or not SUPERVISOR_LEVELS.get(level):
        return LogLine(dropped=f"a log record with level {level!r} (lower-case names only)")
    return LogLine(record=value)


def try_context(ti: TaskInstance) -> dict[str, object]:
    """The fields the runtime binds on every record of this try (§9.1 step 1)."""
    return {
        "ti_id": ti.id,
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "try_number": ti.try_number,
        "map_index": -1 if ti.map_index is None else ti.map_index,
    }


def _clip(text: str, limit: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clock(when: datetime.datetime) -> str:
    local = when.astimezone()
    return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def _when(stamp: object) -> datetime.datetime | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(stamp.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def _show(value: object) -> str:
    if isinstance(value, str):
        text = (
            value
            if value and not any(c.isspace() or c in "\"'=" for c in value)
            else json.dumps(value, ensure_ascii=False)
        )
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 3] + "..."


def format_record(
    record: Mapping[str, Any],
    context: Mapping[str, object] | None = None,
    *,
    now: datetime.datetime | None = None,
) -> list[str]:
    """The record as display lines: the head line, then any exception, indented."""
    when = _when(record.get("timestamp")) or now or datetime.datetime.now(datetime.UTC)
    level = str(record.get("level", ""))
    level = _DISPLAY_LEVELS.get(level, level.upper())
    logger = record.get("logger") or "-"
    event = record.get("event")
    text = "" if event is None else event if isinstance(event, str) else _show(event)
    context = context or {}
    fields = [
        f"{key}={_show(value)}"
        for key, value in record.items()
        if key not in _RESERVED and not (key in context and context[key] == value)
    ]
    head = f"{_clock(when)} {level:<7} {logger}: {text}"
    if fields:
        head += " " + " ".join(fields)
    lines = [head]
    exception = record.get("exception")
    if exception:
        lines.extend(_exception_lines(exception))
    return lines


def _exception_lines(chain: object) -> list[str]:
    if not isinstance(chain, list) or not all(isinstance(e, dict) for e in chain):
        return [f"    exception: {_show(chain)}"]
    lines: list[str] = []
    # The chain is outermost first; Python prints the innermost cause first.
    for i in range(len(chain) - 1, -1, -1):
        entry = chain[i]
        frames = entry.get("frames") or []
        if frames:
            lines.append("    Traceback (most recent call last):")
            for frame in frames if isinstance(frames, list) else ():
                if isinstance(frame, dict):
                    lines.append(
                        f'      File "{frame.get("filename")}", line {frame.get("lineno")}, '
                        f"in {frame.get('name')}"
                    )
        value = entry.get("exc_value")
        lines.append(f"    {entry.get('exc_type')}" + (f": {value}" if value else ""))
        for note in entry.get("exc_notes") or ():
            lines.append(f"    {note}")
        if i > 0:
            lines.append(
                "    The above exception was the direct cause of the following exception:"
                if entry.get("is_cause")
                else "    During handling of the above exception, another exception occurred:"
            )
    return lines


class Printer:
    """Where a local run writes: task logs (unless quiet) and the tool's own notices.

    Every line is masked just before it is written, so a secret registered after a
    record was received still never reaches the terminal.
    """

    def __init__(
        self,
        masker: Masker,
        *,
        logs: TextIO | None = None,
        notices: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        self.masker = masker
        self._logs = logs
        self._notices = notices
        self.quiet = quiet
        self.context: dict[str, object] = {}

    def _write(self, stream: TextIO | None, lines: list[str]) -> None:
        out = stream if stream is not None else sys.stdout
        out.write("".join(self.masker.mask(line) + "\n" for line in lines))
        out.flush()

    def record(self, record: Mapping[str, Any]) -> None:
        """Print one log record from the logs socket."""
        if not self.quiet:
            self._write(self._logs, format_record(record, self.context))

    def output(self, logger: str, level: str, text: str) -> None:
        """Print one line the process wrote to stdout or stderr (§8.6)."""
        if not self.quiet:
            record = {"timestamp": None, "level": level, "event": text, "logger": logger}
            self._write(self._logs, format_record(record))

    def notice(self, text: str) -> None:
        """A message from ``trio-coord run`` itself; printed even when quiet."""
        self._write(
            self._notices if self._notices is not None else sys.stderr, [f"trio-coord run: {text}"]
        )
