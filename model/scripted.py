"""The scripted task: a real trio-coord task whose every move is chosen by a machine.

Theory of operation
-------------------
:data:`BUNDLE` holds one DAG with one async task, ``scripted``. When the runtime runs it,
the task looks up the :class:`Director` registered under its ``run_id`` and obeys the
steps the machine pushes: start a client call (in the background, so several can be in
flight and be answered out of order), log a line, return, raise, or block until
cancelled. Every call's outcome is written back to the director, once, as the model's
:class:`~model.protocol_model.Outcome` name, so the machine can compare what the task
*saw* with what the model says it must see.

This module drives the implementation and so imports it; the model does not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_coord import authoring
from trio_coord.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    RemoteProtocolError,
    RequestTimeout,
    SupervisorError,
    SupervisorGone,
)

from .protocol_model import Outcome, RaiseKind

__all__ = [
    "BUNDLE",
    "DAG_ID",
    "TASK_ID",
    "BRANCH_ID",
    "SENSOR_ID",
    "BRANCH_DOWNSTREAM",
    "DIRECTORS",
    "Director",
    "Step",
    "outcome_name",
]

DAG_ID = "model_dag"
TASK_ID = "scripted"
#: A branch task obeying the director; its "return" step names the branches to follow.
BRANCH_ID = "scripted_branch"
#: A reschedule-mode sensor obeying the director; its "return" step is the poke's result.
SENSOR_ID = "scripted_sensor"
#: The branch task's direct downstream tasks.
BRANCH_DOWNSTREAM = ("left", "middle", "right")

BUNDLE = authoring.Bundle("model", version="1.0.0")
_dag = BUNDLE.dag(DAG_ID)

#: run_id -> the director of the conversation using it.
DIRECTORS: dict[str, Director] = {}


@dataclass(frozen=True)
class Step:
    """One move of the task."""

    #: ``"call"``, ``"log"``, ``"return"``, ``"raise"``, ``"defer"`` or ``"wait"``.
    kind: str
    number: int = -1
    method: str = ""
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    level: int = logging.INFO
    message: str = ""
    value: Any = None
    raise_kind: RaiseKind = RaiseKind.ERROR


@dataclass
class Director:
    """The machine's end of the scripted task."""

    send: trio.MemorySendChannel[Step]
    receive: trio.MemoryReceiveChannel[Step]
    #: step number -> every outcome the task reported for it (exactly one is right).
    results: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)
    started: bool = False

    @classmethod
    def create(cls) -> Director:
        send, receive = trio.open_memory_channel[Step](1000)
        return cls(send, receive)

    def push(self, step: Step) -> None:
        """Queue a step (from the Trio thread)."""
        self.send.send_nowait(step)

    def report(self, number: int, outcome: str, detail: Any = None) -> None:
        self.results.setdefault(number, []).append((outcome, detail))


def outcome_name(exc: BaseException) -> str:
    """The model's name for what a client call raised (subclasses first)."""
    if isinstance(exc, NotFound):
        return Outcome.NOT_FOUND.value
    if isinstance(exc, PermissionDenied):
        return Outcome.PERMISSION_DENIED.value
    if isinstance(exc, AlreadyExists):
        return Outcome.ALREADY_EXISTS.value
    if isinstance(exc, SupervisorError):
        return Outcome.SUPERVISOR_ERROR.value
    if isinstance(exc, RemoteProtocolError):
        return Outcome.BAD_REPLY.value
    if isinstance(exc, RequestTimeout):
        return Outcome.TIMEOUT.value
    if isinstance(exc, SupervisorGone):
        return Outcome.GONE.value
    return f"UNEXPECTED {type(exc).__name__}: {exc}"


async def _perform(director: Director, client: Any, step: Step, log: logging.Logger) -> None:
    try:
        value = await getattr(client, step.method)(*step.args, **dict(step.kwargs))
    except trio.Cancelled:
        director.report(step.number, Outcome.CANCELLED.value)
        raise
    except Exception as exc:
        director.report(step.number, outcome_name(exc), repr(exc))
    else:
        director.report(step.number, Outcome.VALUE.value, value)
        if step.method == "get_variable":
            # Use what it got, as a task would: a secret must reach the logs masked.
            log.info("call %d got %r", step.number, value)


class ScriptedSkip(authoring.SkipTask):
    """The script asked to be skipped."""


async def _obey(client: Any, log: logging.Logger, run_id: str) -> Any:
    """Obey the director's steps until one of them ends the task."""
    director = DIRECTORS[run_id]
    director.started = True
    final: Step | None = None
    async with trio.open_nursery() as nursery:
        async for step in director.receive:
            if step.kind == "call":
                nursery.start_soon(_perform, director, client, step, log)
            elif step.kind == "log":
                log.log(step.level, "%s", step.message)
            elif step.kind == "wait":
                await trio.sleep_forever()
            else:
                final = step
                break
    # Raise outside the nursery: inside it, trio would wrap the exception in a group.
    if final is None:
        raise RuntimeError("the director's channel closed before the task ended")
    if final.kind == "return":
        return final.value
    if final.kind == "defer":
        raise authoring.defer_for(3600, kwargs={"token": final.message} if final.message else None)
    if final.raise_kind is RaiseKind.SKIP:
        raise ScriptedSkip(final.message)
    if final.raise_kind is RaiseKind.FAIL:
        raise authoring.FailTask(final.message)
    raise RuntimeError(final.message)


@_dag.task(task_id=TASK_ID)
async def scripted(client: Any, log: logging.Logger, run_id: str) -> Any:
    """The plain task: its return value is pushed as ``return_value``."""
    return await _obey(client, log, run_id)


@_dag.task.branch(task_id=BRANCH_ID)
async def scripted_branch(client: Any, log: logging.Logger, run_id: str) -> Any:
    """A branch task: returns the ids of the downstream tasks to follow."""
    return await _obey(client, log, run_id)


#: A timeout no virtual or wall-clock run reaches: the poke's answer alone decides.
_FOREVER = 100 * 365 * 86400.0


@_dag.task.sensor(task_id=SENSOR_ID, mode="reschedule", poke_interval=30, timeout=_FOREVER)  # type: ignore[untyped-decorator]
async def scripted_sensor(client: Any, log: logging.Logger, run_id: str) -> Any:
    """A reschedule-mode sensor: a truthy result is done, a falsy one reschedules."""
    return await _obey(client, log, run_id)


def _noop() -> None:
    """A downstream task of the branch; never run by the machines."""


_downstream = [_dag.task(task_id=name)(_noop) for name in BRANCH_DOWNSTREAM]
scripted_branch >> _downstream
