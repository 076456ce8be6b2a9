"""Generated DAGs: native serialization passes Airflow's L1-L3 and equals the export route.

In-process (the project's test venv has airflow-core 3.3.2); skipped, saying why, without it.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tempfile
from typing import Any

import pytest
from dagparse_cases import EXPORT_ROUTE_DIFFERENCES, IGNORED_TASK_KEYS, compare
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_coord import Bundle
from trio_coord.authoring import TaskGroup
from trio_coord.dagparse import serialize_dag

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="tc-airflow-home-"))
serialized_objects = pytest.importorskip(
    "airflow.serialization.serialized_objects",
    reason="airflow-core is not installed in this interpreter (the test extra brings it)",
)
pytest.importorskip("airflow.providers.standard.decorators.stub")

from airflow.serialization.json_schema import load_dag_schema_dict  # noqa: E402

from trio_coord.airflow import to_airflow_dags  # noqa: E402

DagSerialization = serialized_objects.DagSerialization
SCHEMA = load_dag_schema_dict()
DEFAULTS = {
    k: v["default"]
    for k, v in SCHEMA["definitions"]["operator"]["properties"].items()
    if v.get("default") is not None
}
UTC = datetime.UTC

ids = st.from_regex(r"[a-z][a-z0-9_\-]{0,11}", fullmatch=True)
schedules = st.sampled_from(
    [
        None,
        "@once",
        "@daily",
        "@hourly",
        "@yearly",
        "*/10 * * * *",
        "0 12 * * MON-FRI 30",
        datetime.timedelta(minutes=45),
    ]
)
options = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.integers(0, 5),
        "retry_delay": st.integers(0, 3600).map(lambda s: datetime.timedelta(seconds=s)),
        "trigger_rule": st.sampled_from(["all_success", "all_done", "one_success", "none_failed"]),
        "pool": st.sampled_from(["default_pool", "db"]),
        "priority_weight": st.integers(-5, 20),
        "queue": st.sampled_from(["trio", "default", "other"]),
        "owner": st.sampled_from(["airflow", "data"]),
        "execution_timeout": st.integers(1, 7200).map(lambda s: datetime.timedelta(seconds=s)),
        "depends_on_past": st.booleans(),
    },
)


@st.composite
def dags(draw: st.DrawFn) -> Bundle:
    """A bundle of one acyclic DAG: tasks in index order, groups over contiguous index ranges,
    and edges that only point from lower to higher indexes (so never a cycle)."""
    n = draw(st.integers(1, 7))
    names = draw(st.lists(ids, min_size=n, max_size=n, unique=True))
    bundle = Bundle("generated")
    dag = bundle.dag(
        draw(ids),
        schedule=draw(schedules),
        start_date=draw(st.sampled_from([None, datetime.datetime(2026, 1, 1, tzinfo=UTC)])),
        default_args=draw(st.sampled_from([None, {"retries": 1}, {"owner": "team", "pool": "p"}])),
        tags=draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3)),
    )
    # Up to two top-level groups over adjacent non-empty ranges, the first maybe nested.
    ranges: list[tuple[int, int]] = []
    if n >= 2:
        k = draw(st.integers(1, n - 1))
        ranges = [(draw(st.integers(0, k - 1)), k), (k, draw(st.integers(k + 1, n)))]
    groups: list[tuple[TaskGroup, int, int]] = []
    for i, (lo, hi) in enumerate(ranges):
        if draw(st.integers(0, 3)) > 0:
            g = dag.task_group(f"g{i}", prefix_group_id=draw(st.booleans()))
            groups.append((g, lo, hi))
            if i == 0 and hi - lo > 1 and draw(st.booleans()):
                groups.append((g.task_group("inner"), lo + 1, hi))
    tasks = []
    for i, name in enumerate(names):
        holder = None
        for g, lo, hi in groups:  # the innermost group wins (nested ones come later)
            if lo <= i < hi:
                holder = g
        task = dag.task(task_id=name, group=holder, **draw(options))(_noop)
        tasks.append(task)
    nodes: list[tuple[Any, int, int]] = [(t, i, i + 1) for i, t in enumerate(tasks)]
    nodes += [(g, lo, hi) for g, lo, hi in groups if hi > lo]
    for _ in range(draw(st.integers(0, 12))):
        (a, _, ahi), (b, blo, _) = draw(st.lists(st.sampled_from(nodes), min_size=2, max_size=2))
        if ahi <= blo:
            if draw(st.booleans()):
                a >> b
            else:
                b << a
    # Group edges are what differs most between >> and <<: give each ordered pair of
    # groups (and each group with the task after it) a chance of one, in a random form.
    spans = [(g, lo, hi) for g, lo, hi in groups if hi > lo]
    for g, _, hi in spans:
        later = [(b, blo) for b, blo, _ in spans if blo >= hi] + [
            (t, i) for i, t in enumerate(tasks) if i >= hi
        ]
        if later and draw(st.booleans()):
            b, _ = draw(st.sampled_from(later))
            if draw(st.booleans()):
                g >> b
            else:
                b << g
    return bundle


def _noop() -> None:
    pass


@settings(max_examples=40)
@given(dags())
def test_generated_dags_validate_and_equal_the_export_route(bundle: Bundle) -> None:
    """Any generated DAG serializes natively to a document Airflow validates (L1-L3) and equal to
    what Airflow writes for the same DAG built by the export route."""
    (dag,) = bundle.dags.values()
    ours = serialize_dag(dag, fileloc="/dags/generated.py", relative_fileloc="generated.py")
    DagSerialization.validate_schema(ours)
    loaded = DagSerialization.from_dict(copy.deepcopy(ours))
    assert {t.task_id for t in loaded.tasks} == set(dag.tasks)
    for t in loaded.tasks:
        assert sorted(t.upstream_task_ids) == sorted(dag.tasks[t.task_id].upstream)
    # As JSON, the way Airflow stores it (to_dict leaves tuples and str enums in place).
    python = json.loads(json.dumps(DagSerialization.to_dict(to_airflow_dags(bundle)[dag.dag_id])))
    diffs = compare(
        python, ours, DEFAULTS, ignored_task_keys=IGNORED_TASK_KEYS | EXPORT_ROUTE_DIFFERENCES
    )
    assert diffs == [], "\n".join(diffs)
