"""Mapped tasks on the export route: ``@task.stub`` expanded the way the bundle declares it.

The DAG processor must see a real ``MappedOperator`` with the same expand keys, partial
arguments and upstream outputs, so the scheduler expands it into instances; each instance
then runs in the bundle (:mod:`trio_coord.runtime.mapping`). The stub's placeholder takes
``**kwargs``, so every argument name the bundle's function accepts is accepted by Airflow
too (``@task.stub`` requires an empty body, so no other signature can be written out).
Like :mod:`trio_coord.airflow`, this module never imports trio, and Airflow only through
the ``stub`` decorator it is handed.
"""

from __future__ import annotations

from typing import Any

from .authoring import Task, XComArg
from .authoring.mapping import DICT_OF_LISTS

__all__ = ["expand_stub"]


def _trio_coord_mapped_task(**kwargs: Any) -> None:
    # Runs in a trio-coord bundle, one instance per map index; never executed here. No
    # docstring and an empty body, as @task.stub requires.
    pass


def _as_airflow(value: Any, nodes: dict[tuple[str, str | None], Any]) -> Any:
    """A literal as is; an XComArg as the output of the upstream's (already built) stub."""
    if isinstance(value, XComArg):
        return nodes[("task", value.task.task_id)]  # the stub's call result: its output
    return value


def expand_stub(
    stub: Any, task: Task, options: dict[str, Any], nodes: dict[tuple[str, str | None], Any]
) -> Any:
    """Build the mapped stub of ``task`` (``options`` are its operator arguments) and
    return the operator; ``nodes`` holds the stubs built so far, by ``("task", id)``."""
    mapping = task.mapping
    if mapping is None:
        raise ValueError(f"task {task.task_id!r} is not mapped")
    partial = stub(_trio_coord_mapped_task, **options).partial(**mapping.partial)
    if mapping.kind == DICT_OF_LISTS:
        inputs = {name: _as_airflow(v, nodes) for name, v in mapping.expand.items()}
        output = partial.expand(**inputs)
    else:
        output = partial.expand_kwargs(_as_airflow(mapping.kwargs, nodes))
    return output
