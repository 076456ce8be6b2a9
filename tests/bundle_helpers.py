"""Shared helpers of the bundle tests: packing, bundle files, an interpreter without packages."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello_bundle.py"

_scratch = Path(tempfile.mkdtemp(prefix="trio-coord-bundle-tests-"))
atexit.register(shutil.rmtree, _scratch, True)
_cache: dict[str, Path] = {}

SIMPLE_BUNDLE = """
import datetime
import trio_coord

bundle = trio_coord.Bundle("{name}", version="{version}")
d = bundle.dag("{dag_id}", schedule=None,
               start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))

@d.task
def first(log):
    log.info("first ran")
    return 1

@d.task(depends_on=[first])
async def second(log):
    return 2
"""


#: A bundle whose import raises when FRAGILE_BREAK is set (packs fine, breaks on the "worker").
FRAGILE_BUNDLE = """
import os
import trio_coord

bundle = trio_coord.Bundle("fragile", version="1.0")
d = bundle.dag("fragile")

@d.task
def t():
    pass

if os.environ.get("FRAGILE_BREAK"):
    raise RuntimeError("fragile refuses to import today")
"""


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m trio_coord ARGS`` in a subprocess, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "trio_coord", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def run_bundle(
    bundle: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Execute a packed bundle directly (the kernel runs its ``#!/bin/sh`` launcher)."""
    base = {k: v for k, v in os.environ.items() if k != "TRIO_COORD_PYTHON"}
    base.setdefault("TRIO_COORD_CACHE_DIR", str(_scratch / "ext-cache"))
    return subprocess.run(
        [str(bundle), *args],
        capture_output=True,
        text=True,
        env={**base, "TRIO_COORD_PYTHON": sys.executable, **(env or {})},
        timeout=timeout,
    )


def write_bundle(
    directory: Path,
    name: str = "simple",
    *,
    dag_id: str = "simple_dag",
    version: str = "1.0.0",
    body: str | None = None,
    filename: str | None = None,
) -> Path:
    """Write a bundle file (``SIMPLE_BUNDLE`` unless ``body`` is given) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or f"{name}.py")
    text = (
        body
        if body is not None
        else SIMPLE_BUNDLE.format(name=name, dag_id=dag_id, version=version)
    )
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def packed_example() -> Path:
    """The example bundle packed once per test process (read-only: copy before changing it)."""
    if "example" not in _cache:
        out = _scratch / "packed" / "hello"
        proc = run_cli("pack", str(EXAMPLE), "-o", str(out), "--parents")
        assert proc.returncode == 0, proc.stderr
        _cache["example"] = out
    return _cache["example"]


def packed(entry: Path, name: str, *extra: str) -> Path:
    """Pack ``entry`` once per process under ``name`` and return the bundle."""
    if name not in _cache:
        out = _scratch / "packed" / name
        proc = run_cli("pack", str(entry), "-o", str(out), "--parents", *extra)
        assert proc.returncode == 0, proc.stderr
        _cache[name] = out
    return _cache[name]


def scratch(name: str) -> Path:
    """A per-process scratch directory shared by the tests that need the same files."""
    path = _scratch / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def bare_python() -> Path:
    """A fresh venv's interpreter (no pip, no site-packages of ours): trio is not importable."""
    if "bare" not in _cache:
        venv = _scratch / "bare-venv"
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        probe = subprocess.run([str(python), "-c", "import trio"], capture_output=True)
        assert probe.returncode != 0, "the bare interpreter must not see trio"
        _cache["bare"] = python
    return _cache["bare"]


_REAL_VIEW = r"""
import json, os, pathlib, sys, tempfile
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
from airflow.sdk.coordinators.executable import coordinator as c
req = json.loads(sys.argv[1])
out = {"read": {}, "find": {}, "walk": []}
for p in req.get("read", []):
    m = c._read_bundle_metadata(pathlib.Path(p))
    out["read"][p] = None if m is None else {"dags": sorted(map(str, c._dag_ids(m))), "schema": c._supervisor_schema_version(m)}
roots = [pathlib.Path(r) for r in req.get("roots", [])]
out["walk"] = [str(p) for p in c._find_executables(roots)]
for d in req.get("find", []):
    try:
        out["find"][d] = str(c._Bundle.find(roots, d).path)
    except Exception as e:
        out["find"][d] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
"""


def real_coordinator_view(
    read: list[Path] = (), roots: list[Path] = (), find: list[str] = ()
) -> dict:  # type: ignore[assignment]
    """Ask task-sdk 1.3.2's own reader and ``_Bundle.find`` about files, in a subprocess."""
    import json

    req = {"read": [str(p) for p in read], "roots": [str(r) for r in roots], "find": list(find)}
    proc = subprocess.run(
        [sys.executable, "-c", _REAL_VIEW, json.dumps(req)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_PLANTED_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) { fputs("planted code ran\n", f); fclose(f); }
}
"""


def planted_shared_object(directory: Path, marker: Path) -> bytes:
    """A real shared object whose load (its ELF constructor) writes ``marker``.

    Before returning, it is loaded once with ctypes in a child process writing to a
    control file, so a test using it knows that loading it would have been seen.
    """
    directory.mkdir(parents=True, exist_ok=True)
    objects = []
    for target in (directory / "control-marker", marker):
        src = directory / f"planted-{target.name}.c"
        src.write_text(_PLANTED_C % target)
        out = src.with_suffix(".so")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
        objects.append(out)
    subprocess.run(
        [sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(objects[0])!r})"], check=True
    )
    assert (directory / "control-marker").exists(), "the planted object does not run on load"
    return objects[1].read_bytes()


def planted_code(marker: Path) -> bytes:
    """Marshalled code writing ``marker``: what a planted bytecode entry would run."""
    import marshal

    return marshal.dumps(compile(f"open({str(marker)!r}, 'w').write('ran')\n", "<planted>", "exec"))


def plant(cache: Path, marker: Path, *, forge_with_key: bool) -> int:
    """Overwrite every bytecode and extension entry of ``cache`` with code writing ``marker``.

    Bytecode entries get the marker code behind a SHA-256 of itself (the old, unkeyed
    format) or, with ``forge_with_key``, behind a valid HMAC under the cache's own key
    (what someone able to write and read the directory could do). Returns the number of
    entries replaced.
    """
    import hashlib
    import hmac

    body = planted_code(marker)
    key = (cache / "key").read_bytes()
    count = 0
    for entry in (cache / "pyc").iterdir():
        if forge_with_key:
            seal = hmac.new(key, entry.name.encode() + body, hashlib.sha256).digest()
        else:
            seal = hashlib.sha256(body).digest()
        entry.write_bytes(seal + body)
        count += 1
    so = planted_shared_object(scratch("planted-so") / marker.name, marker)
    for entry in (cache / "ext").iterdir():
        entry.write_bytes(so)
        count += 1
    return count


def run_whole_dag(
    bundle: Path, dag_id: str, timeout: float = 600
) -> tuple[dict[str, Any], dict[tuple[str, int], dict[str, Any]], int]:
    """``trio-coord run BUNDLE DAG --no-wait --json``: (the summary, its task instances by
    ``(task_id, map_index)``, the exit status)."""
    proc = run_cli("run", str(bundle), dag_id, "--no-wait", "--json", timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(lines[-1])
    rows = {(t["task_id"], t["map_index"]): t for t in report["task_instances"]}
    return report, rows, proc.returncode


def run_airflow_script(script: str, *args: str, home: Path | None = None) -> Any:
    """Run ``script`` (Python source that ends by printing ``@@`` and a JSON document) with
    Airflow in a fresh ``AIRFLOW_HOME``, and return that document."""
    env = {**os.environ, "AIRFLOW_HOME": str(home or tempfile.mkdtemp(dir=_scratch))}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "@@" in proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("@@", 1)[1])
