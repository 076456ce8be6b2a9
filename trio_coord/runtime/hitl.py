"""Human in the loop at run time: ask, end the try awaiting input, take the answer.

First try of a ``hitl`` task (:mod:`..authoring.hitl`): the task's function runs (it may
refine the subject and body), then the question is recorded with
``CreateHITLDetailPayload`` and the try ends with ``AwaitInputTask`` naming
``execute_complete`` and the response timeout. Any task may end the same way by raising
:class:`~trio_coord.AwaitInput` after creating its own question.

The resumed try gets ``next_method`` and ``next_kwargs`` whose ``event`` is what Airflow
built from the stored response: ``chosen_options``, ``params_input``, ``responded_at``,
``responded_by_user`` and ``timedout`` (true when the scheduler applied the defaults
because nobody answered in time). Without defaults a timeout resumes with
``{"error", "error_type": "timeout"}`` instead, and the try fails as the operator's
``HITLTimeoutError`` does (retryable). The answer is checked against the question as
the operator checks it; the task's ``@task.resume("execute_complete")`` function then
receives it as ``event``, or, with none, the answer is the try's return value (the
operator's ``execute_complete`` return, ``responded_at`` as an ISO string). An approval
task's "Reject" fails the try (``fail_on_reject``) or skips downstream, as
``ApprovalOperator`` does.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..authoring import Task
from ..authoring.graph import descendants, downstream
from ..authoring.hitl import (
    APPROVE,
    HITL_RESUME,
    REJECT,
    AwaitInput,
    HITLRejected,
    HITLTimeoutError,
)
from ..client import Client
from ..context import TaskContext
from ..errors import CoordError, UsageError
from ..protocol import serde
from ..protocol.messages import AwaitInputTask, HITLUser
from . import deferral

__all__ = ["AnswerSkipped", "ask", "pause_for_input", "resume"]

log = logging.getLogger("trio_coord.runtime")


@dataclass(frozen=True)
class AnswerSkipped:
    """An approval's "Reject" skipped the downstream tasks: the value is not pushed (as
    Airflow's runner leaves the push behind when a skip is signalled)."""

    value: Any


def pause_for_input(awaiting: AwaitInput) -> deferral.PauseTry:
    """The end of a try that waits for a person."""
    from ..authoring import FailTask

    try:
        kwargs = serde.encode(awaiting.kwargs, "AwaitInput kwargs")
    except (UsageError, CoordError) as exc:
        raise FailTask(f"cannot wait for input: {exc}") from None
    msg = AwaitInputTask(
        next_method=awaiting.method_name, next_kwargs=kwargs, timeout=awaiting.timeout
    )
    log.info(
        "Pausing task as AWAITING_INPUT, resuming in %r%s",
        msg.next_method,
        "" if msg.timeout is None else f", response timeout {msg.timeout:g} s",
    )
    return deferral.PauseTry(msg, f"awaiting input -> {msg.next_method}")


def _texts(task: Task, value: Any) -> tuple[str, str | None]:
    """Subject and body: the declared ones, refined by what the function returned."""
    opts = task.kind_options
    subject, body = opts["subject"], opts["body"]
    if value is None:
        return subject, body
    if isinstance(value, str):
        return subject, value
    if isinstance(value, Mapping) and set(value) <= {"subject", "body"}:
        subject = value.get("subject", subject)
        body = value.get("body", body)
        if isinstance(subject, str) and subject and (body is None or isinstance(body, str)):
            return subject, body
    raise UsageError(
        f"hitl task {task.task_id!r}: its function returns None, the body (a string) or a "
        f"dict with 'subject' and/or 'body' strings; got {value!r}"
    )


async def ask(task: Task, client: Client, value: Any) -> deferral.PauseTry:
    """Record the question of a ``hitl`` task; the end of its first try."""
    opts = task.kind_options
    subject, body = _texts(task, value)
    users = opts["assigned_users"]
    await client.create_hitl_detail(
        list(opts["options"]),
        subject,
        body=body,
        defaults=None if opts["defaults"] is None else list(opts["defaults"]),
        multiple=opts["multiple"],
        params=dict(opts["params"]),
        assigned_users=None if users is None else [HITLUser(**u) for u in users],
    )
    log.info("Waiting for response to %r", subject)
    return pause_for_input(AwaitInput(HITL_RESUME, timeout=opts["response_timeout"]))


def _answer(task: Task, event: Any) -> dict[str, Any]:
    """The answer in ``event``, checked against the question (the operator's checks)."""
    if not isinstance(event, Mapping):
        raise ValueError(f"the resume event is not a map: {event!r}")
    if "error" in event:
        if event.get("error_type") == "timeout":
            raise HITLTimeoutError(str(event["error"]))
        raise RuntimeError(f"human-in-the-loop error: {event['error']}")
    opts = task.kind_options
    chosen = list(event.get("chosen_options") or [])
    params_input = dict(event.get("params_input") or {})
    if diff := set(chosen) - set(opts["options"]):
        raise ValueError(f"Responses {sorted(diff)} not in {opts['options']}")
    if opts["params"] and params_input and set(opts["params"]) ^ set(params_input):
        raise ValueError(
            f"params_input {sorted(params_input)} does not match params {sorted(opts['params'])}"
        )
    responded_at = event.get("responded_at")
    if isinstance(responded_at, datetime.datetime):
        responded_at = responded_at.isoformat()
    return {
        "chosen_options": chosen,
        "params_input": params_input,
        "responded_at": responded_at,
        "responded_by_user": event.get("responded_by_user"),
    }


async def _approval(task: Task, ctx: TaskContext, client: Client, answer: dict[str, Any]) -> bool:
    """Apply an approval's decision; True when downstream tasks were skipped."""
    from .branching import SKIPMIXIN_KEY

    choice = answer["chosen_options"][0] if answer["chosen_options"] else None
    if choice == APPROVE:
        log.info("Approved. Proceeding with downstream tasks...")
        return False
    if choice == REJECT and task.kind_options["fail_on_reject"]:
        raise HITLRejected('Receive "Reject"')
    if not downstream(task):
        log.info("No downstream tasks; nothing to do.")
        return False
    every = task.kind_options["ignore_downstream_trigger_rules"]
    ids: list[str | tuple[str, int]] = [
        t.task_id for t in (descendants(task) if every else downstream(task))
    ]
    await client.set_xcom(SKIPMIXIN_KEY, {"skipped": ids})
    if ctx.map_index != -1:
        return False
    log.info("Skipping downstream tasks: %s", ", ".join(str(i) for i in ids))
    await client.skip_downstream_tasks(ids)
    return True


async def resume(task: Task, ctx: TaskContext, client: Client, invoke: deferral.Invoke) -> Any:
    """The resumed try of a ``hitl`` task (other methods resume as after a deferral)."""
    if ctx.ti_context.next_method != HITL_RESUME:
        return await deferral.resume(task, ctx, invoke)
    kwargs = deferral.next_kwargs(ctx)
    answer = _answer(task, kwargs.get("event"))
    log.info("Answered: %s", answer["chosen_options"])
    skipped = task.kind_options["approval"] and await _approval(task, ctx, client, answer)
    value: Any = answer
    if HITL_RESUME in task.resumers:
        value = await deferral.resume(task, ctx, invoke)
    return AnswerSkipped(value) if skipped else value
