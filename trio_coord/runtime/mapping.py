"""A mapped try's arguments, its label, and the values mapping reads and writes.

Airflow's scheduler expands a mapped task into instances ``0..N-1``; the instance's
runtime then works out which element is its own, the way ``DictOfListsExpandInput`` and
``ListOfDictsExpandInput`` do in ``airflow.sdk``:

* a literal list or dict is indexed locally (a dict's element is its ``(key, value)``
  pair); several ``expand`` inputs form a cartesian product whose *last* input varies
  fastest (map index ``i`` is read as a mixed-radix number, last input lowest);
* an unmapped upstream's output is pulled whole (``GetXCom``) and indexed locally;
* a *mapped* upstream's output is a lazy sequence: its length is ``GetXComCount`` and
  an element ``GetXComSequenceItem`` -- one value, never the whole list.

On the other side, a task whose output some mapped task expands over must return a list
or dict, and pushes it with ``mapped_length`` so the scheduler knows N
(:func:`mapped_length`). A task taking a mapped task's whole output receives a
:class:`LazyXComSequence` (sync tasks) or :class:`AsyncXComSequence` (async tasks)
(:func:`resolve_output`).

The label: Airflow renders ``map_index_template`` with Jinja; trio-coord has no Jinja and
takes a ``str.format`` template over the instance's arguments, or a function called with
them (:func:`render_map_index`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from ..authoring import Task, XComArg
from ..authoring.mapping import DICT_OF_LISTS, has_mapped_dependants, instance_count
from ..client import Client, SyncClient
from ..context import TaskContext
from ..errors import NotFound, SupervisorError
from ..protocol.messages import (
    AwaitInputTask,
    DeferTask,
    Request,
    RetryTask,
    SucceedTask,
    TaskState,
)

__all__ = [
    "AsyncXComSequence",
    "LazyXComSequence",
    "MappingError",
    "MappedTry",
    "mapped_length",
    "render_map_index",
    "resolve_output",
]

log = logging.getLogger("trio_coord.runtime")


class MappingError(Exception):
    """A mapped try cannot get its arguments or label, or a mapped upstream's contract is
    broken; the try fails the way Airflow's runner fails it (a retryable failure)."""


# -- the values a mapped task's downstream reads -----------------------------------------


class LazyXComSequence(Sequence[Any]):
    """A mapped task's values in map index order, fetched one by one when read.

    ``len(seq)``, ``seq[i]``, ``seq[a:b]`` and iteration, as Airflow's lazy sequence: for
    sync tasks (it blocks on the supervisor, so only from the task's worker thread).
    """

    def __init__(self, client: SyncClient, task_id: str, key: str = "return_value") -> None:
        self._client = client
        self._task_id = task_id
        self._key = key
        self._len: int | None = None

    def __len__(self) -> int:
        if self._len is None:
            self._len = self._client.get_xcom_count(self._key, task_id=self._task_id)
        return self._len

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            if index.step == 0:
                raise ValueError("slice step cannot be zero")
            return self._client.get_xcom_slice(
                self._key,
                task_id=self._task_id,
                start=index.start,
                stop=index.stop,
                step=index.step,
            )
        if not isinstance(index, int):
            raise TypeError(f"indices must be integers or slices, not {type(index).__name__}")
        try:
            return self._client.get_xcom_item(index, self._key, task_id=self._task_id)
        except NotFound:
            raise IndexError(index) from None

    def __iter__(self) -> Iterator[Any]:
        # One GetXComSequenceItem per element until there is none, as Airflow iterates.
        i = 0
        while True:
            try:
                yield self[i]
            except IndexError:
                return
            i += 1

    def __repr__(self) -> str:
        size = "?" if self._len is None else str(self._len)
        return f"LazyXComSequence({self._task_id}.{self._key}, {size} items)"


class AsyncXComSequence:
    """The same values for async tasks: ``await seq.len()``, ``await seq.get(i)``,
    ``await seq.slice(a, b)`` and ``async for value in seq``."""

    def __init__(self, client: Client, task_id: str, key: str = "return_value") -> None:
        self._client = client
        self._task_id = task_id
        self._key = key
        self._len: int | None = None

    async def len(self) -> int:
        if self._len is None:
            self._len = await self._client.get_xcom_count(self._key, task_id=self._task_id)
        return self._len

    async def get(self, index: int) -> Any:
        """The value of map index ``index`` (negative counts from the end).

        Raises:
            IndexError: no instance pushed a value there.
        """
        try:
            return await self._client.get_xcom_item(index, self._key, task_id=self._task_id)
        except NotFound:
            raise IndexError(index) from None

    async def slice(
        self, start: int | None = None, stop: int | None = None, step: int | None = None
    ) -> list[Any]:
        if step == 0:
            raise ValueError("slice step cannot be zero")
        return await self._client.get_xcom_slice(
            self._key, task_id=self._task_id, start=start, stop=stop, step=step
        )

    async def list(self) -> list[Any]:
        """Every value (one request)."""
        return await self.slice()

    async def __aiter__(self) -> AsyncIterator[Any]:
        i = 0
        while True:
            try:
                value = await self.get(i)
            except IndexError:
                return
            yield value
            i += 1

    def __repr__(self) -> str:
        size = "?" if self._len is None else str(self._len)
        return f"AsyncXComSequence({self._task_id}.{self._key}, {size} items)"


async def resolve_output(arg: XComArg, client: Client, *, is_async: bool) -> Any:
    """The value an ``XComArg`` argument stands for when a task runs.

    A mapped task's output is a lazy sequence (async form for async tasks); any other
    output is pulled whole, unmapped, as Airflow's ``XComArg.resolve`` does. The TaskFlow
    argument binding calls this for every ``XComArg`` argument.
    """
    if arg.task.is_mapped:
        if is_async:
            return AsyncXComSequence(client, arg.task.task_id, arg.key)
        return LazyXComSequence(SyncClient(client), arg.task.task_id, arg.key)
    return await client.get_xcom(arg.key, task_id=arg.task.task_id, map_index=None)


# -- the upstream side: what a task expanded over must push ------------------------------


def mapped_length(task: Task, value: Any) -> int | None:
    """The ``mapped_length`` of ``task``'s return value, or None when nothing maps over it.

    Raises:
        MappingError: a mapped task expands over this task's output and the value is
            None (Airflow's "did not push XCom for task mapping") or not a list or dict
            ("unmappable return type").
    """
    if task.is_mapped or not has_mapped_dependants(task):
        return None
    if value is None or task.option("do_xcom_push") is False:
        raise MappingError(
            "did not push XCom for task mapping: a mapped task expands over this task's "
            "output, so it must return a list or a dict"
        )
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, list | tuple | dict):
        raise MappingError(
            f"unmappable return type {type(value).__qualname__!r}: a mapped task expands "
            f"over this task's output, so it must return a list or a dict"
        )
    return len(value)


# -- the mapped try itself ----------------------------------------------------------------


class _Input:
    """One expand input as this try sees it: its length and a way to get element i
    (None for a mapped upstream, whose element is one more request)."""

    def __init__(self, length: int, get: Callable[[int], Any] | None = None) -> None:
        self.length = length
        self.get = get


def element_indexes(lengths: Sequence[int], map_index: int) -> list[int]:
    """The index into each ``expand`` input for ``map_index``: the last input varies fastest.

    Raises:
        MappingError: an input is empty, or ``map_index`` is past the product's end.
    """
    out = [0] * len(lengths)
    rest = map_index
    for pos in reversed(range(len(lengths))):
        if lengths[pos] < 1:
            raise MappingError(f"cannot expand over an input of length {lengths[pos]}")
        out[pos] = rest % lengths[pos]
        rest //= lengths[pos]
    if rest:
        total = instance_count(lengths)
        raise MappingError(f"map index {map_index} is past the {total} mapped instances")
    return out


def _upstream_missing(arg: XComArg) -> MappingError:
    up = arg.task.task_id
    return MappingError(
        f"upstream {up!r} has no XCom {arg.key!r} in this run to map over (with "
        f"`trio-coord run`, give it as --xcom {up}='[...]')"
    )


async def _from_mapped(arg: XComArg, client: Client, index: int | None) -> Any:
    """The count (``index`` None) or one value of a mapped upstream's output.

    Raises:
        MappingError: the supervisor cannot say (``trio-coord run`` serves no mapped
            task's values) or has no value at ``index``.
    """
    up = arg.task.task_id
    try:
        if index is None:
            count = await client.get_xcom_count(arg.key, task_id=up)
            if count < 1:
                # Airflow would not start this instance; say where the values were expected.
                raise MappingError(
                    f"mapped upstream {up!r} has no values in this run to map over (`trio-coord "
                    f"run` of one task cannot be given them: run the whole DAG instead)"
                )
            return count
        return await client.get_xcom_item(index, arg.key, task_id=up)
    except NotFound:
        raise MappingError(f"mapped upstream {up!r} has no value at index {index}") from None
    except SupervisorError as exc:
        raise MappingError(f"cannot read the values of mapped upstream {up!r}: {exc}") from exc


async def _dict_of_lists(task: Task, client: Client, map_index: int) -> dict[str, Any]:
    mapping = task.mapping
    if mapping is None:
        raise MappingError(f"task {task.task_id!r} is not mapped")
    names = list(mapping.expand)
    inputs: list[_Input] = []
    pending: dict[int, XComArg] = {}
    for pos, name in enumerate(names):
        value = mapping.expand[name]
        if isinstance(value, XComArg):
            if value.task.is_mapped:
                inputs.append(_Input(await _from_mapped(value, client, None)))
                pending[pos] = value
                continue
            value = await client.get_xcom(value.key, task_id=value.task.task_id, map_index=None)
            if value is None:
                raise _upstream_missing(mapping.expand[name])
        inputs.append(_literal_input(name, value))
    indexes = element_indexes([i.length for i in inputs], map_index)
    out: dict[str, Any] = {}
    for pos, name in enumerate(names):
        get = inputs[pos].get
        if get is None:
            out[name] = await _from_mapped(pending[pos], client, indexes[pos])
        else:
            out[name] = get(indexes[pos])
    return out


def _literal_input(name: str, value: Any) -> _Input:
    if isinstance(value, list | tuple):
        seq = value
        return _Input(len(seq), lambda i: seq[i])
    if isinstance(value, dict):
        pairs = list(value.items())
        return _Input(len(pairs), lambda i: pairs[i])
    raise MappingError(
        f"can't map argument {name!r} over a value of type {type(value).__name__}: "
        f"expected a list or a dict"
    )


async def _list_of_dicts(task: Task, client: Client, map_index: int) -> dict[str, Any]:
    mapping = task.mapping
    if mapping is None:
        raise MappingError(f"task {task.task_id!r} is not mapped")
    source = mapping.kwargs
    item: Any
    if isinstance(source, XComArg):
        if source.task.is_mapped:
            item = await _from_mapped(source, client, map_index)
        else:
            whole = await client.get_xcom(source.key, task_id=source.task.task_id, map_index=None)
            if whole is None:
                raise _upstream_missing(source)
            if not isinstance(whole, list):
                raise MappingError(
                    f"expand_kwargs() expects a list[dict], not {type(whole).__name__}"
                )
            if map_index >= len(whole):
                raise MappingError(f"map index {map_index} is past the {len(whole)} instances")
            item = whole[map_index]
    else:
        dicts = source or []
        if map_index >= len(dicts):
            raise MappingError(f"map index {map_index} is past the {len(dicts)} instances")
        item = dicts[map_index]
    if not isinstance(item, dict):
        raise MappingError(f"expand_kwargs() expects a list[dict], not list[{type(item).__name__}]")
    for key in item:
        if not isinstance(key, str):
            raise MappingError(f"expand_kwargs() input dict keys must all be str, got {key!r}")
    clash = [k for k in item if k in mapping.partial]
    if clash:
        raise MappingError(f"mapping already partial: argument {clash[0]!r}")
    return dict(item)


def render_map_index(template: Any, arguments: dict[str, Any]) -> str | None:
    """The instance's label: ``template.format(**arguments)`` or ``template(**arguments)``.

    Raises:
        MappingError: the template names an argument the instance does not have, or the
            function raised; an empty label is None (the API refuses an empty one).
    """
    try:
        render = template if callable(template) else str(template).format
        label = render(**arguments)
    except Exception as exc:
        raise MappingError(
            f"map_index_template failed: {type(exc).__name__}: {exc} "
            f"(the arguments are: {', '.join(arguments) or 'none'})"
        ) from exc
    if label is None:
        return None
    text = str(label)
    return text or None


def _with_defaults(task: Task, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the function sees them: its defaults fill what was not given."""
    defaults = {
        p.name: p.default
        for p in inspect.signature(task.fn).parameters.values()
        if p.default is not p.empty and p.name not in task.inject
    }
    return {**defaults, **arguments}


#: The terminal messages that carry a ``rendered_map_index`` (protocol.md §5.7).
_LABELLED = (SucceedTask, TaskState, RetryTask, DeferTask, AwaitInputTask)


@dataclass
class MappedTry:
    """What this try's mapping gave it: its mapped arguments and its label.

    The task runner makes one per try and calls :meth:`resolve` before the body; the
    label then goes on every terminal message (protocol.md §6.3).
    """

    arguments: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    async def resolve(self, task: Task, ctx: TaskContext, client: Client) -> dict[str, Any]:
        """The keyword arguments this try adds to the call (``{}`` for an unmapped try).

        Raises:
            MappingError: the element cannot be read or the label cannot be rendered.
        """
        mapping = task.mapping
        if mapping is None:
            return {}
        if ctx.map_index < 0:
            raise MappingError(
                f"task {task.task_id!r} is mapped, but this try has no map index: only "
                f"expanded instances run (with `trio-coord run`, pass --map-index N)"
            )
        if mapping.kind == DICT_OF_LISTS:
            mapped = await _dict_of_lists(task, client, ctx.map_index)
        else:
            mapped = await _list_of_dicts(task, client, ctx.map_index)
        self.arguments = {**mapping.partial, **mapped}
        template = task.option("map_index_template")
        if template is not None:
            self.label = render_map_index(template, _with_defaults(task, self.arguments))
            if self.label is not None:
                # As Airflow's runner does: the label shows while the try runs.
                await client.set_rendered_map_index(self.label)
        return self.arguments

    def labelled(self, terminal: Request) -> Request:
        """``terminal`` carrying the label, for the messages with a ``rendered_map_index``."""
        if self.label is None or not isinstance(terminal, _LABELLED):
            return terminal
        return dataclasses.replace(terminal, rendered_map_index=self.label)
