"""The mapping hook of whole-DAG local runs: how many instances a mapped task expands into.

Each case declares a real DAG, serializes it with the native serializer (the document
``trio-coord run BUNDLE DAG`` plans from) and fills the run's XCom store as the upstream
tries would, then asks :func:`trio_coord.local.dag_run.mapped_count`.
"""

from __future__ import annotations

import datetime
import functools
import io
from typing import Any

import pytest
import trio

import trio_coord
from trio_coord.dagparse.dag import serialize_dag
from trio_coord.local.dag_run import (
    MissingMapValues,
    PlannedTask,
    XComStore,
    mapped_count,
    plan_dag,
)
from trio_coord.local.dag_runner import run_dag
from trio_coord.local.logs import Printer
from trio_coord.local.options import RunOptions
from trio_coord.local.session import Report, Session
from trio_coord.protocol.messages import SucceedTask
from trio_coord.protocol.peer import RequestFrame
from trio_coord.runtime.masking import Masker

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _plan(dag: Any) -> dict[str, PlannedTask]:
    document = serialize_dag(dag, fileloc="/b.py", relative_fileloc="b.py")
    return {t.task_id: t for t in plan_dag(document)}


def _push(store: XComStore, task_id: str, index: int, value: Any) -> None:
    store.values[("m", "r", task_id, index, "return_value")] = value


def _dag() -> Any:
    bundle = trio_coord.Bundle("mapcount")
    dag = bundle.dag("m", start_date=START)

    @dag.task
    def make() -> list[int]:
        return [1, 2, 3]

    @dag.task
    def grid(a: int, b: str) -> str:
        return f"{a}{b}"

    @dag.task
    def each(x: int) -> int:
        return x

    @dag.task
    def again(y: int) -> int:
        return y

    @dag.task
    def kw(p: int, q: int = 0) -> int:
        return p + q

    @dag.task
    def unmapped() -> None:
        return None

    grid.expand(a=[1, 2, 3], b={"k": "v", "l": "w"})
    out = each.expand(x=make.output)
    again.expand(y=out)
    kw.expand_kwargs([{"p": 1}, {"p": 2, "q": 3}])
    return dag


def test_unmapped_task_is_one_instance() -> None:
    """A task without expand is not mapped: the hook answers None."""
    assert mapped_count(_plan(_dag())["unmapped"], XComStore()) is None


def test_literal_inputs_map_over_their_product() -> None:
    """Literal expand inputs: the product of their lengths (a list of 3 and a dict of 2 give 6); expand_kwargs: its list's length."""
    plan = _plan(_dag())
    assert mapped_count(plan["grid"], XComStore()) == 6
    assert mapped_count(plan["kw"], XComStore()) == 2


def test_upstream_output_maps_over_its_pushed_length() -> None:
    """An unmapped upstream's output: the mapped_length its SetXCom announced."""
    plan = _plan(_dag())
    store = XComStore()
    store.mapped_lengths[("make", -1)] = 4
    assert mapped_count(plan["each"], store) == 4
    store.mapped_lengths[("make", -1)] = 0
    assert mapped_count(plan["each"], store) == 0


def test_mapped_over_mapped_counts_the_instances_values() -> None:
    """A mapped upstream's output: as many instances as its instances pushed values (Airflow counts the XComs)."""
    plan = _plan(_dag())
    assert plan["again"].mapped_upstream == frozenset({"each"})
    store = XComStore()
    for index in range(3):
        _push(store, "each", index, index * 10)
    _push(store, "make", -1, [1, 2, 3])  # another task's value does not count
    assert mapped_count(plan["again"], store) == 3


def test_missing_upstream_value_cannot_expand() -> None:
    """An unmapped upstream that pushed nothing to map over: the task cannot expand (upstream_failed)."""
    with pytest.raises(MissingMapValues, match="'make'"):
        mapped_count(_plan(_dag())["each"], XComStore())


def test_the_runner_expands_from_the_document_and_fails_a_missing_upstream_value() -> None:
    """The runner asks the real hook: literal ``grid`` and ``kw`` expand to 6 and 2 instances;
    ``each`` (its upstream pushed no length) and ``again`` below it end upstream_failed."""
    plan = plan_dag(serialize_dag(_dag(), fileloc="/b.py", relative_fileloc="b.py"))
    seen: list[tuple[str, int]] = []

    async def fake_try(opts: RunOptions, printer: Printer, session: Session) -> Report:
        seen.append((opts.task_id, opts.map_index))
        session.answer(
            RequestFrame(
                request_id=1, body=SucceedTask(end_date=START), tag="SucceedTask", problem=None
            )
        )
        return session.report(0, duration=0.0)

    opts = RunOptions(bundle="/b.py", dag_id="m", task_id="", whole_dag=True)
    printer = Printer(Masker(), logs=io.StringIO(), quiet=True)
    report = trio.run(functools.partial(run_dag, opts, printer, plan, run_try=fake_try))
    states = {(t.task_id, t.map_index): t.state for t in report.task_instances}
    assert sorted(i for tid, i in seen if tid == "grid") == list(range(6))
    assert sorted(i for tid, i in seen if tid == "kw") == [0, 1]
    assert states[("each", -1)] == "upstream_failed"
    assert states[("again", -1)] == "upstream_failed"
    assert report.state == "failed"
