"""The bundle the benchmarks run: a no-op task and two tasks that log in a tight loop.

``log_sync`` runs in a worker thread (the common shape of a task that logs a lot);
``log_async`` runs in the Trio thread. Both log ``TRIO_COORD_BENCH_RECORDS`` records
(100 000 by default) and return the seconds the loop took, which becomes their XCom.
"""

from __future__ import annotations

import os
import time

import trio_coord

bundle = trio_coord.Bundle("bench", version="1.0.0", description="trio-coord benchmark bundle")
dag = bundle.dag("bench")


def _records() -> int:
    return int(os.environ.get("TRIO_COORD_BENCH_RECORDS", "100000"))


@dag.task
async def noop():
    """Nothing: what is measured is start-up and the terminal message."""


def _log_records(log) -> float:
    info = log.info
    t0 = time.perf_counter()
    for i in range(_records()):
        info("bench record %d", i)
    return time.perf_counter() - t0


@dag.task
def log_sync(log):
    """Log N records from a worker thread; return the seconds spent logging."""
    return _log_records(log)


@dag.task
async def log_async(log):
    """Log N records from the Trio thread, never yielding; return the seconds spent."""
    return _log_records(log)
