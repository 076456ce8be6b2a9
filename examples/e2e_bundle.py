"""The bundle the end-to-end run (``nox -s e2e``) deploys next to hello_bundle.py.

Each DAG is one scenario checked under a real Airflow 3.3.2 (scheduler, DAG processor, API
server, triggerer); e2e/scenarios.py holds the expected outcome of each. Like every bundle
file it is also the DAG file: the DAG processor imports it without trio.
"""

from __future__ import annotations

import datetime

import trio_coord

bundle = trio_coord.Bundle("e2e", version="1.0.0", description="trio-coord end-to-end scenarios")

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

data = bundle.dag("e2e_data", start_date=START, tags=["e2e"])


@data.task
async def read_inputs(client, log):
    """Read what the e2e created through the REST API and log it, the secrets too.

    The secrets (a connection password, a variable whose name is a sensitive one) are logged
    on purpose: the task log must show them masked.
    """
    plain = await client.get_variable("e2e_plain")
    api_key = await client.get_variable("e2e_api_key")
    conn = await client.get_connection("e2e_conn")
    from_api = await client.get_xcom("from_api", task_id="check_outputs")
    log.info("variable e2e_plain=%s", plain)
    log.info("connection e2e_conn host=%s login=%s", conn.host, conn.login)
    log.info("secret variable e2e_api_key=%s", api_key)
    log.info("secret connection password=%s", conn.password)
    log.info("xcom from the API: %r", from_api)
    return {"plain": plain, "host": conn.host, "login": conn.login, "from_api": from_api}


@data.task(depends_on=[read_inputs])
def check_outputs(client, log):
    """Pull the upstream task's return value: an XCom written by one bundle process, read by another."""
    upstream = client.get_xcom(task_id="read_inputs")
    log.info("upstream returned %r", upstream)
    return {"seen": upstream}


retry = bundle.dag(
    "e2e_retry", start_date=START, retries=1, retry_delay=datetime.timedelta(seconds=1)
)


@retry.task
def always_fails(context, log):
    """Fails on every try: one retry, then failed."""
    log.info("try %d is going to fail", context.try_number)
    raise RuntimeError(f"e2e failure on try {context.try_number}")


sleeper = bundle.dag("e2e_sleeper", start_date=START)


@sleeper.task
async def sleep_long(log):
    """Sleeps until something ends it: marked failed through the API, it must go away."""
    import os

    import trio  # only the bundle has trio; the DAG processor never runs this body

    log.info("sleeping in pid %d", os.getpid())
    await trio.sleep(600)


noop = bundle.dag("e2e_noop", start_date=START, max_active_runs=16)


@noop.task(task_id="noop")
def noop_task():
    """Does nothing: what the per-task cost measurement runs."""


# -- the task vocabulary: branch, mapping, TaskFlow, reschedule sensor, deferral ----------

#: The Variable the e2e sets (once it has seen the sensor rescheduled) to let it finish.
VOCAB_FLAG = "e2e_vocab_flag"


@bundle.dag(dag_id="e2e_vocabulary", start_date=START, tags=["e2e"])
def e2e_vocabulary():
    """Every word of the vocabulary in one run; each task must end as Airflow would end it."""

    @trio_coord.task.branch
    def choose(log):
        log.info("following make_numbers; not_taken must be skipped")
        return "make_numbers"

    @trio_coord.task
    def make_numbers():
        return [1, 2, 3, 4]

    @trio_coord.task
    def not_taken():
        raise RuntimeError("the branch not followed must never run")

    @trio_coord.task
    def square(x, map_index, log):
        log.info("instance %d squares %d", map_index, x)
        return x * x

    @trio_coord.task
    def total(squares, log):
        """``squares`` is the mapped task's output: read lazily, one instance at a time."""
        values = list(squares)
        log.info("squares from %d instances: %r", len(values), values)
        return sum(values)

    @trio_coord.task
    def describe(value):
        return {"total": value, "text": f"sum of squares is {value}"}

    @trio_coord.task(trigger_rule="none_failed_min_one_success")
    def join(summary, log):
        log.info("join got %r", summary)
        return summary["total"]

    @trio_coord.task.sensor(poke_interval=15, timeout=900, mode="reschedule")
    def wait_flag(client, log):
        """Reschedules every 15 s: a shorter interval races Airflow's scheduler (see nap)."""
        value = client.get_variable(VOCAB_FLAG, default=None)
        log.info("poke: %s=%r", VOCAB_FLAG, value)
        return trio_coord.PokeReturnValue(is_done=value is not None, xcom_value=value)

    @trio_coord.task
    def nap(log):
        """Deferred to the real triggerer (DateTimeTrigger), then resumed.

        15 s rather than a few: Airflow's scheduler fails a resumed try queued before it
        has seen the deferring process exit, which under load takes seconds.
        """
        log.info("deferring to the triggerer for %d s", 15)
        raise trio_coord.defer_for(15)

    numbers = make_numbers()
    skipped = not_taken()
    choose() >> [numbers, skipped]
    squares = square.expand(x=numbers)
    # The join has the skipped branch upstream too: none_failed_min_one_success runs it.
    skipped >> join(describe(total(squares)))
    # The sensor gates the deferral, so the e2e sees both states while it watches.
    wait_flag() >> nap()


e2e_vocabulary()


# -- assets: an outlet's event (with extra) starts an asset-scheduled DAG ---------------

ORDERS = trio_coord.Asset(name="e2e_orders", uri="file:///e2e/orders")

asset_producer = bundle.dag("e2e_asset_producer", start_date=START, tags=["e2e"])


@asset_producer.task(outlets=[ORDERS])
def publish_orders(outlet_events, run_id, log):
    """Records the asset event with an extra the consumer (and the e2e) can read back."""
    outlet_events[ORDERS].extra["rows"] = 120
    outlet_events[ORDERS].extra["producer_run"] = run_id
    log.info("published %s with rows=120", ORDERS.uri)


asset_consumer = bundle.dag("e2e_asset_consumer", schedule=ORDERS, start_date=START, tags=["e2e"])


@asset_consumer.task(inlets=[ORDERS])
def read_orders(inlet_events, log):
    """Returns the latest event's extra: what the producer's outlet wrote."""
    latest = inlet_events[ORDERS].ascending(False).limit(1)
    extra = dict(latest[0].extra) if latest else None
    log.info("latest orders event extra: %r", extra)
    return extra


# -- trigger-and-wait: a trigger_dagrun task starts another DAG with conf and waits --------

trigger_parent = bundle.dag("e2e_trigger_parent", start_date=START, tags=["e2e"])


@trigger_parent.task.trigger_dagrun(
    trigger_dag_id="e2e_trigger_child", wait_for_completion=True, poke_interval=2
)
def kick_child(run_id):
    """The returned dict is the triggered run's conf."""
    return {"parent_run": run_id, "batch": 7}


trigger_child = bundle.dag("e2e_trigger_child", start_date=START, tags=["e2e"])


@trigger_child.task
def echo_conf(conf, log):
    log.info("child run conf: %r", dict(conf))
    return dict(conf)


# -- state-store cursor: a value kept across tries in the task state store ---------------

cursor_dag = bundle.dag(
    "e2e_state_cursor", start_date=START, retries=1, retry_delay=datetime.timedelta(seconds=1)
)


@cursor_dag.task
def resume_from_cursor(client, try_number, log):
    """Try 1 stores a cursor and fails; try 2 reads it back and carries on from there."""
    cursor = client.get_task_state("cursor")
    log.info("try %d read cursor %r", try_number, cursor)
    if cursor is None:
        client.set_task_state("cursor", {"offset": 500, "stored_on_try": try_number})
        raise RuntimeError(f"failing try {try_number} after storing the cursor")
    return {"resumed_from": cursor["offset"], "on_try": try_number}


# -- human in the loop: a person answers through the REST API, the downstream reads it ----

hitl_dag = bundle.dag("e2e_hitl", start_date=START, tags=["e2e"])


@hitl_dag.task.hitl(
    subject="Ship the e2e release?",
    options=["ship", "hold"],
    params={"note": trio_coord.Param("", type="string")},
)
def review(run_id):
    """Asks, then waits in ``awaiting_input``; the resumed try pushes the answer."""
    return f"Release candidate of run {run_id}: ship it or hold it?"


@hitl_dag.task(depends_on=[review])
def act_on_answer(client, log):
    """Reads the answer the HITL task pushed and acts on the chosen option."""
    answer = client.get_xcom(task_id="review")
    (chosen,) = answer["chosen_options"]
    note = answer["params_input"].get("note", "")
    log.info("the person chose %r with note %r", chosen, note)
    return {"chosen": chosen, "note": note}


from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
