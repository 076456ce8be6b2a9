"""Packed bundles under the REAL ExecutableCoordinator of apache-airflow-task-sdk 1.3.2.

Each test configures ``[sdk] coordinators`` with Airflow's own
``airflow.sdk.coordinators.executable.ExecutableCoordinator`` over an ``executables_root``
and runs one task try through ``supervise_task`` (tests/airflow_harness/driver.py: only
the Execution API transport is an ``httpx.MockTransport``). Discovery, the trailer and
hash checks, the launch and the socket handshake are all Airflow's code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow_harness.harness import Report, supervise
from bundle_helpers import (
    FRAGILE_BUNDLE,
    bare_python,
    packed,
    packed_example,
    plant,
    scratch,
    write_bundle,
)

pytestmark = [pytest.mark.supervisor, pytest.mark.slow]


def _run(task_id: str, root: Path, *, dag_id: str = "hello", **env: str) -> Report:
    coordinator = {
        "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
        "kwargs": {"executables_root": [str(root)], "task_startup_timeout": 10},
    }
    env.setdefault("TRIO_COORD_PYTHON", str(bare_python()))
    env.setdefault("TRIO_COORD_CACHE_DIR", str(scratch("coordinator-cache")))
    return supervise(task_id, dag_id=dag_id, coordinator=coordinator, env=env)


def _root(tmp_path: Path, *bundles: tuple[str, Path]) -> Path:
    root = tmp_path / "executables"
    for name, bundle in bundles:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle, root / name)
    return root


def test_coordinator_finds_and_runs_a_packed_bundle(tmp_path: Path) -> None:
    """The example bundle under executables_root runs hello.greet to success on a Python without site-packages."""
    r = _run("greet", _root(tmp_path, ("nested/dir/hello", packed_example())))
    assert (r.exit_code, r.final_state, r.raised) == (0, "success", None), r.stderr[-3000:]
    assert r.xcoms["hello/r1/greet/return_value"] == {"greeting": "hello, world", "run_id": "r1"}
    assert "hello, world (run r1)" in r.events("task")


def test_tampered_bundle_is_skipped_and_other_dags_bundle_not_picked(tmp_path: Path) -> None:
    """A hello bundle with a changed payload byte is skipped; a bundle of another dag never runs hello's task."""
    data = bytearray(packed_example().read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered = tmp_path / "tampered"
    tampered.write_bytes(bytes(data))
    tampered.chmod(0o755)
    other = packed(write_bundle(scratch("other-src"), "other", dag_id="other_dag"), "other")
    root = _root(tmp_path, ("a/hello", tampered), ("b/other", other))
    r = _run("greet", root)
    assert r.exit_code is None and r.raised is not None
    assert r.raised.startswith(
        "FileNotFoundError: cannot find executable bundle containing dag_id='hello'"
    )
    assert r.api("PATCH", "/run") == []  # never started
    ok = _run("first", root, dag_id="other_dag")
    assert (ok.exit_code, ok.final_state) == (0, "success"), ok.stderr[-3000:]


def test_missing_interpreter_fails_the_task_with_a_clear_message(tmp_path: Path) -> None:
    """TRIO_COORD_PYTHON naming no interpreter: the task fails and the task log says which one is missing."""
    r = _run(
        "greet",
        _root(tmp_path, ("hello", packed_example())),
        TRIO_COORD_PYTHON="/opt/missing/bin/python3",
    )
    assert (r.exit_code, r.final_state) == (0, "failed"), r.stderr[-3000:]
    assert (
        "Python interpreter '/opt/missing/bin/python3' (TRIO_COORD_PYTHON) not found on this worker"
        in r.log_text
    )
    assert r.xcoms == {}


def test_import_failure_on_the_worker_reaches_the_task_log(tmp_path: Path) -> None:
    """A bundle whose module fails to import on the worker fails the task with the traceback in the task log."""
    bundle = packed(
        write_bundle(scratch("fragile-coord-src"), body=FRAGILE_BUNDLE, filename="fragile.py"),
        "fragile-coord",
    )
    r = _run("t", _root(tmp_path, ("fragile", bundle)), dag_id="fragile", FRAGILE_BREAK="1")
    assert (r.exit_code, r.final_state) == (0, "failed"), r.stderr[-3000:]
    assert "fragile refuses to import today" in r.log_text
    assert "fragile.py" in r.log_text


def test_import_failure_shows_one_traceback_ending_at_the_users_line(tmp_path: Path) -> None:
    """A bundle raising at import: the task log holds one traceback, of one exception, whose last frame is the user's raising line."""
    bundle = packed(
        write_bundle(scratch("fragile-coord-src"), body=FRAGILE_BUNDLE, filename="fragile.py"),
        "fragile-coord",
    )
    r = _run("t", _root(tmp_path, ("fragile", bundle)), dag_id="fragile", FRAGILE_BREAK="1")
    assert (r.exit_code, r.final_state) == (0, "failed"), r.stderr[-3000:]
    with_traceback = [rec for rec in r.task_log if rec.get("error_detail")]
    assert len(with_traceback) == 1, r.log_text[-4000:]
    (chain,) = with_traceback[0]["error_detail"]  # no "the above was the direct cause" second one
    assert chain["exc_type"] == "RuntimeError"
    assert chain["exc_value"] == "fragile refuses to import today"
    last = chain["frames"][-1]
    assert last["filename"].endswith("fragile.py") and last["lineno"] == 13, chain["frames"]
    assert not [f for f in chain["frames"] if "importlib" in f["filename"]], chain["frames"]
    assert any("every task of this bundle fails" in n for n in chain["exc_notes"])
    assert "Traceback (most recent call last)" not in r.log_text


def _warm_cache(tmp_path: Path, root: Path) -> Path:
    """A cache filled by one successful run of hello.greet (bytecode and msgpack's extension)."""
    cache = tmp_path / "cache"
    r = _run("greet", root, TRIO_COORD_CACHE_DIR=str(cache))
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    assert any((cache / "pyc").iterdir()) and any((cache / "ext").iterdir())
    return cache


def _cache_warnings(r: Report) -> list[dict[str, object]]:
    return [rec for rec in r.task_log if "cache directory" in str(rec.get("event", ""))]


def test_planted_bytecode_and_extensions_do_not_run(tmp_path: Path) -> None:
    """Entries replaced in our own cache between two starts (bytecode, a real .so) are re-checked and rewritten, never run."""
    root = _root(tmp_path, ("hello", packed_example()))
    cache = _warm_cache(tmp_path, root)
    marker = tmp_path / "planted-ran"
    assert plant(cache, marker, forge_with_key=False) > 10
    r = _run("greet", root, TRIO_COORD_CACHE_DIR=str(cache))
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    assert not marker.exists()
    assert r.xcoms["hello/r1/greet/return_value"] == {"greeting": "hello, world", "run_id": "r1"}
    assert "warning" not in r.log_text.lower(), r.log_text[-2000:]
    # The second start re-verified the swapped extension and put the payload's bytes back.
    for entry in (cache / "ext").iterdir():
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == entry.name.split("-", 1)[0]


def _make_symlink(cache: Path) -> Path:
    link = cache.with_name("cache-link")
    link.symlink_to(cache)
    return link


def _make_world_writable(cache: Path) -> Path:
    cache.chmod(0o777)
    return cache


def _make_foreign(cache: Path) -> Path:
    for dirpath, _dirs, files in os.walk(cache):
        os.chown(dirpath, 12345, 12345)
        for name in files:
            os.chown(os.path.join(dirpath, name), 12345, 12345)
    return cache


@pytest.mark.parametrize("make_unsafe", [_make_symlink, _make_world_writable, _make_foreign])
def test_unsafe_cache_is_refused_with_one_warning_record(
    tmp_path: Path, make_unsafe: Callable[[Path], Path]
) -> None:
    """A symlinked, 0777 or foreign cache holding validly sealed planted code: nothing of it runs, the task succeeds, one warning record (not error) says why."""
    root = _root(tmp_path, ("hello", packed_example()))
    cache = _warm_cache(tmp_path, root)
    marker = tmp_path / "planted-ran"
    plant(cache, marker, forge_with_key=True)
    configured = make_unsafe(cache)
    runtime = tmp_path / "run"  # where the per-user fallback cache goes
    r = _run("greet", root, TRIO_COORD_CACHE_DIR=str(configured), XDG_RUNTIME_DIR=str(runtime))
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    assert not marker.exists()
    assert any((runtime / f"trio-coord-cache-{os.geteuid()}" / "pyc").iterdir())
    (warning,) = _cache_warnings(r)
    assert warning["level"] == "warning"
    assert f"cache directory {configured} is not used because it" in str(warning["event"])
    assert "slower" in str(warning["event"]) and "Fix: " in str(warning["event"])
    assert not [rec for rec in r.task_log if rec.get("level") in ("error", "critical")]
    # The next task try on this worker is not told again (within a day); nothing planted runs.
    again = _run("greet", root, TRIO_COORD_CACHE_DIR=str(configured), XDG_RUNTIME_DIR=str(runtime))
    assert (again.exit_code, again.final_state) == (0, "success"), again.stderr[-3000:]
    assert not marker.exists() and _cache_warnings(again) == []


TITLED_BUNDLE = """
import os
import trio_coord

bundle = trio_coord.Bundle("titled", version="1.0")
d = bundle.dag("titled")

@d.task
async def show_title():
    with open(f"/proc/{os.getpid()}/comm") as f:
        return f.read().strip()
"""


def _titled(*extra: str) -> Path:
    src = write_bundle(scratch("titled-src"), body=TITLED_BUNDLE, filename="titled.py")
    return packed(src, "titled" + "".join(extra).replace("/", "_"), *extra)


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="needs Linux /proc")
def test_packed_bundle_process_title_names_the_task(tmp_path: Path) -> None:
    """Launched by Airflow's ExecutableCoordinator, the bundle's process shows its task id as its kernel name."""
    r = _run("show_title", _root(tmp_path, ("titled", _titled())), dag_id="titled")
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    assert r.xcoms["titled/r1/show_title/return_value"] == "tc:show_title"


def test_missing_recorded_interpreter_runs_on_python3_with_one_warning(tmp_path: Path) -> None:
    """A bundle whose recorded interpreter is absent on the worker still succeeds on python3 from PATH, with one warning record saying so."""
    bundle = _titled("--python", "/opt/gone/bin/python3.11")
    r = _run(
        "show_title", _root(tmp_path, ("titled", bundle)), dag_id="titled", TRIO_COORD_PYTHON=""
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    warnings = [rec for rec in r.task_log if "/opt/gone/bin/python3.11" in str(rec.get("event"))]
    assert len(warnings) == 1, r.log_text[-3000:]
    assert warnings[0]["level"] == "warning"
    assert "using python3 from PATH instead" in str(warnings[0]["event"])
