"""The authoring package: Airflow's option names, refused mistakes, task groups and their edges."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

import trio_coord
from trio_coord import Bundle
from trio_coord.authoring import TASK_OPTIONS, TRIGGER_RULES, Param, TaskGroup
from trio_coord.errors import UsageError


def _noop() -> None:
    pass


def _raises(message: str) -> Any:
    return pytest.raises(UsageError, match=re.escape(message))


def test_old_public_names_still_import() -> None:
    """The package keeps today's names: trio_coord.Bundle/Dag/Task and trio_coord.authoring's."""
    from trio_coord.authoring import INJECTABLE, TRIO_COORD_QUEUE, Dag, FailTask, SkipTask, Task

    assert trio_coord.Bundle is Bundle and trio_coord.Dag is Dag and trio_coord.Task is Task
    assert INJECTABLE and TRIO_COORD_QUEUE == "trio-coord" and FailTask and SkipTask


def test_unknown_task_keyword_names_the_closest_and_the_accepted_ones() -> None:
    """A misspelt task option fails with a did-you-mean and the list of accepted keywords."""
    with _raises("unknown keyword 'trigger_rul' (did you mean 'trigger_rule'?); accepted: "):
        Bundle("b").dag("d").task(task_id="t", trigger_rul="all_done")(_noop)


def test_unknown_dag_keyword_and_default_args_key() -> None:
    """A misspelt DAG keyword or default_args key fails the same way."""
    with _raises("unknown keyword 'max_active_task' (did you mean 'max_active_tasks'?)"):
        Bundle("b").dag("d", max_active_task=3)
    with _raises("default_args: unknown keyword 'retires' (did you mean 'retries'?)"):
        Bundle("b").dag("d", default_args={"retires": 2})
    with _raises("default_args: unknown keyword 'start_date'"):
        Bundle("b").dag(
            "d", default_args={"start_date": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dagrun_timeout": datetime.timedelta(0)}, "dagrun_timeout must be a positive"),
        ({"max_active_tasks": 0}, "max_active_tasks must be a positive integer"),
        ({"max_consecutive_failed_dag_runs": -1}, "must be a non-negative integer"),
        ({"catchup": "yes"}, "catchup must be True or False"),
        ({"is_paused_upon_creation": 1}, "is_paused_upon_creation must be True or False"),
        ({"end_date": datetime.datetime(2026, 1, 1)}, "end_date must be a timezone-aware"),
        ({"tags": ["ok", ""]}, "each tag must be a string of 1-100 characters"),
        (
            {"retries": 1, "default_args": {"retries": 2}},
            "retries is given both as a keyword and in default_args",
        ),
        ({"params": {"p": object()}}, "param 'p' must be JSON data"),
        ({"schedule": "0 3 * * * * *"}, "is not a cron expression"),
    ],
)
def test_bad_dag_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """Each DAG option is checked when the DAG is declared, with a message naming it."""
    with _raises(message):
        Bundle("b").dag("d", **kwargs)


def test_one_validator_for_task_and_default_args_values() -> None:
    """A bad value fails with the same words whether written on a task or in default_args."""
    with _raises("d.t: retries must be a non-negative integer, got -1"):
        Bundle("b").dag("d").task(task_id="t", retries=-1)(_noop)
    with _raises("default_args: retries must be a non-negative integer, got -1"):
        Bundle("b").dag("d", default_args={"retries": -1})


def test_every_trigger_rule_of_airflow_is_accepted() -> None:
    """All thirteen Airflow trigger rules can be declared."""
    dag = Bundle("b").dag("d")
    for rule in TRIGGER_RULES:
        dag.task(task_id=rule, trigger_rule=rule)(_noop)
    assert len(dag.tasks) == 13


def test_options_resolve_task_then_default_args_then_dag_shortcuts() -> None:
    """Task.option: the task's own value, else default_args, else the DAG's retries/queue shortcut."""
    dag = Bundle("b").dag("d", default_args={"pool": "p", "owner": "o"}, queue="q")
    t = dag.task(task_id="t", owner="mine", retry_exponential_backoff=True)(_noop)
    assert (t.option("owner"), t.option("pool"), t.option("queue"), t.option("retries")) == (
        "mine",
        "p",
        "q",
        0,
    )
    assert t.option("retry_exponential_backoff") == 2.0
    assert t.option("executor") is None
    assert set(TASK_OPTIONS) >= {
        "execution_timeout",
        "max_active_tis_per_dagrun",
        "map_index_template",
    }


def test_params_accept_values_and_param_objects() -> None:
    """params= takes plain defaults and Param(default, description, **schema)."""
    dag = Bundle("b").dag(
        "d", params={"n": 3, "mode": Param("a", description="m", enum=["a", "b"])}
    )
    assert dag.params["n"] == Param(3)
    assert dag.params["mode"].schema == {"enum": ["a", "b"]}


def test_group_ids_prefix_and_share_one_namespace() -> None:
    """Tasks in groups get dotted ids unless prefix_group_id=False; ids are unique across tasks and groups."""
    dag = Bundle("b").dag("d")
    g = dag.task_group("g")
    inner = g.task_group("inner")
    flat = g.task_group("flat", prefix_group_id=False)
    assert inner.task(task_id="x")(_noop).task_id == "g.inner.x"
    assert flat.task(task_id="y")(_noop).task_id == "y"
    assert flat.task_group("sub").group_id == "sub"
    with _raises("task id 'g.inner.x' is declared twice"):
        inner.task(task_id="x")(_noop)
    with _raises("task group id 'g' is declared twice"):
        dag.task_group("g")
    with _raises("prefix_group_id must be True or False"):
        dag.task_group("h", prefix_group_id="no")  # type: ignore[arg-type]


def test_group_edges_use_roots_and_leaves_at_the_moment_of_the_edge() -> None:
    """t >> group reaches the group's current roots; a later inner edge does not rewire it."""
    dag = Bundle("b").dag("d")
    start = dag.task(task_id="start")(_noop)
    g = dag.task_group("g")
    a = g.task(task_id="a")(_noop)
    b = g.task(task_id="b")(_noop)
    start >> g
    a >> b
    assert a.upstream == ["start"] and b.upstream == ["start", "g.a"]
    assert g.upstream_task_ids == {"start"}


def test_an_empty_group_stands_for_its_parent() -> None:
    """An edge out of an empty group leaves from the parent group's leaves."""
    dag = Bundle("b").dag("d")
    outer = dag.task_group("outer")
    t = outer.task(task_id="t")(_noop)
    spare = outer.task_group("spare")
    load = dag.task(task_id="load")(_noop)
    spare >> load
    assert load.upstream == [t.task_id]
    assert spare.downstream_task_ids == {"load"}


def test_lists_and_left_shift_follow_airflow() -> None:
    """[a, b] >> group and group << task record the group's upstream ids; edges reach its roots."""
    dag = Bundle("b").dag("d")
    a = dag.task(task_id="a")(_noop)
    b = dag.task(task_id="b")(_noop)
    g: TaskGroup = dag.task_group("g")
    r = g.task(task_id="r")(_noop)
    [a, b] >> g
    assert r.upstream == ["a", "b"] and g.upstream_task_ids == {"a", "b"}
    c = dag.task(task_id="c")(_noop)
    c << g
    assert c.upstream == ["g.r"] and g.downstream_task_ids == {"c"}


def test_edges_across_dags_and_to_non_tasks_are_refused() -> None:
    """Wiring two DAGs together, or wiring a non-task, is a UsageError."""
    bundle = Bundle("b")
    x = bundle.dag("one").task(task_id="x")(_noop)
    y = bundle.dag("two").task(task_id="y")(_noop)
    with _raises("belong to different DAGs"):
        x >> y
    with _raises("only tasks and task groups can be wired"):
        x >> "y"  # type: ignore[operator]
