"""Tasks on an asyncio event loop (``event_loop="asyncio"``), and the hint for asyncio elsewhere."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import cast

import pytest
import trio
from airflow_harness.harness import supervise

import trio_coord
from trio_coord.client import Client
from trio_coord.client._asyncio import AsyncioClient
from trio_coord.client._sync import public_methods
from trio_coord.errors import UsageError
from trio_coord.runtime.event_loops import asyncio_hint, run_on_asyncio

BUNDLE = f"{Path(__file__).parent / 'airflow_harness' / 'bundle_event_loops.py'}:bundle"
PREFIX = "d1/r1"


@pytest.mark.supervisor
def test_asyncio_task_sleeps_gathers_and_uses_the_client() -> None:
    """An asyncio task awaits asyncio.sleep and asyncio.gather of client calls, pushes XComs, and succeeds under the real supervisor."""
    r = supervise("asyncio_ok", bundle=BUNDLE, variables={"first": "alpha", "second": "beta"})
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert "running on asyncio" in r.events("task")
    assert r.xcoms[f"{PREFIX}/asyncio_ok/pair"] == ["alpha", "beta"]
    assert r.xcoms[f"{PREFIX}/asyncio_ok/return_value"] == {"run_id": "r1", "joined": "alpha+beta"}
    assert "pushed and read back ['alpha', 'beta']" in r.events("task")


@pytest.mark.supervisor
def test_asyncio_task_receives_its_taskflow_arguments() -> None:
    """Arguments bound in the DAG (an upstream output, a literal) reach an asyncio task too."""
    r = supervise(
        "asyncio_taskflow",
        bundle=BUNDLE,
        xcoms={f"{PREFIX}/asyncio_ok/joined": "ab"},
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms[f"{PREFIX}/asyncio_taskflow/return_value"] == "doubled:abab"


@pytest.mark.supervisor
@pytest.mark.parametrize(
    ("task_id", "where"),
    [("trio_calls_asyncio", "a Trio task"), ("sync_calls_asyncio", "a worker thread")],
)
def test_asyncio_outside_an_asyncio_loop_fails_with_a_hint(task_id: str, where: str) -> None:
    """A Trio or sync task that needs a running asyncio loop fails as usual, with a log line naming event_loop="asyncio"."""
    r = supervise(task_id, bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    hints = [e for e in r.events() if 'event_loop="asyncio"' in e]
    assert hints and where in hints[0], r.events()


@pytest.mark.supervisor
def test_asyncio_task_failure_is_an_ordinary_failure() -> None:
    """An exception raised on the asyncio loop fails the try with no asyncio hint."""
    r = supervise("asyncio_fails", bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "failed")
    assert any("asyncio boom on purpose" in e for e in r.events())
    assert not any('event_loop="asyncio"' in e for e in r.events())


@pytest.mark.supervisor
def test_sigterm_cancels_the_asyncio_task() -> None:
    """SIGTERM during an asyncio task cancels its asyncio task (CancelledError seen) and ends the try as failed."""
    r = supervise("asyncio_long", bundle=BUNDLE, sigterm_after=2.0)
    assert (r.exit_code, r.final_state) == (0, "failed"), (r.raw, r.events())
    assert [p["state"] for p in r.state_patches] == ["failed"]
    assert "asyncio task saw CancelledError" in r.events("task")
    assert r.raw["elapsed"] < 60


def test_asyncio_client_has_every_client_method_as_a_coroutine() -> None:
    """The asyncio client offers each public Client method, with its signature, as a coroutine function."""
    for name in public_methods(Client):
        method = getattr(AsyncioClient, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(getattr(Client, name)), name


def test_event_loop_option_is_validated() -> None:
    """event_loop accepts "trio" and "asyncio" only, and asyncio only for async def functions."""
    dag = trio_coord.Bundle("b").dag("d")

    async def fine() -> None: ...

    def plain() -> None: ...

    assert dag.task(event_loop="asyncio")(fine).event_loop == "asyncio"
    assert dag.task(task_id="t2")(fine).event_loop == "trio"
    with pytest.raises(UsageError, match="one of 'trio', 'asyncio'"):
        dag.task(task_id="t3", event_loop="uvloop")(fine)
    with pytest.raises(UsageError, match="must be an async def"):
        dag.task(task_id="t4", event_loop="asyncio")(plain)


def test_event_loop_is_not_an_airflow_option() -> None:
    """event_loop is trio-coord's own: it is not among the options exported to Airflow."""
    dag = trio_coord.Bundle("b").dag("d")

    @dag.task(event_loop="asyncio")
    async def t() -> None: ...

    assert "event_loop" not in t.options
    assert "event_loop" not in trio_coord.authoring.TASK_OPTIONS
    from trio_coord.dagparse import serialize_dag

    doc = serialize_dag(dag, fileloc="/b.py", relative_fileloc="b.py")
    assert "event_loop" not in json.dumps(doc) and "asyncio" not in json.dumps(doc)


def test_hint_follows_the_exception_chain() -> None:
    """The hint recognises asyncio's errors also as the cause of another exception, and nothing else."""
    try:
        try:
            raise RuntimeError("no running event loop")
        except RuntimeError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as exc:
        assert asyncio_hint(exc, is_async=True) is not None
    assert asyncio_hint(RuntimeError("something else"), is_async=True) is None


def _no_client() -> Client:
    return cast(Client, object())


def test_cancelling_the_trio_scope_cancels_the_asyncio_task() -> None:
    """A cancelled Trio scope delivers CancelledError to the asyncio task, whose cleanup runs before Cancelled propagates."""
    seen: list[str] = []

    async def main() -> bool:
        token = trio.lowlevel.current_trio_token()
        started = trio.Event()

        async def coroutine(client: object) -> None:
            trio.from_thread.run_sync(started.set, trio_token=token)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                seen.append("cleanup")

        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_when_started() -> None:
                    await started.wait()
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                await run_on_asyncio(coroutine, _no_client())
        return scope.cancelled_caught

    assert trio.run(main) is True
    assert seen == ["cancelled", "cleanup"]


def test_asyncio_result_and_error_come_back_unwrapped() -> None:
    """The coroutine's value is returned, and its exception raised as itself (no ExceptionGroup)."""

    async def value(client: object) -> int:
        await asyncio.sleep(0)
        return 7

    async def error(client: object) -> None:
        await asyncio.sleep(0)
        raise KeyError("from asyncio")

    assert trio.run(run_on_asyncio, value, _no_client()) == 7
    with pytest.raises(KeyError, match="from asyncio"):
        trio.run(run_on_asyncio, error, _no_client())


def test_a_scope_cancelled_before_the_start_never_runs_the_coroutine() -> None:
    """When the try is cancelled before the asyncio task starts, the coroutine never runs and Cancelled propagates at once."""
    ran: list[str] = []

    async def coroutine(client: object) -> None:
        ran.append("ran")

    async def main() -> bool:
        with trio.CancelScope() as scope:
            scope.cancel()
            await run_on_asyncio(coroutine, _no_client())
        return scope.cancelled_caught

    assert trio.run(main) is True
    assert ran == []
