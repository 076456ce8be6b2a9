"""References to another task's output (Airflow's ``XComArg``), for TaskFlow data passing.

``a.output`` (and, inside a DAG, the value a task call returns) stands for the XCom that
task ``a`` will push; passed as an argument to another task, or to ``expand``, it wires the
dependency when the DAG is declared and is replaced by the pulled value when the task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .tasks import Wirable

if TYPE_CHECKING:
    from .edges import Nodes
    from .tasks import Task

__all__ = ["RETURN_VALUE", "XComArg"]

#: The key a task's return value is pushed under.
RETURN_VALUE: Final = "return_value"


class XComArg(Wirable):
    """The XCom ``key`` of ``task`` (its return value unless a key is chosen)."""

    __slots__ = ("key", "task")

    def __init__(self, task: Task, key: str = RETURN_VALUE) -> None:
        self.task = task
        self.key = key

    def __getitem__(self, key: str) -> XComArg:
        """``a()["total"]``: one of the values a ``multiple_outputs`` task pushes."""
        from ..errors import UsageError

        if self.key != RETURN_VALUE:
            raise UsageError(f"{self!r}[{key!r}]: only a task's return value can be indexed")
        if not isinstance(key, str):
            raise UsageError(f"{self!r}[{key!r}]: XCom keys are strings")
        return XComArg(self.task, key)

    def __iter__(self) -> Any:
        """Not iterable (as in Airflow): ``for x in a()`` or ``*a()`` in a DAG is a mistake."""
        from ..errors import UsageError

        raise UsageError(
            f"{self!r} is a reference to a value a task will push, not the value: it cannot be "
            "iterated while the DAG is declared (pass it to a task, which receives the value)"
        )

    def __rshift__(self, other: Nodes) -> Nodes:
        return self.task.__rshift__(other)

    def __lshift__(self, other: Nodes) -> Nodes:
        return self.task.__lshift__(other)

    def __rrshift__(self, other: Nodes) -> Any:
        return self.task.__rrshift__(other)

    def __rlshift__(self, other: Nodes) -> Any:
        return self.task.__rlshift__(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XComArg) and (other.task, other.key) == (self.task, self.key)

    def __hash__(self) -> int:
        return hash((id(self.task), self.key))

    def __repr__(self) -> str:
        return f"XComArg({self.task.dag.dag_id}.{self.task.task_id}, {self.key!r})"
