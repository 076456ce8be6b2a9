"""Assets: declaration checks, the real supervisor's view of outlets and inlets, both DAG routes."""

from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow_harness.harness import HERE, TI_ID, supervise

from trio_coord import Asset, AssetAlias, AssetAll, AssetAny, Bundle
from trio_coord.dagparse import serialize_dag
from trio_coord.errors import UsageError

BUNDLE = f"{HERE / 'bundle_assets.py'}:bundle"
VALIDATE = f"GET /task-instances/{TI_ID}/validate-inlets-and-outlets"
ACTIVE = {VALIDATE: {"json": {"inactive_assets": []}}}
UTC = datetime.UTC


# -- declaration -------------------------------------------------------------------------


def test_asset_name_and_uri_default_to_each_other() -> None:
    """Asset(uri) is named by its URI and Asset(name) located at its name, group 'asset'."""
    a = Asset("s3://bucket/key")
    assert (a.name, a.uri, a.group, a.extra) == ("s3://bucket/key", "s3://bucket/key", "asset", {})
    b = Asset(name="n")
    assert (b.name, b.uri) == ("n", "n")
    assert AssetAlias("x").group == "asset"


def test_uri_is_normalized_as_airflow_does() -> None:
    """Scheme lower-cased, trailing slash and fragment dropped, query sorted; the name keeps the text."""
    a = Asset(uri="S3://bucket/dir/?b=2&a=1#frag")
    assert a.uri == "s3://bucket/dir?a=1&b=2"
    assert a.name == "S3://bucket/dir/?b=2&a=1#frag"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Asset(uri="postgres://u:secret@host/db").uri == "postgres://host/db"
    assert any("password" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a name or a uri"),
        ({"name": ""}, "cannot be empty"),
        ({"name": "   "}, "whitespace"),
        ({"name": "self"}, "reserved"),
        ({"name": "x" * 1501}, "1500"),
        ({"uri": "airflow://x"}, "'airflow' scheme"),
        ({"name": 3}, "must be a string"),
        ({"name": "a", "extra": {"k": object()}}, "JSON"),
        ({"name": "a", "group": " "}, "whitespace"),
    ],
)
def test_bad_assets_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """Each of Airflow's asset rules fails at declaration with a UsageError saying which."""
    with pytest.raises(UsageError, match=message):
        Asset(**kwargs)


def test_conditions_combine_and_flatten() -> None:
    """a & b & c is one AssetAll of three; a | (b & c) nests; non-assets are refused."""
    a, b, c = Asset("a"), Asset("b"), AssetAlias("c")
    assert a & b & c == AssetAll(a, b, c)
    assert a | (b & c) == AssetAny(a, AssetAll(b, c))
    with pytest.raises(UsageError, match="combines assets"):
        AssetAll(a, "b")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="at least one"):
        AssetAny()
    with pytest.raises(TypeError):
        a & "b"  # type: ignore[operator]


def test_asset_schedules_are_checked() -> None:
    """An asset, a list or a condition is a schedule; an empty list or a list of strings is not."""
    b = Bundle("b")
    a = Asset("a")
    assert b.dag("one", schedule=a).schedule == a
    assert b.dag("many", schedule=[a, Asset("b")]).schedule == AssetAll(a, Asset("b"))
    assert b.dag("cond", schedule=a | AssetAlias("x")).schedule_text == "on assets: a, x"
    with pytest.raises(UsageError, match="empty list"):
        b.dag("empty", schedule=[])
    with pytest.raises(UsageError, match="holds assets"):
        b.dag("strs", schedule=["a"])


def test_inlets_and_outlets_are_task_options() -> None:
    """One asset or a list is accepted; strings are not; default_args may not carry them."""
    b = Bundle("b")
    d = b.dag("d")

    @d.task(outlets=Asset("a"), inlets=[Asset("b"), AssetAlias("c")])
    def t() -> None:
        pass

    assert t.options["outlets"] == [Asset("a")]
    assert t.options["inlets"] == [Asset("b"), AssetAlias("c")]
    with pytest.raises(UsageError, match="outlets must be an Asset"):
        d.task(outlets=["s3://x"], task_id="bad")(lambda: None)
    with pytest.raises(UsageError, match="unknown keyword 'outlets'"):
        b.dag("e", default_args={"outlets": [Asset("a")]})


# -- the real 1.3.2 supervisor ------------------------------------------------------------


def _without_end_date(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in body.items() if k != "end_date"} for body in bodies]


def test_outlet_events_reach_the_api_as_a_native_tasks_do() -> None:
    """The success PATCH of the trio-coord producer equals the native Airflow @task's, outlets,
    asset extra and alias events included; both validate inlets/outlets first."""
    ours = supervise("produce", bundle=BUNDLE, routes=ACTIVE)
    native = supervise(
        "produce",
        native_dag_folder=str(HERE / "native_assets"),
        dag_rel_path="native_assets.py",
        routes=ACTIVE,
    )
    assert ours.final_state == native.final_state == "success", ours.stderr[-2000:]
    assert _without_end_date(ours.state_patches) == _without_end_date(native.state_patches)
    body = ours.state_patches[0]
    assert body["task_outlets"][1] == {"name": "dyn", "uri": None, "type": "AssetAlias"}
    assert body["outlet_events"][0] == {
        "dest_asset_key": {"name": "s3://bucket/raw", "uri": "s3://bucket/raw"},
        "extra": {"rows": 3},
    }
    assert ours.api("GET", "/validate-inlets-and-outlets")
    assert native.api("GET", "/validate-inlets-and-outlets")


def test_untouched_outlet_sends_no_event_like_native() -> None:
    """An outlet never touched through outlet_events is in task_outlets only (native does the same)."""
    ours = supervise("produce_plain", bundle=BUNDLE, routes=ACTIVE)
    native = supervise(
        "produce_plain",
        native_dag_folder=str(HERE / "native_assets"),
        dag_rel_path="native_assets.py",
        routes=ACTIVE,
    )
    assert _without_end_date(ours.state_patches) == _without_end_date(native.state_patches)
    assert ours.state_patches[0]["outlet_events"] == []


def test_an_inactive_outlet_fails_the_try_before_the_body() -> None:
    """The API naming an inactive asset fails the try and the body never runs."""
    routes = {
        VALIDATE: {
            "json": {"inactive_assets": [{"name": "s3://bucket/raw", "uri": None, "type": "Asset"}]}
        }
    }
    r = supervise("produce", bundle=BUNDLE, routes=routes)
    assert r.final_state == "failed"
    assert r.state_patches[0]["state"] == "failed"
    assert "not active assets" in r.log_text


def test_an_outlet_extra_that_is_not_json_fails_the_try() -> None:
    """A non-JSON value in an outlet event's extra fails the try instead of sending a bad body."""
    r = supervise("bad_extra", bundle=BUNDLE, routes=ACTIVE)
    assert r.final_state == "failed"
    assert "outlet events" in r.log_text


def _event(n: int, rows: int) -> dict[str, Any]:
    return {
        "id": n,
        "timestamp": "2026-01-01T00:00:00Z",
        "extra": {"rows": rows},
        "asset": {"name": "s3://bucket/raw", "uri": "s3://bucket/raw", "group": "asset"},
        "created_dagruns": [],
        "source_dag_id": "up",
        "source_task_id": "t",
        "source_run_id": "r0",
        "source_map_index": -1,
    }


def test_inlet_events_are_read_through_the_asset_event_calls() -> None:
    """inlet_events[asset] in a sync task asks GET asset-events/by-asset (and by-asset-alias)."""
    routes = {
        **ACTIVE,
        "GET /asset-events/by-asset": {"json": {"asset_events": [_event(1, 5), _event(2, 7)]}},
        "GET /asset-events/by-asset-alias": {"json": {"asset_events": [_event(3, 1)]}},
    }
    r = supervise("consume", bundle=BUNDLE, routes=routes)
    assert r.final_state == "success", r.log_text[-2000:]
    assert r.xcoms["d1/r1/consume/return_value"] == {"n": 2, "rows": [5, 7], "alias": 1}
    (call,) = r.api("GET", "/asset-events/by-asset")
    assert call["params"]["name"] == "s3://bucket/raw"
    assert call["params"]["uri"] == "s3://bucket/raw"
    (alias_call,) = r.api("GET", "/asset-events/by-asset-alias")
    assert alias_call["params"]["name"] == "dyn"


def test_async_task_fetches_inlet_events_with_filters() -> None:
    """await inlet_events[a].limit(1).ascending(False).fetch() sends those filters."""
    routes = {
        **ACTIVE,
        "GET /asset-events/by-asset": {"json": {"asset_events": [_event(2, 7)]}},
    }
    r = supervise("consume_async", bundle=BUNDLE, routes=routes)
    assert r.final_state == "success", r.log_text[-2000:]
    assert r.xcoms["d1/r1/consume_async/return_value"] == ["s3://bucket/raw"]
    (call,) = r.api("GET", "/asset-events/by-asset")
    assert call["params"]["limit"] == "1"
    assert call["params"]["ascending"] in ("false", "False")


# -- export and native serialization -------------------------------------------------------

ASSET_DAGS = """
import datetime
import sys
sys.path.insert(0, {tests!r})
from trio_coord import Asset, AssetAlias, Bundle
from trio_coord.airflow import export_dags

bundle = Bundle("asset-dags")
raw = Asset("s3://bucket/raw", extra={{"team": "x"}})
clean = Asset(name="clean", uri="file:///data/clean", group="g")
dyn = AssetAlias("dyn")
prod = bundle.dag("a_producer", start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))

@prod.task(outlets=[raw, dyn])
def make():
    pass

@prod.task(outlets=clean, inlets=[raw])
def tidy():
    pass

make >> tidy
cons = bundle.dag("a_consumer", schedule=raw & (clean | dyn))

@cons.task(inlets=[clean, dyn])
def use():
    pass

bundle.dag("a_list", schedule=[raw, clean]).task(lambda: None, task_id="x")
bundle.dag("a_one", schedule=clean).trigger_dagrun("kick", trigger_dag_id="a_list")
export_dags(bundle, globals())
"""


@pytest.fixture(scope="module")
def asset_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The asset DAGs, native documents and the oracle's one answer about them."""
    from oracle import ask

    from trio_coord.loader import load_bundle

    root = tmp_path_factory.mktemp("asset-oracle")
    path = root / "asset_dags.py"
    path.write_text(ASSET_DAGS.format(tests=str(Path(__file__).parent)))
    bundle = load_bundle(str(path))
    native = {
        dag_id: serialize_dag(d, fileloc=str(path), relative_fileloc="asset_dags.py")
        for dag_id, d in bundle.dags.items()
    }
    answer = ask({"validate": native, "dagbag": [str(path)]})
    return {"native": native, "answer": answer}


def test_native_asset_documents_pass_the_oracle(asset_world: dict[str, Any]) -> None:
    """Every asset DAG document passes every level of airflow-core 3.3.2's checks."""
    from oracle import failures

    assert failures(asset_world["answer"]) == {}
    assert set(asset_world["answer"]["levels"]) == set(asset_world["native"])


def test_export_route_carries_assets(asset_world: dict[str, Any]) -> None:
    """DagBag reads outlets, inlets and the asset schedule from the exported bundle."""
    answer = asset_world["answer"]
    assert answer["dagbag_errors"] == {}
    consumer = answer["dagbag_docs"]["a_consumer"]["dag"]
    assert consumer["timetable"]["__type"] == "airflow.timetables.simple.AssetTriggeredTimetable"
    cond = consumer["timetable"]["__var"]["asset_condition"]
    assert cond["__type"] == "asset_all"
    assert [o["__type"] for o in cond["objects"][1]["objects"]] == ["asset", "asset_alias"]
    make = answer["dagbag_docs"]["a_producer"]["dag"]["tasks"][0]["__var"]
    assert [o["__var"]["name"] for o in make["outlets"]] == ["s3://bucket/raw", "dyn"]


@pytest.mark.parametrize("dag_id", ["a_producer", "a_consumer", "a_list", "a_one"])
def test_asset_dags_two_routes_equal(asset_world: dict[str, Any], dag_id: str) -> None:
    """The exported DAG as Airflow serializes it equals the native document (timetable,
    inlets, outlets and dag_dependencies included)."""
    from dagparse_cases import EXPORT_ROUTE_DIFFERENCES, IGNORED_TASK_KEYS, compare

    answer = asset_world["answer"]
    python = json.loads(json.dumps(answer["dagbag_docs"][dag_id]))
    ours = asset_world["native"][dag_id]
    diffs = compare(
        python,
        ours,
        answer["operator_defaults"],
        ignored_task_keys=IGNORED_TASK_KEYS | EXPORT_ROUTE_DIFFERENCES,
    )
    assert diffs == [], "\n".join(diffs)
    assert ours["dag"]["dag_dependencies"] == python["dag"]["dag_dependencies"]


# -- trio-coord run -----------------------------------------------------------------------


def local_run(task_id: str) -> dict[str, Any]:
    """``python -m trio_coord run`` on the asset bundle, its --json summary."""
    import subprocess
    import sys

    bundle = str(HERE / "bundle_assets.py")
    result = subprocess.run(
        [sys.executable, "-m", "trio_coord", "run", bundle, "d1", task_id, "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_local_run_records_outlet_events() -> None:
    """The local supervisor answers the validation and shows the try's asset events."""
    summary = local_run("produce")
    assert summary["state"] == "success"
    assert summary["requests"]["ValidateInletsAndOutlets"] == 1
    assert summary["outlet_events"] == [
        {"asset": "s3://bucket/raw", "extra": {"rows": 3}},
        {"asset": "s3://bucket/dyn/1", "extra": {"part": 1}, "alias": "dyn"},
        {"asset": "dyn2", "extra": {}, "alias": "dyn"},
    ]


def test_local_run_answers_inlet_event_requests() -> None:
    """Inlet events read locally come from the run's in-memory events (none yet: empty)."""
    summary = local_run("consume")
    assert summary["state"] == "success"
    assert summary["xcoms"]["return_value"] == {"n": 0, "rows": [], "alias": 0}
