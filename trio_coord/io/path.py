"""``ObjectStoragePath``: a pathlib-like path into an object store, as Airflow offers it.

Why our own: Airflow's class lives in the Task SDK and reaches for the secrets backend;
here the credentials come through the task's own client, so the supervisor (and its
log masker) sees every connection the path uses.

A path is ``protocol://bucket/key`` plus the *store* it belongs to: the connection id,
the client that fetches the connection, extra storage options, and the fsspec
filesystem once built. Children made with ``/`` share the store, so the connection is
fetched once however many paths a task walks. Nothing touches fsspec or the supervisor
until an operation needs the filesystem.
"""

from __future__ import annotations

import inspect
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import UsageError
from .binding import current_client
from .options import storage_options

if TYPE_CHECKING:  # the client needs trio; a bundle importing this for the DAG processor does not
    from ..client.connections import Connection

__all__ = ["ObjectStoragePath", "StatResult"]

_EXTRA = "objectstore"


def _fsspec() -> Any:
    try:
        import fsspec  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise UsageError(
            "object storage needs fsspec, which is not installed: "
            f"pip install 'trio-coord[{_EXTRA}]'"
        ) from None
    return fsspec


@dataclass(eq=False)
class _Store:
    """One filesystem with its credentials, shared by every path derived from one root."""

    protocol: str
    conn_id: str | None
    client: Any = None
    connection: Connection | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _fs: Any = None

    def resolve_connection(self) -> Connection | None:
        if self.conn_id is None or self.connection is not None:
            return self.connection
        client = self.client if self.client is not None else current_client()
        if client is None:
            raise UsageError(
                f"object storage: {self.protocol}:// with connection {self.conn_id!r} needs a "
                "task's client: use the path inside a task, or pass client=, or a connection="
            )
        result = client.get_connection(self.conn_id)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise UsageError(
                f"object storage: connection {self.conn_id!r} cannot be fetched with the async "
                "client from blocking path code; in an async def task create the path with "
                "await ObjectStoragePath.connect(url, client=client)"
            )
        from ..client.connections import Connection

        if not isinstance(result, Connection):
            raise UsageError(
                "object storage: client= must be the task's client (its get_connection "
                f"returned {type(result).__name__})"
            )
        self.connection = result
        return result

    @property
    def fs(self) -> Any:
        if self._fs is None:
            fsspec = _fsspec()
            opts = {**storage_options(self.protocol, self.resolve_connection()), **self.options}
            try:
                self._fs = fsspec.filesystem(self.protocol, **opts)
            except ImportError as exc:
                raise UsageError(
                    f"object storage: {self.protocol}:// needs a package fsspec could not "
                    f"import: {exc}"
                ) from None
            except ValueError as exc:
                raise UsageError(
                    f"object storage: {self.protocol}:// is not usable: {exc}"
                ) from None
        return self._fs


@dataclass(frozen=True, slots=True)
class StatResult:
    """What the store says about one object; ``info`` is fsspec's raw answer."""

    st_size: int
    type: str
    info: dict[str, Any]

    @property
    def st_mtime(self) -> float | None:
        for name in ("mtime", "LastModified", "updated", "created"):
            value = self.info.get(name)
            if isinstance(value, int | float):
                return float(value)
            stamp = getattr(value, "timestamp", None)
            if callable(stamp):
                return float(stamp())
        return None


class ObjectStoragePath:
    """A path in an object store: ``ObjectStoragePath("s3://aws_default@bucket/key")``.

    The connection id comes from the URL's user part or ``conn_id=``; its credentials
    are fetched with ``client.get_connection`` the first time the filesystem is needed.
    Extra keyword arguments are fsspec storage options and win over the connection's.
    """

    __slots__ = ("_bucket", "_key", "_store")

    def __init__(
        self,
        url: str | ObjectStoragePath,
        *,
        conn_id: str | None = None,
        client: Any = None,
        connection: Connection | None = None,
        **options: Any,
    ) -> None:
        if isinstance(url, ObjectStoragePath):
            self._store: _Store = url._store
            self._bucket: str = url._bucket
            self._key: str = url._key
            return
        if not isinstance(url, str):
            raise UsageError(
                f"ObjectStoragePath takes a URL string such as 's3://conn_id@bucket/key', "
                f"not {type(url).__name__}"
            )
        parts = urlsplit(url)
        protocol = parts.scheme or "file"
        userinfo, has_user, host = parts.netloc.rpartition("@")
        url_conn = userinfo if has_user and userinfo else None
        if conn_id is None:
            conn_id = connection.conn_id if connection is not None else url_conn
        bucket = host if protocol not in ("file", "local") else ""
        path = parts.path if parts.scheme else url
        if protocol in ("file", "local") and host:
            path = "/" + host + path  # file://tmp/x was meant as /tmp/x
        self._store = _Store(
            protocol=protocol,
            conn_id=conn_id,
            client=client,
            connection=connection,
            options=options,
        )
        self._bucket = bucket
        self._key = _normalise(path)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        client: Any = None,
        conn_id: str | None = None,
        **options: Any,
    ) -> ObjectStoragePath:
        """A path whose connection is fetched now, with ``await``: for ``async def`` tasks.

        ``client`` defaults to the running task's.
        """
        path = cls(url, conn_id=conn_id, client=client, **options)
        if path.conn_id is not None:
            client = client if client is not None else current_client()
            if client is None:
                raise UsageError(
                    "ObjectStoragePath.connect needs a task's client: call it inside a task "
                    "or pass client="
                )
            path._store.connection = await client.get_connection(path.conn_id)
        return path

    # -- pure path arithmetic ----------------------------------------------------------------

    def _child(self, key: str) -> ObjectStoragePath:
        new = object.__new__(type(self))
        new._store, new._bucket, new._key = self._store, self._bucket, _normalise(key)
        return new

    def __truediv__(self, other: str) -> ObjectStoragePath:
        return self.joinpath(other)

    def joinpath(self, *others: str) -> ObjectStoragePath:
        return self._child(posixpath.join(self._key or "/", *(str(o) for o in others)))

    @property
    def protocol(self) -> str:
        return self._store.protocol

    @property
    def conn_id(self) -> str | None:
        return self._store.conn_id

    @property
    def bucket(self) -> str:
        return self._bucket

    container = bucket

    @property
    def key(self) -> str:
        """The object's key: the path without the bucket and without leading slashes."""
        return self._key.lstrip("/")

    @property
    def namespace(self) -> str:
        return f"{self.protocol}://{self.bucket}" if self.bucket else self.protocol

    @property
    def name(self) -> str:
        return posixpath.basename(self._key.rstrip("/"))

    @property
    def suffix(self) -> str:
        stem, dot, ext = self.name.rpartition(".")
        return f".{ext}" if dot and stem else ""

    @property
    def stem(self) -> str:
        return self.name[: len(self.name) - len(self.suffix)]

    @property
    def parent(self) -> ObjectStoragePath:
        return self._child(posixpath.dirname(self._key.rstrip("/")) or "/")

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self._key.split("/") if p)

    def with_name(self, name: str) -> ObjectStoragePath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> ObjectStoragePath:
        return self.with_name(self.stem + suffix)

    def __str__(self) -> str:
        return f"{self.protocol}://{self._bucket}{self._key}"

    def __repr__(self) -> str:
        conn = f", conn_id={self.conn_id!r}" if self.conn_id else ""
        return f"ObjectStoragePath({str(self)!r}{conn})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ObjectStoragePath)
            and self.samestore(other)
            and str(self) == str(other)
        )

    def __hash__(self) -> int:
        return hash((self.protocol, self.conn_id, str(self)))

    def samestore(self, other: ObjectStoragePath) -> bool:
        """Same protocol and connection: one filesystem can copy between the two."""
        return self.protocol == other.protocol and self.conn_id == other.conn_id

    # -- the filesystem ----------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, built on first use with the connection's credentials."""
        return self._store.fs

    @property
    def path(self) -> str:
        """The path as the filesystem names it."""
        return str(self.fs._strip_protocol(str(self)))

    def open(self, mode: str = "r", **kwargs: Any) -> IO[Any]:
        return self.fs.open(self.path, mode=mode, **kwargs)  # type: ignore[no-any-return]

    def read_bytes(self) -> bytes:
        with self.open("rb") as f:
            return f.read()  # type: ignore[no-any-return]

    def write_bytes(self, data: bytes) -> int:
        with self.open("wb") as f:
            f.write(data)
        return len(data)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def write_text(self, data: str, encoding: str = "utf-8", errors: str = "strict") -> int:
        self.write_bytes(data.encode(encoding, errors))
        return len(data)

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def iterdir(self) -> Iterator[ObjectStoragePath]:
        base = self.path.rstrip("/")
        for entry in self.fs.ls(self.path, detail=False):
            name = posixpath.basename(str(entry).rstrip("/"))
            if str(entry).rstrip("/") != base:
                yield self / name

    def glob(self, pattern: str) -> Iterator[ObjectStoragePath]:
        base = self.path.rstrip("/")
        for found in sorted(self.fs.glob(posixpath.join(base, pattern))):
            yield self.joinpath(posixpath.relpath(str(found), base))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        if self.exists():
            if exist_ok and self.is_dir():
                return
            raise FileExistsError(str(self))
        if not parents and not self.parent.exists():
            raise FileNotFoundError(f"{self.parent} does not exist (pass parents=True)")
        self.fs.makedirs(self.path, exist_ok=True)

    def touch(self, exist_ok: bool = True) -> None:
        if self.exists():
            if not exist_ok:
                raise FileExistsError(str(self))
            return
        self.fs.touch(self.path)

    def unlink(self, missing_ok: bool = False) -> None:
        if not self.exists():
            if missing_ok:
                return
            raise FileNotFoundError(str(self))
        self.fs.rm(self.path)

    def rmdir(self, recursive: bool = False) -> None:
        self.fs.rm(self.path, recursive=True) if recursive else self.fs.rmdir(self.path)

    def stat(self) -> StatResult:
        info = dict(self.fs.info(self.path))
        return StatResult(st_size=int(info.get("size") or 0), type=str(info.get("type")), info=info)

    def size(self) -> int:
        return self.stat().st_size

    def copy(self, dst: str | ObjectStoragePath, recursive: bool = False) -> None:
        """Copy to ``dst``: within one store by the filesystem, across stores by streaming."""
        target = self._coerce(dst)
        if self.samestore(target):
            self.fs.copy(self.path, target.path, recursive=recursive)
            return
        if not self.exists():
            raise FileNotFoundError(f"{self} does not exist")
        if self.is_dir():
            if not recursive:
                raise IsADirectoryError(f"{self} is a directory (pass recursive=True)")
            target.mkdir(parents=True, exist_ok=True)
            for child in self.iterdir():
                child.copy(target / child.name, recursive=True)
            return
        if target.key.endswith("/") or target.is_dir():
            target = target / self.name
        with self.open("rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out)

    def copy_into(self, target_dir: str | ObjectStoragePath, recursive: bool = False) -> None:
        target = self._coerce(target_dir)
        if not target.is_dir():
            raise NotADirectoryError(f"{target} is not a directory")
        self.copy(target / self.name, recursive=recursive)

    def move(self, dst: str | ObjectStoragePath, recursive: bool = False) -> None:
        target = self._coerce(dst)
        if self.samestore(target):
            self.fs.mv(self.path, target.path, recursive=recursive)
            return
        self.copy(target, recursive=recursive)
        if self.is_dir():
            self.rmdir(recursive=True)
        else:
            self.unlink()

    def move_into(self, target_dir: str | ObjectStoragePath, recursive: bool = False) -> None:
        target = self._coerce(target_dir)
        if not target.is_dir():
            raise NotADirectoryError(f"{target} is not a directory")
        self.move(target / self.name, recursive=recursive)

    def _coerce(self, other: str | ObjectStoragePath) -> ObjectStoragePath:
        # A bare URL shares this path's client, so its connection can be fetched too.
        if isinstance(other, ObjectStoragePath):
            return other
        return ObjectStoragePath(other, client=self._store.client)


def _normalise(path: str) -> str:
    """``/a/b/`` style: one leading slash, dots resolved, a trailing slash kept (a "folder")."""
    trailing = path.endswith("/") and path.strip("/") != ""
    norm = posixpath.normpath("/" + path.lstrip("/")) if path.strip("/") else "/"
    norm = "/" + norm.lstrip("/")
    return norm + "/" if trailing and not norm.endswith("/") else norm
