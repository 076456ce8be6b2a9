"""The trio-coord port of airflow_dag.py: the same DAG, changed only where trio-coord differs.

It waits for a stock feed, counts the stock of each warehouse (dynamic task mapping),
audits the counts in a task group and branches between restocking and doing nothing.
trio_coord_dag.py next to it is its trio-coord port; tests/test_airflow_port.py checks
that only import, decorator and bundle lines differ and that both give the same DAG.
"""

from __future__ import annotations

import datetime

from trio_coord import Bundle, PokeReturnValue, task, task_group

bundle = Bundle("inventory", version="1.0.0")


@bundle.dag(
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    default_args={"owner": "stores", "retries": 2, "retry_delay": datetime.timedelta(minutes=1)},
    params={"minimum": 100},
    tags=["inventory"],
)
def inventory():
    @task.sensor(poke_interval=30, timeout=3600, mode="reschedule")
    def feed_ready() -> PokeReturnValue:
        return PokeReturnValue(is_done=True, xcom_value="feed-2026")

    @task
    def list_warehouses(feed: str) -> list[str]:
        return [f"{feed}/north", f"{feed}/south", f"{feed}/east"]

    @task(retries=3)
    def count_stock(warehouse: str, per_slot: int) -> dict:
        return {"warehouse": warehouse, "items": per_slot * len(warehouse)}

    @task_group
    def audit(counts):
        @task
        def below_minimum(counts, params=None) -> list[str]:
            return [c["warehouse"] for c in counts if c["items"] < params["minimum"]]

        @task
        def summarize(low: list[str]) -> dict:
            return {"low": low, "needs_restock": bool(low)}

        return summarize(below_minimum(counts))

    @task.branch
    def route(summary: dict) -> str:
        return "restock" if summary["needs_restock"] else "all_good"

    @task
    def restock(summary: dict) -> int:
        return len(summary["low"])

    @task
    def all_good() -> str:
        return "nothing to do"

    @task(trigger_rule="none_failed_min_one_success")
    def report() -> str:
        return "done"

    warehouses = list_warehouses(feed_ready())
    counts = count_stock.partial(per_slot=7).expand(warehouse=warehouses)
    summary = audit(counts)
    route(summary) >> [restock(summary), all_good()] >> report()


inventory()

from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
