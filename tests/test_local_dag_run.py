"""``trio-coord run BUNDLE DAG``: whole-DAG local runs.

Pure pieces first (trigger rules against airflow-core's own dependency check, the plan,
retry delays, temporal deferrals, the run state), then the runner with a fake try
(the mapping hook, skips), then real runs of ``trio-coord serve`` for each behaviour.
"""

from __future__ import annotations

import datetime
import functools
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from bundle_helpers import run_whole_dag

from trio_coord.authoring import TRIGGER_RULES
from trio_coord.errors import UsageError
from trio_coord.local import dag_run
from trio_coord.local.command import plan_whole_dag
from trio_coord.local.dag_run import (
    PlannedTask,
    dag_run_state,
    plan_dag,
    retry_delay,
    temporal_moment,
)
from trio_coord.local.dag_runner import DagRunReport, run_dag
from trio_coord.local.logs import Printer
from trio_coord.local.options import RunOptions, parse_args
from trio_coord.local.session import Report, Session
from trio_coord.local.supervisor import run_local
from trio_coord.local.trigger_rules import UpstreamStates, decide
from trio_coord.protocol import serde
from trio_coord.protocol.messages import (
    DeferTask,
    GetXComCount,
    GetXComSequenceItem,
    GetXComSequenceSlice,
    SetXCom,
    SucceedTask,
)
from trio_coord.protocol.peer import RequestFrame
from trio_coord.runtime.masking import Masker

BUNDLE = str(Path(__file__).parent / "data" / "bundle_local_dag.py")
TEMPORAL = dag_run.TEMPORAL_TRIGGER
FINAL = ("success", "skipped", "failed", "upstream_failed", "removed")


# -- trigger rules --------------------------------------------------------------------------

#: (rule, upstream states, verdict): the cases that tell the rules apart, read from
#: airflow-core 3.3's trigger_rule_dep.py; the oracle test below checks every combination.
CASES = [
    ("all_success", ["success", "success"], "run"),
    ("all_success", ["success", "skipped"], "skipped"),
    ("all_success", ["skipped", "failed"], "upstream_failed"),
    ("all_success", ["upstream_failed"], "upstream_failed"),
    ("all_failed", ["failed", "upstream_failed"], "run"),
    ("all_failed", ["failed", "success"], "skipped"),
    ("all_failed", ["skipped"], "skipped"),
    ("all_done", ["failed", "skipped", "success"], "run"),
    ("all_done_min_one_success", ["success", "failed"], "run"),
    ("all_done_min_one_success", ["failed", "failed"], "upstream_failed"),
    ("all_done_min_one_success", ["success", "skipped"], "skipped"),
    ("all_done_setup_success", ["failed", "skipped"], "run"),
    ("one_success", ["failed", "success"], "run"),
    ("one_success", ["failed", "skipped"], "upstream_failed"),
    ("one_success", ["skipped", "skipped"], "skipped"),
    ("one_failed", ["success", "failed"], "run"),
    ("one_failed", ["success", "upstream_failed"], "run"),
    ("one_failed", ["success", "skipped"], "skipped"),
    ("one_done", ["skipped", "failed"], "run"),
    ("one_done", ["skipped", "upstream_failed"], "skipped"),
    ("none_failed", ["success", "skipped"], "run"),
    ("none_failed", ["success", "upstream_failed"], "upstream_failed"),
    ("none_skipped", ["success", "failed"], "run"),
    ("none_skipped", ["success", "skipped"], "skipped"),
    ("always", ["failed", "upstream_failed"], "run"),
    ("none_failed_min_one_success", ["success", "skipped"], "run"),
    ("none_failed_min_one_success", ["skipped", "skipped"], "skipped"),
    ("none_failed_min_one_success", ["skipped", "failed"], "upstream_failed"),
    ("all_skipped", ["skipped", "skipped"], "run"),
    ("all_skipped", ["skipped", "success"], "skipped"),
    ("all_skipped", ["skipped", "upstream_failed"], "skipped"),
]


@pytest.mark.parametrize(("rule", "states", "verdict"), CASES)
def test_trigger_rule_table(rule: str, states: list[str], verdict: str) -> None:
    """Each trigger rule runs, skips or upstream-fails a task as Airflow's scheduler does."""
    assert decide(rule, UpstreamStates.of(states)) == verdict


def test_the_table_covers_every_trigger_rule() -> None:
    """Every one of Airflow 3.3's 13 trigger rules has cases in the table, and no upstream means run."""
    assert {rule for rule, _, _ in CASES} == set(TRIGGER_RULES)
    assert all(decide(rule, UpstreamStates.of([])) == "run" for rule in TRIGGER_RULES)
    with pytest.raises(ValueError, match="unknown trigger rule"):
        decide("sometimes", UpstreamStates.of(["success"]))


def _airflow_verdict(rule: str, states: tuple[str, ...]) -> str:
    """What airflow-core's TriggerRuleDep decides, run on stand-in task instances."""
    from unittest import mock

    from airflow.ti_deps.deps.trigger_rule_dep import TriggerRuleDep

    ups = [
        mock.Mock(task_id=f"u{i}", is_setup=False, **{"get_needs_expansion.return_value": False})
        for i in range(len(states))
    ]
    task = mock.Mock(
        upstream_task_ids={u.task_id for u in ups},
        upstream_list=ups,
        trigger_rule=rule,
        is_teardown=False,
    )
    task.get_upstreams_only_setups.return_value = []
    task.get_closest_mapped_task_group.return_value = None
    task.get_flat_relative_ids.return_value = set(task.upstream_task_ids)
    ti = mock.Mock(task=task, map_index=-1, dag_id="d", run_id="r")
    ctx = mock.Mock(flag_upstream_failed=True, wait_for_past_depends_before_skipping=False)
    ctx.ensure_finished_tis.return_value = [
        mock.Mock(task_id=u.task_id, state=s, map_index=-1, task=u)
        for u, s in zip(ups, states, strict=True)
    ]
    set_to: list[Any] = []
    ti.set_state.side_effect = lambda state, session=None: set_to.append(state) or True
    statuses = list(TriggerRuleDep()._get_dep_statuses(ti, ctx, session=mock.Mock()))
    if set_to:
        return str(getattr(set_to[0], "value", set_to[0]))
    return "run" if all(s.passed for s in statuses) else "blocked"


def test_trigger_rules_match_airflow_for_every_combination() -> None:
    """For every rule and every mix of up to three finished upstreams, decide() equals airflow-core's verdict."""
    pytest.importorskip("airflow.ti_deps.deps.trigger_rule_dep")
    checked = 0
    for rule in TRIGGER_RULES:
        for n in range(4):
            for states in itertools.combinations_with_replacement(FINAL, n):
                ours = decide(rule, UpstreamStates.of(states))
                assert ours == _airflow_verdict(rule, states), (rule, states)
                checked += 1
    assert checked == 13 * (1 + 5 + 15 + 35)


# -- the plan and the scheduler's small rules ------------------------------------------------


def _doc(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"dag": {"dag_id": "d", "tasks": [{"__type": "operator", "__var": t} for t in tasks]}}


def test_plan_orders_by_edges_and_reads_scheduler_settings() -> None:
    """The plan puts each task after its upstreams (ties in declaration order) and reads rule and retries."""
    plan = plan_dag(
        _doc(
            {"task_id": "c", "trigger_rule": "all_done", "retries": 2, "retry_delay": 1.5},
            {"task_id": "a", "downstream_task_ids": ["b", "c"]},
            {"task_id": "b", "downstream_task_ids": ["c"], "retry_exponential_backoff": 2.0},
        )
    )
    assert [t.task_id for t in plan] == ["a", "b", "c"]
    c = plan[2]
    assert (c.upstream, c.trigger_rule, c.retries, c.retry_delay) == (
        ("a", "b"),
        "all_done",
        2,
        1.5,
    )
    assert plan[0].retry_delay == 300.0 and plan[1].retry_exponential_backoff == 2.0


def test_plan_refuses_a_cycle() -> None:
    """A cycle in the edges is a usage error naming the tasks involved."""
    with pytest.raises(UsageError, match="cycle among: a, b"):
        plan_dag(
            _doc(
                {"task_id": "a", "downstream_task_ids": ["b"]},
                {"task_id": "b", "downstream_task_ids": ["a"]},
            )
        )


def test_retry_delay_follows_airflow() -> None:
    """Plain delay, a retry policy's override, and exponential backoff with jitter capped by max_retry_delay."""
    plain = PlannedTask("t", retry_delay=7.0)
    assert retry_delay(plain, 3, dag_id="d", logical_date=None) == 7.0
    assert retry_delay(plain, 1, dag_id="d", logical_date=None, override=2.5) == 2.5
    backoff = PlannedTask("t", retry_delay=10.0, retry_exponential_backoff=2.0)
    for try_number in (1, 2, 3):
        low = 10 * 2 ** (try_number - 1)
        assert low <= retry_delay(backoff, try_number, dag_id="d", logical_date=None) < 2 * low
    capped = dataclasses_replace(backoff, max_retry_delay=12.0)
    assert retry_delay(capped, 5, dag_id="d", logical_date=None) == 12.0


def dataclasses_replace(task: PlannedTask, **changes: Any) -> PlannedTask:
    import dataclasses

    return dataclasses.replace(task, **changes)


MOMENT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "moment",
    [
        MOMENT,
        {"__type": "datetime", "__var": MOMENT.timestamp()},
        serde.encode_datetime(MOMENT),
        serde.encode_datetime(
            MOMENT, classname="pendulum.datetime.DateTime", zone_class=serde.PENDULUM_ZONE
        ),
    ],
    ids=["datetime", "base-serialization", "serde", "serde-pendulum"],
)
def test_temporal_moment_accepts_each_wrapping(moment: Any) -> None:
    """The temporal trigger's moment is read from a datetime or either serializer's dict; the resumed try gets its own kwargs plus the event."""
    defer = DeferTask(
        classpath=TEMPORAL, trigger_kwargs={"moment": moment}, next_method="m", next_kwargs={"a": 1}
    )
    found = temporal_moment(defer)
    assert not isinstance(found, str)
    assert found.moment == MOMENT and not found.end_from_trigger
    assert found.next_kwargs["a"] == 1
    assert serde.decode(found.next_kwargs["event"]) == MOMENT


def test_temporal_moment_reads_what_defer_for_sends() -> None:
    """defer_for's DeferTask (a serde pendulum DateTime) is a moment the local run can wait for.

    Found by the e2e vocabulary DAG: `trio-coord run` on a whole DAG left a defer_for task
    `deferred` ("no aware moment in its kwargs") instead of resuming it.
    """
    from trio_coord import defer_for
    from trio_coord.runtime.deferral import defer_message

    before = datetime.datetime.now(datetime.UTC)
    found = temporal_moment(defer_message(defer_for(30)))
    assert not isinstance(found, str), found
    after = datetime.datetime.now(datetime.UTC)
    delay = datetime.timedelta(seconds=30)
    assert before + delay - datetime.timedelta(seconds=1) <= found.moment <= after + delay
    assert not found.end_from_trigger


def test_other_triggers_and_bad_moments_cannot_run_locally() -> None:
    """Any other trigger, and a naive, textual or missing moment, are explained instead of resolved."""
    other = DeferTask(classpath="x.y.FileTrigger", trigger_kwargs={}, next_method="m")
    assert temporal_moment(other) == "trigger FileTrigger cannot run locally"
    for bad in ("2026-01-01T00:00:00", MOMENT.replace(tzinfo=None), None):
        naive = DeferTask(classpath=TEMPORAL, trigger_kwargs={"moment": bad}, next_method="m")
        assert "no aware moment" in str(temporal_moment(naive))


def test_dag_run_state_from_leaves() -> None:
    """The run fails on a failed leaf, succeeds on success/skipped leaves, and is running while anything is unfinished."""
    plan = [PlannedTask("a", downstream=("b", "c")), PlannedTask("b"), PlannedTask("c")]
    assert (
        dag_run_state(
            plan, {("a", -1): "failed", ("b", -1): "upstream_failed", ("c", -1): "success"}
        )
        == "failed"
    )
    assert (
        dag_run_state(plan, {("a", -1): "failed", ("b", -1): "skipped", ("c", -1): "success"})
        == "success"
    )
    assert (
        dag_run_state(plan, {("a", -1): "success", ("b", -1): "deferred", ("c", -1): "success"})
        == "running"
    )


# -- the runner with a fake try ---------------------------------------------------------------


def _opts(dag_id: str, **kw: Any) -> RunOptions:
    return RunOptions(bundle=BUNDLE, dag_id=dag_id, task_id="", whole_dag=True, **kw)


def _printer() -> Printer:
    return Printer(Masker(), logs=io.StringIO(), quiet=True)


def _fake_report(session: Session, state: str = "success") -> Report:
    return (
        session.report(0, duration=0.0) if state == "success" else session.report(1, duration=0.0)
    )


def test_mapped_hook_runs_each_index_and_zero_means_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the mapping hook answering 3 for a task, the runner runs map indexes 0..2 (sharing XComs); 0 items skips it."""
    plan = [
        PlannedTask("make", downstream=("each",)),
        PlannedTask("each", upstream=("make",), downstream=("none",)),
        PlannedTask("none", upstream=("each",)),
    ]
    counts = {"each": 3, "none": 0}
    monkeypatch.setattr(dag_run, "mapped_count", lambda task, store: counts.get(task.task_id))
    seen: list[tuple[str, int]] = []

    async def fake_try(opts: RunOptions, printer: Printer, session: Session) -> Report:
        ti = session.details.ti
        seen.append((ti.task_id, ti.map_index))
        session.answer(
            RequestFrame(
                request_id=1,
                body=SetXCom(
                    key="return_value",
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    value=ti.map_index,
                    map_index=ti.map_index,
                ),
                tag="SetXCom",
                problem=None,
            )
        )
        session.answer(
            RequestFrame(
                request_id=2, body=SucceedTask(end_date=MOMENT), tag="SucceedTask", problem=None
            )
        )
        return _fake_report(session)

    report = trio.run(functools.partial(run_dag, _opts("m"), _printer(), plan, run_try=fake_try))
    assert seen == [("make", -1), ("each", 0), ("each", 1), ("each", 2)]
    assert [(t.task_id, t.map_index, t.state) for t in report.task_instances] == [
        ("make", -1, "success"),
        ("each", 0, "success"),
        ("each", 1, "success"),
        ("each", 2, "success"),
        ("none", -1, "skipped"),
    ]
    assert report.state == "success" and report.status == 0


def test_default_mapping_hook_is_unmapped() -> None:
    """Until mapping is wired, every task is one unmapped instance."""
    assert dag_run.mapped_count(PlannedTask("t"), dag_run.XComStore()) is None


# -- the command line -------------------------------------------------------------------------


def test_options_for_whole_dag_runs() -> None:
    """No TASK_ID selects a whole-DAG run; per-try flags are refused there and DAG-run flags without it."""
    opts = parse_args(
        [
            BUNDLE,
            "flow",
            "--no-wait",
            "--max-tries",
            "3",
            "--logical-date",
            "2026-01-01T00:00:00+00:00",
        ]
    )
    assert (opts.whole_dag, opts.task_id, opts.no_wait, opts.max_tries) == (True, "", True, 3)
    assert opts.logical_date == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(UsageError, match="--try-number applies to one task's try"):
        parse_args([BUNDLE, "flow", "--try-number", "2"])
    with pytest.raises(UsageError, match="--no-wait applies only to a whole-DAG run"):
        parse_args([BUNDLE, "flow", "extract", "--no-wait"])
    with pytest.raises(UsageError, match="has no time zone"):
        parse_args([BUNDLE, "flow", "--logical-date", "2026-01-01T00:00:00"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_coord", "run", BUNDLE, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_dag_id_is_a_usage_error() -> None:
    """A DAG id the bundle lacks exits 2 with one line naming the DAGs it has."""
    proc = _cli("flwo")
    assert proc.returncode == 2, proc.stderr
    assert "has no DAG 'flwo'" in proc.stderr and "did you mean 'flow'" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- real runs ----------------------------------------------------------------------------------


def _run(dag_id: str, **kw: Any) -> tuple[DagRunReport, list[RunOptions]]:
    """Run the DAG through the real try path, recording each try's options."""
    tries: list[RunOptions] = []

    async def recording(opts: RunOptions, printer: Printer, session: Session) -> Report:
        tries.append(opts)
        return await run_local(opts, printer, session=session, handle_signals=False)

    plan = plan_whole_dag(BUNDLE, dag_id, 120)
    report = trio.run(
        functools.partial(run_dag, _opts(dag_id, **kw), _printer(), plan, run_try=recording)
    )
    return report, tries


def _states(report: DagRunReport) -> dict[str, tuple[str, int]]:
    return {t.task_id: (t.state, t.tries) for t in report.task_instances}


def test_tasks_run_in_dependency_order_and_xcoms_flow() -> None:
    """Tasks run after their upstreams (not in declaration order) and pull what the previous task pushed."""
    report, tries = _run("flow")
    assert [o.task_id for o in tries] == ["extract", "transform", "load"]
    assert len({o.run_id for o in tries}) == 1
    by_id = {t.task_id: t for t in report.task_instances}
    assert by_id["transform"].xcoms == {"count": 3, "return_value": 6}
    assert by_id["load"].xcoms == {"return_value": {"loaded": 6}}
    assert report.state == "success"


def test_skip_downstream_tasks_skips_and_propagates() -> None:
    """SkipDownstreamTasks from a try skips the named task; all_success below it is skipped; the join still runs."""
    report, tries = _run("branchy")
    assert _states(report) == {
        "choose": ("success", 1),
        "left": ("skipped", 0),
        "right": ("success", 1),
        "after_left": ("skipped", 0),
        "join": ("success", 1),
    }
    assert "left" not in [o.task_id for o in tries]
    assert report.state == "success"


def test_a_failed_try_is_retried_with_the_next_try_number() -> None:
    """A task with retries fails its first try (RetryTask) and succeeds on try 2."""
    report, tries = _run("retrying")
    assert [(o.try_number, o.should_retry) for o in tries] == [(1, True), (2, True)]
    assert _states(report) == {"flaky": ("success", 2)}


def test_failure_marks_downstream_upstream_failed_and_fails_the_run() -> None:
    """A failed task makes its all_success downstream upstream_failed, all_done still runs, and the run fails."""
    report, _ = _run("failing")
    assert _states(report) == {
        "boom": ("failed", 1),
        "after_boom": ("upstream_failed", 0),
        "cleanup": ("success", 1),
    }
    assert "boom on purpose" in str(report.task_instances[0].note)
    assert (report.state, report.status) == ("failed", 1)


def test_reschedule_runs_the_task_again() -> None:
    """RescheduleTask runs the same try again after its date, with the reschedule count and first date answered."""
    report, tries = _run("resched")
    assert [(o.try_number, o.task_reschedule_count) for o in tries] == [(1, 0), (1, 1)]
    assert _states(report) == {"poke": ("success", 2)}
    pushed = report.task_instances[0].xcoms["return_value"]
    assert pushed["count"] == 1
    first = datetime.datetime.fromisoformat(pushed["first"])
    assert first <= datetime.datetime.now(datetime.UTC)


def test_temporal_deferral_resumes_with_next_method_and_event() -> None:
    """A DeferTask on the temporal trigger is resolved after its moment by a resume try carrying next_method, next_kwargs and the event."""
    report, tries = _run("deferring")
    assert len(tries) == 2
    resume = tries[1]
    assert resume.next_method == "execute_complete"
    assert resume.next_kwargs is not None and resume.next_kwargs["carried"] == 1
    assert serde.decode(resume.next_kwargs["event"]).tzinfo is not None
    assert report.task_instances[0].tries == 2


def test_no_wait_resumes_a_deferral_at_once() -> None:
    """--no-wait resumes a task deferred for an hour at once."""
    _report, tries = _run("deferring_long", no_wait=True)
    assert len(tries) == 2 and tries[1].next_method == "execute_complete"


def test_a_wait_beyond_max_wait_stops_the_task_instance() -> None:
    """Without --no-wait, a deferral longer than --max-wait leaves the task deferred with a note naming the flags."""
    report, tries = _run("deferring_long", max_wait=5.0)
    (ti,) = report.task_instances
    assert len(tries) == 1 and ti.state == "deferred"
    assert "more than --max-wait 5 s" in str(ti.note) and "--no-wait" in str(ti.note)
    assert report.status == 1


def test_other_trigger_leaves_the_task_deferred() -> None:
    """A trigger other than the temporal one ends the task deferred, explained, and the run does not succeed."""
    report, _ = _run("foreign")
    ti = report.task_instances[0]
    assert (ti.state, ti.note) == ("deferred", "trigger S3KeyTrigger cannot run locally")
    assert _states(report)["after_s3"] == ("none", 0)
    assert "upstream not finished (deferred)" in str(report.task_instances[1].note)
    assert (report.state, report.status) == ("running", 1)


def test_cli_summary_and_exit_codes() -> None:
    """The CLI prints a row per task and exits 0 for a succeeding run, 1 for a failing one; --json has the same rows."""
    ok = _cli("flow", "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "dag run: success" in ok.stdout
    rows = [
        line.split()[:3]
        for line in ok.stdout.splitlines()
        if line.startswith(("extract", "transform", "load"))
    ]
    assert rows == [
        ["extract", "success", "1"],
        ["transform", "success", "1"],
        ["load", "success", "1"],
    ]
    bad = _cli("failing", "--json")
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert doc["state"] == "failed" and doc["status"] == 1
    assert [(t["task_id"], t["state"], t["tries"]) for t in doc["task_instances"]] == [
        ("boom", "failed", 1),
        ("after_boom", "upstream_failed", 0),
        ("cleanup", "success", 1),
    ]


def _one_task(dag_id: str, **kw: Any) -> RunOptions:
    return RunOptions(bundle=BUNDLE, dag_id=dag_id, task_id="down", **kw)


def test_session_answers_xcom_sequences_from_the_shared_store() -> None:
    """Count, item and slice read one key across map indexes in order; mapped_length is recorded; out of range is XCOM_NOT_FOUND."""
    store = dag_run.XComStore()
    session = Session(
        _one_task("flow", run_id="r"),
        masker=Masker(),
        xcoms=store.values,
        mapped_lengths=store.mapped_lengths,
    )
    address = {"key": "return_value", "dag_id": "flow", "run_id": "r", "task_id": "up"}

    def ask(body: Any) -> Any:
        answer = session.answer(RequestFrame(request_id=1, body=body, tag=body.TYPE, problem=None))
        assert answer is not None
        return answer[0]

    for index in (2, 0, 1):
        ask(
            SetXCom(
                **address,
                value=f"v{index}",
                map_index=index,
                mapped_length=3 if index == 0 else None,
            )
        )
    assert store.mapped_lengths == {("up", 0): 3}
    assert ask(GetXComCount(**address)).len == 3
    assert ask(GetXComSequenceItem(**address, offset=-1)).root == "v2"
    assert ask(GetXComSequenceSlice(**address, start=None, stop=None, step=2)).root == ["v0", "v2"]
    missing = ask(GetXComSequenceItem(**address, offset=3))
    assert missing.error == "XCOM_NOT_FOUND"
    # A second session on the same store sees the same values.
    again = Session(_one_task("flow", run_id="r"), masker=Masker(), xcoms=store.values)
    reply = again.answer(
        RequestFrame(request_id=2, body=GetXComCount(**address), tag="GetXComCount", problem=None)
    )
    assert reply is not None and reply[0].len == 3


def test_an_interrupted_try_stops_the_run() -> None:
    """A try ended by a signal stops the DAG run: the tasks after it are listed as not run, and the run does not succeed."""
    plan = [PlannedTask("a", downstream=("b",)), PlannedTask("b", upstream=("a",))]

    async def interrupted(opts: RunOptions, printer: Printer, session: Session) -> Report:
        return session.report(0, duration=0.0, interrupted="interrupted by SIGINT")

    report = trio.run(functools.partial(run_dag, _opts("s"), _printer(), plan, run_try=interrupted))
    assert report.stopped is not None and "SIGINT" in report.stopped
    assert [(t.task_id, t.state) for t in report.task_instances] == [
        ("a", "success"),
        ("b", "none"),
    ]
    assert "not run" in str(report.task_instances[1].note)
    assert report.status == 1


def test_a_retry_delay_beyond_max_wait_stops_with_a_note() -> None:
    """A retry whose delay is longer than --max-wait leaves the task up_for_retry after one try, with a note."""
    plan = [PlannedTask("a", retries=3, retry_delay=600.0)]

    async def failing(opts: RunOptions, printer: Printer, session: Session) -> Report:
        return session.report(1, duration=0.0)

    report = trio.run(
        functools.partial(run_dag, _opts("r", max_wait=60.0), _printer(), plan, run_try=failing)
    )
    (ti,) = report.task_instances
    assert (ti.state, ti.tries) == ("up_for_retry", 1)
    assert "retry of a would wait 600.0 s" in str(ti.note)


def test_a_task_state_store_outlives_its_try_in_a_whole_dag_run() -> None:
    """A cursor stored by a failing try is read back by its retry, as under Airflow (the e2e
    state-store DAG, run locally)."""
    bundle = Path(__file__).resolve().parents[1] / "examples" / "e2e_bundle.py"
    report, rows, status = run_whole_dag(bundle, "e2e_state_cursor")
    assert status == 0, report
    row = rows[("resume_from_cursor", -1)]
    assert (row["state"], row["tries"]) == ("success", 2), row
    assert row["xcoms"]["return_value"] == {"resumed_from": 500, "on_try": 2}
