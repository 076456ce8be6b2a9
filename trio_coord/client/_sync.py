"""The blocking twin of :class:`Client`, derived from it rather than written again.

Each attribute of :class:`SyncClient` is a :class:`blocking` descriptor around the
async method of the same name: the signature, the docstring and the result type come
from that method (mypy sees ``Callable[P, R]`` for ``async def m(self, *P) -> R``),
and the call runs it in the Trio thread with ``trio.from_thread.run``. Never call the
supervisor synchronously from the Trio thread: it would block the loop that reads
the reply.

The one line per method is the part mypy needs to know the twin's type; an async
method added to :class:`Client` without its line makes this module fail to import,
so the twin cannot fall behind.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import trio

from ._client import Client

__all__ = ["SyncClient", "blocking"]

P = ParamSpec("P")
R = TypeVar("R")


class blocking(Generic[P, R]):
    """Turn ``async def m(self: Client, ...) -> R`` into ``def m(self: SyncClient, ...) -> R``."""

    def __init__(self, method: Callable[Concatenate[Client, P], Awaitable[R]]) -> None:
        self.method = method
        self.__doc__ = method.__doc__
        sig = inspect.signature(method)
        # What help() and IDEs show for the twin: the method's parameters without self.
        self.signature = sig.replace(parameters=list(sig.parameters.values())[1:])

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.method.__name__:
            raise TypeError(f"{owner.__name__}.{name} wraps {self.method.__name__}")

    @overload
    def __get__(self, obj: None, owner: type) -> blocking[P, R]: ...

    @overload
    def __get__(self, obj: SyncClient, owner: type) -> Callable[P, R]: ...

    def __get__(self, obj: SyncClient | None, owner: type) -> blocking[P, R] | Callable[P, R]:
        if obj is None:
            return self
        method, client = self.method, obj._client

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return trio.from_thread.run(functools.partial(method, client, *args, **kwargs))

        call.__signature__ = self.signature  # type: ignore[attr-defined]
        return call


class SyncClient:
    """The same methods as :class:`Client`, blocking, for tasks in a worker thread."""

    def __init__(self, client: Client) -> None:
        self._client = client

    request = blocking(Client.request)
    # variables
    get_variable = blocking(Client.get_variable)
    get_variable_keys = blocking(Client.get_variable_keys)
    set_variable = blocking(Client.set_variable)
    delete_variable = blocking(Client.delete_variable)
    # connections
    get_connection = blocking(Client.get_connection)
    # XComs
    get_xcom = blocking(Client.get_xcom)
    get_xcom_count = blocking(Client.get_xcom_count)
    get_xcom_item = blocking(Client.get_xcom_item)
    get_xcom_slice = blocking(Client.get_xcom_slice)
    set_xcom = blocking(Client.set_xcom)
    delete_xcom = blocking(Client.delete_xcom)
    # assets
    get_asset = blocking(Client.get_asset)
    get_assets_by_alias = blocking(Client.get_assets_by_alias)
    get_asset_events = blocking(Client.get_asset_events)
    get_asset_alias_events = blocking(Client.get_asset_alias_events)
    validate_inlets_and_outlets = blocking(Client.validate_inlets_and_outlets)
    # DAGs and runs
    get_dag = blocking(Client.get_dag)
    get_dagrun = blocking(Client.get_dagrun)
    get_dagrun_state = blocking(Client.get_dagrun_state)
    get_dr_count = blocking(Client.get_dr_count)
    get_previous_dagrun = blocking(Client.get_previous_dagrun)
    get_prev_successful_dagrun = blocking(Client.get_prev_successful_dagrun)
    trigger_dagrun = blocking(Client.trigger_dagrun)
    # task instances
    get_previous_ti = blocking(Client.get_previous_ti)
    get_first_reschedule_date = blocking(Client.get_first_reschedule_date)
    skip_downstream_tasks = blocking(Client.skip_downstream_tasks)
    get_ti_count = blocking(Client.get_ti_count)
    get_task_states = blocking(Client.get_task_states)
    get_task_breadcrumbs = blocking(Client.get_task_breadcrumbs)
    # state stores
    get_task_state = blocking(Client.get_task_state)
    set_task_state = blocking(Client.set_task_state)
    delete_task_state = blocking(Client.delete_task_state)
    clear_task_state = blocking(Client.clear_task_state)
    get_asset_state = blocking(Client.get_asset_state)
    set_asset_state = blocking(Client.set_asset_state)
    delete_asset_state = blocking(Client.delete_asset_state)
    clear_asset_state = blocking(Client.clear_asset_state)
    # human in the loop
    create_hitl_detail = blocking(Client.create_hitl_detail)
    # rendering and masking
    set_rendered_map_index = blocking(Client.set_rendered_map_index)
    set_rendered_fields = blocking(Client.set_rendered_fields)
    mask_secret = blocking(Client.mask_secret)


def public_methods(cls: type) -> set[str]:
    """The names of ``cls``'s public coroutine methods: the client's API."""
    return {
        name
        for name, value in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def _check_twin(members: dict[str, Any]) -> None:
    missing = public_methods(Client) - {n for n, v in members.items() if isinstance(v, blocking)}
    if missing:
        raise TypeError(f"SyncClient has no blocking twin for {sorted(missing)}")


_check_twin(dict(vars(SyncClient)))
