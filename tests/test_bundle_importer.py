"""The in-memory payload importer (``_tc/boot.py``) on hand-made payloads."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.resources
import io
import sys
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_coord.bundle import importer
from trio_coord.bundle.launcher import bootstrap_source


def _zip(files: dict[str, bytes]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


@pytest.fixture
def payload() -> Iterator[tuple[str, object]]:
    """Install a finder for a payload whose top-level names are unique to this test."""
    top = f"tcpay_{uuid.uuid4().hex[:8]}"
    files = {
        f"lib/{top}/__init__.py": b"WHERE = 'payload'\n",
        f"lib/{top}/mod.py": b"def f():\n    return 1\n\n\ndef boom():\n    raise ValueError('boom from the payload')\n",
        f"lib/{top}/data/table.txt": b"a,b\n",
        f"lib/{top}/nsdir/leaf.py": b"LEAF = True\n",
        f"lib/{top}_single.py": b"SINGLE = 1\n",
        f"lib/{top}/_speed.cpython-399-nowhere.so": b"\x7fELF not really",
        f"lib/{top}/fast.py": b"try:\n    from ._speed import x\nexcept ImportError:\n    x = 'pure'\n",
        f"lib/{top}/_speed2.cpython-399-nowhere.so": b"\x7fELF not really",
        f"lib/{top}/fast2.py": b"try:\n    from ._speed2 import x\nexcept ImportError:\n    x = 'pure'\n",
    }
    finder = importer.install(_zip(files), "/srv/bundles/demo")
    try:
        yield top, finder
    finally:
        sys.meta_path.remove(finder)  # type: ignore[arg-type]
        for name in [n for n in sys.modules if n.startswith(top)]:
            del sys.modules[name]


def test_modules_packages_and_namespaces_import_from_memory(payload: tuple[str, object]) -> None:
    """Packages, submodules, single modules and __init__-less directories import with virtual paths."""
    top, _ = payload
    pkg = importlib.import_module(top)
    assert pkg.WHERE == "payload"
    assert pkg.__file__ == f"/srv/bundles/demo!/lib/{top}/__init__.py"
    assert list(pkg.__path__) == [f"/srv/bundles/demo!/lib/{top}"]
    assert importlib.import_module(f"{top}.mod").f() == 1
    assert importlib.import_module(f"{top}_single").SINGLE == 1
    assert importlib.import_module(f"{top}.nsdir.leaf").LEAF is True
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{top}.absent")


def test_tracebacks_show_payload_source_lines(payload: tuple[str, object]) -> None:
    """An exception raised in payload code formats with the virtual file name and the source line."""
    top, _ = payload
    mod = importlib.import_module(f"{top}.mod")
    try:
        mod.boom()
    except ValueError:
        text = traceback.format_exc()
    assert f'File "/srv/bundles/demo!/lib/{top}/mod.py", line 6, in boom' in text
    assert "raise ValueError('boom from the payload')" in text


def test_package_resources_are_readable(payload: tuple[str, object]) -> None:
    """importlib.resources.files() reaches data files packed next to a package's modules."""
    top, _ = payload
    importlib.import_module(top)
    assert (importlib.resources.files(top) / "data" / "table.txt").read_text() == "a,b\n"


def test_finder_sits_just_before_pathfinder(payload: tuple[str, object]) -> None:
    """Built-in and frozen importers still come first; the payload is searched before sys.path."""
    _, finder = payload
    i = sys.meta_path.index(finder)  # type: ignore[arg-type]
    assert sys.meta_path[i + 1] is importlib.machinery.PathFinder


def test_payload_beats_a_module_of_the_same_name_on_sys_path(tmp_path: Path) -> None:
    """A module present both on sys.path and in the payload is imported from the payload."""
    name = f"tcshadow_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("WHERE = 'disk'\n")
    sys.path.insert(0, str(tmp_path))
    finder = importer.install(_zip({f"lib/{name}.py": b"WHERE = 'payload'\n"}), "/b")
    try:
        assert importlib.import_module(name).WHERE == "payload"
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_foreign_extensions_fall_back_with_a_single_warning(
    payload: tuple[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Extensions built for another interpreter are skipped (ImportError -> fallback), warned about once per process."""
    top, _ = payload
    assert importlib.import_module(f"{top}.fast").x == "pure"
    assert importlib.import_module(f"{top}.fast2").x == "pure"
    err = capsys.readouterr().err
    assert err.count("warning: compiled module") == 1
    assert f"{top}._speed is not used because it was built for .cpython-399-nowhere.so" in err


def test_boot_module_uses_only_the_standard_library() -> None:
    """_tc/boot.py runs before any payload import, so it may import nothing outside the stdlib."""
    tree = ast.parse(Path(importer.__file__).read_text())
    tops = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    tops |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    assert tops - {"__future__", "trio_coord"} <= set(sys.stdlib_module_names)
    # trio_coord is imported only inside boot(), after the finder is installed.
    assert not [
        n
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("trio_coord")
    ]


def test_bootstrap_fits_in_single_quotes_and_compiles() -> None:
    """The -c program has no single quote (the shell quotes it) and is valid Python."""
    source = bootstrap_source()
    assert "'" not in source
    compile(source, "<bootstrap>", "exec")


def test_bytecode_cache_is_used_and_survives_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled payload code is cached by source and origin; a corrupt entry is recompiled, not trusted."""
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(tmp_path))
    finder = importer.PayloadFinder(_zip({}), "/srv/bundles/demo")
    source = b"VALUE = 41 + 1\n"
    first = finder.code_for(source, "/srv/bundles/demo!/lib/m.py")
    (entry,) = [p for p in (tmp_path / "pyc").rglob("*") if p.is_file()]
    ns: dict[str, object] = {}
    exec(finder.code_for(source, "/srv/bundles/demo!/lib/m.py"), ns)
    assert ns["VALUE"] == 42 and first.co_filename == "/srv/bundles/demo!/lib/m.py"
    # Another origin or source gets its own entry: tracebacks must name the right file.
    finder.code_for(source, "/srv/bundles/other!/lib/m.py")
    assert len([p for p in (tmp_path / "pyc").rglob("*") if p.is_file()]) == 2
    entry.write_bytes(entry.read_bytes()[:-3] + b"xyz")
    again = finder.code_for(source, "/srv/bundles/demo!/lib/m.py")
    ns2: dict[str, object] = {}
    exec(again, ns2)
    assert ns2["VALUE"] == 42


def test_unwritable_bytecode_cache_only_means_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the cache directory cannot be created, modules still compile and run."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(blocker))
    finder = importer.PayloadFinder(_zip({}), "/srv/bundles/demo")
    ns: dict[str, object] = {}
    exec(finder.code_for(b"OK = True\n", "/srv/bundles/demo!/lib/m.py"), ns)
    assert ns["OK"] is True
