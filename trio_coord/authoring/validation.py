"""Declaration-time checks: a mistake fails where it was written, not in Airflow's DAG processor.

Every option a DAG or a task can carry is listed once in :data:`TASK_OPTIONS` with the check
its value must pass. The same table serves a task's own keywords, a DAG's ``default_args``
and the DAG-level shortcuts (``retries``, ``retry_delay``, ``queue``), so a value is judged the
same way wherever it is written.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ..errors import UsageError

__all__ = [
    "TASK_OPTIONS",
    "TRIGGER_RULES",
    "WEIGHT_RULES",
    "check_id",
    "check_json_data",
    "check_json_dict",
    "check_keywords",
    "check_settings",
    "did_you_mean",
]

_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")

#: Airflow 3.3's trigger rules (``airflow.task.trigger_rule.TriggerRule``). Airflow does not
#: check this when it loads a serialized DAG; an unknown rule would only fail in the scheduler.
TRIGGER_RULES: Final = (
    "all_success",
    "all_failed",
    "all_done",
    "all_done_min_one_success",
    "all_done_setup_success",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_skipped",
    "always",
    "none_failed_min_one_success",
    "all_skipped",
)

#: The priority weight rules Airflow ships (custom strategy classes are not supported).
WEIGHT_RULES: Final = ("downstream", "upstream", "absolute")


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a valid Airflow id (DAG, task, group, bundle), else a UsageError."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise UsageError(
            f"{kind} {value!r} is not valid: use 1-250 letters, digits, '_', '-' or '.'"
        )
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keywords(where: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Unknown keywords are typos; say which one, what was probably meant and what exists."""
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise UsageError(
                f"{where}: unknown keyword {key!r}{did_you_mean(key, allowed)}; "
                f"accepted: {', '.join(sorted(allowed))}"
            )


Check = Callable[[Any], str | None]
"""A value check: None when the value is acceptable, else what was expected."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "True or False"


def _count(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "a non-negative integer"


def _positive(v: Any) -> str | None:
    return None if _is_int(v) and v >= 1 else "a positive integer"


def _integer(v: Any) -> str | None:
    return None if _is_int(v) and abs(v) < 2**31 else "an integer"


def _duration(v: Any) -> str | None:
    ok = isinstance(v, datetime.timedelta) and v >= datetime.timedelta(0)
    return None if ok else "a non-negative datetime.timedelta"


def _aware(v: Any) -> str | None:
    ok = isinstance(v, datetime.datetime) and v.utcoffset() is not None
    return (
        None
        if ok
        else "a timezone-aware datetime, e.g. datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)"
    )


def _backoff(v: Any) -> str | None:
    ok = isinstance(v, bool) or (isinstance(v, int | float) and 0 <= v < float("inf"))
    return None if ok else "True/False or a non-negative number (the backoff base)"


def _assets(v: Any) -> str | None:
    from .assets import Asset, AssetAlias

    items = v if isinstance(v, list | tuple) else [v]
    ok = all(isinstance(i, Asset | AssetAlias) for i in items)
    return None if ok else "an Asset, an AssetAlias or a list of them"


def _retry_policy(v: Any) -> str | None:
    from .retry_policy import RetryPolicy

    ok = isinstance(v, RetryPolicy)
    return None if ok else "a RetryPolicy (e.g. ExceptionRetryPolicy(rules=[RetryRule(...)]))"


def _params(v: Any) -> str | None:
    ok = isinstance(v, Mapping)
    return None if ok else "a mapping of name -> default or Param"


def _map_label(v: Any) -> str | None:
    # A str.format template over the mapped arguments, or a function called with them;
    # expanding the task refuses Jinja (trio-coord has none), see authoring/mapping.py.
    if callable(v) or (isinstance(v, str) and v.strip()):
        return None
    return "a str.format template over the mapped arguments, or a function called with them"


def _choice(choices: Iterable[str]) -> Check:
    names = tuple(choices)

    def check(v: Any) -> str | None:
        if isinstance(v, str) and v in names:
            return None
        hint = did_you_mean(v, names) if isinstance(v, str) else ""
        return f"one of {', '.join(names)}{hint}"

    return check


#: Every option a task accepts (and ``default_args`` may set), with its check. The names and
#: meanings are Airflow's ``BaseOperator`` arguments.
TASK_OPTIONS: Final[Mapping[str, Check]] = {
    "owner": _text,
    "retries": _count,
    "retry_delay": _duration,
    "retry_exponential_backoff": _backoff,
    "max_retry_delay": _duration,
    "retry_policy": _retry_policy,
    "params": _params,
    "execution_timeout": _duration,
    "queue": _text,
    "pool": _text,
    "pool_slots": _positive,
    "priority_weight": _integer,
    "weight_rule": _choice(WEIGHT_RULES),
    "trigger_rule": _choice(TRIGGER_RULES),
    "depends_on_past": _flag,
    "ignore_first_depends_on_past": _flag,
    "wait_for_past_depends_before_skipping": _flag,
    "wait_for_downstream": _flag,
    "do_xcom_push": _flag,
    "email_on_failure": _flag,
    "email_on_retry": _flag,
    "executor": _text,
    "doc_md": _text,
    "map_index_template": _map_label,
    "max_active_tis_per_dag": _positive,
    "max_active_tis_per_dagrun": _positive,
    "start_date": _aware,
    "end_date": _aware,
    "inlets": _assets,
    "outlets": _assets,
}

#: Options ``default_args`` may not carry: the DAG's own ``start_date``/``end_date`` and
#: ``params`` are the way to date a whole DAG and to give it params (Airflow would also
#: read them from ``default_args``, a second spelling that trio-coord does not copy);
#: ``inlets``/``outlets`` are what one task reads and writes, not a default for every task.
NOT_IN_DEFAULT_ARGS: Final = frozenset({"start_date", "end_date", "params", "inlets", "outlets"})


def check_json_data(where: str, value: Any) -> None:
    """Values that end up in a DAG document (params, literal arguments) must be JSON data."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"{where} must be JSON data (str, numbers, bool, None, lists, dicts): {exc}"
        ) from None


def check_json_dict(where: str, value: Any) -> dict[str, Any]:
    """A mapping with string keys whose values are JSON data (an asset's extra, a run's conf),
    as a plain dict."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise UsageError(f"{where} must be a dict with string keys, got {type(value).__name__}")
    check_json_data(where, dict(value))
    return dict(value)


def check_settings(where: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The one check for DAG-level and task-level settings: unknown names and bad values.

    ``None`` means "not given" (the task then inherits the value) and always passes.

    Returns:
        The given settings (without the ``None`` ones) in their one stored form:
        ``retry_exponential_backoff=True`` is Airflow's base 2 (``2.0``) and ``False`` is
        ``0``, because Airflow's operator schema types the field as a number.
    """
    check_keywords(where, settings, TASK_OPTIONS)
    out: dict[str, Any] = {}
    for name, value in settings.items():
        if value is None:
            continue
        expected = TASK_OPTIONS[name](value)
        if expected is not None:
            raise UsageError(f"{where}: {name} must be {expected}, got {value!r}")
        if name == "retry_exponential_backoff" and isinstance(value, bool):
            value = 2.0 if value else 0
        if name in ("inlets", "outlets"):
            value = list(value) if isinstance(value, list | tuple) else [value]
        if name == "params":
            from .dags import check_params

            value = check_params(where, value)
        out[name] = value
    return out
