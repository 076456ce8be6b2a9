"""Connections: ``get_connection``, from ``AIRFLOW_CONN_<ID>`` or the supervisor.

The environment fast path is Airflow's own secrets chain order (protocol.md §9.8). A
connection's password and every secret inside its ``extra`` are registered with the
log masker, and with the supervisor's whenever it never saw them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import RemoteProtocolError
from ..protocol.messages import ConnectionResult, GetConnection
from ._core import ClientCore

__all__ = ["Connection", "ConnectionsMixin"]


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


class ConnectionsMixin(ClientCore):
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
        reply = await self._ask(GetConnection(conn_id=conn_id), ConnectionResult)
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
