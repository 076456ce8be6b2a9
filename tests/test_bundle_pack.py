"""trio-coord pack: the executable it writes, what it carries, and what it refuses."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bundle_helpers import (
    EXAMPLE,
    SIMPLE_BUNDLE,
    bare_python,
    packed,
    packed_example,
    real_coordinator_view,
    run_bundle,
    run_cli,
    scratch,
    write_bundle,
)

from trio_coord import __version__
from trio_coord.bundle import format as fmt
from trio_coord.bundle.launcher import MARKER, bootstrap_source

PYENV = Path("/root/.pyenv/versions")

PROBE = '''
"""Reports, on stderr, where its imports came from (the dag is incidental)."""
import json, sys
import msgpack, trio, yaml
import trio_coord

bundle = trio_coord.Bundle("probe", version="0.3")
d = bundle.dag("probe")

@d.task
def t():
    pass

sys.stderr.write("PROBE " + json.dumps({
    "trio": trio.__file__,
    "packer": msgpack.Packer.__module__,
    "libyaml": yaml.__with_libyaml__,
    "flags": [sys.flags.isolated, sys.flags.no_site],
    "version": list(sys.version_info[:2]),
}) + "\\n")
'''


def _probe_bundle() -> Path:
    src = write_bundle(scratch("probe-src"), body=PROBE, filename="probe.py")
    (src.parent / "requirements.txt").write_text("pyyaml>=6\n")
    return packed(src, "probe")


def _probe(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE "))
    return json.loads(line[6:])  # type: ignore[no-any-return]


def _payload(bundle: Path) -> zipfile.ZipFile:
    read = fmt.read_bundle(bundle, keep_binary=True)
    assert read is not None
    return zipfile.ZipFile(io.BytesIO(read.binary or b""))


def test_packed_example_is_accepted_by_the_real_coordinator_reader(tmp_path: Path) -> None:
    """task-sdk 1.3.2's _read_bundle_metadata and _Bundle.find accept the packed example for dag 'hello'."""
    bundle = packed_example()
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(bundle, root / "hello")
    view = real_coordinator_view(read=[bundle], roots=[root], find=["hello", "nope"])
    assert view["read"][str(bundle)] == {"dags": ["hello"], "schema": "2026-06-16"}
    assert view["find"]["hello"] == str((root / "hello").resolve())
    assert view["find"]["nope"].startswith(
        "FileNotFoundError: cannot find executable bundle containing dag_id='nope'"
    )
    assert os.stat(bundle).st_mode & 0o777 == 0o755


def test_layout_launcher_payload_sources_manifest(tmp_path: Path) -> None:
    """Binary region = #!/bin/sh launcher + ZIP (no root .py, runtime and deps under lib/); sources and manifest follow."""
    bundle = packed_example()
    data = bundle.read_bytes()
    assert data.startswith(b"#!/bin/sh\n")
    read = fmt.read_bundle(bundle, keep_binary=True)
    assert read is not None and read.hash_ok
    binary = read.binary or b""
    payload_start = binary.index(MARKER) + len(MARKER)
    assert binary[payload_start : payload_start + 4] == b"PK\x03\x04"
    names = _payload(bundle).namelist()
    assert names == sorted(names)
    assert not [n for n in names if "/" not in n]  # nothing at the archive root
    tops = {n.split("/")[1] for n in names if n.startswith("lib/")}
    assert {
        "trio_coord",
        "trio",
        "msgpack",
        "attr",
        "attrs",
        "outcome",
        "sniffio",
        "sortedcontainers",
        "idna",
        "hello_bundle.py",
    } <= tops
    assert not [
        n
        for n in names
        if "__pycache__" in n or n.endswith(".pyc") or "/_tests/" in n or ".dist-info" in n
    ]
    info = json.loads(_payload(bundle).read("_tc/bundle.json"))
    assert info["entry"] == "hello_bundle:bundle" and info["bundle"] == {
        "name": "hello",
        "version": "1.0.0",
    }
    assert read.source == EXAMPLE.read_bytes()
    manifest = read.metadata.decode()
    assert (
        '  "hello":\n    tasks:\n      - "greet"\n      - "shout"\n      - "fail_sometimes"\n'
        in manifest
    )
    assert f'integrity: "{read.trailer.binary_sha256.hex()}"' in manifest
    assert 'sha256: "' + hashlib.sha256(EXAMPLE.read_bytes()).hexdigest() + '"' in manifest


def test_pack_reports_what_it_wrote(tmp_path: Path) -> None:
    """The one stdout line names the path, the sdk, the number of dags and the exact size."""
    out = tmp_path / "sub" / "dir" / "b"
    proc = run_cli("pack", str(EXAMPLE), "-o", str(out), "--parents")
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout
        == f"Wrote bundle {out} (sdk=python/{__version__}, dags=1, bytes={out.stat().st_size})\n"
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]  # no staging leftovers


def test_packing_twice_gives_identical_bytes(tmp_path: Path) -> None:
    """Same inputs, two packs into different places: byte-identical files (no time, path or order leaks)."""
    src = write_bundle(tmp_path / "src", "twice")
    a, b = tmp_path / "a" / "twice", tmp_path / "b" / "other-name"
    assert run_cli("pack", str(src), "-o", str(a), "--parents").returncode == 0
    assert run_cli("pack", str(src), "-o", str(b), "--parents", cwd=tmp_path).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_source_date_epoch_sets_zip_dates_and_mtime(tmp_path: Path) -> None:
    """With SOURCE_DATE_EPOCH every ZIP entry and the file's mtime carry that time, and packing stays reproducible."""
    src = write_bundle(tmp_path / "src", "dated")
    env = {"SOURCE_DATE_EPOCH": "1767225600"}  # 2026-01-01T00:00:00Z
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("pack", str(src), "-o", str(a), env=env).returncode == 0
    assert run_cli("pack", str(src), "-o", str(b), env=env).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert {i.date_time for i in _payload(a).infolist()} == {(2026, 1, 1, 0, 0, 0)}
    assert int(a.stat().st_mtime) == 1767225600
    plain = tmp_path / "plain"
    assert run_cli("pack", str(src), "-o", str(plain)).returncode == 0
    assert {i.date_time for i in _payload(plain).infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.slow
def test_runs_on_a_bare_interpreter_from_the_payload_only() -> None:
    """Under a fresh venv's python (-I -S, no trio anywhere) trio, msgpack's C extension and libyaml load from the bundle."""
    bundle = _probe_bundle()
    cache = scratch("bare-cache")
    probe = _probe(
        run_bundle(
            bundle,
            "--dump-bundle-spec",
            env={"TRIO_COORD_PYTHON": str(bare_python()), "TRIO_COORD_CACHE_DIR": str(cache)},
        )
    )
    assert probe["trio"] == f"{bundle}!/lib/trio/__init__.py"
    assert probe["packer"] == "msgpack._cmsgpack" and probe["libyaml"] is True
    assert probe["flags"] == [1, 1]
    # The extension cache is content-addressed: ext/<sha256 of the file>-<original name>,
    # private to this user (files 0600 in 0700 directories).
    cached = sorted((cache / "ext").glob("*.so"))
    assert {p.name.split("-", 1)[1].split(".")[0] for p in cached} == {"_cmsgpack", "_yaml"}
    for p in cached:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name.split("-", 1)[0]
        assert p.stat().st_mode & 0o777 == 0o600
    assert {d.stat().st_mode & 0o777 for d in (cache, cache / "ext", cache / "pyc")} == {0o700}


@pytest.mark.slow
def test_unusable_cache_directory_costs_one_warning_and_a_temporary_cache(
    tmp_path: Path,
) -> None:
    """A cache directory that cannot be created costs one warning; extensions still load from a private temporary cache."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    proc = run_bundle(
        _probe_bundle(),
        "--dump-bundle-spec",
        # The per-user fallback goes under XDG_RUNTIME_DIR: keep it inside this test's directory.
        env={"TRIO_COORD_CACHE_DIR": str(blocker), "XDG_RUNTIME_DIR": str(tmp_path / "run")},
    )
    probe = _probe(proc)
    assert probe["packer"] == "msgpack._cmsgpack" and probe["libyaml"] is True
    assert proc.stderr.count("warning:") == 1, proc.stderr
    assert f"cache directory {blocker} is not used because it cannot be opened" in proc.stderr
    assert "slower" in proc.stderr and "Fix: " in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_other_python_versions_use_pure_python_fallbacks(version: str) -> None:
    """On another CPython the 3.11 extensions do not match: pure-Python fallbacks, one warning, same output."""
    pythons = sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
    if not pythons:
        pytest.skip(f"no Python {version} on this machine")
    proc = run_bundle(
        _probe_bundle(), "--dump-bundle-spec", env={"TRIO_COORD_PYTHON": str(pythons[-1])}
    )
    probe = _probe(proc)
    assert probe["version"] == [3, int(version.split(".")[1])]
    assert probe["packer"] == "msgpack.fallback" and probe["libyaml"] is False
    assert (
        proc.stderr.count("warning: compiled module") == 1
        and "built for .cpython-311" in proc.stderr
    )
    assert json.loads(proc.stdout)["dags"] == {"probe": {"tasks": ["t"]}}


def test_old_python_is_refused_with_exit_3() -> None:
    """An interpreter older than 3.11 runs only the bootstrap's version check: exit 3 and a message naming it."""
    olds = sorted(PYENV.glob("3.10.*/bin/python3.10")) + sorted(PYENV.glob("3.9.*/bin/python3.9"))
    if olds:
        proc = run_bundle(
            packed_example(), "--bundle-metadata", env={"TRIO_COORD_PYTHON": str(olds[0])}
        )
        assert proc.returncode == 3 and "needs Python >= 3.11, got 3." in proc.stderr
    # The same branch, independent of which interpreters exist: demand a future version.
    proc2 = subprocess.run(
        ["python3", "-I", "-S", "-c", bootstrap_source((99, 0)), str(packed_example()), ""],
        capture_output=True,
        text=True,
    )
    assert proc2.returncode == 3 and "needs Python >= 99.0" in proc2.stderr


def test_tampered_binary_region_refuses_to_start(tmp_path: Path) -> None:
    """The bootstrap re-hashes what it runs: one changed payload byte gives exit 3 before any import."""
    data = bytearray(packed_example().read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    bad.chmod(0o755)
    proc = run_bundle(bad, "--bundle-metadata")
    assert (
        proc.returncode == 3 and "does not match its SHA-256" in proc.stderr and proc.stdout == ""
    )


def test_missing_configured_interpreter_warns_and_reports(tmp_path: Path) -> None:
    """TRIO_COORD_PYTHON naming nothing: python3 runs instead, only to say so (a warning in metadata modes)."""
    proc = run_bundle(
        packed_example(), "--bundle-metadata", env={"TRIO_COORD_PYTHON": "/nonexistent/python3"}
    )
    assert proc.returncode == 0
    assert (
        "warning: Python interpreter '/nonexistent/python3' (TRIO_COORD_PYTHON) not found"
        in proc.stderr
    )


def test_no_python_at_all_exits_127(tmp_path: Path) -> None:
    """With no usable interpreter anywhere the launcher itself exits 127 with a message."""
    proc = subprocess.run(
        ["/bin/sh", str(packed_example()), "--bundle-metadata"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "TRIO_COORD_PYTHON": "/nonexistent/python3"},
    )
    assert proc.returncode == 127
    assert "no python3 on PATH" in proc.stderr and "/nonexistent/python3" in proc.stderr


def test_own_modules_and_packages_are_packed(tmp_path: Path) -> None:
    """Sibling modules and packages the bundle imports travel in the payload and in the source region."""
    src = tmp_path / "app"
    write_bundle(
        src,
        body="from mylib.util import ANSWER\nimport helpers\n"
        + SIMPLE_BUNDLE.format(name="app", dag_id="app", version="1"),
        filename="app_main.py",
    )
    (src / "helpers.py").write_text("X = 1\n")
    (src / "mylib").mkdir()
    (src / "mylib" / "__init__.py").write_text("")
    (src / "mylib" / "util.py").write_text("ANSWER = 42\n")
    (src / "mylib" / "unused.py").write_text("Y = 2\n")
    (src / "not_imported.py").write_text("Z = 3\n")
    out = tmp_path / "app.bundle"
    proc = run_cli("pack", str(src / "app_main.py"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    names = set(_payload(out).namelist())
    assert {
        "lib/app_main.py",
        "lib/helpers.py",
        "lib/mylib/__init__.py",
        "lib/mylib/util.py",
        "lib/mylib/unused.py",
    } <= names
    assert "lib/not_imported.py" not in names
    listing = run_cli("inspect", "--source", str(out)).stdout
    headers = [ln for ln in listing.splitlines() if ln.startswith("# --- source:")]
    assert headers == [
        "# --- source: app_main.py ---",
        "# --- source: helpers.py ---",
        "# --- source: mylib/__init__.py ---",
        "# --- source: mylib/unused.py ---",
        "# --- source: mylib/util.py ---",
    ]
    spec = run_bundle(out, "--dump-bundle-spec", env={"TRIO_COORD_PYTHON": str(bare_python())})
    assert spec.returncode == 0 and json.loads(spec.stdout)["dags"] == {
        "app": {"tasks": ["first", "second"]}
    }


def test_dependencies_from_pyproject_are_vendored(tmp_path: Path) -> None:
    """[project] dependencies of a pyproject.toml next to the bundle file are resolved and packed."""
    src = write_bundle(
        tmp_path / "src",
        body="import yaml\n" + SIMPLE_BUNDLE.format(name="pp", dag_id="pp", version="1"),
        filename="pp.py",
    )
    (src.parent / "pyproject.toml").write_text(
        '[project]\nname = "pp"\nversion = "1"\ndependencies = ["PyYAML>=6"]\n'
    )
    out = tmp_path / "pp"
    assert run_cli("pack", str(src), "-o", str(out)).returncode == 0
    info = json.loads(_payload(out).read("_tc/bundle.json"))
    assert "pyyaml" in info["vendored"] and "lib/yaml/__init__.py" in _payload(out).namelist()


def test_replacing_a_bundle_is_an_atomic_rename(tmp_path: Path) -> None:
    """Packing over an existing bundle renames a new file in: an open reader keeps the old, complete bytes."""
    src = write_bundle(tmp_path / "src", "swap", version="1.0")
    out = tmp_path / "deploy" / "swap"
    assert run_cli("pack", str(src), "-o", str(out), "--parents").returncode == 0
    old_bytes = out.read_bytes()
    with open(out, "rb") as old:
        old_inode = os.fstat(old.fileno()).st_ino
        write_bundle(tmp_path / "src", "swap", version="2.0")
        assert run_cli("pack", str(src), "-o", str(out)).returncode == 0
        assert old.read() == old_bytes
    assert out.stat().st_ino != old_inode and out.read_bytes() != old_bytes
    assert os.listdir(out.parent) == ["swap"]


NO_DAGS = "import trio_coord\nbundle = trio_coord.Bundle('empty')\n"
TWICE = "import trio_coord\nbundle = trio_coord.Bundle('twice')\nbundle.dag('d')\nbundle.dag('d')\n"
BAD_VERSION = SIMPLE_BUNDLE.format(name="badver", dag_id="d", version="not a version!")
RAISES = (
    "import trio_coord\nbundle = trio_coord.Bundle('boom')\nraise ValueError('nope at import')\n"
)
UNDECLARED = "import yaml\n" + SIMPLE_BUNDLE.format(name="undeclared", dag_id="d", version="1")


@pytest.mark.parametrize(
    ("body", "requirements", "message"),
    [
        (NO_DAGS, None, "bundle 'empty' exposes no dags: nothing to pack"),
        (TWICE, None, "dag id 'd' is declared twice in bundle 'twice'"),
        (BAD_VERSION, None, "has version 'not a version!', which is not a valid version (PEP 440"),
        (RAISES, None, "ValueError: nope at import"),
        (b"\xff\xfe not utf-8 at all", None, "not UTF-8"),
        (
            SIMPLE_BUNDLE.format(name="dep", dag_id="d", version="1"),
            "surely-not-installed-xyz>=1\n",
            "dependency surely-not-installed-xyz>=1 (from ",
        ),
        (
            SIMPLE_BUNDLE.format(name="dep", dag_id="d", version="1"),
            "trio<0.1\n",
            "is not satisfied: trio 0.35.0 is installed",
        ),
        (
            SIMPLE_BUNDLE.format(name="dep", dag_id="d", version="1"),
            "-e ./somewhere\n",
            "-e is not supported",
        ),
        (UNDECLARED, None, "imports pyyaml (imported as yaml) but does not declare it"),
    ],
    ids=[
        "no-dags",
        "dag-twice",
        "bad-version",
        "import-error",
        "not-utf8",
        "dep-missing",
        "dep-version",
        "dep-editable",
        "undeclared",
    ],
)
def test_refusals_write_nothing(
    tmp_path: Path, body: str | bytes, requirements: str | None, message: str
) -> None:
    """Each refusal: exit 1, a clear message, the existing output untouched and no temporary file left."""
    src = tmp_path / "src"
    src.mkdir()
    entry = src / "refused.py"
    entry.write_bytes(body if isinstance(body, bytes) else body.encode())
    if requirements is not None:
        (src / "requirements.txt").write_text(requirements)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "refused").write_bytes(b"previous bundle")
    proc = run_cli("pack", str(entry), "-o", str(deploy / "refused"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("trio-coord pack: error: ") and message in proc.stderr
    assert proc.stdout == ""
    assert (
        os.listdir(deploy) == ["refused"]
        and (deploy / "refused").read_bytes() == b"previous bundle"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("does/not/exist.py",), "bundle file does/not/exist.py does not exist"),
        ((str(EXAMPLE), "-o", "/"), "is a directory"),
        ((str(EXAMPLE), "-o", str(EXAMPLE)), "is one of the bundle's own source files"),
    ],
)
def test_bad_inputs_and_outputs_are_refused(args: tuple[str, ...], message: str) -> None:
    """A missing bundle file, an output that is a directory or a source file: exit 1, nothing written."""
    before = EXAMPLE.read_bytes()
    proc = run_cli("pack", *args)
    assert proc.returncode == 1 and message in proc.stderr
    assert EXAMPLE.read_bytes() == before


def _shim_dir(tmp_path: Path, marker: Path) -> Path:
    """A PATH directory whose python3 (like a version-manager shim) leaves ``marker`` and fails."""
    shims = tmp_path / "shims"
    shims.mkdir()
    script = shims / "python3-shim"
    script.write_text(f"#!/bin/sh\necho shim >> {marker}\nexit 42\n")
    script.chmod(0o755)
    (shims / "python3").symlink_to(script)
    return shims


def test_recorded_interpreter_is_the_packing_ones_real_binary() -> None:
    """Packing records the packing interpreter resolved through symlinks; inspect shows it."""
    proc = run_cli("inspect", str(packed_example()), "--json")
    assert proc.returncode == 0, proc.stderr
    interpreter = json.loads(proc.stdout)["python"]["interpreter"]
    assert interpreter == os.path.realpath(sys.executable)
    assert not Path(interpreter).is_symlink()
    launcher = packed_example().read_bytes().split(MARKER, 1)[0].decode()
    assert f"_tc_py={interpreter} " in launcher


def test_recorded_interpreter_wins_over_a_python3_shim_on_path(tmp_path: Path) -> None:
    """With TRIO_COORD_PYTHON unset, the bundle starts the recorded interpreter, never the python3 first on PATH."""
    marker = tmp_path / "shim-ran"
    shims = _shim_dir(tmp_path, marker)
    proc = run_bundle(
        packed_example(),
        "--bundle-metadata",
        env={"TRIO_COORD_PYTHON": "", "PATH": f"{shims}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Name"] == "hello"
    assert not marker.exists() and proc.stderr == ""


def test_missing_recorded_interpreter_falls_back_to_path_with_one_warning(tmp_path: Path) -> None:
    """A recorded interpreter absent on this machine: python3 from PATH runs, and stderr says so once."""
    bundle = packed(EXAMPLE, "hello-missing-python", "--python", "/opt/gone/bin/python3.11")
    launcher = bundle.read_bytes().split(MARKER, 1)[0].decode()
    assert "_tc_py=/opt/gone/bin/python3.11 " in launcher
    proc = run_bundle(bundle, "--bundle-metadata", env={"TRIO_COORD_PYTHON": ""})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Name"] == "hello"
    assert proc.stderr.count("warning") == 1, proc.stderr
    assert (
        "Python interpreter '/opt/gone/bin/python3.11' (recorded by trio-coord pack) not found"
        " on this worker; using python3 from PATH instead" in proc.stderr
    )
