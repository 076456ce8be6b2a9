"""Bugs the protocol model found, replayed step by step through the same machine.

Each test is a shrunk failing example of ``RuntimeVsModel``. A finding that is reported
but not fixed yet is a strict xfail (it starts failing the day it is fixed, so the marker
gets removed) and is listed in ``RuntimeVsModel.OPEN_FINDINGS`` so the machine stops
generating it meanwhile; docs/testing.md lists every finding.
"""

from __future__ import annotations

from model.machines import RuntimeVsModel
from model.protocol_model import Answer, AnswerKind, FirstFrame, RaiseKind


def _run(steps: list[str], *, should_retry: bool) -> None:
    machine = RuntimeVsModel()
    try:
        machine.start(FirstFrame.STARTUP, should_retry, [])
        for step in steps:
            if step == "fail":
                machine.task_raises(RaiseKind.FAIL)
            elif step == "error":
                machine.task_raises(RaiseKind.ERROR)
            elif step == "terminal+frame":
                [rid] = [r for r in machine.bodies if r == machine.model.conv.terminal_id]
                machine.do_answer(rid, Answer(AnswerKind.EMPTY), frame_after=True)
    finally:
        machine.teardown()


def test_frame_after_terminal_reply_keeps_exit_0() -> None:
    """A frame right behind the terminal reply does not turn a delivered TaskState(failed) into exit 1."""
    _run(["fail", "terminal+frame"], should_retry=True)
