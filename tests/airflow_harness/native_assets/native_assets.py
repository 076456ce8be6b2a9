"""The asset producer of bundle_assets.py as a plain Airflow DAG, run by Airflow's runner."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias, dag, task

RAW = Asset("s3://bucket/raw", extra={"owner": "data"})
CLEAN = Asset(name="clean", uri="file:///data/clean")
DYN = AssetAlias("dyn")


@dag(dag_id="d1", schedule=None)
def d1() -> None:
    @task(outlets=[RAW, DYN, CLEAN])
    def produce(*, outlet_events=None):  # type: ignore[no-untyped-def]
        outlet_events[RAW].extra["rows"] = 3
        outlet_events[DYN].add(Asset("s3://bucket/dyn/1"), extra={"part": 1})
        outlet_events[DYN].add(Asset("dyn2", extra={"static": True}))

    @task(outlets=[RAW])
    def produce_plain() -> None:
        pass

    produce()
    produce_plain()


d1()
