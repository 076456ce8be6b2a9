"""ObjectStoragePath: path arithmetic, fsspec memory/file stores, connection-derived options,
clear errors for misuse, and a task using it under the real supervisor and ``trio-coord run``."""

from __future__ import annotations

import functools
import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from airflow_harness.harness import HERE, supervise

from trio_coord.client.connections import Connection
from trio_coord.errors import UsageError
from trio_coord.io import ObjectStoragePath, storage_options
from trio_coord.io.binding import bound_client
from trio_coord.local import main

BUNDLE = str(HERE / "bundle_objectstore.py") + ":bundle"
SECRET = "s3cr3t-objstore-pw"
NO_FIELDS = dict.fromkeys(("host", "schema", "login", "port", "extra"))
CONN = Connection(conn_id="lake", conn_type="fs", password=SECRET)


class FakeSyncClient:
    """Records what the path asks for, answering like the blocking client."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_connection(self, conn_id: str) -> Connection:
        self.asked.append(conn_id)
        return Connection(conn_id=conn_id, conn_type="fs", password=SECRET)


class FakeAsyncClient:
    async def get_connection(self, conn_id: str) -> Connection:
        return Connection(conn_id=conn_id, conn_type="fs", password=SECRET)


def _mem() -> str:
    return f"memory://bk-{uuid.uuid4().hex[:8]}"


def test_url_parts_conn_id_and_path_arithmetic() -> None:
    p = ObjectStoragePath("s3://aws_default@bucket/dir/file.tar.gz")
    assert (p.protocol, p.conn_id, p.bucket, p.container, p.key) == (
        "s3",
        "aws_default",
        "bucket",
        "bucket",
        "dir/file.tar.gz",
    )
    assert str(p) == "s3://bucket/dir/file.tar.gz"  # the connection id is not part of the URL
    assert (p.name, p.suffix, p.stem) == ("file.tar.gz", ".gz", "file.tar")
    assert str(p.parent / "x" / ".." / "y.csv") == "s3://bucket/dir/y.csv"
    assert p.with_suffix(".zip").name == "file.tar.zip"
    assert p.parent.conn_id == "aws_default"  # children share the store
    assert p.namespace == "s3://bucket"
    assert ObjectStoragePath("file:///tmp/a", conn_id="c").conn_id == "c"
    assert ObjectStoragePath("s3://x@b/k", conn_id="y").conn_id == "y"  # explicit wins
    assert p == ObjectStoragePath("s3://aws_default@bucket/dir/file.tar.gz")
    assert p != ObjectStoragePath("s3://other@bucket/dir/file.tar.gz")
    assert ObjectStoragePath("/tmp/plain").protocol == "file"


def test_memory_store_pathlib_api() -> None:
    root = ObjectStoragePath(_mem())
    d = root / "dir"
    with pytest.raises(FileNotFoundError):
        (d / "sub").mkdir()  # parent missing, parents=False
    d.mkdir(parents=True)
    with pytest.raises(FileExistsError):
        d.mkdir()
    d.mkdir(exist_ok=True)
    f = d / "a.txt"
    assert not f.exists()
    assert f.write_text("héllo") == 5
    assert f.read_text() == "héllo" and f.read_bytes() == "héllo".encode()
    assert f.is_file() and d.is_dir() and f.exists()
    assert f.stat().st_size == 6 and f.size() == 6
    with f.open("ab") as out:
        out.write(b"!")
    assert f.read_text() == "héllo!"
    f.copy(d / "b.txt")
    f.move(d / "c.txt")
    assert sorted(p.name for p in d.iterdir()) == ["b.txt", "c.txt"]
    assert [p.name for p in d.glob("*.txt")] == ["b.txt", "c.txt"]
    assert not f.exists()
    (d / "b.txt").unlink()
    with pytest.raises(FileNotFoundError):
        (d / "b.txt").unlink()
    (d / "b.txt").unlink(missing_ok=True)
    other = root / "other"
    other.mkdir()
    (d / "c.txt").copy_into(other)
    assert (other / "c.txt").read_text() == "héllo!"
    with pytest.raises(NotADirectoryError):
        (d / "c.txt").copy_into(other / "c.txt")


def test_copy_between_stores_streams_file_and_directory(tmp_path: Path) -> None:
    mem = ObjectStoragePath(_mem()) / "src"
    (mem / "nested").mkdir(parents=True)
    (mem / "one.txt").write_text("1")
    (mem / "nested" / "two.txt").write_text("2")
    local = ObjectStoragePath(f"file://{tmp_path}")
    (mem / "one.txt").copy(local / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "1"
    with pytest.raises(IsADirectoryError):
        mem.copy(local / "tree")
    mem.copy(local / "tree", recursive=True)
    assert (tmp_path / "tree" / "nested" / "two.txt").read_text() == "2"
    (mem / "one.txt").move(local / "moved.txt")
    assert (tmp_path / "moved.txt").read_text() == "1" and not (mem / "one.txt").exists()


def test_sync_client_fetches_the_connection_once_for_all_children() -> None:
    client = FakeSyncClient()
    root = ObjectStoragePath(f"memory://lake@bk-{uuid.uuid4().hex[:8]}", client=client)
    assert client.asked == []  # nothing until the filesystem is needed
    (root / "a").write_text("x")
    (root / "b").write_text("y")
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]
    assert client.asked == ["lake"]


def test_the_bound_task_client_is_used_when_none_is_passed() -> None:
    client = FakeSyncClient()
    with bound_client(client):
        p = ObjectStoragePath(f"memory://lake@bk-{uuid.uuid4().hex[:8]}/f")
        p.write_text("x")
    assert client.asked == ["lake"] and p.read_text() == "x"  # the store keeps the connection

    async def go() -> Any:
        with bound_client(FakeAsyncClient()):
            q = await ObjectStoragePath.connect(_mem() + "/g", conn_id="c")
        return q._store.connection

    assert trio.run(go).password == SECRET
    with pytest.raises(UsageError, match="needs a task's client"):
        trio.run(functools.partial(ObjectStoragePath.connect, _mem(), conn_id="c"))


def test_connect_awaits_the_async_client() -> None:
    async def go() -> Any:
        p = await ObjectStoragePath.connect(_mem() + "/f", client=FakeAsyncClient(), conn_id="c")
        p.write_text("ok")
        return p.read_text(), p._store.connection

    text, conn = trio.run(go)
    assert text == "ok" and conn.password == SECRET


def test_misuse_gets_a_usage_error_naming_the_fix() -> None:
    with pytest.raises(UsageError, match=r"ObjectStoragePath\.connect"):
        ObjectStoragePath("memory://c@b/k", client=FakeAsyncClient()).exists()
    with pytest.raises(UsageError, match="needs a task's client"):
        ObjectStoragePath("memory://c@b/k").exists()
    with pytest.raises(UsageError, match=r"connections work with .*s3"):
        ObjectStoragePath("ftp://b/k", connection=CONN).exists()
    with pytest.raises(UsageError, match="URL string"):
        ObjectStoragePath(42)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not usable"):
        ObjectStoragePath("nosuchproto://b/k").exists()


def test_missing_fsspec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    p = ObjectStoragePath("memory://b/k")  # creating and joining needs no fsspec
    assert str(p / "x") == "memory://b/k/x"
    with pytest.raises(UsageError, match=r"trio-coord\[objectstore\]"):
        p.exists()


def test_importing_trio_coord_io_needs_neither_fsspec_nor_trio() -> None:
    """A bundle imports it at module level, also where Airflow's DAG processor has no trio."""
    import subprocess

    code = (
        "import sys; sys.modules['trio'] = None; import trio_coord.io; "
        "print(str(trio_coord.io.ObjectStoragePath('s3://c@b/k')), 'fsspec' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "s3://b/k False"


def test_s3_options_from_an_aws_connection() -> None:
    conn = Connection(
        conn_id="aws",
        conn_type="aws",
        login="AKIA",
        password="SECRET",
        extra={
            "aws_session_token": "TOK",
            "region_name": "eu-west-1",
            "endpoint_url": "http://minio:9000",
            "config_kwargs": {"signature_version": "s3v4"},
        },
    )
    assert storage_options("s3", conn) == {
        "key": "AKIA",
        "secret": "SECRET",
        "token": "TOK",
        "endpoint_url": "http://minio:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {"signature_version": "s3v4"},
    }
    # Keys in extra when login/password are empty; a service-specific endpoint wins.
    extra_only = Connection(
        conn_id="aws",
        conn_type="aws",
        extra={
            "aws_access_key_id": "K2",
            "aws_secret_access_key": "S2",
            "endpoint_url": "http://generic",
            "service_config": {"s3": {"endpoint_url": "http://s3-only"}},
        },
    )
    assert storage_options("s3a", extra_only) == {
        "key": "K2",
        "secret": "S2",
        "endpoint_url": "http://s3-only",
    }
    assert storage_options("s3", Connection(conn_id="a", conn_type="aws")) == {}
    assert storage_options("s3", None) == {}
    assert storage_options("file", CONN) == {} and storage_options("memory", CONN) == {}
    gcs = Connection(
        conn_id="g",
        conn_type="google_cloud_platform",
        extra={"key_path": "/k.json", "project": "p"},
    )
    assert storage_options("gs", gcs) == {"token": "/k.json", "project": "p"}


def test_explicit_storage_options_win_over_the_connection() -> None:
    p = ObjectStoragePath("file:///tmp", connection=CONN, auto_mkdir=True)
    assert p.fs.auto_mkdir is True


@pytest.mark.parametrize("task", ["sync_roundtrip", "async_roundtrip"])
def test_task_under_the_real_supervisor_uses_the_served_connection(
    task: str, tmp_path: Path
) -> None:
    """The connection comes from the API (GET /connections/lake); its password is masked."""
    url = f"file://lake@{tmp_path}/store"
    r = supervise(
        task,
        bundle=BUNDLE,
        env={"OBJSTORE_URL": url},
        connections={"lake": {**NO_FIELDS, "conn_type": "fs", "password": SECRET}},
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.api("GET", "/connections/lake")
    assert SECRET not in r.log_text
    assert any("***" in line for line in r.events("task"))
    value = r.xcoms[f"d1/r1/{task}/return_value"]
    if task == "sync_roundtrip":
        assert value == {
            "names": ["copy.txt", "moved.txt"],
            "text": "rows=3",
            "moved_exists": False,
            "size": 6,
        }
        assert (tmp_path / "store" / "out" / "copy.txt").read_text() == "rows=3"
    else:
        assert value["bytes"] == list(b"\x00\x01binary") and value["conn"] == "lake"
        # Blocking path code with the async task's client is refused, pointing at connect().
        assert "ObjectStoragePath.connect" in value["blocked"]
        assert (tmp_path / "store" / "b.bin").read_bytes() == b"b"
        assert (tmp_path / "store" / "a.bin").read_bytes() == b"\x00\x01binary"


LOCAL_BUNDLE = """
    import trio_coord
    from trio_coord.io import ObjectStoragePath

    bundle = trio_coord.Bundle("objlocal")
    d = bundle.dag("d")

    @d.task
    def write(log):
        p = ObjectStoragePath("memory://lake@bucket/x.json")
        p.write_text('{"n": 1}')
        log.info("password is %s", p._store.connection.password)
        return {"read": p.read_text(), "exists": p.exists()}
"""


def test_local_run_serves_the_connection_from_conn_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "objlocal.py"
    path.write_text(textwrap.dedent(LOCAL_BUNDLE))
    conn = json.dumps({"conn_type": "fs", "password": SECRET})
    code = main([str(path), "d", "write", "--conn", f"lake={conn}", "--json", "--timeout", "60"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["xcoms"]["return_value"] == {"read": '{"n": 1}', "exists": True}
    assert summary["requests"]["GetConnection"] == 1
    assert SECRET not in out + err
    assert "password is ***" in err
