"""Shared by the dagparse tests: the conformance cases built with trio-coord, test DAGs,
and the comparison rules of Airflow's cross-SDK serialization check."""

from __future__ import annotations

import datetime
import json
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from trio_coord import Bundle, ExceptionRetryPolicy, RetryRule, task, task_group
from trio_coord.authoring import Dag, Param, Task, TaskGroup

DATA = Path(__file__).with_name("data") / "conformance_dags.json"
UTC = datetime.UTC

#: DAG keys not compared: where the file lives differs by construction.
IGNORED_DAG_KEYS = frozenset({"fileloc", "relative_fileloc", "_processor_dags_folder", "tasks"})
#: Task keys not compared: operator identity and markers only some producers write.
IGNORED_TASK_KEYS = frozenset(
    {
        "task_type",
        "_task_module",
        "language",
        "_needs_expansion",
        "has_retry_policy",
        "is_stub",
        "_arg_bindings",
    }
)

#: Task keys that differ between the export route (``@task.stub`` operators) and the native
#: documents by design, each with its reason.
EXPORT_ROUTE_DIFFERENCES = {
    # The stub operator is Python's _StubOperator; native documents name trio-coord's
    # TrioOperator/trio_coord (ignored by the conformance rules already).
    "task_type",
    "_task_module",
    # @task.stub templates its callable's arguments; native tasks have no template fields.
    "template_fields",
    "op_args",
    "op_kwargs",
    "_operator_name",
    # The decorated-operator machinery records its callable (always the one placeholder
    # function) and how to render the templated arguments; native tasks have neither.
    "python_callable_name",
    "template_fields_renderers",
}


class GatedFeature(Exception):
    """The case needs an authoring feature trio-coord does not have yet."""


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(DATA.read_text())["cases"]
    return cases


def decode(value: Any) -> Any:
    """The data file's tagged values as Python values."""
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return datetime.datetime.fromisoformat(value["$datetime"])
        if set(value) == {"$timedelta"}:
            return datetime.timedelta(seconds=value["$timedelta"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _noop() -> None:
    pass


def build_case(case: Mapping[str, Any], bundle: Bundle | None = None) -> Dag:
    """A conformance case declared with trio-coord's authoring API.

    Tasks get Airflow's default queue (the DAG's ``queue="default"``), as the Python side
    sets none. Raises GatedFeature for a case that needs what the API lacks.
    """
    gated = [k for t in case["tasks"] for k in ("branch", "trigger_dag_run", "literals") if k in t]
    gated += [
        g["id"] for g in case.get("groups", []) if set(g.get("spec", {})) - {"prefix_group_id"}
    ]
    gated += [e[2] for e in case.get("order_edges", []) if len(e) > 2]
    if gated:
        raise GatedFeature(f"{case['dag_id']} needs {case.get('missing')}: {gated}")
    bundle = bundle or Bundle("conformance")
    dag = bundle.dag(case["dag_id"], queue="default", **decode(case.get("spec", {})))
    nodes: dict[str, Task | TaskGroup] = {}
    for g in case.get("groups", []):
        parent_id, _, local = g["id"].rpartition(".")
        parent = nodes[parent_id] if parent_id else dag.root_group
        assert isinstance(parent, TaskGroup)
        nodes[g["id"]] = parent.task_group(local, **decode(g.get("spec", {})))
    for t in case["tasks"]:
        holder = nodes[t["group"]] if "group" in t else None
        assert holder is None or isinstance(holder, TaskGroup)
        task = dag.task(task_id=t["id"], group=holder, **decode(t.get("spec", {})))(_noop)
        nodes[task.task_id] = task
        for up in t.get("upstream", []):
            nodes[up] >> task
    for edge in case.get("order_edges", []):
        nodes[edge[0]] >> nodes[edge[1]]
    return dag


def same(a: Any, b: Any) -> bool:
    """Equality as JavaScript sees JSON: 1 == 1.0, but True is not a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def compare(
    python: Mapping[str, Any],
    ours: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    ignored_task_keys: Iterable[str] = IGNORED_TASK_KEYS,
) -> list[str]:
    """Differences between Python's document and ours under the conformance rules."""
    diffs: list[str] = []
    if python.get("__version") != ours.get("__version"):
        diffs.append(f"__version {python.get('__version')!r} != {ours.get('__version')!r}")
    pd, od = python["dag"], ours["dag"]
    for key in sorted((pd.keys() | od.keys()) - IGNORED_DAG_KEYS):
        if key not in od or key not in pd or not same(pd[key], od[key]):
            diffs.append(
                f"dag.{key}: python {pd.get(key, '<absent>')!r} ours {od.get(key, '<absent>')!r}"
            )
    ptasks, otasks = pd["tasks"], od["tasks"]
    if [t["__var"]["task_id"] for t in ptasks] != [t["__var"]["task_id"] for t in otasks]:
        diffs.append(
            f"task order: python {[t['__var']['task_id'] for t in ptasks]} "
            f"ours {[t['__var']['task_id'] for t in otasks]}"
        )
        return diffs
    skip = frozenset(ignored_task_keys)
    for pt, ot in zip(ptasks, otasks, strict=True):
        if pt["__type"] != ot["__type"]:
            diffs.append(f"task __type {pt['__type']!r} != {ot['__type']!r}")
        pv, ov = pt["__var"], ot["__var"]
        for key in sorted((pv.keys() | ov.keys()) - skip):
            if key in pv and key in ov and same(pv[key], ov[key]):
                continue
            if key in pv and key not in ov and key in defaults and same(pv[key], defaults[key]):
                continue
            diffs.append(
                f"task {pv['task_id']}.{key}: python {pv.get(key, '<absent>')!r} "
                f"ours {ov.get(key, '<absent>')!r}"
            )
    return diffs


def make_test_bundle() -> Bundle:
    """The dedicated test DAGs: minimal, full, every schedule form, every task field."""
    b = Bundle("dagparse-tests", version="1.0", description="test DAGs for the serializer")
    minimal = b.dag("t_minimal")

    @minimal.task
    def solo() -> None:
        pass

    full = b.dag(
        "t_full",
        schedule="0 3 * * *",
        start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC),
        end_date=datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        tags={"trio", "etl"},
        default_args={"owner": "data", "retries": 2, "retry_delay": datetime.timedelta(seconds=60)},
        max_active_runs=1,
        max_active_tasks=8,
        dagrun_timeout=datetime.timedelta(hours=1),
        description="Nightly ETL",
        dag_display_name="Trio ETL",
        doc_md="# Trio ETL",
        params={
            "batch_size": 1000,
            "mode": Param("fast", description="how", enum=["fast", "slow"]),
        },
        queue="trio",
    )

    @full.task
    def extract() -> None:
        """Extract rows."""

    @full.task(retries=3, execution_timeout=datetime.timedelta(seconds=600))
    def transform() -> None:
        pass

    @full.task(trigger_rule="all_done", pool="db", priority_weight=5)
    def load() -> None:
        pass

    extract >> [transform, load]
    transform >> load

    schedules: list[tuple[str, Any, dict[str, Any]]] = [
        ("t_sched_none", None, {}),
        ("t_sched_once", "@once", {}),
        ("t_sched_continuous", "@continuous", {"max_active_runs": 1}),
        ("t_sched_cron5", "*/5 * * * *", {}),
        ("t_sched_cron6", "30 3 * * MON-FRI 15", {}),
        ("t_sched_delta", datetime.timedelta(hours=2), {}),
        *(
            (f"t_sched_{p[1:]}", p, {})
            for p in ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
        ),
        (
            "t_sched_named_tz",
            "0 4 * * *",
            {"start_date": datetime.datetime(2026, 3, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))},
        ),
        (
            "t_sched_tz",
            "0 4 * * *",
            {
                "start_date": datetime.datetime(
                    2026, 3, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
                )
            },
        ),
    ]
    for dag_id, schedule, extra in schedules:
        d = b.dag(dag_id, schedule=schedule, **extra)
        d.task(task_id="only")(_noop)

    every = b.dag("t_every_task_field", start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    every.task(
        task_id="all_set",
        owner="someone",
        start_date=datetime.datetime(2026, 2, 1, tzinfo=UTC),
        end_date=datetime.datetime(2026, 3, 1, tzinfo=UTC),
        trigger_rule="one_failed",
        depends_on_past=True,
        ignore_first_depends_on_past=True,
        wait_for_past_depends_before_skipping=True,
        wait_for_downstream=True,
        retries=4,
        queue="q1",
        pool="p",
        pool_slots=3,
        execution_timeout=datetime.timedelta(minutes=5),
        retry_delay=datetime.timedelta(seconds=7.5),
        retry_exponential_backoff=True,
        max_retry_delay=datetime.timedelta(hours=1),
        priority_weight=-3,
        weight_rule="absolute",
        executor="LocalExecutor",
        do_xcom_push=False,
        email_on_failure=False,
        email_on_retry=False,
        doc_md="doc",
        map_index_template="{{ ti.map_index }}",
        max_active_tis_per_dag=2,
        max_active_tis_per_dagrun=1,
    )(_noop)
    every.task(task_id="none_set")(_noop)

    groups = b.dag(
        "t_groups", schedule="@daily", start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC)
    )
    first = groups.task(task_id="first")(_noop)
    g = groups.task_group("g")
    inner = g.task_group("inner")
    flat = g.task_group("flat", prefix_group_id=False)
    a = g.task(task_id="a")(_noop)
    b1 = inner.task(task_id="b")(_noop)
    c = flat.task(task_id="c")(_noop)
    last = groups.task(task_id="last")(_noop)
    a >> b1
    first >> g >> last
    [first, c] >> inner
    last << flat
    _taskflow_dag(b)
    _add_mapped_dag(b)

    # Branching: SkipMixin marks, a retry policy (kept out of Airflow's view), the retry
    # and timeout options the scheduler reads, params with schema keywords.
    policy = ExceptionRetryPolicy(rules=[RetryRule(exception=ConnectionError)])
    branching = b.dag(
        "t_branching",
        default_args={"retry_policy": policy, "retries": 1},
        params={"rows": Param(10, type="integer", minimum=1, maximum=100, title="Rows")},
    )
    pick = branching.task.branch(task_id="pick")(_noop)
    gate = branching.task.short_circuit(task_id="gate", ignore_downstream_trigger_rules=False)(
        _noop
    )
    work = branching.task(
        task_id="work",
        retry_policy=policy,
        execution_timeout=datetime.timedelta(seconds=5),
        retry_exponential_backoff=True,
        max_retry_delay=datetime.timedelta(minutes=10),
        params={"rows": 5, "label": Param("x", maxLength=3)},
    )(_noop)
    pick >> [gate, work]
    gate >> work
    return b


def _taskflow_dag(b: Bundle) -> None:
    """TaskFlow wiring: edges made by calls, a multiple_outputs key, a copy, a task group."""

    @b.dag(
        dag_id="t_taskflow",
        schedule="@daily",
        start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC),
    )
    def taskflow() -> None:
        @task(multiple_outputs=True)
        def extract() -> dict[str, int]:
            return {"rows": 1}

        @task(retries=2)
        def load(rows: Any, note: Any = None) -> None:
            pass

        @task_group
        def checks(value: Any) -> Any:
            @task
            def check(value: Any) -> None:
                pass

            return check(value)

        out = extract()
        load(out["rows"])
        load(rows=[out], note={"n": out["rows"]}) >> checks(out)

    taskflow()


def _add_mapped_dag(b: Bundle) -> None:
    """Dynamic task mapping: literal and XComArg inputs, expand_kwargs, options, a group."""
    mapped = b.dag(
        "t_mapped",
        start_date=datetime.datetime(2026, 1, 1, tzinfo=UTC),
        params={"n": 2},
        default_args={"retries": 2, "owner": "data"},
    )

    @mapped.task
    def source() -> list[int]:
        return [1, 2]

    @mapped.task(
        map_index_template="n={n}",
        trigger_rule="all_done",
        pool="p",
        retry_delay=datetime.timedelta(seconds=30),
        execution_timeout=datetime.timedelta(minutes=5),
        retry_exponential_backoff=True,
        max_active_tis_per_dagrun=2,
        start_date=datetime.datetime(2026, 2, 1, tzinfo=UTC),
        doc_md="each one",
    )
    def each(n: int, scale: int = 1) -> int:
        """Scales one value."""
        return n * scale

    each.partial(scale=3).expand(n=source.output)
    mg = mapped.task_group("mg")

    @mg.task
    def literal(a: int, b: str) -> None:
        pass

    literal.expand(a=[1, 2], b={"x": "1", "y": "2"})

    @mapped.task(map_index_template=lambda **kw: "label")
    def by_kwargs(**kw: Any) -> None:
        pass

    by_kwargs.expand_kwargs([{"a": 1}, {"b": [2, 3]}])

    @mapped.task
    def by_output(a: int = 0) -> None:
        pass

    by_output.expand_kwargs(source.output)

    @mapped.task
    def again(v: int) -> int:
        return v

    again.expand(v=each.output)

    @mapped.task
    def reduce() -> None:
        pass

    each >> reduce
    mg >> reduce


def every_document(
    bundle: Bundle, serialize: Callable[..., dict[str, Any]], fileloc: str, relative: str
) -> dict[str, Any]:
    return {
        d: serialize(dag, fileloc=fileloc, relative_fileloc=relative)
        for d, dag in bundle.dags.items()
    }
