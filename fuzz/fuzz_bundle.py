"""The bundle the serve fuzzer runs: one task that keeps the comm channel busy.

It makes a handful of client calls (whatever they return or raise), logs around them and
returns a value, so a fuzzed frame can land before, between and after requests, during
the return-value push and while the terminal reply is awaited.
"""

from __future__ import annotations

import logging
from typing import Any

from trio_coord import Bundle

bundle = Bundle("fuzz", version="1.0.0")
dag = bundle.dag("fuzz_dag")


@dag.task
async def chatty(client: Any, log: logging.Logger) -> Any:
    """Four calls of three kinds, each failure logged, then a JSON return value."""
    for i in range(4):
        try:
            if i % 3 == 0:
                await client.get_variable(f"key{i}", default=None)
            elif i % 3 == 1:
                await client.set_xcom(f"x{i}", {"i": i})
            else:
                await client.mask_secret(f"secret-number-{i}")
        except Exception as exc:  # the fuzzer breaks replies on purpose
            log.warning("call %d failed: %s", i, exc)
        log.info("step %d done", i)
    return {"done": True}
