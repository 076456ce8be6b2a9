"""Whether a task runs, given its upstream states: Airflow 3.3's trigger rules, as a pure table.

Theory of operation
-------------------
A whole-DAG local run (``trio-coord run BUNDLE DAG``) runs tasks one at a time in
dependency order, so when a task's turn comes every upstream task instance has already
ended. That is the moment Airflow's scheduler settles a task too: its trigger-rule check
(airflow-core ``ti_deps/deps/trigger_rule_dep.py``) either marks the task instance
``skipped`` or ``upstream_failed`` ("flag_upstream_failed"), or lets it run, or leaves it
waiting. :func:`decide` reproduces that verdict from the counts of upstream states; the
scheduler's skip propagation is nothing more than this rule applied task after task
(an ``all_success`` task below a skipped one is skipped, and so on down).

Two details are the scheduler's, kept on purpose:

* a task with no upstream, and a task whose rule is ``always``, always runs;
* when all upstreams are done and a rule neither passes nor flags a state (none of the
  13 rules does that with finished upstreams, but a new one might), the task instance
  would wait forever and the DAG run deadlocks: :data:`BLOCKED`.

Setup tasks count for ``all_done_setup_success`` only; trio-coord DAGs declare none, so
their count is zero unless a caller passes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = ["BLOCKED", "RUN", "Decision", "UpstreamStates", "decide"]

Decision: TypeAlias = Literal["run", "skipped", "upstream_failed", "blocked"]

#: The task instance runs.
RUN: Final = "run"
#: Nothing lets the task run nor settles it: the DAG run would deadlock.
BLOCKED: Final = "blocked"


@dataclass(frozen=True, slots=True)
class UpstreamStates:
    """Counts of a task's upstream task instances by final state (``_UpstreamTIStates``)."""

    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0
    removed: int = 0
    success_setup: int = 0
    skipped_setup: int = 0
    #: How many upstream task instances there are (mapped upstreams count each index).
    upstream: int = 0
    #: How many of them are setup tasks.
    upstream_setup: int = 0

    @property
    def done(self) -> int:
        return self.success + self.skipped + self.failed + self.upstream_failed + self.removed

    @classmethod
    def of(cls, states: Iterable[str], setup_states: Iterable[str] = ()) -> UpstreamStates:
        """Count final states (``setup_states``: those of the setup tasks among them)."""
        listed = list(states)
        setups = list(setup_states)
        return cls(
            success=listed.count("success"),
            skipped=listed.count("skipped"),
            failed=listed.count("failed"),
            upstream_failed=listed.count("upstream_failed"),
            removed=listed.count("removed"),
            success_setup=setups.count("success"),
            skipped_setup=setups.count("skipped"),
            upstream=len(listed),
            upstream_setup=len(setups),
        )


def decide(rule: str, s: UpstreamStates) -> Decision:
    """The scheduler's verdict for a task with rule ``rule`` once its upstreams are done.

    Raises:
        ValueError: ``rule`` is not one of Airflow 3.3's trigger rules.
    """
    if rule not in _FLAG:
        raise ValueError(f"unknown trigger rule {rule!r}")
    if s.upstream == 0 or rule == "always":
        return RUN
    flagged = _FLAG[rule](s)
    if flagged is not None:
        return flagged
    return RUN if _PASSES[rule](s) else BLOCKED


def _all_success(s: UpstreamStates) -> Decision | None:
    if s.upstream_failed or s.failed:
        return "upstream_failed"
    return "skipped" if s.skipped else None


def _all_failed(s: UpstreamStates) -> Decision | None:
    return "skipped" if s.success or s.skipped else None


def _one_success(s: UpstreamStates) -> Decision | None:
    finished = s.done >= s.upstream
    if finished and s.done == s.skipped:
        return "skipped"
    if finished and s.success <= 0:
        return "upstream_failed"
    return None


def _one_failed(s: UpstreamStates) -> Decision | None:
    finished = s.done >= s.upstream
    return "skipped" if finished and not (s.failed or s.upstream_failed) else None


def _one_done(s: UpstreamStates) -> Decision | None:
    finished = s.done >= s.upstream
    return "skipped" if finished and not (s.failed or s.success) else None


def _none_failed(s: UpstreamStates) -> Decision | None:
    return "upstream_failed" if s.upstream_failed or s.failed else None


def _none_failed_min_one_success(s: UpstreamStates) -> Decision | None:
    if s.upstream_failed or s.failed:
        return "upstream_failed"
    if s.skipped == s.upstream:
        return "skipped"
    if s.done >= s.upstream and s.success == 0:
        return "upstream_failed"
    return None


def _none_skipped(s: UpstreamStates) -> Decision | None:
    return "skipped" if s.skipped else None


def _all_skipped(s: UpstreamStates) -> Decision | None:
    return "skipped" if s.success or s.failed or s.upstream_failed else None


def _all_done_min_one_success(s: UpstreamStates) -> Decision | None:
    # Skipped upstreams are not "done" for this rule.
    if s.skipped > 0:
        return "skipped"
    non_skipped_done = s.success + s.failed + s.upstream_failed + s.removed
    if non_skipped_done >= s.upstream - s.skipped and s.success == 0:
        return "upstream_failed"
    return None


def _all_done_setup_success(s: UpstreamStates) -> Decision | None:
    finished = s.done >= s.upstream
    if finished and s.upstream_setup and s.skipped_setup >= s.upstream_setup:
        return "skipped"
    if finished and s.upstream_setup and s.success_setup == 0:
        return "upstream_failed"
    return None


def _nothing(s: UpstreamStates) -> Decision | None:
    return None


#: Rule -> the state the scheduler sets on the task instance, if any.
_FLAG: Final[dict[str, Callable[[UpstreamStates], Decision | None]]] = {
    "all_success": _all_success,
    "all_failed": _all_failed,
    "all_done": _nothing,
    "all_done_min_one_success": _all_done_min_one_success,
    "all_done_setup_success": _all_done_setup_success,
    "one_success": _one_success,
    "one_failed": _one_failed,
    "one_done": _one_done,
    "none_failed": _none_failed,
    "none_skipped": _none_skipped,
    "always": _nothing,
    "none_failed_min_one_success": _none_failed_min_one_success,
    "all_skipped": _all_skipped,
}

#: Rule -> whether the dependency is met (the task may run), when no state was set.
_PASSES: Final[dict[str, Callable[[UpstreamStates], bool]]] = {
    "all_success": lambda s: s.upstream - s.success - s.removed <= 0,
    "all_failed": lambda s: s.upstream - s.failed - s.upstream_failed - s.removed <= 0,
    "all_done": lambda s: s.done >= s.upstream,
    "all_done_min_one_success": lambda s: (
        s.skipped == 0
        and s.success + s.failed + s.upstream_failed >= s.upstream - s.skipped - s.removed
        and s.success > 0
    ),
    "all_done_setup_success": lambda s: (
        s.done >= s.upstream and not (s.upstream_setup and not s.success_setup)
    ),
    "one_success": lambda s: s.success > 0,
    "one_failed": lambda s: bool(s.failed or s.upstream_failed),
    "one_done": lambda s: s.success + s.failed > 0,
    "none_failed": lambda s: s.upstream - s.success - s.skipped - s.removed <= 0,
    "none_skipped": lambda s: s.done >= s.upstream and s.skipped == 0,
    "always": lambda s: True,
    "none_failed_min_one_success": lambda s: (
        s.upstream - s.success - s.skipped - s.removed <= 0 and s.success > 0
    ),
    "all_skipped": lambda s: s.upstream - s.skipped <= 0,
}
