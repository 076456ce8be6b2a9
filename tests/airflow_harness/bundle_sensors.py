"""Sensors and deferring tasks that the real-supervisor tests run through ``trio-coord serve``."""

from __future__ import annotations

import datetime

import trio_coord
from trio_coord import Defer, PokeReturnValue, Trigger, defer_for, defer_until

bundle = trio_coord.Bundle("sensors", version="1.0.0")
d1 = bundle.dag("d1", retries=2)

pokes: dict[str, int] = {}


def _count(name: str) -> int:
    pokes[name] = pokes.get(name, 0) + 1
    return pokes[name]


@d1.task.sensor(poke_interval=0.01, timeout=300)
def poke_three(log):
    n = _count("poke_three")
    log.info("poke number %d", n)
    return PokeReturnValue(n >= 3, xcom_value={"pokes": n})


@d1.task.sensor(poke_interval=datetime.timedelta(milliseconds=10), timeout=0.05)
async def poke_never():
    return False


@d1.task.sensor(poke_interval=0.01, timeout=0.05, soft_fail=True)
def poke_never_soft():
    return False


@d1.task.sensor(poke_interval=0.01, timeout=300, silent_fail=True)
def flaky(log):
    if _count("flaky") < 3:
        raise ConnectionError("the service is not up yet")
    return True


@d1.task.sensor(poke_interval=30, timeout=3600, mode="reschedule")
def resched():
    return False


@d1.task.sensor(poke_interval=30, timeout=3600, mode="reschedule", soft_fail=True)
def resched_soft():
    return False


@d1.task.sensor(poke_interval=30, timeout=3600, mode="reschedule")
def resched_done():
    return True


@d1.task
def defers():
    raise defer_for(
        datetime.timedelta(minutes=5),
        method_name="done",
        kwargs={"label": "five minutes", "pair": (1, 2)},
        timeout=datetime.timedelta(hours=1),
    )


@defers.resume("done")
def done(event, label, pair, log):
    log.info("resumed with %r", event)
    return {"moment": event.isoformat(), "label": label, "pair": list(pair)}


@d1.task
async def waits():
    raise defer_until(datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))


@d1.task
def custom_trigger():
    try:
        raise Defer(
            trigger=Trigger("my_triggers.FileTrigger", {"path": "/data/in", "poll": 5.0}),
            method_name="arrived",
        )
    except Exception:  # Defer is a BaseException: a broad except must not swallow it
        return "swallowed"


@d1.task.sensor(poke_interval=5, timeout=60, soft_fail=True)
def deferring_sensor():
    raise defer_for(30, method_name="checked")


@d1.task.sensor(poke_interval=3600, timeout=7200)
async def sleepy(log):
    log.info("poked; the next poke is an hour away")
    return False


@d1.task
async def defers_in_nursery():
    import trio

    async def child():
        raise defer_for(10, method_name="later")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(child)
        await trio.sleep_forever()


@defers_in_nursery.resume("later")
async def later():
    return "resumed"
