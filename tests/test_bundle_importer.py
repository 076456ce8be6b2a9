"""The in-memory payload importer (``_tc/boot.py``) on hand-made payloads."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.resources
import io
import marshal
import os
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import types
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bundle_helpers import planted_shared_object

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


@pytest.fixture(autouse=True)
def _own_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fallback caches made in this process go under the test's own directory: the
    per-process one is removed only at interpreter exit, long after the test."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))


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


def _counting_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the origin of every compile the importer does."""
    seen: list[str] = []
    real = importer.compile_source

    def counting(source: bytes, origin: str) -> types.CodeType:
        seen.append(origin)
        return real(source, origin)

    monkeypatch.setattr(importer, "compile_source", counting)
    return seen


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / "pyc").iterdir() if not p.name.startswith("."))


def test_bytecode_cache_is_used_and_a_planted_entry_is_not_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second import of the same source compiles nothing; an entry not sealed with our key is compiled over, not run."""
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(tmp_path))
    compiles = _counting_compiles(monkeypatch)
    origin = "/srv/bundles/demo!/lib/m.py"
    source = b"VALUE = 41 + 1\n"
    first = importer.PayloadFinder(_zip({}), "/srv/bundles/demo").code_for(source, origin)
    assert first.co_filename == origin and compiles == [origin]
    # A new finder (a new process) gets the code from the cache: no second compile.
    again = importer.PayloadFinder(_zip({}), "/srv/bundles/demo")
    ns: dict[str, object] = {}
    exec(again.code_for(source, origin), ns)
    assert ns["VALUE"] == 42 and compiles == [origin]
    # Another origin gets its own entry: tracebacks must name the right file.
    again.code_for(source, "/srv/bundles/other!/lib/m.py")
    assert len(compiles) == 2 and len(_entries(tmp_path)) == 2
    # Plant, under every entry's name, code that is self-consistent by the old format
    # (SHA-256 of the body first) and by any other check short of our key.
    planted = marshal.dumps(compile("VALUE = 666\n", origin, "exec"))
    for entry in _entries(tmp_path):
        entry.write_bytes(hashlib.sha256(planted).digest() + planted)
    ns2: dict[str, object] = {}
    exec(importer.PayloadFinder(_zip({}), "/srv/bundles/demo").code_for(source, origin), ns2)
    assert ns2["VALUE"] == 42 and len(compiles) == 3
    # ... and the recompiled entry replaced the planted one.
    importer.PayloadFinder(_zip({}), "/srv/bundles/demo").code_for(source, origin)
    assert len(compiles) == 3


def test_cache_files_and_directories_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache directory, its subdirectories and missing parents are created 0700, its files 0600, whatever the umask."""
    root = tmp_path / "made" / "for" / "us"
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(root))
    old = os.umask(0o022)
    try:
        importer.PayloadFinder(_zip({}), "/b").code_for(b"X = 1\n", "/b!/lib/x.py")
    finally:
        os.umask(old)
    dirs = [tmp_path / "made", tmp_path / "made" / "for", root, root / "pyc", root / "ext"]
    assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o700}
    files = [root / "key", *_entries(root)]
    assert len(files) == 2 and {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_an_existing_cache_of_ours_readable_by_others_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0755 cache directory we own (what earlier versions made) is used and made 0700, without a warning."""
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(root))
    finder = importer.PayloadFinder(_zip({}), "/b")
    cache = finder.cache()
    assert cache is not None and cache.path == str(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert capsys.readouterr().err == ""


def _symlinked(tmp_path: Path) -> Path:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    return tmp_path / "link"


def _world_writable(tmp_path: Path) -> Path:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    return tmp_path / "open"


def _foreign(tmp_path: Path) -> Path:
    (tmp_path / "theirs").mkdir(mode=0o700)
    os.chown(tmp_path / "theirs", 12345, 12345)
    return tmp_path / "theirs"


def _inside_writable_parent(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)  # no sticky bit: anyone may rename our directory
    (tmp_path / "shared" / "mine").mkdir(mode=0o700)
    return tmp_path / "shared" / "mine"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_symlinked, "is reached through the symbolic link 'link'"),
        (_world_writable, "is writable by group or others (mode 777)"),
        (_foreign, "is owned by uid 12345"),
        (_inside_writable_parent, "which someone else can change"),
    ],
)
def test_unsafe_cache_directory_is_refused_with_one_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    problem: str,
) -> None:
    """A symlinked, group/world-writable, foreign or movable cache is not read or written; a private temporary one is used, with one warning."""
    if os.geteuid() != 0 and make is _foreign:
        pytest.skip("chown to another uid needs root")
    unsafe = make(tmp_path)
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(unsafe))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    before = sorted(p.name for p in unsafe.resolve().iterdir())
    finder = importer.PayloadFinder(_zip({}), "/b")
    for i in range(3):
        ns: dict[str, object] = {}
        exec(finder.code_for(b"OK = %d\n" % i, "/b!/lib/m.py"), ns)
        assert ns["OK"] == i
    cache = finder.cache()
    assert cache is not None and cache.path == str(
        tmp_path / "run" / f"trio-coord-cache-{os.geteuid()}"
    )
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o700
    assert sorted(p.name for p in unsafe.resolve().iterdir()) == before  # untouched
    err = capsys.readouterr().err
    assert err.count("warning:") == 1, err
    assert f"cache directory {unsafe} is not used because it " in err and problem in err
    assert "slower" in err and "Fix: " in err


def test_the_refusal_warning_is_repeated_at_most_daily_when_the_fallback_persists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second process refusing the same directory stays quiet (its per-user fallback remembers); a day later, or with a per-process fallback, it warns again."""
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(_world_writable(tmp_path)))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    warnings = []
    for _ in range(2):
        importer.PayloadFinder(_zip({}), "/b").cache()
        warnings.append(capsys.readouterr().err.count("warning:"))
    assert warnings == [1, 0]
    fallback = tmp_path / "run" / f"trio-coord-cache-{os.geteuid()}"
    for seen in fallback.glob("seen-*"):
        os.utime(seen, (time.time() - 90000, time.time() - 90000))
    importer.PayloadFinder(_zip({}), "/b").cache()
    assert capsys.readouterr().err.count("warning:") == 1
    fallback.chmod(0o777)  # the per-user fallback is refused too: a per-process one, every time
    for _ in range(2):
        cache = importer.PayloadFinder(_zip({}), "/b").cache()
        assert (
            cache is not None and "trio-coord-cache-" in cache.path and cache.path != str(fallback)
        )
        err = capsys.readouterr().err
        assert err.count("warning:") == 1 and "slower starts" in err, err


def test_unwritable_cache_warns_once_and_still_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache that cannot be written and no temporary directory either: one warning, modules still compile and run."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: m != os.W_OK and real_access(p, m, **kw))
    monkeypatch.setattr("tempfile.mkdtemp", lambda **kw: (_ for _ in ()).throw(OSError("none")))
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(tmp_path / "ro"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    finder = importer.PayloadFinder(_zip({}), "/srv/bundles/demo")
    for _ in range(2):
        ns: dict[str, object] = {}
        exec(finder.code_for(b"OK = True\n", "/srv/bundles/demo!/lib/m.py"), ns)
        assert ns["OK"] is True
    assert finder.cache() is None
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "cannot be written" in err, err
    assert "Fix: make " in err


def test_eviction_keeps_the_newest_entries_within_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past TRIO_COORD_CACHE_MAX_MB the least recently used entries go, the newest stay, stale temporaries are removed."""
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRIO_COORD_CACHE_MAX_MB", "1")
    cache = importer.PayloadFinder(_zip({}), "/b").cache()
    assert cache is not None and cache.cap == 1 << 20
    blob = b"x" * (300 << 10)
    now = time.time()
    for i in range(6):  # 1.8 MiB in all, oldest first
        cache.store_code(f"{i:064x}", blob)
        os.utime(tmp_path / "pyc" / f"{i:064x}", (now - 600 + i, now - 600 + i))
    stale = tmp_path / "pyc" / ".leftover.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (now - 7200, now - 7200))
    cache.sweep()
    kept = [p.name for p in _entries(tmp_path)]
    assert kept == [f"{i:064x}" for i in (3, 4, 5)]
    assert sum(p.stat().st_size for p in _entries(tmp_path)) <= 1 << 20
    assert not stale.exists()


def test_a_bad_cache_cap_is_reported_and_the_default_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRIO_COORD_CACHE_MAX_MB that is not a positive number gets one warning naming the default."""
    monkeypatch.setenv("TRIO_COORD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRIO_COORD_CACHE_MAX_MB", "lots")
    cache = importer.PayloadFinder(_zip({}), "/b").cache()
    assert cache is not None and cache.cap == importer.DEFAULT_CACHE_MAX_MB << 20
    assert (
        "TRIO_COORD_CACHE_MAX_MB='lots' is not a positive whole number" in capsys.readouterr().err
    )


_SWAP = r"""
import importlib.machinery, importlib.util, io, os, sys, zipfile
import msgpack._cmsgpack as real
from trio_coord.bundle import importer
cache, planted, marker = sys.argv[1:]
suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("lib/tcswap/__init__.py", b"")
    zf.writestr("lib/tcswap/_cmsgpack" + suffix, open(real.__file__, "rb").read())
os.environ["TRIO_COORD_CACHE_DIR"] = cache
finder = importer.PayloadFinder(zipfile.ZipFile(io.BytesIO(buf.getvalue())), "/b")
spec = finder.find_spec("tcswap._cmsgpack")  # checked here ...
(entry,) = [e for e in os.listdir(os.path.join(cache, "ext")) if not e.startswith(".")]
swap = os.path.join(cache, "ext", ".swap")
with open(swap, "wb") as f:
    f.write(open(planted, "rb").read())
os.replace(swap, os.path.join(cache, "ext", entry))  # ... swapped before the load ...
try:
    module = importlib.util.module_from_spec(spec)  # ... and loaded here
    spec.loader.exec_module(module)
    loaded = hasattr(module, "Packer")
except ImportError:
    loaded = False
print("LOADED", loaded, os.path.exists(marker))
"""


def test_an_extension_swapped_between_check_and_load_is_not_loaded(tmp_path: Path) -> None:
    """Replacing the cached extension file after its hash was checked does not change what dlopen maps."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("loading through the checked descriptor needs /proc")
    marker = tmp_path / "planted-ran"
    so = tmp_path / "planted.so"
    so.write_bytes(planted_shared_object(tmp_path / "so", marker))
    proc = subprocess.run(
        [sys.executable, "-c", _SWAP, str(tmp_path / "cache"), str(so), str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["LOADED", "True", "False"]
    assert not marker.exists()
