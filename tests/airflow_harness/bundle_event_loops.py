"""Tasks for the event-loop tests: asyncio tasks, and asyncio called from the wrong place."""

from __future__ import annotations

import asyncio

import sniffio

import trio_coord

bundle = trio_coord.Bundle("event_loops", version="1.0.0")
d1 = bundle.dag("d1")


@d1.task(event_loop="asyncio")
async def asyncio_ok(client, log, run_id):
    log.info("running on %s", sniffio.current_async_library())
    await asyncio.sleep(0.01)
    first, second, _ = await asyncio.gather(
        client.get_variable("first"),
        client.get_variable("second"),
        asyncio.sleep(0.01),
    )
    await client.set_xcom("pair", [first, second])
    upstream = await client.get_xcom("pair")
    log.info("pushed and read back %s", upstream)
    return {"run_id": run_id, "joined": f"{first}+{second}"}


@d1.task
async def trio_calls_asyncio(log):
    await asyncio.sleep(0.01)


@d1.task
def sync_calls_asyncio(log):
    asyncio.get_running_loop()


@d1.task(event_loop="asyncio")
async def asyncio_long(log):
    log.info("asyncio task sleeping for a long time")
    try:
        await asyncio.sleep(120)
    except asyncio.CancelledError:
        log.info("asyncio task saw CancelledError")
        raise


@d1.task(event_loop="asyncio")
async def asyncio_fails(log):
    await asyncio.sleep(0)
    raise ValueError("asyncio boom on purpose")


@d1.task(event_loop="asyncio")
async def asyncio_taskflow(n, label="x", log=None):
    await asyncio.sleep(0)
    return f"{label}:{n * 2}"


asyncio_taskflow(asyncio_ok.output["joined"], label="doubled")
