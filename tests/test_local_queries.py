"""``trio-coord run`` answers every request kind a task can send, typed as the real supervisor's:
DAG, run and task-instance queries from the run's own knowledge, assets from the bundle's
declarations, HITL creation recorded, and the two HITL reads and ResendLoggingFD refused as
1.3.2 does (or with a reason)."""

from __future__ import annotations

import datetime
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from test_client_local import HELLO

import trio_coord.runtime  # noqa: F401  (the client is normally loaded by the runtime)
from trio_coord.client import Client
from trio_coord.errors import SupervisorError
from trio_coord.local import main
from trio_coord.local import parse as local_parse
from trio_coord.local.dag_runner import TaskInstanceResult
from trio_coord.local.options import RunOptions
from trio_coord.local.queries import Catalogue
from trio_coord.local.session import (
    NO_FD_PASSING,
    SUPPORTED,
    UNHANDLED,
    UNSUPPORTED,
    Session,
)
from trio_coord.protocol import Reply
from trio_coord.protocol import messages as m
from trio_coord.protocol.codec import packb
from trio_coord.protocol.peer import decode_request_frame
from trio_coord.runtime.masking import Masker

TI = "019a0000-0000-7000-8000-000000000001"
WHEN = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)

#: One instance of every request a task can send (terminal messages are checked apart).
SAMPLES: list[m.Request] = [
    m.GetConnection(conn_id="c"),
    m.GetVariable(key="k"),
    m.GetVariableKeys(prefix="k"),
    m.PutVariable(key="k", value="v", description=None),
    m.DeleteVariable(key="k"),
    m.GetXCom(key="k", dag_id="d", run_id="r", task_id="t"),
    m.GetXComCount(key="k", dag_id="d", run_id="r", task_id="t"),
    m.GetXComSequenceItem(key="k", dag_id="d", run_id="r", task_id="t", offset=0),
    m.GetXComSequenceSlice(key="k", dag_id="d", run_id="r", task_id="t", start=0, stop=1, step=1),
    m.SetXCom(key="k", dag_id="d", run_id="r", task_id="t", value=1),
    m.DeleteXCom(key="k", dag_id="d", run_id="r", task_id="t"),
    m.GetTaskStateStore(ti_id=TI, key="k"),
    m.SetTaskStateStore(ti_id=TI, key="k", value=1, expires_at=None),
    m.DeleteTaskStateStore(ti_id=TI, key="k"),
    m.ClearTaskStateStore(ti_id=TI),
    m.GetAssetStateStoreByName(name="a", key="k"),
    m.GetAssetStateStoreByUri(uri="s3://a", key="k"),
    m.SetAssetStateStoreByName(name="a", key="k", value=1),
    m.SetAssetStateStoreByUri(uri="s3://a", key="k", value=1),
    m.DeleteAssetStateStoreByName(name="a", key="k"),
    m.DeleteAssetStateStoreByUri(uri="s3://a", key="k"),
    m.ClearAssetStateStoreByName(name="a"),
    m.ClearAssetStateStoreByUri(uri="s3://a"),
    m.GetAssetByName(name="a"),
    m.GetAssetByUri(uri="s3://a"),
    m.GetAssetsByAlias(alias_name="al"),
    m.GetAssetEventByAsset(name="a", uri=None),
    m.GetAssetEventByAssetAlias(alias_name="al"),
    m.ValidateInletsAndOutlets(ti_id=TI),
    m.GetDag(dag_id="d"),
    m.GetDagRun(dag_id="d", run_id="r"),
    m.GetDagRunState(dag_id="d", run_id="r"),
    m.GetDRCount(dag_id="d"),
    m.GetPreviousDagRun(dag_id="d", logical_date=WHEN),
    m.GetPrevSuccessfulDagRun(ti_id=TI),
    m.GetPreviousTI(dag_id="d", task_id="t"),
    m.GetTaskRescheduleStartDate(ti_id=TI),
    m.GetTICount(dag_id="d"),
    m.GetTaskStates(dag_id="d"),
    m.GetTaskBreadcrumbs(dag_id="d", run_id="r"),
    m.TriggerDagRun(dag_id="other", run_id="r2"),
    m.SetRenderedFields(rendered_fields={"f": 1}),
    m.SetRenderedMapIndex(rendered_map_index="x"),
    m.MaskSecret(value="secret-value"),
    m.ResendLoggingFD(),
    m.CreateHITLDetailPayload(ti_id=TI, options=["yes", "no"], subject="ok?"),
    m.UpdateHITLDetail(ti_id=TI, chosen_options=["yes"]),
    m.GetHITLDetailResponse(ti_id=TI),
    m.SkipDownstreamTasks(tasks=["t2"]),
]

#: Not a task's request: the parse workload's result.
_NOT_FROM_A_TASK = {"DagFileParsingResult"}


def _session(**kw: Any) -> Session:
    opts = RunOptions(bundle=HELLO, dag_id="d", task_id="t", run_id="r", logical_date=WHEN)
    return Session(opts, masker=Masker(), **kw)


def _ask(session: Session, msg: m.Request) -> Any:
    return session.answer(decode_request_frame(packb([1, msg.to_map()])))


def test_the_samples_cover_every_request_kind() -> None:
    """A request class added to the schema must be added here (and answered locally)."""
    kinds = {type(s).TYPE for s in SAMPLES}
    expected = {t for t, c in m.REQUESTS.items() if not c.TERMINAL} - _NOT_FROM_A_TASK
    assert kinds == expected


def test_supported_lists_every_request_a_task_can_send() -> None:
    assert set(m.REQUESTS) - SUPPORTED == _NOT_FROM_A_TASK


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda s: type(s).TYPE)
def test_every_request_kind_has_a_typed_local_answer(msg: m.Request) -> None:
    session = _session()
    session.catalogue = Catalogue(problem="no bundle here")
    answer = _ask(session, msg)
    assert answer is not None
    body, error = answer
    assert error != UNSUPPORTED
    # The body is one the real supervisor sends for this request, or an error (body or element).
    assert (
        body is None
        or isinstance(body, m.ErrorResponse)
        or type(body) in msg.RESULT
        or (isinstance(body, m.OKResponse) and not msg.RESULT)
    ), (type(body), msg.RESULT)


def test_hitl_reads_and_fd_passing_are_refused_like_the_real_supervisor() -> None:
    s = _session()
    assert _ask(s, m.UpdateHITLDetail(ti_id=TI, chosen_options=["a"])) == (None, UNHANDLED)
    assert _ask(s, m.GetHITLDetailResponse(ti_id=TI)) == (None, UNHANDLED)
    assert UNHANDLED.detail == {"status_code": 400, "message": "Unhandled request"}
    assert _ask(s, m.ResendLoggingFD()) == (None, NO_FD_PASSING)


def _client(session: Session) -> Client:
    async def send(msg: m.Request) -> m.Inbound | None:
        answer = session.answer(decode_request_frame(packb([1, msg.to_map()])))
        assert answer is not None
        body, error = answer
        in_body = isinstance(body, m.ErrorResponse)
        reply = Reply(1, msg, None if in_body else body, body if in_body else error, in_body)  # type: ignore[arg-type]
        return reply.result()

    return Client(send, session.details, Masker(), {})


async def test_run_queries_answer_from_the_runs_the_try_knows() -> None:
    s = _session()
    c = _client(s)
    run = await c.get_dagrun()
    assert (run.dag_id, run.run_id, run.state, run.logical_date) == ("d", "r", "running", WHEN)
    assert await c.get_dr_count() == 1
    assert await c.get_dr_count(states=["success"]) == 0
    assert await c.get_dr_count(run_ids=["r", "x"]) == 1
    assert await c.get_dr_count("nope") == 0
    assert await c.get_previous_dagrun() is None
    prev = await c.get_prev_successful_dagrun()
    assert prev == m.PrevSuccessfulDagRunResult()  # no dates: nothing ran before
    assert await c.get_previous_ti() is None
    await c.trigger_dagrun("other", run_id="t1", conf={"a": 1}, logical_date=WHEN)
    other = await c.get_dagrun("other", "t1")
    assert (other.state, other.conf, other.logical_date) == ("success", {"a": 1}, WHEN)
    with pytest.raises(SupervisorError) as caught:
        await c.get_dagrun("d", "missing")
    assert caught.value.status_code == 404


async def test_task_instance_queries_see_a_whole_dag_runs_instances() -> None:
    """In a whole-DAG run the settled task instances are visible; the try itself is running."""
    results = {
        ("extract", -1): TaskInstanceResult("extract", -1, "success", duration=1.5),
        ("grp.load", 0): TaskInstanceResult("grp.load", 0, "failed", duration=0.5),
        ("grp.load", 1): TaskInstanceResult("grp.load", 1, "skipped"),
        ("later", -1): TaskInstanceResult("later", -1),  # not reached yet
    }
    c = _client(_session(task_instances=results))
    assert await c.get_ti_count() == 5
    assert await c.get_ti_count(states=["success", "failed"]) == 2
    assert await c.get_ti_count(task_group_id="grp") == 2
    assert await c.get_ti_count(task_ids=["extract"], task_group_id="grp") == 3
    assert await c.get_ti_count(map_index=1) == 1
    assert await c.get_ti_count(run_ids=["elsewhere"]) == 0
    states = await c.get_task_states()
    assert states == {
        "r": {
            "t": "running",
            "extract": "success",
            "grp.load_0": "failed",
            "grp.load_1": "skipped",
            "later": None,
        }
    }
    crumbs = await c.get_task_breadcrumbs()
    assert [(b["task_id"], b["map_index"], b["state"]) for b in crumbs] == [
        ("extract", -1, "success"),
        ("grp.load", 0, "failed"),
        ("grp.load", 1, "skipped"),
    ]
    assert crumbs[0]["duration"] == 1.5
    assert await c.get_task_breadcrumbs(run_id="other") == []


async def test_a_single_task_run_knows_only_its_own_instance() -> None:
    c = _client(_session())
    assert await c.get_task_states() == {"r": {"t": "running"}}
    assert await c.get_task_breadcrumbs() == []  # running is not terminal


def test_catalogue_reads_dags_and_assets_from_serialized_documents() -> None:
    doc = {
        "serialized_dags": [
            {
                "data": {
                    "dag": {
                        "dag_id": "d",
                        "tags": ["b", "a"],
                        "tasks": [
                            {"__type": "operator", "__var": {"task_id": "t", "owner": "ann"}},
                            {
                                "__type": "operator",
                                "__var": {
                                    "task_id": "u",
                                    "outlets": [
                                        {
                                            "__type": "asset",
                                            "__var": {
                                                "name": "raw",
                                                "uri": "s3://b/raw",
                                                "group": "asset",
                                                "extra": {"k": 1},
                                            },
                                        },
                                        {"__type": "asset_alias", "__var": {"name": "al"}},
                                    ],
                                },
                            },
                        ],
                    }
                }
            }
        ]
    }
    cat = Catalogue.from_parse_result(doc, None)
    s = _session()
    s.catalogue = cat
    dag, err = _ask(s, m.GetDag(dag_id="d"))
    assert err is None and (dag.tags, dag.owners, dag.is_paused) == (
        ["a", "b"],
        "airflow, ann",
        False,
    )
    assert dag.bundle_name == "hello_bundle"
    assert _ask(s, m.GetDag(dag_id="x"))[1].detail["status_code"] == 404
    asset, _ = _ask(s, m.GetAssetByName(name="raw"))
    assert (asset.uri, asset.extra) == ("s3://b/raw", {"k": 1})
    assert _ask(s, m.GetAssetByUri(uri="s3://b/raw"))[0] == asset
    assert _ask(s, m.GetAssetByName(name="nope")) == (
        m.ErrorResponse(error="ASSET_NOT_FOUND", detail={"name": "nope"}),
        None,
    )
    broken = Catalogue.from_parse_result(None, "ImportError: boom")
    s.catalogue = broken
    assert "ImportError: boom" in _ask(s, m.GetDag(dag_id="d"))[1].detail["message"]


BUNDLE = """
    import trio_coord
    from trio_coord import Asset, AssetAlias

    bundle = trio_coord.Bundle("queries")
    d = bundle.dag("d", tags=["etl"])
    raw = Asset("raw", uri="s3://bucket/raw", extra={"team": "data"})

    @d.task(outlets=[raw, AssetAlias("al")])
    async def ask(client, outlet_events):
        outlet_events[AssetAlias("al")].add(Asset("aliased", uri="s3://bucket/aliased"))
        dag = await client.get_dag()
        asset = await client.get_asset(name="raw")
        hitl = await client.create_hitl_detail(["yes", "no"], "Ship it?", defaults=["no"])
        return {
            "dag": [dag.dag_id, dag.tags, dag.is_paused],
            "asset": [asset.uri, asset.extra],
            "hitl": [hitl.subject, hitl.options],
            "ti_count": await client.get_ti_count(),
        }
"""


def test_local_run_loads_the_bundle_for_dag_and_asset_lookups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GetDag and GetAssetByName read the bundle's own declarations; the HITL request is in the summary."""
    path = tmp_path / "queries_bundle.py"
    path.write_text(textwrap.dedent(BUNDLE))
    code = main([str(path), "d", "ask", "--json", "--timeout", "90"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["xcoms"]["return_value"] == {
        "dag": ["d", ["etl"], False],
        "asset": ["s3://bucket/raw", {"team": "data"}],
        "hitl": ["Ship it?", ["yes", "no"]],
        "ti_count": 1,
    }
    assert summary["hitl_requests"] == [
        {"subject": "Ship it?", "options": ["yes", "no"], "defaults": ["no"]}
    ]


DAG_BUNDLE = """
    import trio_coord

    bundle = trio_coord.Bundle("queriesdag")
    d = bundle.dag("d", tags=["t1"])

    @d.task
    async def first(client):
        return (await client.get_dag()).dag_id

    @d.task
    async def second(client):
        crumbs = await client.get_task_breadcrumbs()
        return {
            "states": await client.get_task_states(),
            "crumbs": [[c["task_id"], c["state"]] for c in crumbs],
            "dag": (await client.get_dag()).tags,
        }

    first >> second
"""


def test_whole_dag_run_shows_settled_task_instances_to_later_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later task sees the earlier one's state; the bundle's DAGs are read once for the run."""
    path = tmp_path / "queries_dag.py"
    path.write_text(textwrap.dedent(DAG_BUNDLE))
    parses: list[str] = []
    real = local_parse.run_parse

    async def counting(spec: str, *args: Any, **kw: Any) -> Any:
        parses.append(spec)
        return await real(spec, *args, **kw)

    monkeypatch.setattr(local_parse, "run_parse", counting)
    code = main([str(path), "d", "--json", "--timeout", "90", "--run-id", "r1"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    by_task = {ti["task_id"]: ti for ti in json.loads(out)["task_instances"]}
    assert by_task["second"]["xcoms"]["return_value"] == {
        "states": {"r1": {"first": "success", "second": "running"}},
        "crumbs": [["first", "success"]],
        "dag": ["t1"],
    }
    assert by_task["first"]["xcoms"]["return_value"] == "d"
    assert len(parses) == 2  # the plan, then the catalogue for both tries' GetDag
