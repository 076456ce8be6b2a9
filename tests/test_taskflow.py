"""TaskFlow data passing (``b(a())``, ``c(x=a()["k"])``) and the Airflow-shaped declaration
forms, on every side: declaration, runtime under the real supervisor, export, native
serialization and ``trio-coord run``."""

from __future__ import annotations

import datetime
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow_harness.harness import supervise
from test_bundle_airflow import dagbag

from trio_coord import Bundle, XComArg, task, task_group
from trio_coord.authoring.taskflow import BoundCall
from trio_coord.dagparse import serialize_dag
from trio_coord.errors import UsageError
from trio_coord.loader import load_bundle
from trio_coord.local import main

HARNESS = Path(__file__).parent / "airflow_harness"
TASKFLOW = f"{HARNESS / 'bundle_taskflow.py'}:bundle"
UTC = datetime.UTC


def ups(dag: Any) -> dict[str, list[str]]:
    return {tid: sorted(t.upstream) for tid, t in dag.tasks.items()}


# -- declaration ----------------------------------------------------------------------------


def test_a_call_binds_arguments_wires_edges_and_returns_the_output() -> None:
    """b(a()) binds the XComArg, adds a -> b through the edge machinery (an event), returns b's output."""
    d = Bundle("b").dag("d")

    @d.task
    def a() -> int:
        return 1

    @d.task
    def b(x: int) -> int:
        return x

    out = b(a())
    assert out == XComArg(b) and isinstance(out, XComArg)
    assert b.call == BoundCall((XComArg(a),), {})
    assert ups(d) == {"a": [], "b": ["a"]}
    assert d.events[-1] == ("up", ("task", "b"), [("task", "a")])
    assert b.function(41) == 41  # the function itself stays unit-testable


def test_nested_containers_and_multiple_outputs_keys_are_found() -> None:
    """XComArgs inside lists, tuples and dict values each wire their task; ["key"] keeps the key."""
    d = Bundle("b").dag("d")

    @d.task(multiple_outputs=True)
    def m() -> dict[str, int]:
        return {"k": 1}

    @d.task
    def n() -> int:
        return 2

    @d.task
    def c(x: Any, y: Any = None) -> None:
        pass

    rm = m()
    c(x=rm["k"], y={"list": [n(), ("t", rm["j"])]})
    assert c.call is not None
    assert c.call.kwargs["x"] == XComArg(m, "k")
    assert c.call.kwargs["y"]["list"][1][1].key == "j"
    assert ups(d)["c"] == ["m", "n"]


def test_a_second_call_declares_a_copy_with_airflows_suffix() -> None:
    """Calling a task again declares task__1, task__2 with the same options and group."""
    d = Bundle("b").dag("d")
    g = d.task_group("g")

    @g.task(retries=3, pool="p", multiple_outputs=True)
    def t(x: int = 0) -> dict[str, int]:
        return {}

    first, second, third = t(), t(x=1), t(x=2)
    assert [first.task.task_id, second.task.task_id, third.task.task_id] == [
        "g.t",
        "g.t__1",
        "g.t__2",
    ]
    copy = d.tasks["g.t__2"]
    assert (copy.retries, copy.options["pool"], copy.multiple_outputs, copy.group) == (
        3,
        "p",
        True,
        g,
    )
    assert copy.call == BoundCall((), {"x": 2})


def test_calls_mix_with_explicit_edges() -> None:
    """a() >> b() and [a(), b()] >> c() wire the tasks behind the outputs, as in Airflow."""
    d = Bundle("b").dag("d")

    @d.task
    def a() -> None: ...

    @d.task
    def b() -> None: ...

    @d.task
    def c() -> None: ...

    @d.task
    def e(v: Any) -> None: ...

    ra, rb = a(), b()
    ra >> rb
    [ra, rb] >> c()
    e(ra) << c.output
    assert ups(d) == {"a": [], "b": ["a"], "c": ["a", "b"], "e": ["a", "c"]}


def test_bad_calls_are_refused_at_the_call() -> None:
    """Unknown arguments, an injected parameter, an own output, another DAG's output, iterating."""
    bundle = Bundle("b")
    d, other = bundle.dag("d"), bundle.dag("other")

    @d.task
    def t(x: int, log: Any) -> None: ...

    @other.task
    def o() -> int:
        return 1

    with pytest.raises(UsageError, match=r"does not match t\(x, log\): got an unexpected keyword"):
        t(y=1)
    with pytest.raises(UsageError, match="too many positional"):
        t(1, 2, 3)
    with pytest.raises(UsageError, match="'log' is filled in by the runtime"):
        t(1, log=None)
    with pytest.raises(UsageError, match="another DAG"):
        t(o())
    with pytest.raises(UsageError, match="its own output"):
        t(t.output)
    with pytest.raises(UsageError, match="cannot be iterated"):
        list(o.output)
    assert t.call is None and "t__1" not in d.tasks


def test_an_unbound_required_parameter_is_refused_with_how_to_fix_it(tmp_path: Path) -> None:
    """Declaring is fine; the DAG is refused at the with-exit, serialization and bundle loading."""
    d = Bundle("b").dag("d")

    @d.task
    def t(x: int) -> None: ...

    message = r"parameter 'x' has no default and nothing passes it: call the task in the DAG"
    with pytest.raises(UsageError, match=message):
        serialize_dag(d, fileloc="/x.py", relative_fileloc="x.py")
    t(x=1)
    serialize_dag(d, fileloc="/x.py", relative_fileloc="x.py")

    with pytest.raises(UsageError, match=r"d2\.u: parameter 'y'"), Bundle("b2").dag("d2"):

        @task
        def u(y: int) -> None: ...

    path = tmp_path / "unbound.py"
    path.write_text(
        "import trio_coord\nbundle = trio_coord.Bundle('u')\nd = bundle.dag('d')\n"
        "@d.task\ndef t(x): pass\n"
    )
    with pytest.raises(UsageError, match=r"bundle '.*unbound.py': task d.t: parameter 'x'"):
        load_bundle(str(path))


def test_the_dag_decorator_declares_when_the_function_is_called() -> None:
    """@bundle.dag(...) on a function: no DAG until it is called; the id is the name or dag_id=."""
    bundle = Bundle("b")

    @bundle.dag(schedule="@daily", start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    def etl() -> None:
        @task
        def extract() -> int:
            return 1

        @task.branch
        def choose(n: int) -> str:
            return "x"

        choose(extract())

    @bundle.dag
    def bare() -> None:
        pass

    @bundle.dag(dag_id="renamed")
    def named() -> None:
        pass

    assert bundle.dags == {}
    dag = etl()
    assert bundle.dags["etl"] is dag and dag.schedule == "@daily"
    assert ups(dag) == {"extract": [], "choose": ["extract"]}
    assert dag.tasks["choose"].kind == "branch"
    assert bare().dag_id == "bare" and named().dag_id == "renamed"
    with pytest.raises(UsageError, match="'etl' is declared twice"):
        etl()
    with pytest.raises(UsageError, match="schedule"):

        @bundle.dag(schedule="sometimes")
        def bad() -> None: ...

    with pytest.raises(UsageError, match=r"parameters \(email\) would be Airflow DAG params"):

        @bundle.dag
        def with_params(email: str = "x") -> None: ...


def test_with_blocks_and_task_groups_direct_the_module_level_task() -> None:
    """with dag / with group / @task_group place @task; the outer target is restored after each."""
    bundle = Bundle("b")
    with bundle.dag("d") as d:

        @task
        def top() -> int:
            return 1

        with d.task_group("g"):

            @task(retries=2)
            def inside(v: int) -> int:
                return v

            inside(top())

        @task_group
        def section(v: Any) -> Any:
            @task
            def step(v: int) -> int:
                return v

            return step(v)

        section(top.output) >> section(top.output)

        @task
        def after() -> None: ...

    assert list(d.tasks) == ["top", "g.inside", "section.step", "section__1.step", "after"]
    assert ups(d)["section__1.step"] == ["section.step", "top"]
    assert d.tasks["g.inside"].retries == 2


def test_the_module_level_task_outside_a_dag_is_refused() -> None:
    """@task (or a variant, or @task_group's call) outside any DAG names both ways in."""
    with pytest.raises(UsageError, match=r"@task needs a DAG.*@bundle.dag.*with bundle.dag"):

        @task
        def t() -> None: ...

    with pytest.raises(UsageError, match=r"@task.sensor needs a DAG"):
        task.sensor(poke_interval=5)

    @task_group
    def g() -> None: ...

    with pytest.raises(UsageError, match="@task_group needs a DAG"):
        g()


# -- the runtime, under the real 1.3.2 supervisor ---------------------------------------------

UPSTREAM = {
    "d1/r1/extract/return_value": {"rows": 3},
    "d1/r1/stats/count": 2,
    "d1/r1/stats/total": 10,
}


def gets(report: Any) -> list[str]:
    return [c["path"] for c in report.calls if c["method"] == "GET" and "/xcoms/" in c["path"]]


def test_sync_task_receives_its_upstream_values() -> None:
    """load(rows, extras=[count, {total}, tuple]): the GET XCom calls, and the rebuilt values it got."""
    r = supervise("load", bundle=TASKFLOW, xcoms=UPSTREAM)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert gets(r) == [
        "/xcoms/d1/r1/extract/return_value",
        "/xcoms/d1/r1/stats/count",
        "/xcoms/d1/r1/stats/total",
    ]
    assert r.xcoms["d1/r1/load/return_value"] == {
        "data": {"rows": 3},
        "extras": [2, {"total": 10}, ["fixed", 1]],
        "kinds": ["int", "dict", "tuple"],
    }


def test_async_task_receives_a_multiple_outputs_key() -> None:
    """report(total=stats()["total"]) as an async task: one GET for stats/total, the value returned."""
    r = supervise("report", bundle=TASKFLOW, xcoms=UPSTREAM)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert gets(r) == ["/xcoms/d1/r1/stats/total"]
    assert r.xcoms["d1/r1/report/return_value"] == {"total": 10}
    assert "report got total=10" in r.events("task")


def test_a_missing_return_value_is_none_as_in_airflow() -> None:
    """report__1(total=extract()) with nothing pushed: the task gets None and says so in the log."""
    r = supervise("report__1", bundle=TASKFLOW)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert gets(r) == ["/xcoms/d1/r1/extract/return_value"]
    assert r.xcoms["d1/r1/report__1/return_value"] == {"total": None}
    assert any("'extract' pushed no XCom 'return_value'" in e for e in r.events())


def test_a_missing_plain_key_fails_the_try_as_xcom_not_found() -> None:
    """needs_extra(plain()["extra"]) with nothing pushed: logged, retried (should_retry) or failed."""
    r = supervise("needs_extra", bundle=TASKFLOW, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry"), r.events()
    assert gets(r) == ["/xcoms/d1/r1/plain/extra"]
    assert any("upstream task 'plain' pushed no XCom 'extra'" in e for e in r.events())
    assert any(
        "XComNotFound: XComArg result from plain at d1 with key='extra'" in e for e in r.events()
    )
    assert "d1/r1/needs_extra/return_value" not in r.xcoms
    r = supervise("needs_extra", bundle=TASKFLOW, xcoms={"d1/r1/plain/extra": "here"})
    assert (r.final_state, r.xcoms["d1/r1/needs_extra/return_value"]) == ("success", "here")


# -- export route and native serialization ------------------------------------------------


def test_airflow_dagbag_sees_the_taskflow_edges() -> None:
    """DagBag imports the TaskFlow bundle: every task, copies included, with its declared upstream."""
    out = dagbag(HARNESS / "bundle_taskflow.py")
    assert out["errors"] == {}
    tasks = {tid: t["upstream"] for tid, t in out["dags"]["d1"]["tasks"].items()}
    assert tasks == {
        "extract": [],
        "stats": [],
        "plain": [],
        "load": ["extract", "stats"],
        "report": ["stats"],
        "report__1": ["extract"],
        "needs_extra": ["plain"],
        "summary.keep": ["extract"],
        "load__1": ["extract", "summary.keep"],
    }


def test_the_export_refuses_an_unbound_parameter(tmp_path: Path) -> None:
    """Airflow's DagBag importing a bundle with a never-passed parameter records the UsageError."""
    path = tmp_path / "unbound_dags.py"
    path.write_text(
        "import trio_coord\nfrom trio_coord.airflow import export_dags\n"
        "bundle = trio_coord.Bundle('u')\nd = bundle.dag('d')\n"
        "@d.task\ndef t(x): pass\n"
        "export_dags(bundle, globals())\n"
    )
    out = dagbag(path)
    assert out["dags"] == {}
    (error,) = out["errors"].values()
    assert "UsageError: task d.t: parameter 'x' has no default and nothing passes it" in error


def test_native_document_has_the_same_edges() -> None:
    """The native serializer writes each call's edge as the upstream task's downstream_task_ids."""
    dag = load_bundle(TASKFLOW).dags["d1"]
    doc = serialize_dag(dag, fileloc="/b.py", relative_fileloc="b.py")
    down = {
        t["__var"]["task_id"]: t["__var"].get("downstream_task_ids", [])
        for t in doc["dag"]["tasks"]
    }
    assert down["extract"] == ["load", "load__1", "report__1", "summary.keep"]
    assert down["stats"] == ["load", "report"]
    assert down["summary.keep"] == ["load__1"]


# -- trio-coord run -----------------------------------------------------------------------


def test_local_run_takes_upstream_xcoms_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--xcom stats.total=10 reaches report's argument; without it, the summary names the flag."""
    code = main([TASKFLOW, "d1", "report", "--xcom", "stats.total=10", "--json"])
    out, _ = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0 and summary["xcoms"] == {"return_value": {"total": 10}}
    assert summary["hints"] == []

    code = main([TASKFLOW, "d1", "report", "--timeout", "60"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert re.search(
        r"^hint: +the task read XCom 'total' of 'stats', which this run lacks: "
        r"pass --xcom stats.total=JSON$",
        out,
        re.M,
    ), out

    code = main([TASKFLOW, "d1", "needs_extra", "--json"])
    out, _ = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1 and summary["state"] == "failed"
    assert summary["hints"] == [
        "the task read XCom 'extra' of 'plain', which this run lacks: pass --xcom plain.extra=JSON"
    ]


def test_a_group_task_id_with_dots_takes_its_xcom_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--xcom splits at the last dot, so an upstream inside a group is addressed by its full id."""
    path = tmp_path / "grouped.py"
    path.write_text(
        textwrap.dedent(
            """
            import trio_coord
            from trio_coord import task
            bundle = trio_coord.Bundle("g")
            with bundle.dag("d") as d:
                with d.task_group("grp"):
                    @task
                    def up():
                        return 1
                @task
                def down(v):
                    return v + 1
                down(up())
            """
        )
    )
    code = main([str(path), "d", "down", "--xcom", "grp.up.return_value=41", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert (code, summary["xcoms"], summary["hints"]) == (0, {"return_value": 42}, [])
