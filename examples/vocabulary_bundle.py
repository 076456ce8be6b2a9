"""A small order pipeline that uses every part of trio-coord's task vocabulary.

``shop_orders`` waits for the day's landing file (a reschedule-mode sensor), lists the
regions (an asyncio task), counts each region's orders (a mapped task in a task group,
mapped again over its own output), runs a fixed set of checks (mapped over a literal
list), adds up the totals (a lazy sequence of a mapped task's values), branches between
publishing and holding, cools down (a deferral resumed by a function of its own),
publishes an asset under a retry policy and an execution timeout, and finally triggers
``shop_report`` -- which is also scheduled on that asset.

docs/tutorial-vocabulary.md walks through it. Try it without Airflow:

    trio-coord run examples/vocabulary_bundle.py shop_orders --no-wait
"""

from __future__ import annotations

import datetime

import trio_coord
from trio_coord import (
    Asset,
    ExceptionRetryPolicy,
    Param,
    PokeReturnValue,
    RetryAction,
    RetryRule,
    defer_for,
    task,
    task_group,
)

bundle = trio_coord.Bundle(
    "shop", version="1.0.0", description="every task vocabulary feature in one pipeline"
)

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
ORDERS = Asset("s3://shop/orders")

#: Transient errors retry after a short pause; bad data fails at once.
POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=ConnectionError,
            retry_delay=datetime.timedelta(seconds=5),
            reason="the warehouse was unreachable",
        ),
        RetryRule(exception=ValueError, action=RetryAction.FAIL),
    ]
)


@bundle.dag(
    schedule="@daily",
    start_date=START,
    tags=["example", "vocabulary"],
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=10)},
    params={
        "regions": Param(["eu", "us", "apac"], type="array", minItems=1),
        "threshold": Param(10, type="integer", minimum=0),
    },
)
def shop_orders():
    @task.sensor(poke_interval=1, timeout=datetime.timedelta(minutes=5), mode="reschedule")
    def landing_file(context, log):
        """Done on the second poke: the first try gives the worker slot back."""
        pokes = (context.ti_context.task_reschedule_count or 0) + 1
        log.info("poke %d for the landing file", pokes)
        return PokeReturnValue(is_done=pokes >= 2, xcom_value={"pokes": pokes})

    @task(event_loop="asyncio")
    async def list_regions(params, log):
        """An asyncio task: gathers two 'lookups' concurrently on its own event loop."""
        import asyncio

        async def lookup(region: str) -> str:
            await asyncio.sleep(0)
            return region.upper()

        regions = await asyncio.gather(*(lookup(r) for r in params["regions"]))
        log.info("regions: %s", regions)
        return list(regions)

    @task_group
    def per_region(regions):
        @task(map_index_template="{region}")
        def count_orders(region: str, per_region: int) -> int:
            return per_region * (len(region) + 1)

        @task
        def price(count: int) -> float:
            return round(count * 2.5, 2)

        counts = count_orders.partial(per_region=3).expand(region=regions)
        return price.expand(count=counts)  # mapped over a mapped task's output

    @task
    def check(name: str) -> str:
        return f"{name}: ok"

    @task
    def total(prices, params, log):
        """``prices`` is every ``price`` instance's value, read lazily in map index order."""
        value = round(sum(prices), 2)
        log.info("%d prices, total %s (threshold %s)", len(prices), value, params["threshold"])
        return value

    @task.branch
    def choose(amount, params):
        return "cool_down" if amount >= params["threshold"] else "hold"

    @task
    def hold(log):
        log.info("too little to publish today")

    @task(trigger_rule="none_failed_min_one_success")
    def cool_down(log):
        """Gives the worker slot back for a second, then resumes in ``cooled``."""
        log.info("deferring for a second")
        raise defer_for(1, method_name="cooled", kwargs={"reason": "cool-down"})

    @cool_down.resume("cooled")
    def cooled(event, reason, log):
        log.info("resumed after %s at %s", reason, event)
        return reason

    @task(
        outlets=[ORDERS],
        retries=3,
        retry_policy=POLICY,
        execution_timeout=datetime.timedelta(minutes=2),
    )
    def publish(amount, outlet_events, log):
        outlet_events[ORDERS].extra["amount"] = amount
        log.info("published %s", amount)

    @task.short_circuit
    def worth_reporting(amount):
        return amount > 0

    @task.trigger_dagrun(trigger_dag_id="shop_report")
    def kick_report(amount, run_id):
        return {"amount": amount, "parent_run": run_id}  # the triggered run's conf

    regions = list_regions()
    prices = per_region(regions)
    checks = check.expand(name=["rows", "nulls", "duplicates"])
    amount = total(prices)
    landing_file() >> regions
    checks >> amount
    decision = choose(amount)
    decision >> [cool_down(), hold()]
    cool_down >> publish(amount) >> worth_reporting(amount) >> kick_report(amount)


shop_orders()


with bundle.dag("shop_report", schedule=ORDERS, start_date=START, tags=["example"]):

    @task
    def report(conf, log):
        log.info("report for %s", dict(conf))
        return dict(conf)


# Airflow's DAG processor imports this file too: there the DAGs above become Airflow DAGs
# of stub tasks on the trio-coord queue; anywhere else this line does nothing.
from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
