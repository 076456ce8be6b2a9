"""Human in the loop: a task that asks a person and waits, holding no worker slot.

Airflow 3.3 parks such a task instance in the ``awaiting_input`` state with no trigger at
all: the try records the question (``CreateHITLDetailPayload``), then ends with
``AwaitInputTask``. When someone answers through Airflow's UI or REST API (or the
response timeout passes), Airflow schedules a new try that *resumes* the task in the
method the first try named, with the answer as ``event`` in its keyword arguments: the
same resume path as a deferral (:mod:`.deferral`, ``@task.resume``).

Two ways to ask:

* the ``hitl`` task kind (``@dag.task.hitl(...)`` or ``dag.hitl(task_id, ...)``), with
  ``HITLOperator``'s arguments, and ``approval=True`` for ``ApprovalOperator``'s fixed
  Approve/Reject shape; by default the resumed try pushes the answer as its return value;
* from any task: create the question with ``client.create_hitl_detail(...)`` and
  ``raise AwaitInput(method_name)``; the function registered with ``@task.resume`` for
  that name receives the answer as ``event``.

Nothing here imports trio or Airflow; what the kind does when it runs is in
``runtime/hitl.py``.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from ..errors import UsageError

__all__ = [
    "APPROVE",
    "AwaitInput",
    "HITL_RESUME",
    "HITLRejected",
    "HITLTimeoutError",
    "REJECT",
    "hitl_options",
    "no_body",
]

#: The method a ``hitl`` task resumes in (the operator's ``execute_complete``).
HITL_RESUME: Final = "execute_complete"
#: ``ApprovalOperator``'s two options.
APPROVE: Final = "Approve"
REJECT: Final = "Reject"

_METHOD_RE: Final = re.compile(r"^[A-Za-z_]\w*$")


class HITLTimeoutError(Exception):
    """Nobody answered before the response timeout and the question had no defaults
    (the standard provider's ``HITLTimeoutError``): the try fails, retryable."""


class HITLRejected(Exception):
    """An approval task with ``fail_on_reject=True`` got "Reject" (the provider's
    ``HITLRejectException``): the try fails, retryable."""


def _seconds(where: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(
            f"{where}: {name} must be a positive timedelta or number of seconds, or None; "
            f"got {value!r}"
        )
    return seconds


class AwaitInput(BaseException):
    """Raise to end the try waiting for a person's answer (Airflow's ``TaskAwaitingInput``).

    Create the question first (``client.create_hitl_detail(...)``): Airflow resumes the
    task in ``method_name`` once it is answered, passing the answer as ``event`` (a dict
    with ``chosen_options``, ``params_input``, ``responded_at``, ``responded_by_user``,
    ``timedout``) and ``kwargs``. A ``BaseException`` so ``except Exception`` cannot
    swallow it.

    Args:
        method_name: the resume function's name (see :meth:`Task.resume`).
        kwargs: more keyword arguments for the resume function (serde-encoded).
        timeout: how long a person has to answer (a timedelta or seconds); after it,
            Airflow answers with the question's defaults, or resumes with a timeout error.
    """

    def __init__(
        self,
        method_name: str = HITL_RESUME,
        *,
        kwargs: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | float | None = None,
    ) -> None:
        if not isinstance(method_name, str) or not _METHOD_RE.match(method_name):
            raise UsageError(
                f"AwaitInput method_name must be a Python identifier, got {method_name!r}"
            )
        if method_name == "__fail__":
            raise UsageError("AwaitInput method_name '__fail__' is reserved by Airflow")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise UsageError("AwaitInput kwargs must be a mapping or None")
        super().__init__(method_name)
        self.method_name = method_name
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.timeout = _seconds("AwaitInput", "timeout", timeout)

    def __str__(self) -> str:
        return f"awaiting input, resuming in {self.method_name!r}"


def no_body() -> None:
    # The function of a hitl task declared without one (``dag.hitl(...)``): the declared
    # subject and body stand. No docstring: it would become the task's doc.
    return None


def _strings(where: str, name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise UsageError(f"{where}: {name} must be a list of strings, got {value!r}")
    if not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: {name} must hold non-empty strings, got {value!r}")
    return list(value)


def _users(where: str, value: Any) -> list[dict[str, str]] | None:
    if value is None:
        return None
    users = [value] if isinstance(value, Mapping) else value
    if not isinstance(users, list | tuple):
        raise UsageError(
            f"{where}: assigned_users must be a {{'id', 'name'}} dict or a list of them"
        )
    out = []
    for u in users:
        if (
            not isinstance(u, Mapping)
            or set(u) != {"id", "name"}
            or not all(isinstance(v, str) for v in u.values())
        ):
            raise UsageError(
                f"{where}: each assigned user is {{'id': str, 'name': str}}, got {u!r}"
            )
        out.append({"id": u["id"], "name": u["name"]})
    return out


def _form(where: str, params: Any) -> dict[str, dict[str, Any]]:
    """The form fields as Airflow stores them: each param serialized with source "task"."""
    from .dags import check_params

    checked = check_params(f"{where}: params", params)
    if "_options" in checked:
        raise UsageError(f'{where}: "_options" is not allowed in params')
    return {
        name: {
            "value": p.default,
            "description": p.description,
            "schema": dict(p.schema),
            "source": "task",
        }
        for name, p in checked.items()
    }


def hitl_options(
    *,
    subject: Any = None,
    options: Any = None,
    body: Any = None,
    defaults: Any = None,
    multiple: Any = False,
    params: Any = None,
    assigned_users: Any = None,
    response_timeout: Any = None,
    approval: Any = False,
    fail_on_reject: Any = False,
    ignore_downstream_trigger_rules: Any = False,
) -> dict[str, Any]:
    """The kind options of a ``hitl`` task, checked as ``HITLOperator`` (and, with
    ``approval=True``, ``ApprovalOperator``) checks its arguments."""
    where = "hitl"
    if not isinstance(subject, str) or not subject:
        raise UsageError(f"{where}: subject must be a non-empty string, got {subject!r}")
    if body is not None and not isinstance(body, str):
        raise UsageError(f"{where}: body must be a string or None, got {body!r}")
    for name, flag in (
        ("multiple", multiple),
        ("approval", approval),
        ("fail_on_reject", fail_on_reject),
        ("ignore_downstream_trigger_rules", ignore_downstream_trigger_rules),
    ):
        if not isinstance(flag, bool):
            raise UsageError(f"{where}: {name} must be True or False, got {flag!r}")
    if approval:
        if options is not None or multiple:
            raise UsageError(
                f"{where}: an approval task has the fixed options {APPROVE!r} and {REJECT!r}; "
                "do not pass options or multiple"
            )
        options = [APPROVE, REJECT]
    elif fail_on_reject or ignore_downstream_trigger_rules:
        raise UsageError(
            f"{where}: fail_on_reject and ignore_downstream_trigger_rules need approval=True"
        )
    choices = _strings(where, "options", options)
    if not choices:
        raise UsageError(f'{where}: "options" cannot be empty')
    if len(set(choices)) != len(choices):
        raise UsageError(f"{where}: options has duplicates: {choices!r}")
    chosen = None
    if defaults is not None:
        chosen = [defaults] if isinstance(defaults, str) else _strings(where, "defaults", defaults)
        if not set(chosen) <= set(choices):
            raise UsageError(
                f"{where}: defaults {chosen!r} should be a subset of options {choices!r}"
            )
        if not multiple and len(chosen) > 1:
            raise UsageError(f"{where}: more than one default given while multiple is False")
    return {
        "subject": subject,
        "options": choices,
        "body": body,
        "defaults": chosen,
        "multiple": multiple,
        "params": _form(where, params),
        "assigned_users": _users(where, assigned_users),
        "response_timeout": _seconds(where, "response_timeout", response_timeout),
        "approval": approval,
        "fail_on_reject": fail_on_reject,
        "ignore_downstream_trigger_rules": ignore_downstream_trigger_rules,
    }
