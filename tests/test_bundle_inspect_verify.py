"""trio-coord inspect and verify, checked against the packed example and task-sdk 1.3.2's own discovery."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from bundle_helpers import packed_example, real_coordinator_view, run_cli

from trio_coord.bundle import format as fmt


def _fake(path: Path, manifest: str, *, mode: int = 0o755) -> Path:
    """A minimal non-trio-coord bundle with the given manifest text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fmt.assemble(b"#!/bin/sh\nexit 0\n", b"", manifest.encode()))
    path.chmod(mode)
    return path


def _manifest(
    dags: str = '  "d1":\n    tasks:\n      - "t"\n', schema: str = '"2026-06-16"'
) -> str:
    return f"sdk:\n  supervisor_schema_version: {schema}\ndags:\n{dags}"


def test_inspect_summarizes_without_running(tmp_path: Path) -> None:
    """The readable summary names the bundle, sizes, hash status, versions, and each task with its upstreams."""
    proc = run_cli("inspect", str(packed_example()))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("bundle     hello 1.0.0")
    assert "hash       ok  sha256 " in out and "status     usable by the 1.3.2 coordinator" in out
    assert "supervisor schema 2026-06-16" in out and "hermetic (-I -S)" in out
    assert "trio 0.35" in out and "msgpack/_cmsgpack" in out
    assert "  hello  schedule @daily  queue trio-coord  (3 tasks)" in out
    assert "    shout           <- greet" in out


def test_inspect_json_shape() -> None:
    """--json: dags maps each dag id to {"tasks": [...], ...}; the region sizes add up to the file size."""
    proc = run_cli("inspect", "--json", str(packed_example()))
    s = json.loads(proc.stdout)
    assert s["dags"]["hello"]["tasks"] == ["greet", "shout", "fail_sometimes"]
    assert s["dags"]["hello"]["dependencies"] == {"shout": ["greet"]}
    z = s["sizes"]
    assert (
        z["binary"] + z["source"] + z["metadata"] + z["trailer"]
        == z["total"]
        == packed_example().stat().st_size
    )
    assert z["launcher"] + z["payload"] == z["binary"]
    assert s["hash_ok"] is True and s["bundle"] == {"name": "hello", "version": "1.0.0"}


def test_inspect_trailer_and_tampering(tmp_path: Path) -> None:
    """--trailer prints the §7.3 fields; a tampered binary region shows MISMATCH and exits 1."""
    good = json.loads(run_cli("inspect", "--trailer", str(packed_example())).stdout)
    assert good["footer_ver"] == 1 and good["hash_ok"] is True
    assert good["source_start"] + good["source_len"] == good["metadata_start"]
    data = bytearray(packed_example().read_bytes())
    data[100] ^= 1
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    proc = run_cli("inspect", str(bad))
    assert "note       not executable by this user" in proc.stdout
    assert (
        proc.returncode == 1
        and "hash       MISMATCH" in proc.stdout
        and "binary_sha256 mismatch" in proc.stdout
    )


def test_inspect_non_bundle_is_an_error(tmp_path: Path) -> None:
    """A file without the trailer: exit 1 with one error line."""
    plain = tmp_path / "plain"
    plain.write_text("hello\n")
    proc = run_cli("inspect", str(plain))
    assert (
        proc.returncode == 1
        and proc.stderr
        == f"trio-coord inspect: error: {plain} is not a bundle (no AFBNDL01 trailer)\n"
    )


@pytest.mark.parametrize(
    ("manifest", "mode", "status", "text"),
    [
        (_manifest(), 0o755, "usable", "usable:"),
        (_manifest(), 0o644, "ignored", "is not executable"),
        (_manifest(schema='"2026-06-17"'), 0o755, "rejected", "Version '2026-06-17' not found"),
        (
            _manifest(schema="2026-06-16"),
            0o755,
            "rejected",
            "missing or invalid sdk.supervisor_schema_version",
        ),
        ("- just\n- a list\n", 0o755, "skipped", "not a mapping"),
        ("dags: {unclosed\n", 0o755, "skipped", "cannot decode bundle metadata"),
    ],
)
def test_verify_reaches_the_coordinators_verdict(
    tmp_path: Path, manifest: str, mode: int, status: str, text: str
) -> None:
    """verify BUNDLE classifies like 1.3.2: usable, ignored (no X bit), rejected (schema), skipped (manifest)."""
    path = _fake(tmp_path / "b", manifest, mode=mode)
    proc = run_cli("verify", str(path))
    assert proc.returncode == (0 if status == "usable" else 1)
    assert proc.stdout.startswith(f"{status}: ") and text in proc.stdout


def test_verify_points_at_unquoted_dag_ids(tmp_path: Path) -> None:
    """A dag key YAML reads as an int is reported: no task would ever match it."""
    path = _fake(tmp_path / "b", _manifest(dags='  123:\n    tasks: ["t"]\n'))
    proc = run_cli("verify", str(path), "--dag-id", "123")
    assert proc.returncode == 1
    assert (
        "dag key 123 is read as int" in proc.stdout and "dag '123' is not declared" in proc.stdout
    )


def test_walk_order_and_pick_match_the_real_coordinator(tmp_path: Path) -> None:
    """Over a tree with subdirectories, a symlink loop and duplicate dag ids, verify picks what _Bundle.find picks."""
    root = tmp_path / "root"
    for i, sub in enumerate(["a", "b/c", "d", "e/f/g", "h"]):
        _fake(
            root / sub / f"bundle{i}",
            _manifest(dags=f'  "dup":\n    tasks: []\n  "only{i}":\n    tasks: []\n'),
        )
    _fake(
        root / "x" / "rejected", _manifest(dags='  "late":\n    tasks: []\n', schema='"1999-01-01"')
    )
    _fake(root / "y" / "late", _manifest(dags='  "late":\n    tasks: []\n'))
    (root / "b" / "loop").symlink_to(root)
    (root / "notes.txt").write_text("not a bundle")
    real = real_coordinator_view(roots=[root], find=["dup", "only3", "late", "missing"])
    from trio_coord.bundle.verify import discover, walk

    assert [str(p) for p, x in walk([root]) if x] == real["walk"]
    d = discover([root])
    for dag_id in ("dup", "only3", "late"):
        picked = d.pick(dag_id)
        assert picked is not None and str(picked.path) == real["find"][dag_id]
    assert d.pick("missing") is None and real["find"]["missing"].startswith("FileNotFoundError")
    assert set(d.conflicts()) == {"dup"}


def test_verify_root_reports_first_match_wins(tmp_path: Path) -> None:
    """Two bundles declaring one dag under a root: a conflict, exit 1, and which one actually runs."""
    root = tmp_path / "root"
    (root / "one").mkdir(parents=True)
    (root / "two").mkdir()
    shutil.copy2(packed_example(), root / "one" / "hello")
    shutil.copy2(packed_example(), root / "two" / "hello-copy")
    proc = run_cli("verify", "--root", str(root), "--dag-id", "hello")
    assert proc.returncode == 1
    assert "conflict: dag 'hello' is declared by 2 bundles" in proc.stdout
    runs = next(ln for ln in proc.stdout.splitlines() if ln.startswith("  runs: "))[8:]
    assert real_coordinator_view(roots=[root], find=["hello"])["find"]["hello"] == runs


def test_verify_dag_id_for_a_given_bundle(tmp_path: Path) -> None:
    """--root and --dag-id with a BUNDLE: exit 0 only when discovery would pick exactly that file."""
    root = tmp_path / "root"
    root.mkdir()
    mine = root / "hello"
    shutil.copy2(packed_example(), mine)
    other = _fake(tmp_path / "elsewhere", _manifest(dags='  "other":\n    tasks: []\n'))
    assert run_cli("verify", str(mine), "--root", str(root), "--dag-id", "hello").returncode == 0
    proc = run_cli("verify", str(other), "--root", str(root), "--dag-id", "hello")
    assert proc.returncode == 1 and f"but not {other}" in proc.stdout
    missing = run_cli("verify", "--root", str(root), "--dag-id", "nope")
    assert missing.returncode == 1 and "dag 'nope': not found" in missing.stdout


def test_verify_without_yaml_uses_the_payload_copy(tmp_path: Path) -> None:
    """Without PyYAML, verify still judges a trio-coord bundle from the JSON manifest copy in its payload."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['yaml'] = None\n"
        "from pathlib import Path\n"
        "from trio_coord.bundle.verify import examine\n"
        f"f = examine(Path({str(packed_example())!r}))\n"
        "print(f.status, f.dags, f.notes)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert proc.stdout.startswith(
        "usable ['hello'] [\"manifest read from the payload's JSON copy"
    ), proc.stderr
