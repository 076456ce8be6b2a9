"""``trio-coord pack``: a Python file of tasks -> one self-contained executable bundle.

Steps (the packer of the bundle format, with trio-coord's additions):

1. Read the bundle file, then import it in a child ``python -I`` and describe its DAGs.
2. Validate: at least one DAG, a PEP 440 bundle version (duplicate dag or task ids
   already fail at registration), no undeclared third-party import.
3. Resolve trio-coord's and the bundle's declared dependencies from the packing
   environment (:mod:`.vendor`); collect the bundle's own modules.
4. Build the payload ZIP deterministically (sorted members, fixed dates: 1980-01-01 or
   ``SOURCE_DATE_EPOCH``, fixed modes, no extras) and put the launcher in front of it.
5. Source region (display copies, entry first), manifest, trailer.
6. Stage in the target directory under a dot-name with mode 0600 (a coordinator scanning
   there ignores it), verify it with the independent reader and by running it with
   ``--dump-bundle-spec`` and ``--bundle-metadata``, then ``chmod 0755`` and rename over
   the output in one step. Any refusal leaves nothing behind and an existing output
   untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .. import __version__
from . import format as bundle_format
from . import importer, manifest
from .launcher import LAYOUT, MIN_PYTHON, launcher
from .requirements import InvalidRequirement, Version
from .vendor import Dist, PackError, check_clashes, declared_requirements, resolve

__all__ = ["PackOptions", "PackResult", "add_arguments", "pack", "recorded_interpreter"]

#: How long the bundle's own import may take in the introspection child (§7.2 step 1).
INTROSPECT_TIMEOUT: Final = 60.0
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_MIN_PYTHON_TEXT: Final = ".".join(map(str, MIN_PYTHON))


@dataclass
class PackOptions:
    """What ``trio-coord pack`` was asked to do."""

    entry: str
    output: Path | None = None
    python: str | None = None
    isolation: str = "hermetic"
    requirements: list[str] = field(default_factory=list)
    app_root: Path | None = None
    store: bool = False
    verify: bool = True
    #: Create the output's missing parent directories (``--parents``); refused otherwise.
    parents: bool = False


@dataclass(frozen=True)
class PackResult:
    """The written bundle."""

    path: Path
    size: int
    dags: dict[str, list[str]]
    binary_sha256: str
    name: str
    version: str
    vendored: dict[str, str]
    warnings: list[str]


def _zip_date() -> tuple[int, int, int, int, int, int]:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if not raw:
        return _ZIP_EPOCH
    try:
        epoch = int(raw)
    except ValueError:
        raise PackError(f"SOURCE_DATE_EPOCH must be an integer, got {raw!r}") from None
    t = time.gmtime(max(epoch, 315532800))  # ZIP dates start in 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


# -- step 1: read and introspect --------------------------------------------------------


def _read_source(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackError(
            f"cannot read {path}: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None


def _split_entry(entry: str) -> tuple[str, str, bool]:
    target, _, attr = entry.partition(":")
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    return target, attr, is_file


def _run_child(
    argv: list[str], too_slow: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a helper process with the introspection timeout; ``too_slow`` explains one."""
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            env=env,
            timeout=INTROSPECT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise PackError(f"{too_slow} (more than {INTROSPECT_TIMEOUT:.0f} s)") from None


def _introspect(entry: str, app_root: Path) -> dict[str, Any]:
    here = str(Path(__file__).resolve().parent.parent.parent)
    code = (
        "import sys; sys.path.append(sys.argv.pop(1)); "
        "from trio_coord.bundle.introspect import main; sys.exit(main(sys.argv[1:]))"
    )
    with tempfile.TemporaryDirectory(prefix="trio-coord-pack-") as tmp:
        out = Path(tmp) / "spec.json"
        proc = _run_child(
            [sys.executable, "-I", "-c", code, here, entry, str(out), str(app_root)],
            f"importing {entry} took too long; module-level code of a bundle should only "
            "declare DAGs and tasks",
        )
        if proc.returncode != 0 or not out.exists():
            raise PackError(
                f"importing {entry} failed:\n{proc.stderr.decode('utf-8', 'replace').strip()}"
            )
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if "error" in data:
        detail = f"\n{data['traceback'].rstrip()}" if data.get("traceback") else ""
        raise PackError(f"{data['error']}{detail}")
    return data


# -- step 2/3: validate, collect --------------------------------------------------------


def _under(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _is_installed_path(path: str) -> bool:
    parts = Path(path).parts
    return "site-packages" in parts or "dist-packages" in parts


def _module_name(stem: str) -> str:
    name = re.sub(r"\W", "_", stem)
    return f"_{name}" if name[:1].isdigit() else name


def _app_files(
    info: Mapping[str, Any], entry: str, app_root: Path, vendored_tops: set[str]
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(entry module name, payload member -> source text, payload member -> display path)."""
    target, _, is_file = _split_entry(entry)
    entry_file = Path(info["entry_file"]).resolve()
    if is_file:
        module = _module_name(entry_file.stem)
        entry_member = f"lib/{module}.py"
    else:
        module = target
        suffix = "/__init__.py" if entry_file.name == "__init__.py" else ".py"
        entry_member = "lib/" + module.replace(".", "/") + suffix
    members: dict[str, str] = {entry_member: _read_source(entry_file)}
    display: dict[str, str] = {entry_member: _display(entry_file, app_root)}
    for name, file in info["modules"].items():
        top = name.split(".")[0]
        if (
            top in vendored_tops
            or top in sys.stdlib_module_names
            or name.startswith("_trio_coord_bundle_")
            or not _under(file, app_root)
            or _is_installed_path(file)
        ):
            continue
        path = Path(file).resolve()
        if path.suffix != ".py":
            raise PackError(
                f"module {name} ({path}) is not Python source; install it as a dependency"
            )
        depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
        top_path = path.parents[depth - 1] if depth else path
        files = sorted(top_path.rglob("*.py")) if top_path.is_dir() else [top_path]
        for f in files:
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(top_path.parent).as_posix()
            member = "lib/" + rel
            if member not in members and f.resolve() != entry_file:
                members[member] = _read_source(f)
                display[member] = _display(f, app_root)
    return module, members, display


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.name


def _undeclared_imports(info: Mapping[str, Any], vendored: list[Dist], app_root: Path) -> list[str]:
    """Third-party distributions the bundle imported that the payload will not carry."""
    tops_to_dists = importlib.metadata.packages_distributions()
    carried = {d.name for d in vendored}
    missing: dict[str, str] = {}
    for name, file in info["modules"].items():
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or not _is_installed_path(file) or _under(file, app_root):
            continue
        from .requirements import canonical_name

        dists = [canonical_name(d) for d in tops_to_dists.get(top, [])]
        if dists and not set(dists) & carried:
            missing.setdefault(dists[0], top)
    return [f"{dist} (imported as {top})" for dist, top in sorted(missing.items())]


def _validate(info: Mapping[str, Any]) -> list[str]:
    if not info["dags"]:
        raise PackError(f"bundle {info['name']!r} exposes no dags: nothing to pack")
    try:
        Version.parse(info["version"])
    except InvalidRequirement:
        raise PackError(
            f"bundle {info['name']!r} has version {info['version']!r}, which is not a valid "
            "version (PEP 440, e.g. 1.0.0)"
        ) from None
    warnings = []
    for dag_id, dag in info["dags"].items():
        if not dag["tasks"]:
            warnings.append(f"dag {dag_id!r} has no tasks")
        for ident in (dag_id, *dag["tasks"]):
            if ".." in ident:
                warnings.append(f"id {ident!r} contains '..', which Airflow rejects by default")
    return warnings


# -- step 4/5: build ---------------------------------------------------------------------


def _payload(files: Mapping[str, bytes], *, store: bool) -> bytes:
    date = _zip_date()
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if store else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            zi = zipfile.ZipInfo(name, date)
            zi.create_system = 3
            zi.external_attr = 0o100644 << 16
            zi.compress_type = method
            zf.writestr(zi, files[name], compress_type=method, compresslevel=None if store else 9)
    return buf.getvalue()


@dataclass(frozen=True)
class _Built:
    data: bytes
    binary_sha256: bytes
    manifest_text: str
    spec: dict[str, Any]


def recorded_interpreter(isolation: str, python: str | None = None) -> str:
    """The interpreter the launcher starts when ``$TRIO_COORD_PYTHON`` is unset.

    ``--python`` is recorded as given (the operator knows the workers' layout). Otherwise
    the packing interpreter, so a bundle runs on the Python it was checked against rather
    than whatever ``python3`` means on the worker's ``PATH``. Hermetic bundles
    (``python -I -S``) see no site-packages, so the path is resolved through symlinks to
    the real binary: starting it skips any shim or venv indirection. A ``site`` bundle
    keeps the unresolved path, because a venv's ``bin/python`` symlink is what selects
    that venv's site-packages.
    """
    if python:
        return python
    executable = os.path.abspath(sys.executable)
    return os.path.realpath(executable) if isolation == "hermetic" else executable


def _build(
    info: Mapping[str, Any],
    opts: PackOptions,
    module: str,
    app: Mapping[str, str],
    display: Mapping[str, str],
    dists: list[Dist],
    entry_member: str,
) -> _Built:
    dag_tasks = {d: list(v["tasks"]) for d, v in info["dags"].items()}
    spec = manifest.spec_document(dag_tasks)
    python = recorded_interpreter(opts.isolation, opts.python)
    bundle_json = {
        "layout": LAYOUT,
        "entry": f"{module}:{info['attr']}",
        "min_python": _MIN_PYTHON_TEXT,
        "isolation": opts.isolation,
        "python": python,
        "bundle": {"name": info["name"], "version": info["version"]},
        "manifest": {k: spec[k] for k in ("airflow_bundle_metadata_version", "sdk", "dags")}
        | {"source": display[entry_member].rsplit("/", 1)[-1]}
        | {"dag_fingerprints": info.get("fingerprints") or {}},
        "vendored": {d.name: d.version for d in dists},
        "registry": info["dags"],
    }
    files: dict[str, bytes] = {
        "_tc/boot.py": Path(importer.__file__).read_bytes(),
        "_tc/bundle.json": (json.dumps(bundle_json, indent=1, ensure_ascii=False) + "\n").encode(),
    }
    for d in dists:
        for member, path in d.files.items():
            files[member] = path.read_bytes()
    for member, text in app.items():
        files[member] = text.encode("utf-8")
    binary = launcher(python=python, isolation=opts.isolation) + _payload(files, store=opts.store)
    binary_sha = hashlib.sha256(binary).digest()

    order = [entry_member, *sorted((m for m in app if m != entry_member), key=lambda m: display[m])]
    sources, chunks, offset = [], [], 0
    for member in order:
        raw = app[member].encode("utf-8")
        sources.append(
            {
                "path": display[member],
                "offset": offset,
                "length": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
        chunks.append(raw)
        offset += len(raw)
    source = b"".join(chunks)

    def render(digests: dict[str, str] | None) -> str:
        return manifest.render_yaml(
            manifest.build_manifest(
                spec,
                source=display[entry_member].rsplit("/", 1)[-1],
                sources=sources,
                bundle_name=info["name"],
                bundle_version=info["version"],
                digests=digests,
                fingerprints=info.get("fingerprints"),
            )
        )

    without = render(None).encode("utf-8")
    text = render(
        {"integrity": binary_sha.hex(), "cache": manifest.cache_digest(binary_sha, source, without)}
    )
    _check_yaml(text, spec)
    data = bundle_format.assemble(binary, source, text.encode("utf-8"))
    return _Built(data, binary_sha, text, spec)


def _check_yaml(text: str, spec: Mapping[str, Any]) -> None:
    """§4.4 rule 7: the manifest reads back with the right types (when PyYAML is here)."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        return
    loaded = yaml.safe_load(text)
    ok = (
        isinstance(loaded, dict)
        and isinstance(loaded.get("dags"), dict)
        and list(loaded["dags"]) == list(spec["dags"])
        and all(isinstance(k, str) for k in loaded["dags"])
        and loaded.get("sdk", {}).get("supervisor_schema_version")
        == manifest.SUPERVISOR_SCHEMA_VERSION
    )
    if not ok:
        raise PackError("the rendered manifest does not read back as written (a trio-coord bug)")


# -- step 6: stage, verify, rename --------------------------------------------------------


def _verify_staged(staged: Path, built: _Built, info: Mapping[str, Any]) -> None:
    read = bundle_format.read_bundle(staged)
    if read is None or not read.hash_ok or read.metadata.decode("utf-8") != built.manifest_text:
        raise PackError(f"the staged bundle {staged} does not read back as written")
    env = {**os.environ, "TRIO_COORD_PYTHON": sys.executable}
    expected = {
        "--dump-bundle-spec": manifest.render_json(built.spec),
        "--bundle-metadata": manifest.render_json(manifest.identity(info["name"], info["version"])),
    }
    for flag, want in expected.items():
        proc = _run_child(
            ["/bin/sh", str(staged), flag], f"the packed bundle did not answer {flag} in time", env
        )
        if proc.returncode != 0 or proc.stdout.decode("utf-8", "replace") != want:
            err = proc.stderr.decode("utf-8", "replace").strip()
            hint = ""
            if "ModuleNotFoundError" in err:
                hint = "\n(a module the bundle imports is not in the payload: declare it in requirements.txt)"
            raise PackError(
                f"the packed bundle fails {flag} (exit {proc.returncode}):\n{err}{hint}"
            )


def _stage_and_replace(output: Path, built: _Built, info: Mapping[str, Any], verify: bool) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(built.data)
            f.flush()
            os.fsync(f.fileno())
        if verify:
            _verify_staged(tmp, built, info)
        os.chmod(tmp, 0o755)
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        if epoch:
            os.utime(tmp, (int(epoch), int(epoch)))
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(output.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# -- the whole thing -----------------------------------------------------------------------


def pack(opts: PackOptions) -> PackResult:
    """Build, verify and write a bundle.

    Raises:
        PackError: every refusal (no DAGs, duplicate ids, bad version, unreadable source,
            unresolvable dependency, unusable output path); nothing is written then.
    """
    target, _, is_file = _split_entry(opts.entry)
    if is_file:
        entry_path = Path(target)
        if not entry_path.is_file():
            raise PackError(f"bundle file {target} does not exist")
        _read_source(entry_path)
        app_root = (opts.app_root or entry_path.parent).resolve()
    else:
        app_root = (opts.app_root or Path.cwd()).resolve()
    output = opts.output
    if output is not None and output.is_dir():
        raise PackError(f"output {output} is a directory; name the bundle file to write")
    if output is not None and not opts.parents and not output.parent.is_dir():
        raise PackError(f"directory {output.parent} does not exist: create it, or pass --parents")

    info = _introspect(opts.entry, app_root)
    warnings = _validate(info)
    if not info.get("attr"):
        raise PackError(
            f"cannot tell which global of {target} holds the bundle; name it as {target}:ATTR"
        )
    declared = declared_requirements(Path(target) if is_file else None, opts.requirements)
    dists = resolve(declared, min_python=_MIN_PYTHON_TEXT)
    vendored_tops = {m.split("/")[1].split(".")[0] for d in dists for m in d.files}
    module, app, display = _app_files(info, opts.entry, app_root, vendored_tops)
    entry_member = next(iter(app))
    check_clashes(
        {
            **{f"{d.name} {d.version}": d.files for d in dists},
            "the bundle's own modules": dict.fromkeys(app, Path()),
        }
    )
    missing = _undeclared_imports(info, dists, app_root)
    if missing:
        text = f"the bundle imports {', '.join(missing)} but does not declare it (requirements.txt or pyproject.toml)"
        if opts.isolation == "hermetic":
            raise PackError(text)
        warnings.append(text + "; it must then be installed for the worker's interpreter")

    if output is None:
        output = Path.cwd() / info["name"]
    resolved_output = output.resolve()
    inputs = {Path(info["entry_file"]).resolve()} | {
        Path(p).resolve() for p in info["modules"].values()
    }
    if resolved_output in inputs:
        raise PackError(f"output {output} is one of the bundle's own source files")

    built = _build(info, opts, module, app, display, dists, entry_member)
    _stage_and_replace(output, built, info, opts.verify)
    return PackResult(
        path=output,
        size=len(built.data),
        dags={d: list(v["tasks"]) for d, v in info["dags"].items()},
        binary_sha256=built.binary_sha256.hex(),
        name=info["name"],
        version=info["version"],
        vendored={d.name: d.version for d in dists},
        warnings=warnings,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``trio-coord pack``."""
    parser.add_argument(
        "entry",
        metavar="BUNDLE_FILE",
        help="the bundle: FILE.py[:ATTR] or MODULE:ATTR (with --app-root)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="file to write (default: ./<bundle name>)"
    )
    parser.add_argument(
        "--python",
        help="interpreter the bundle runs with when $TRIO_COORD_PYTHON is unset "
        "(default: the one running this command, symlinks resolved)",
    )
    parser.add_argument(
        "--isolation",
        choices=("hermetic", "site"),
        default="hermetic",
        help="hermetic: only the payload and the standard library (python -I -S); "
        "site: the interpreter's site-packages too, behind the payload",
    )
    parser.add_argument(
        "-r",
        "--requirements",
        action="append",
        default=[],
        metavar="FILE",
        help="the bundle's dependencies (requirements.txt format or pyproject.toml); "
        "default: requirements.txt, else pyproject.toml, next to BUNDLE_FILE",
    )
    parser.add_argument(
        "--app-root", type=Path, help="import root of a MODULE:ATTR entry (default: cwd)"
    )
    parser.add_argument(
        "--parents", action="store_true", help="create -o's missing parent directories"
    )
    parser.add_argument("--store", action="store_true", help="store the payload uncompressed")
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip running the packed bundle"
    )
    parser.set_defaults(handler=_main)


def _main(ns: argparse.Namespace) -> int:
    opts = PackOptions(
        entry=ns.entry,
        output=ns.output,
        python=ns.python,
        isolation=ns.isolation,
        requirements=list(ns.requirements),
        app_root=ns.app_root,
        store=ns.store,
        verify=ns.verify,
        parents=ns.parents,
    )
    try:
        result = pack(opts)
    except PackError as exc:
        sys.stderr.write(f"trio-coord pack: error: {exc}\n")
        return 1
    for warning in result.warnings:
        sys.stderr.write(f"trio-coord pack: warning: {warning}\n")
    sys.stdout.write(
        f"Wrote bundle {result.path} (sdk={manifest.LANGUAGE}/{__version__}, "
        f"dags={len(result.dags)}, bytes={result.size})\n"
    )
    return 0
