"""The native document lists tasks in the order Airflow's DAG gets them; a mapped task's
fingerprint (and ``trio-coord dags`` listing) shows its own queue."""

from __future__ import annotations

import trio_coord
from trio_coord.dagparse.dag import dag_fingerprint, serialize_dag


def test_a_mapped_task_takes_its_place_at_expand() -> None:
    """A task decorated first but expanded last comes last, as Airflow (and the export route) create it at expand()."""
    bundle = trio_coord.Bundle("order")
    dag = bundle.dag("o")

    @dag.task
    def early(x: int) -> int:
        return x

    @dag.task
    def middle() -> None:
        return None

    @dag.task
    def late() -> None:
        return None

    early.expand(x=[1, 2])
    document = serialize_dag(dag, fileloc="/o.py", relative_fileloc="o.py")
    ids = [t["__var"]["task_id"] for t in document["dag"]["tasks"]]
    assert ids == ["middle", "late", "early"]


def test_a_mapped_tasks_queue_is_read_from_its_partial_kwargs() -> None:
    """The queue of a mapped task lives in partial_kwargs: the fingerprint reads it there, not 'default'."""
    bundle = trio_coord.Bundle("q")
    dag = bundle.dag("q")

    @dag.task(queue="special")
    def each(x: int) -> int:
        return x

    @dag.task
    def plain() -> None:
        return None

    each.expand(x=[1])
    fp = dag_fingerprint(serialize_dag(dag, fileloc="/q.py", relative_fileloc="q.py"))
    assert fp["tasks"]["each"]["queue"] == "special"
    assert fp["tasks"]["plain"]["queue"] == "trio-coord"
