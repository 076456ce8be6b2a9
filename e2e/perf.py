"""Per-task cost as a user feels it: queued -> finished of a no-op task, trio-coord vs native.

Three DAGs of one task that does nothing: a native ``@task`` (native_noop_dag.py), and the
same trio-coord bundle packed twice (perf_noop_bundle.py), once with a warm server and once
without (a different DAG id, so a different bundle hash no server answers for). They run
on the same deployment (same scheduler, LocalExecutor), one run at a time (interleaved, so
a slow minute on the shared machine hits all three) and then several runs at once. The
times come from the task instances' ``queued_when``, ``start_date`` and ``end_date`` as
the REST API reports them.
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .api import Api

#: The bundle source as written (the warm one) and the DAG ids of its two deployments.
BUNDLE_SOURCE = Path(__file__).resolve().parent / "perf_noop_bundle.py"
WARM_DAG = "perf_noop_warm"
COLD_DAG = "perf_noop_cold"
NATIVE_DAG = "native_noop"
TASK = "noop"
RUN_TIMEOUT_S = 240.0

NATIVE = "native @task"
COLD = "trio-coord, cold"
WARM = "trio-coord, warm"


def cold_variant(source: str) -> str:
    """The perf bundle's source with its bundle name and DAG id saying ``cold``.

    Raises:
        ValueError: the source does not name each exactly once (it was edited).
    """
    for warm in (f'"{WARM_DAG}"', '"perf-noop-warm"'):
        if source.count(warm) != 1:
            raise ValueError(f"{BUNDLE_SOURCE.name} must contain {warm} exactly once")
        source = source.replace(warm, warm.replace("warm", "cold"))
    return source


def runtimes(warm: bool) -> dict[str, str]:
    """``{runtime label: DAG id}`` to measure; without warm servers, the warm DAG is left out."""
    kinds = {NATIVE: NATIVE_DAG, COLD: COLD_DAG}
    if warm:
        kinds[WARM] = WARM_DAG
    return kinds


@dataclass(frozen=True)
class Sample:
    queued_to_start: float
    start_to_end: float

    @property
    def queued_to_end(self) -> float:
        return self.queued_to_start + self.start_to_end


def _ts(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sample(api: Api, dag_id: str, run_id: str) -> Sample:
    ti = api.task_instances(dag_id, run_id)[TASK]
    if ti["state"] != "success":
        raise AssertionError(f"{dag_id}/{run_id}: noop ended {ti['state']!r}, not success")
    queued, start, end = (_ts(ti[k]) for k in ("queued_when", "start_date", "end_date"))
    return Sample((start - queued).total_seconds(), (end - start).total_seconds())


def _batch(api: Api, dag_id: str, run_ids: Sequence[str]) -> list[Sample]:
    for run_id in run_ids:
        api.trigger(dag_id, run_id)
    for run_id in run_ids:
        api.wait_run(dag_id, run_id, RUN_TIMEOUT_S)
    return [_sample(api, dag_id, run_id) for run_id in run_ids]


def measure(
    api: Api, sequential: int, concurrent: int, dags: Mapping[str, str]
) -> dict[str, dict[str, list[Sample]]]:
    """``{"one at a time" | "N at once": {runtime label: samples}}`` for ``dags`` (``runtimes()``).

    One untimed run of each DAG first: the first task on a fresh deployment also pays for
    one-time work (the LocalExecutor's first worker, the bundle's module cache).
    """
    for dag_id in dags.values():
        api.set_paused(dag_id, False)
        _batch(api, dag_id, [f"warmup-{dag_id}"])
    one: dict[str, list[Sample]] = {k: [] for k in dags}
    for i in range(sequential):
        for kind, dag_id in dags.items():
            one[kind] += _batch(api, dag_id, [f"seq-{i}"])
    many: dict[str, list[Sample]] = {}
    for kind, dag_id in dags.items():
        many[kind] = _batch(api, dag_id, [f"conc-{i}" for i in range(concurrent)])
    return {"one at a time": one, f"{concurrent} at once": many}


def summary(samples: Sequence[float]) -> str:
    """``median (min - max)`` in seconds."""
    return f"{statistics.median(samples):.3f} s ({min(samples):.3f} - {max(samples):.3f})"


def ratio(samples: Sequence[Sample], native: Sequence[Sample] | None) -> str:
    """Median queued -> finished over the native one's, ``1.00x`` meaning the same."""
    if not native:
        return "-"
    base = statistics.median(s.queued_to_end for s in native)
    if base <= 0:
        return "-"
    return f"{statistics.median(s.queued_to_end for s in samples) / base:.2f}x"


def table(results: dict[str, dict[str, list[Sample]]]) -> str:
    """A Markdown table of the medians, spreads, and ratios to the native task."""
    rows = [
        "| runs | runtime | n | queued -> finished | vs native | queued -> started "
        "| started -> finished |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, kinds in results.items():
        for kind, samples in kinds.items():
            rows.append(
                f"| {mode} | {kind} | {len(samples)} "
                f"| **{summary([s.queued_to_end for s in samples])}** "
                f"| {ratio(samples, kinds.get(NATIVE))} "
                f"| {summary([s.queued_to_start for s in samples])} "
                f"| {summary([s.start_to_end for s in samples])} |"
            )
    return "\n".join(rows)
