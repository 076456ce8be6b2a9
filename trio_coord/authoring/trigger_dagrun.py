"""The ``trigger_dagrun`` task kind: start a run of another DAG (Airflow's TriggerDagRunOperator).

The options have the operator's names and defaults and are checked when the task is
declared. What the task does when it runs is in ``runtime/trigger_dagrun.py``.
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from ..errors import UsageError
from .validation import check_id, check_json_dict

__all__ = ["DAG_RUN_STATES", "NOW", "no_conf", "trigger_options"]

#: Airflow 3.3's DAG run states (``DagRunState``).
DAG_RUN_STATES: Final = ("queued", "running", "success", "failed")


class _Now:
    """The default ``logical_date``: the moment the task triggers (Airflow's NOTSET)."""

    def __repr__(self) -> str:
        return "NOW"


#: ``logical_date=NOW`` (the default): the trigger time, as the operator's NOTSET means.
NOW: Final = _Now()


def no_conf() -> None:
    # The function of a trigger task declared without one (``dag.trigger_dagrun(...)``):
    # returning None keeps the declared conf. No docstring: it would become the task's doc.
    return None


def _date(where: str, name: str, value: Any) -> None:
    if value is None or value is NOW:
        return
    if not isinstance(value, datetime.datetime) or value.utcoffset() is None:
        raise UsageError(
            f"{where}: {name} must be a timezone-aware datetime or None, got {value!r}"
        )


def _states(where: str, name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise UsageError(f"{where}: {name} must be a list of DAG run states, got {value!r}")
    for s in value:
        if s not in DAG_RUN_STATES:
            raise UsageError(
                f"{where}: {name} has {s!r}; DAG run states are {', '.join(DAG_RUN_STATES)}"
            )
    return list(value)


def trigger_options(
    *,
    trigger_dag_id: Any = None,
    trigger_run_id: Any = None,
    conf: Any = None,
    logical_date: Any = NOW,
    reset_dag_run: Any = False,
    wait_for_completion: Any = False,
    poke_interval: Any = 60,
    allowed_states: Any = None,
    failed_states: Any = None,
    skip_when_already_exists: Any = False,
    note: Any = None,
) -> dict[str, Any]:
    """The kind options of a ``trigger_dagrun`` task, checked; defaults as the operator's."""
    where = "trigger_dagrun"
    check_id(f"{where}: trigger_dag_id", trigger_dag_id)
    if trigger_run_id is not None:
        check_id(f"{where}: trigger_run_id", trigger_run_id)
    if conf is not None:
        conf = check_json_dict(f"{where}: conf", conf)
    _date(where, "logical_date", logical_date)
    for name, flag in (
        ("reset_dag_run", reset_dag_run),
        ("wait_for_completion", wait_for_completion),
        ("skip_when_already_exists", skip_when_already_exists),
    ):
        if not isinstance(flag, bool):
            raise UsageError(f"{where}: {name} must be True or False, got {flag!r}")
    if (
        isinstance(poke_interval, bool)
        or not isinstance(poke_interval, int | float)
        or not 0 < poke_interval < float("inf")
    ):
        raise UsageError(
            f"{where}: poke_interval must be a positive number of seconds, got {poke_interval!r}"
        )
    if note is not None and not isinstance(note, str):
        raise UsageError(f"{where}: note must be a string, got {note!r}")
    # As the operator: an empty or missing allowed_states means ["success"]; failed_states
    # None means ["failed"], but an explicit [] means "no state fails the task".
    allowed = _states(where, "allowed_states", allowed_states) if allowed_states else ["success"]
    failed = ["failed"] if failed_states is None else _states(where, "failed_states", failed_states)
    return {
        "trigger_dag_id": trigger_dag_id,
        "trigger_run_id": trigger_run_id,
        "conf": conf,
        "logical_date": logical_date,
        "reset_dag_run": reset_dag_run,
        "wait_for_completion": wait_for_completion,
        "poke_interval": float(poke_interval),
        "allowed_states": allowed,
        "failed_states": failed,
        "skip_when_already_exists": skip_when_already_exists,
        "note": note,
    }
