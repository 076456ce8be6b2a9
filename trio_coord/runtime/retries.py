"""The task's retry policy, asked after a failure and before the terminal message is chosen.

As Airflow's native runner: a policy that raises, or answers something other than a
``RetryDecision``, is logged and ignored (the usual rule applies); a decision with a reason
is logged. Only the runner's choice of message uses the answer (``task_runner._failure``).
"""

from __future__ import annotations

import logging

from ..authoring import RetryDecision, RetryPolicy, Task
from ..context import TaskContext

__all__ = ["decide_retry"]

log = logging.getLogger("trio_coord.runtime")


def decide_retry(task: Task, ctx: TaskContext, exc: BaseException) -> RetryDecision | None:
    """The policy's decision about ``exc``, or None when there is no usable one."""
    policy = task.option("retry_policy")
    if not isinstance(policy, RetryPolicy):
        return None
    try:
        decision = policy.evaluate(
            exception=exc,
            try_number=ctx.try_number,
            max_tries=ctx.ti_context.max_tries or 0,
            context=ctx,
        )
        if not isinstance(decision, RetryDecision):
            raise TypeError(f"evaluate() returned {type(decision).__name__}, not a RetryDecision")
    except Exception:
        log.exception("the retry policy failed; the usual retry rule applies")
        return None
    if decision.reason:
        log.info("retry policy decision: %s (%s)", decision.action.value, decision.reason)
    return decision
