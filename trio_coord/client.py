"""The task's way to the supervisor: variables, connections, XComs, and any other request.

Two faces, one implementation: :class:`Client` is async and runs in the Trio task
(requests from concurrent callers are pipelined over the one comm channel);
:class:`SyncClient` offers the same methods, blocking, to tasks that run in a worker
thread, by calling back into Trio (``trio.from_thread.run``). Never call the
supervisor synchronously from the Trio thread: it would block the loop that reads
the reply.

Errors are typed: :class:`~trio_coord.errors.NotFound` when the thing does not exist,
:class:`~trio_coord.errors.PermissionDenied` when the API refused,
:class:`~trio_coord.errors.SupervisorError` for anything else the supervisor reported,
:class:`~trio_coord.errors.RequestTimeout` / :class:`~trio_coord.errors.SupervisorGone`
when no answer can come.

Environment fast paths (protocol.md §9.8): ``AIRFLOW_VAR_<KEY>`` and
``AIRFLOW_CONN_<CONN_ID>`` are consulted before the supervisor, as Airflow's own
secrets chain does, and any secret found there is registered with the supervisor's
masker (``MaskSecret``) because the supervisor never saw it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import trio

from .errors import NotFound, RemoteProtocolError
from .protocol.messages import (
    ConnectionResult,
    DeleteVariable,
    DeleteXCom,
    GetConnection,
    GetVariable,
    GetXCom,
    Inbound,
    MaskSecret,
    PutVariable,
    Request,
    SetRenderedMapIndex,
    SetXCom,
    StartupDetails,
    VariableResult,
    XComResult,
)
from .runtime.masking import Masker

__all__ = ["Client", "SyncClient", "Connection", "MISSING"]

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Default of ``default=`` arguments: "raise NotFound rather than return a default".
MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Connection:
    """An Airflow connection, as the task sees it; ``extra`` is parsed from its JSON."""

    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, r: ConnectionResult) -> Connection:
        return cls(
            conn_id=r.conn_id,
            conn_type=r.conn_type,
            host=r.host,
            schema=r.schema,
            login=r.login,
            password=r.password,
            port=r.port,
            extra=_parse_extra(r.extra, r.conn_id),
        )

    def to_result(self) -> ConnectionResult:
        """The wire form the supervisor sends (``extra`` as a JSON string, protocol.md §5.1)."""
        return ConnectionResult(
            conn_id=self.conn_id,
            conn_type=self.conn_type,
            host=self.host,
            schema=self.schema,
            login=self.login,
            password=self.password,
            port=self.port,
            extra=json.dumps(self.extra) if self.extra else None,
        )

    @classmethod
    def from_env_value(cls, conn_id: str, value: str) -> Connection:
        """Parse ``AIRFLOW_CONN_*``: a JSON object when it starts with ``{``, else a URI."""
        if value.lstrip().startswith("{"):
            try:
                data = json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    f"AIRFLOW_CONN_{conn_id.upper()} is not valid JSON: {exc}"
                ) from None
            extra = data.get("extra") or {}
            return cls(
                conn_id=conn_id,
                conn_type=str(data.get("conn_type") or ""),
                host=data.get("host"),
                schema=data.get("schema"),
                login=data.get("login"),
                password=data.get("password"),
                port=int(data["port"]) if data.get("port") is not None else None,
                extra=extra if isinstance(extra, dict) else _parse_extra(str(extra), conn_id),
            )
        parts = urlsplit(value)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if "__extra__" in query:
            extra = _parse_extra(query.pop("__extra__"), conn_id)
        else:
            extra = dict(query)
        return cls(
            conn_id=conn_id,
            conn_type=parts.scheme.replace("-", "_"),
            host=unquote(parts.hostname) if parts.hostname else None,
            schema=unquote(parts.path[1:])
            if parts.path.startswith("/") and len(parts.path) > 1
            else None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=parts.port,
            extra=extra,
        )


def _parse_extra(extra: str | None, conn_id: str) -> dict[str, Any]:
    if not extra:
        return {}
    try:
        value = json.loads(extra)
    except ValueError:
        raise RemoteProtocolError(f"connection {conn_id!r}: extra is not valid JSON") from None
    return value if isinstance(value, dict) else {"__extra__": value}


RequestFn = Callable[[Request], Awaitable[Inbound | None]]


class Client:
    """Async access to the supervisor for one task try.

    Args:
        send: performs one request and returns its reply body (the runtime binds it to
            the comm channel with its timeout).
        details: the try's ``StartupDetails``, for the default dag/run/task ids.
        masker: the log masker; secrets the task obtains are registered with it.
        environ: where the ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` fast paths look.
    """

    def __init__(
        self,
        send: RequestFn,
        details: StartupDetails,
        masker: Masker,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._send = send
        self._details = details
        self._masker = masker
        self._environ = environ
        self.requests_made = 0
        # Secrets the supervisor registered itself (a connection's password and extra, a
        # variable it served); the runtime never needs to tell it of those.
        self._told: set[str] = set()
        #: The label set with :meth:`set_rendered_map_index`; repeated in the terminal
        #: message, which would otherwise overwrite it with null (protocol.md §6.3).
        self.rendered_map_index: str | None = None

    async def request(self, msg: Request) -> Inbound | None:
        """Send any request of the protocol and return its reply body (None when empty)."""
        self.requests_made += 1
        if isinstance(msg, SetRenderedMapIndex) and msg.rendered_map_index is not None:
            # A label is shown in the UI and stored by the API server: no secret in it.
            msg = dataclasses.replace(
                msg, rendered_map_index=self._masker.mask(msg.rendered_map_index)
            )
        reply = await self._send(msg)
        if isinstance(msg, SetRenderedMapIndex):
            self.rendered_map_index = msg.rendered_map_index
        return reply

    async def set_rendered_map_index(self, label: str) -> None:
        """Show ``label`` instead of the map index in the UI (kept through the terminal message)."""
        await self.request(SetRenderedMapIndex(rendered_map_index=label))

    # -- variables -------------------------------------------------------------------------

    async def get_variable(
        self, key: str, default: Any = MISSING, *, deserialize_json: bool = False
    ) -> Any:
        """The variable's value; ``default`` (if given) when it does not exist.

        Raises:
            NotFound: no such variable and no default.
            PermissionDenied: the API refused access (never treated as not found).
        """
        env = self._environ.get(f"AIRFLOW_VAR_{key.upper()}")
        if env is not None:
            # The supervisor never saw this value, so it cannot mask it unless told.
            await self._register(env, key, told=False)
            return await self._deserialize(key, env) if deserialize_json else env
        try:
            reply = await self.request(GetVariable(key=key))
        except NotFound:
            if default is MISSING:
                raise
            return default
        value = cast(VariableResult, reply).value
        if value is not None:
            # The supervisor registered the raw value under its key already (it applies
            # the same name rule); register it here too, for lines it cannot mask.
            await self._register(value, key, told=True)
        if deserialize_json and value is not None:
            return await self._deserialize(key, value)
        return value

    async def _deserialize(self, key: str, raw: str) -> Any:
        """Parse a JSON variable; secrets under sensitive keys inside it are registered.

        The supervisor only registered the raw text, under the variable's key: a value
        under ``"password"`` nested inside it is unknown to it until told.
        """
        value = json.loads(raw)
        # A map's values count by their own keys; a string or a list by the variable's.
        await self._register(value, None if isinstance(value, dict) else key, told=False)
        return value

    async def set_variable(self, key: str, value: Any, *, description: str | None = None) -> None:
        """Create or replace a variable; non-string values are stored as JSON."""
        text = value if isinstance(value, str) or value is None else json.dumps(value)
        await self.request(PutVariable(key=key, value=text, description=description))

    async def delete_variable(self, key: str) -> None:
        """Delete a variable (deleting one that does not exist is not an error)."""
        await self.request(DeleteVariable(key=key))

    # -- connections -------------------------------------------------------------------------

    async def get_connection(self, conn_id: str) -> Connection:
        """The connection, from ``AIRFLOW_CONN_<ID>`` or the supervisor.

        Raises:
            NotFound: no such connection.
            PermissionDenied: the API refused access.
        """
        env = self._environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if env is not None:
            conn = Connection.from_env_value(conn_id, env)
            # The whole value (a URI holds the password) and each secret in it: the
            # supervisor never saw any of them.
            await self._register(env, None, told=False)
            await self._register_connection(conn, told=False)
            return conn
        reply = cast(ConnectionResult, await self.request(GetConnection(conn_id=conn_id)))
        conn = Connection.from_result(reply)
        # The supervisor registered the password and the extra text whole; it does not
        # know the values inside extra, which a task may log one by one.
        if reply.extra:
            await self._register(reply.extra, None, told=True)
        await self._register_connection(conn, told=True)
        return conn

    async def _register_connection(self, conn: Connection, *, told: bool) -> None:
        if conn.password:
            await self._register(conn.password, None, told=told)
        if conn.extra:
            # Walked by key, as the native runner's extra_dejson does: only values under
            # sensitive keys (token, api_key, password, ...) are secrets. An extra that is
            # JSON but not an object has no keys: all of its strings are, as there.
            extra: Any = conn.extra
            if set(extra) == {"__extra__"}:
                extra = extra["__extra__"]
            await self._register(extra, None, told=False)

    # -- XComs ------------------------------------------------------------------------------

    async def get_xcom(
        self,
        key: str = "return_value",
        *,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        include_prior_dates: bool = False,
        default: Any = None,
    ) -> Any:
        """An XCom value (of this task unless ``task_id`` says otherwise), or ``default``."""
        ti = self._details.ti
        reply = await self.request(
            GetXCom(
                key=key,
                dag_id=dag_id or ti.dag_id,
                run_id=run_id or ti.run_id,
                task_id=task_id or ti.task_id,
                map_index=map_index,
                include_prior_dates=include_prior_dates,
            )
        )
        value = cast(XComResult, reply).value
        return default if value is None else value

    async def set_xcom(self, key: str, value: Any) -> None:
        """Push an XCom for this task try; the value must be JSON-compatible."""
        ti = self._details.ti
        await self.request(
            SetXCom(
                key=key,
                value=value,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=_own_map_index(ti.map_index),
            )
        )

    async def delete_xcom(self, key: str) -> None:
        """Delete one of this task try's XComs."""
        ti = self._details.ti
        await self.request(
            DeleteXCom(
                key=key,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=_own_map_index(ti.map_index),
            )
        )

    # -- masking --------------------------------------------------------------------------

    async def mask_secret(self, value: Any, name: str | None = None) -> None:
        """Hide ``value`` in every task log line, here and in the supervisor."""
        self._masker.add(value, name)
        await self.request(MaskSecret(value=value, name=name))

    async def _register(self, value: Any, name: str | None, *, told: bool) -> None:
        """Register the secrets in ``value`` locally, and with the supervisor unless ``told``.

        Local first, so that nothing the task logs after the value is returned can miss
        it. Each secret the supervisor has not been told of goes in a ``MaskSecret`` of
        its own, without a name: the name rule was applied here, and the supervisor's
        configuration of sensitive names may not be the one this process sees.
        """
        found = self._masker.add(value, name)
        if told:
            self._told.update(found)
            return
        # Told again on every read, as Airflow's own runner does, so each read is
        # followed by its MaskSecret whatever came before it.
        for secret in dict.fromkeys(found):
            if secret not in self._told:
                await self.request(MaskSecret(value=secret, name=None))


def _own_map_index(map_index: int | None) -> int | None:
    # §9.2: an unmapped task omits map_index (the API then uses -1).
    return None if map_index is None or map_index < 0 else map_index


class SyncClient:
    """The same methods as :class:`Client`, blocking, for tasks in a worker thread."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        async def call() -> T:
            return await fn(*args, **kwargs)

        return trio.from_thread.run(call)

    def request(self, msg: Request) -> Inbound | None:
        return self._call(self._client.request, msg)

    def get_variable(
        self, key: str, default: Any = MISSING, *, deserialize_json: bool = False
    ) -> Any:
        return self._call(
            self._client.get_variable, key, default, deserialize_json=deserialize_json
        )

    def set_variable(self, key: str, value: Any, *, description: str | None = None) -> None:
        return self._call(self._client.set_variable, key, value, description=description)

    def delete_variable(self, key: str) -> None:
        return self._call(self._client.delete_variable, key)

    def get_connection(self, conn_id: str) -> Connection:
        return self._call(self._client.get_connection, conn_id)

    def get_xcom(self, key: str = "return_value", **kwargs: Any) -> Any:
        return self._call(self._client.get_xcom, key, **kwargs)

    def set_xcom(self, key: str, value: Any) -> None:
        return self._call(self._client.set_xcom, key, value)

    def delete_xcom(self, key: str) -> None:
        return self._call(self._client.delete_xcom, key)

    def mask_secret(self, value: Any, name: str | None = None) -> None:
        return self._call(self._client.mask_secret, value, name)

    def set_rendered_map_index(self, label: str) -> None:
        return self._call(self._client.set_rendered_map_index, label)
