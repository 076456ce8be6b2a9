"""Branching, short-circuit, execution_timeout, retry policies and params under a supervisor."""

from __future__ import annotations

import datetime
import time

import trio

import trio_coord
from trio_coord import ExceptionRetryPolicy, Param, RetryAction, RetryRule

bundle = trio_coord.Bundle("branching", version="1.0.0")
d1 = bundle.dag(
    "d1",
    params={
        "rows": Param(10, type="integer", minimum=1, maximum=100),
        "mode": Param("fast", enum=["fast", "slow"]),
    },
)


@d1.task.branch
def pick(params):
    return "left" if params["mode"] == "fast" else ["right", "grp"]


@d1.task
def left():
    return "L"


@d1.task
def right():
    return "R"


@d1.task(trigger_rule="none_failed_min_one_success")
def join():
    return "J"


grp = d1.task_group("grp")


@grp.task
def first():
    return 1


@grp.task
def second():
    return 2


first >> second
pick >> [left, right, join, grp]
left >> join


@d1.task.branch
def pick_nothing():
    return None


@d1.task.branch
def pick_unknown():
    return "nowhere"


@d1.task.branch
def pick_all():
    return ["a1", "a2"]


@d1.task
def a1():
    pass


@d1.task
def a2():
    pass


pick_nothing >> [a1, a2]
pick_unknown >> [a1]
pick_all >> [a1, a2]


@d1.task.short_circuit
def gate(params):
    return params["rows"] > 50


@d1.task.short_circuit(ignore_downstream_trigger_rules=False)
def gate_direct():
    return 0


@d1.task
def after_gate():
    pass


@d1.task
def later():
    pass


gate >> after_gate >> later
gate_direct >> after_gate


@d1.task(execution_timeout=datetime.timedelta(seconds=0.5))
async def slow_async(log):
    log.info("sleeping past the timeout")
    await trio.sleep(300)


@d1.task(execution_timeout=datetime.timedelta(seconds=0.5))
def slow_sync(log):
    log.info("sleeping past the timeout in a thread")
    time.sleep(300)


POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=ConnectionError,
            retry_delay=datetime.timedelta(seconds=42),
            reason="the database was unreachable",
        ),
        RetryRule(exception="builtins.KeyError", action=RetryAction.FAIL, reason="bad input"),
        RetryRule(exception=trio_coord.TaskTimeout, reason="slow day, try again"),
    ]
)


@d1.task(retry_policy=POLICY)
def flaky():
    raise ConnectionError("connection refused")


@d1.task(retry_policy=POLICY)
def bad_input():
    raise KeyError("id")


@d1.task(retry_policy=POLICY, execution_timeout=datetime.timedelta(seconds=0.2))
async def slow_with_policy():
    await trio.sleep(300)


@d1.task
def show_params(params, context):
    return {"params": params, "same": params == context.params}


@d1.task(params={"rows": 500, "label": Param("x", maxLength=3)})
def task_params(params):
    return params
