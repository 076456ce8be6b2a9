"""From an Airflow connection to the keyword arguments an fsspec filesystem takes.

Pure: no fsspec, no I/O. Each protocol reads the connection fields the matching Airflow
provider reads, so one connection serves an Airflow task and a trio-coord task alike.
A protocol missing here cannot use a connection: guessing which field is a secret for
an unknown backend could send a password where a host belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..errors import UsageError

if TYPE_CHECKING:  # the client needs trio; a bundle importing this for the DAG processor does not
    from ..client.connections import Connection

__all__ = ["CONNECTION_PROTOCOLS", "storage_options"]


def _none(conn: Connection) -> dict[str, Any]:
    # Local and in-memory filesystems have no credentials: the connection only names them.
    return {}


def _first(extra: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = extra.get(name)
        if value not in (None, ""):
            return value
    return None


def _s3(conn: Connection) -> dict[str, Any]:
    """An ``aws`` connection: keys in login/password (or extra), the rest in extra."""
    extra = conn.extra
    opts: dict[str, Any] = {}
    key = conn.login or _first(extra, "aws_access_key_id")
    secret = conn.password or _first(extra, "aws_secret_access_key")
    if key:
        opts["key"] = key
    if secret:
        opts["secret"] = secret
    token = _first(extra, "aws_session_token")
    if token:
        opts["token"] = token
    service = extra.get("service_config")
    s3_service = service.get("s3") if isinstance(service, Mapping) else None
    endpoint = _first(s3_service, "endpoint_url") if isinstance(s3_service, Mapping) else None
    endpoint = endpoint or _first(extra, "endpoint_url")
    if endpoint:
        opts["endpoint_url"] = endpoint
    region = _first(extra, "region_name")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    config = extra.get("config_kwargs")
    if isinstance(config, Mapping) and config:
        opts["config_kwargs"] = dict(config)
    return opts


def _gcs(conn: Connection) -> dict[str, Any]:
    """A ``google_cloud_platform`` connection: a key file (path or inline JSON) and a project."""
    extra = conn.extra
    opts: dict[str, Any] = {}
    keyfile = _first(extra, "keyfile_dict", "extra__google_cloud_platform__keyfile_dict")
    path = _first(extra, "key_path", "extra__google_cloud_platform__key_path")
    if keyfile:
        opts["token"] = keyfile
    elif path:
        opts["token"] = path
    project = _first(extra, "project", "extra__google_cloud_platform__project")
    if project:
        opts["project"] = project
    return opts


_MAPPERS: Final[dict[str, Callable[[Connection], dict[str, Any]]]] = {
    "file": _none,
    "local": _none,
    "memory": _none,
    "s3": _s3,
    "s3a": _s3,
    "gs": _gcs,
    "gcs": _gcs,
}

#: Protocols whose filesystem can take its credentials from a connection.
CONNECTION_PROTOCOLS: Final = frozenset(_MAPPERS)


def storage_options(protocol: str, conn: Connection | None) -> dict[str, Any]:
    """The fsspec storage options for ``protocol`` from ``conn`` (``{}`` without one).

    Raises:
        UsageError: a connection was given for a protocol that has no mapping.
    """
    if conn is None:
        return {}
    mapper = _MAPPERS.get(protocol)
    if mapper is None:
        accepted = ", ".join(sorted(CONNECTION_PROTOCOLS))
        raise UsageError(
            f"object storage: connection {conn.conn_id!r} cannot be used with {protocol}://; "
            f"connections work with {accepted} (pass storage options instead)"
        )
    return mapper(conn)
