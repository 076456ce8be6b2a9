"""Tasks that use ObjectStoragePath with a connection served by the supervisor."""

from __future__ import annotations

import os

import trio_coord
from trio_coord.errors import UsageError
from trio_coord.io import ObjectStoragePath

bundle = trio_coord.Bundle("objectstore", version="1.0.0")
d1 = bundle.dag("d1")


@d1.task
def sync_roundtrip(log):
    """A plain def task: the path fetches the connection through the task's blocking client."""
    root = ObjectStoragePath(os.environ["OBJSTORE_URL"])  # the task's client is bound
    (root / "in").mkdir(parents=True, exist_ok=True)
    src = root / "in" / "data.txt"
    src.write_text("rows=3")
    (root / "out").mkdir(parents=True, exist_ok=True)
    src.copy(root / "out" / "copy.txt")
    src.move(root / "out" / "moved.txt")
    names = sorted(p.name for p in (root / "out").iterdir())
    conn = src._store.connection
    log.info("used %s with password %s", root.conn_id, conn.password if conn else None)
    return {
        "names": names,
        "text": (root / "out" / "copy.txt").read_text(),
        "moved_exists": src.exists(),
        "size": (root / "out" / "moved.txt").stat().st_size,
    }


@d1.task
async def async_roundtrip(client, log):
    """An async def task: the connection is awaited once, then the path works."""
    path = await ObjectStoragePath.connect(os.environ["OBJSTORE_URL"] + "/a.bin", client=client)
    implicit = await ObjectStoragePath.connect(os.environ["OBJSTORE_URL"] + "/b.bin")
    try:
        ObjectStoragePath(os.environ["OBJSTORE_URL"] + "/c.bin").exists()
        blocked = "no error"
    except UsageError as exc:
        blocked = str(exc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01binary")
    implicit.write_bytes(b"b")
    log.info("wrote %s (secret %s)", path, path._store.connection.password)
    return {
        "bytes": list(path.read_bytes()),
        "str": str(path),
        "conn": path.conn_id,
        "blocked": blocked,
    }
