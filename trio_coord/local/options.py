"""The ``trio-coord run`` command line, checked before any process is started.

Every mistake here becomes one :class:`~trio_coord.errors.UsageError` sentence (exit 2),
because a developer trying a task should never have to read a traceback from the tool
to learn they mistyped a flag.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..authoring import _check_id
from ..client import Connection
from ..errors import RemoteProtocolError, UsageError
from ..protocol.messages import ConnectionResult
from .hitl import HITLAnswer, parse_answer

__all__ = [
    "RunOptions",
    "parse_args",
    "build_parser",
    "DEFAULT_MAX_TRIES",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_TIMEOUT",
    "PROG",
]

PROG = "trio-coord run"

#: Bound on the whole run. A local try of one task that takes longer than an hour is
#: almost certainly stuck; ``--timeout`` raises it.
DEFAULT_TIMEOUT = 3600.0
#: A whole-DAG run sleeps through retry delays, reschedules and deferrals up to this long
#: each; longer waits stop the task instance (``--no-wait`` skips every wait).
DEFAULT_MAX_WAIT = 300.0
#: Bound on the tries of one task instance in a whole-DAG run: a sensor rescheduling for
#: ever must end the run, not hang it.
DEFAULT_MAX_TRIES = 100


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything one local run needs, validated."""

    bundle: str
    dag_id: str
    task_id: str
    variables: dict[str, str] = field(default_factory=dict)
    connections: dict[str, ConnectionResult] = field(default_factory=dict)
    #: ``(task_id, key) -> value`` of XComs already in this run (map index -1).
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)
    should_retry: bool = False
    try_number: int = 1
    map_index: int = -1
    conf: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    #: The run's logical date (default: when it starts).
    logical_date: datetime.datetime | None = None
    #: Resuming a deferred task: the method and its arguments (a whole-DAG run sets them).
    next_method: str | None = None
    next_kwargs: dict[str, Any] | None = None
    #: ``--hitl-answer``: resume a try that ended awaiting input with this answer.
    hitl_answer: HITLAnswer | None = None
    #: How often this task instance was rescheduled before this try.
    task_reschedule_count: int = 0
    timeout: float = DEFAULT_TIMEOUT
    json: bool = False
    quiet: bool = False
    debug: bool = False
    #: No TASK_ID: run every task of the DAG (``task_id`` is then empty).
    whole_dag: bool = False
    #: Whole-DAG runs: do not sleep for retry delays, reschedules and deferrals.
    no_wait: bool = False
    #: Whole-DAG runs: the longest single wait; a longer one stops that task instance.
    max_wait: float = DEFAULT_MAX_WAIT
    #: Whole-DAG runs: the most tries (retries, reschedules, resumes) of one task instance.
    max_tries: int = DEFAULT_MAX_TRIES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


_EPILOG = """\
values:
  --var KEY=VALUE        VALUE is stored as the variable's text, as Airflow does
  --conn ID=URI          scheme://login:password@host:port/schema?key=value (query -> extra),
                         or ID='{"conn_type": ..., "host": ..., "extra": {...}}'
  --xcom TASK.KEY=JSON   an XCom of TASK in this run, e.g. greet.return_value='{"a": 1}';
                         the key is after the last dot; TASK=JSON means TASK.return_value

without TASK_ID every task of the DAG runs, one at a time in dependency order, sharing
XComs, with trigger rules, retries, reschedules and time deferrals (see --no-wait)

exit status: 0 the task ended in state success (without TASK_ID: the DAG run would
succeed), 1 any other outcome, 2 usage error (including a DAG_ID or TASK_ID the bundle
does not hold), 4 the bundle failed to import
"""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; its ``error`` raises :class:`UsageError` instead of exiting."""
    p = _Parser(
        prog=PROG,
        description=(
            "Run one task of a bundle (or, without TASK_ID, every task of the DAG) on this\n"
            "machine, without Airflow: the bundle (a source file through `trio-coord serve`,\n"
            "or a packed bundle executed itself) runs as a real subprocess against an\n"
            "embedded supervisor that answers from the values given here; prints the task's\n"
            "logs, then a short summary."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "bundle",
        metavar="BUNDLE",
        help="FILE.py, FILE.py:ATTR, MODULE:ATTR, or a packed bundle (trio-coord pack's output)",
    )
    p.add_argument("dag_id", metavar="DAG_ID")
    p.add_argument(
        "task_id", metavar="TASK_ID", nargs="?", default=None, help="omit to run the whole DAG"
    )
    p.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="seed a variable"
    )
    p.add_argument(
        "--conn", action="append", default=[], metavar="ID=URI", help="seed a connection"
    )
    p.add_argument(
        "--xcom", action="append", default=[], metavar="TASK.KEY=JSON", help="seed an upstream XCom"
    )
    p.add_argument(
        "--should-retry",
        action="store_true",
        default=None,
        help="the server's verdict: a failure now becomes up_for_retry",
    )
    p.add_argument("--try-number", type=_positive_int, default=None, metavar="N", help="default 1")
    p.add_argument(
        "--map-index", type=_map_index, default=None, metavar="N", help="default -1 (unmapped)"
    )
    p.add_argument(
        "--logical-date",
        type=_aware_datetime,
        default=None,
        metavar="ISO",
        help="the run's logical date, e.g. 2026-01-01T00:00:00+00:00 (default: now)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="whole DAG: run retries, reschedules and deferred tasks at once, without waiting",
    )
    p.add_argument(
        "--max-wait",
        type=_seconds,
        default=DEFAULT_MAX_WAIT,
        metavar="SECONDS",
        help=f"whole DAG: the longest wait for one retry or reschedule (default {DEFAULT_MAX_WAIT:g})",
    )
    p.add_argument(
        "--max-tries",
        type=_positive_int,
        default=DEFAULT_MAX_TRIES,
        metavar="N",
        help=f"whole DAG: the most tries of one task instance (default {DEFAULT_MAX_TRIES})",
    )
    p.add_argument("--conf", type=_conf, default={}, metavar="JSON", help="the run's conf object")
    p.add_argument("--run-id", default=None, metavar="RUN_ID", help="default: manual__<now>")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"bound on the whole run (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object (logs go to stderr)",
    )
    p.add_argument("--quiet", action="store_true", help="print the summary only")
    p.add_argument(
        "--hitl-answer",
        default=None,
        metavar="ANSWER",
        help="answer a task that awaits a person: OPTION[,OPTION...] or "
        '\'{"chosen_options": [...], "params_input": {...}}\'; the task then resumes',
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="show trio-coord's own frames when the bundle fails to import",
    )
    return p


def parse_args(argv: Sequence[str]) -> RunOptions:
    """Parse and check ``trio-coord run`` arguments.

    Raises:
        UsageError: anything wrong with them, as one sentence.
        SystemExit: ``--help`` (status 0), as argparse does.
    """
    ns = build_parser().parse_args(list(argv))
    _check_bundle(ns.bundle)
    _check_id("DAG_ID", ns.dag_id)
    whole_dag = ns.task_id is None
    if whole_dag:
        given = [
            flag
            for flag, value in (
                ("--should-retry", ns.should_retry),
                ("--try-number", ns.try_number),
                ("--map-index", ns.map_index),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)} applies to one task's try; without TASK_ID each task's "
                "tries follow its retries"
            )
    else:
        _check_id("TASK_ID", ns.task_id)
        given = [
            flag
            for flag, value, default in (
                ("--no-wait", ns.no_wait, False),
                ("--max-wait", ns.max_wait, DEFAULT_MAX_WAIT),
                ("--max-tries", ns.max_tries, DEFAULT_MAX_TRIES),
            )
            if value != default
        ]
        if given:
            raise UsageError(f"{', '.join(given)} applies only to a whole-DAG run (no TASK_ID)")
    if ns.run_id is not None and not ns.run_id.strip():
        raise UsageError("--run-id must not be empty")
    return RunOptions(
        bundle=ns.bundle,
        dag_id=ns.dag_id,
        task_id=ns.task_id or "",
        variables=dict(_pair("--var", v, "KEY=VALUE") for v in ns.var),
        connections={c.conn_id: c for c in map(_connection, ns.conn)},
        xcoms=dict(map(_xcom, ns.xcom)),
        should_retry=bool(ns.should_retry),
        try_number=ns.try_number or 1,
        map_index=-1 if ns.map_index is None else ns.map_index,
        conf=ns.conf,
        run_id=ns.run_id,
        logical_date=ns.logical_date,
        timeout=ns.timeout,
        json=ns.json,
        quiet=ns.quiet,
        debug=ns.debug,
        hitl_answer=None if ns.hitl_answer is None else parse_answer(ns.hitl_answer),
        whole_dag=whole_dag,
        no_wait=ns.no_wait,
        max_wait=ns.max_wait,
        max_tries=ns.max_tries,
    )


# -- value parsers ------------------------------------------------------------------------


def _check_bundle(spec: str) -> None:
    # Only what can be checked without importing (the look before running imports it).
    if os.path.isfile(spec) and not spec.endswith(".py"):
        if not os.access(spec, os.X_OK):
            raise UsageError(f"bundle {spec!r} is not executable: run chmod +x {spec}")
        return
    target, _, attr = spec.partition(":")
    if not target or (":" in spec and not attr):
        raise UsageError(f"BUNDLE {spec!r} is not FILE.py, FILE.py:ATTR or MODULE:ATTR")
    if target.endswith(".py") or "/" in target or os.sep in target:
        if not os.path.isfile(target):
            raise UsageError(f"bundle file {target!r} does not exist")
    elif not attr:
        raise UsageError(f"BUNDLE {spec!r}: a module needs an attribute, as MODULE:ATTR")


def _pair(flag: str, text: str, form: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise UsageError(f"{flag} expects {form}, got {text!r}")
    return key, value


def _connection(text: str) -> ConnectionResult:
    conn_id, value = _pair("--conn", text, "ID=URI")
    stripped = value.lstrip()
    if not stripped.startswith("{") and "://" not in value:
        raise UsageError(f"--conn {conn_id}: {value!r} is not a scheme://... URI or a JSON object")
    try:
        conn = Connection.from_env_value(conn_id, value)
    except (ValueError, TypeError, RemoteProtocolError) as exc:
        raise UsageError(f"--conn {conn_id}: {exc}") from None
    if not conn.conn_type:
        raise UsageError(f"--conn {conn_id}: no connection type (the URI scheme or conn_type)")
    return conn.to_result()


def _xcom(text: str) -> tuple[tuple[str, str], Any]:
    target, value = _pair("--xcom", text, "TASK.KEY=JSON")
    task_id, dot, key = target.rpartition(".")
    if not dot:
        task_id, key = target, "return_value"
    if not task_id or not key:
        raise UsageError(f"--xcom expects TASK.KEY=JSON, got {text!r}")
    try:
        parsed = _strict_json(value)
    except ValueError:
        raise UsageError(
            f"--xcom {target}: {value!r} is not JSON (quote strings: '\"text\"')"
        ) from None
    return (task_id, key), parsed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(text: str) -> Any:
    # json.loads takes NaN and Infinity, which the supervisor's JSON never carries.
    return json.loads(text, parse_constant=_no_constant)


def _bounded(
    convert: Callable[[str], float], what: str, ok: Callable[[float], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse ``type=``: ``convert`` the text, then check ``ok``, with both messages."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value

    return parse


_positive_int = _bounded(int, "an integer", lambda v: v >= 1, "at least 1")
_map_index = _bounded(int, "an integer", lambda v: v >= -1, "-1 (unmapped) or more")
_seconds = _bounded(
    float,
    "a number of seconds",
    lambda v: v > 0 and math.isfinite(v),
    "a positive number of seconds",
)


def _aware_datetime(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add one, e.g. {text}+00:00")
    return value.astimezone(datetime.UTC)


def _conf(text: str) -> dict[str, Any]:
    try:
        value = _strict_json(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not valid JSON") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
