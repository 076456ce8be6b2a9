"""A bundle for the asset and trigger_dagrun tests under the real supervisor (DAG ``d1``).

``native_assets/native_assets.py`` declares the same producer as a plain Airflow DAG, so
one test can compare what both runners send.
"""

from __future__ import annotations

from trio_coord import Asset, AssetAlias, Bundle

RAW = Asset("s3://bucket/raw", extra={"owner": "data"})
CLEAN = Asset(name="clean", uri="file:///data/clean")
DYN = AssetAlias("dyn")

bundle = Bundle("assets-tests")
d1 = bundle.dag("d1")


@d1.task(outlets=[RAW, DYN, CLEAN])
def produce(outlet_events):  # type: ignore[no-untyped-def]
    outlet_events[RAW].extra["rows"] = 3
    outlet_events[DYN].add(Asset("s3://bucket/dyn/1"), extra={"part": 1})
    outlet_events[DYN].add(Asset("dyn2", extra={"static": True}))


@d1.task(outlets=[RAW])
def produce_plain() -> None:
    """Declares an outlet and records no event: only task_outlets is sent."""


@d1.task(inlets=[RAW, DYN])
def consume(inlet_events):  # type: ignore[no-untyped-def]
    events = inlet_events[RAW]
    alias_events = inlet_events[DYN]
    return {
        "n": len(events),
        "rows": [e.extra.get("rows") for e in events],
        "alias": len(alias_events),
    }


@d1.task(inlets=[RAW])
async def consume_async(context):  # type: ignore[no-untyped-def]
    events = await context.inlet_events[RAW].limit(1).ascending(False).fetch()
    return [e.asset.uri for e in events]


@d1.task(outlets=[RAW])
def bad_extra(outlet_events):  # type: ignore[no-untyped-def]
    outlet_events[RAW].extra["when"] = object()


d1.trigger_dagrun("kick", trigger_dag_id="target", trigger_run_id="run-42", conf={"a": 1})
d1.trigger_dagrun(
    "kick_reset", trigger_dag_id="target", trigger_run_id="run-42", reset_dag_run=True
)
d1.trigger_dagrun(
    "kick_skip", trigger_dag_id="target", trigger_run_id="run-42", skip_when_already_exists=True
)
d1.trigger_dagrun(
    "kick_wait",
    trigger_dag_id="target",
    trigger_run_id="run-43",
    wait_for_completion=True,
    poke_interval=0.01,
)
d1.trigger_dagrun("kick_auto", trigger_dag_id="target", note="from d1")


@d1.task.trigger_dagrun(trigger_dag_id="target", trigger_run_id="run-44", conf={"a": 0})
def kick_conf(run_id):  # type: ignore[no-untyped-def]
    return {"a": 2, "parent": run_id}
