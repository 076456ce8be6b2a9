"""Human-in-the-loop tasks that the real-supervisor tests run through ``trio-coord serve``."""

from __future__ import annotations

import datetime

import trio_coord
from trio_coord import AwaitInput, Param

bundle = trio_coord.Bundle("hitl", version="1.0.0")
d1 = bundle.dag("d1", retries=2)

d1.hitl(
    "review",
    subject="Ship release?",
    options=["ship", "hold", "drop"],
    body="Check the changelog first.",
    defaults="hold",
    params={"note": Param("none", type="string")},
    assigned_users={"id": "u1", "name": "Ada"},
    response_timeout=datetime.timedelta(hours=1),
)


@d1.task.hitl(subject="Pick colours", options=["red", "green", "blue"], multiple=True)
def pick(run_id):
    return f"For run {run_id}: pick any."


@pick.resume("execute_complete")
def picked(event, log):
    log.info("chosen %s", event["chosen_options"])
    return {"count": len(event["chosen_options"]), "by": event["responded_by_user"]}


gate = d1.hitl("gate", subject="Deploy?", approval=True)


@d1.task
def deploy():
    return "deployed"


gate >> deploy


@d1.task
async def asks(client):
    await client.create_hitl_detail(["yes", "no"], "Continue?", defaults=["no"])
    raise AwaitInput("answered", kwargs={"asked": 1}, timeout=30)


@asks.resume("answered")
def answered(event, asked):
    return {"yes": event["chosen_options"] == ["yes"], "asked": asked}
