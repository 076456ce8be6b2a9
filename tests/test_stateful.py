"""The protocol model's state machines against the real code.

The default run uses the ``ci`` settings profile (scaled per machine below); ``nox -s
model`` runs the same machines with ``HYPOTHESIS_PROFILE=long`` and, through
``MODEL_STATS``, writes the counts docs/testing.md quotes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, find, settings

from model import strategies as s
from model.machines import STATS, ConnectionVsModel, RuntimeVsModel
from model.protocol_model import CLIENT_CALLS, Answer, AnswerKind, FirstFrame

_SPEC = importlib.util.spec_from_file_location(
    "mutants_run", Path(__file__).resolve().parent.parent / "mutants" / "run.py"
)
assert _SPEC is not None and _SPEC.loader is not None
mutants = importlib.util.module_from_spec(_SPEC)
sys.modules["mutants_run"] = mutants  # dataclasses look their module up by name
_SPEC.loader.exec_module(mutants)

#: The long profile runs for many minutes: no per-test timeout then (pytest-timeout).
pytestmark = pytest.mark.timeout(0 if settings.default.max_examples >= 1000 else 300)

#: Examples of the runtime machine per profile example: it is cheap per example (virtual
#: time) and most of its examples are short conversations, so the short run takes more.
RUNTIME_SCALE = 5 if settings.default.max_examples < 1000 else 2

#: Examples of the connection machine per profile example: it is sans-IO (about 15 ms
#: per conversation), and a frame after the terminal reply needs a conversation that
#: sends its terminal request and gets it answered first.
CONNECTION_SCALE = 8 if settings.default.max_examples < 1000 else 1

TestConnectionVsModel = ConnectionVsModel.TestCase
TestConnectionVsModel.settings = settings(
    settings.default, max_examples=settings.default.max_examples * CONNECTION_SCALE
)
TestConnectionVsModel.__doc__ = (
    "CommConnection keeps the model's conversation rules in every generated sequence."
)

TestRuntimeVsModel = RuntimeVsModel.TestCase
TestRuntimeVsModel.settings = settings(
    settings.default, max_examples=settings.default.max_examples * RUNTIME_SCALE
)
TestRuntimeVsModel.__doc__ = (
    "The runtime sends, resolves, logs and exits as the model says in every conversation."
)


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    """Write the machines' counters to $MODEL_STATS (nox -s model) when the module is done."""
    start = time.perf_counter()
    yield
    target = os.environ.get("MODEL_STATS")
    if target:
        figures = {**STATS, "seconds": round(time.perf_counter() - start, 1)}
        Path(target).write_text(json.dumps(figures, indent=1, sort_keys=True))


def test_every_mutation_of_nox_mutants_still_applies() -> None:
    """Each snippet of the mutation table occurs exactly once in today's trio_coord source."""
    assert mutants.check_all() == []
    assert len(mutants.MUTATIONS) >= 10


def test_a_stale_mutation_snippet_is_refused(tmp_path: Path) -> None:
    """A mutation whose snippet no longer matches the code stops the runner instead of passing."""
    mutants.scratch_copy(tmp_path)
    stale = mutants.Mutation(
        "stale", "no such code", (mutants.Edit("trio_coord/client/_core.py", "no such line", "x"),)
    )
    with pytest.raises(mutants.StaleSnippet, match="0 times"):
        mutants.apply(stale, tmp_path)
    assert mutants.check_all(tmp_path) == []


def _scenario(task: str, *, should_retry: bool) -> RuntimeVsModel:
    machine = RuntimeVsModel()
    machine.start(FirstFrame.STARTUP, should_retry, [], task=task)
    return machine


@pytest.mark.parametrize("should_retry", [False, True])
def test_branch_skip_refused_fails_the_try(should_retry: bool) -> None:
    """A branch whose SkipDownstreamTasks gets an error element does not claim success:
    the machine's judge expects RetryTask or TaskState(failed) by should_retry."""
    machine = _scenario("branch", should_retry=should_retry)
    try:
        machine.task_branches(["left"])
        machine.answer_last("SetXCom", Answer(AnswerKind.RESULT))
        machine.answer_last("SkipDownstreamTasks", Answer(AnswerKind.ERROR_ELEMENT))
        terminal = "RetryTask" if should_retry else "TaskState"
        machine.answer_last(terminal, Answer(AnswerKind.EMPTY))
    finally:
        machine.teardown()


@pytest.mark.parametrize("with_kwargs", [False, True])
def test_deferral_and_reschedule_endings(with_kwargs: bool) -> None:
    """DeferTask (next_kwargs a map with or without resume kwargs) and RescheduleTask."""
    machine = _scenario("plain", should_retry=False)
    try:
        machine.task_defers(with_kwargs=with_kwargs)
        machine.answer_last("DeferTask", Answer(AnswerKind.EMPTY))
    finally:
        machine.teardown()
    machine = _scenario("sensor_later", should_retry=False)
    try:
        machine.answer_last("GetTaskRescheduleStartDate", Answer(AnswerKind.RESULT))
        machine.task_pokes(False)
        machine.answer_last("RescheduleTask", Answer(AnswerKind.EMPTY))
    finally:
        machine.teardown()


#: ``find`` without its shrink phase: any call of the kind will do.
_ONCE = settings(database=None, phases=[Phase.generate])


def test_every_client_call_gets_its_success_body() -> None:
    """Each typed client call, answered with the catalogue's success body, returns a value
    in the task (the machine checks each request, each outcome and the end of the run)."""
    machine = _scenario("plain", should_retry=False)
    try:
        for number, name in enumerate(sorted(set(CLIENT_CALLS) - {"get_variable"})):
            machine.task_calls(find(s.client_calls(only=name), lambda c: True, settings=_ONCE))
            machine.answer_last(CLIENT_CALLS[name], Answer(AnswerKind.RESULT))
            outcomes = [o for o, _detail in machine.director.results[number]]
            assert outcomes == ["VALUE"], (name, machine.director.results[number])
        machine.task_returns(None)
        machine.answer_last("SucceedTask", Answer(AnswerKind.EMPTY))
    finally:
        machine.teardown()
