"""Start-up of a packed bundle: the in-memory importer (bundle.md §5.5-5.6).

The packer copies this file's source into the payload as ``_tc/boot.py``; the launcher's
bootstrap verifies the binary region, opens the payload ZIP from memory and calls
:func:`boot`. So this module uses the standard library only and no relative imports.

:class:`PayloadFinder` serves ``import a.b`` from ``lib/a/b/__init__.py`` or
``lib/a/b.py`` in the payload, compiled with the virtual file name
``<bundle>!/lib/a/b.py`` (tracebacks show the source lines: the loader implements
``get_source``). It sits just before ``PathFinder``, so built-in and frozen modules still
come first and the payload beats anything installed. Packages get resource readers over
the ZIP (``importlib.resources.files`` works); directories without ``__init__.py`` are
namespace packages.

Compiled extension modules cannot be loaded from memory. They are written once to a
content-addressed cache (``$TRIO_COORD_CACHE_DIR``, else ``$XDG_CACHE_HOME/trio-coord``,
else ``~/.cache/trio-coord``; file ``ext/<sha256>/<name>``, re-checked against its hash
before each use) and loaded from there when one of the interpreter's extension suffixes
matches. When none matches, or the cache cannot be written, the import fails as if the
module were absent, which is what makes packages such as msgpack fall back to their
pure-Python implementation; one warning per process says so on stderr.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.resources.abc
import importlib.util
import marshal
import os
import sys
import types
import zipfile
from collections.abc import Sequence
from typing import Any

__all__ = ["PayloadFinder", "boot", "cache_root", "install"]

LIB = "lib/"
_EXT_ENDINGS = (".so", ".pyd")


def cache_root() -> str:
    """Where extension modules are unpacked (created on first use, mode 0700)."""
    explicit = os.environ.get("TRIO_COORD_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "trio-coord")


class _Resources(importlib.resources.abc.TraversableResources):
    def __init__(self, archive: zipfile.ZipFile, at: str) -> None:
        self._archive = archive
        self._at = at

    def files(self) -> Any:
        return zipfile.Path(self._archive, self._at)


class _SourceLoader(importlib.abc.InspectLoader):
    """Loads one payload module from its source bytes."""

    def __init__(self, finder: PayloadFinder, member: str, is_package: bool) -> None:
        self._finder = finder
        self._member = member
        self._is_package = is_package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname: str) -> types.CodeType:
        data = self._finder.archive.read(self._member)
        return self._finder.code_for(data, self._finder.origin(self._member))

    def get_source(self, fullname: str) -> str:
        return self._finder.archive.read(self._member).decode("utf-8")

    def is_package(self, fullname: str) -> bool:
        return self._is_package

    def get_filename(self, fullname: str) -> str:
        return self._finder.origin(self._member)

    def get_resource_reader(self, fullname: str) -> _Resources | None:
        if not self._is_package:
            return None
        return _Resources(self._finder.archive, self._member.rsplit("/", 1)[0] + "/")


class _WarningExtensionLoader(importlib.machinery.ExtensionFileLoader):
    """An extension loader that turns a failed ``dlopen`` into the one fallback warning."""

    finder: PayloadFinder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        try:
            return super().create_module(spec)
        except ImportError as exc:
            self.finder.warn_fallback(spec.name, f"it does not load ({exc})")
            raise


class PayloadFinder(importlib.abc.MetaPathFinder):
    """Finds modules under ``lib/`` of an open payload ZIP."""

    def __init__(self, archive: zipfile.ZipFile, bundle_path: str) -> None:
        self.archive = archive
        self.bundle_path = bundle_path
        names = [n for n in archive.namelist() if n.startswith(LIB)]
        self._files = set(names)
        self._dirs: set[str] = set()
        self._extensions: dict[str, list[str]] = {}
        for name in names:
            parts = name.split("/")
            for i in range(2, len(parts)):
                self._dirs.add("/".join(parts[:i]))
            if name.endswith(_EXT_ENDINGS):
                stem = name.rsplit("/", 1)
                base = stem[1].split(".", 1)[0]
                self._extensions.setdefault(f"{stem[0]}/{base}", []).append(name)
        self._tops = {n.split("/")[1].split(".")[0] for n in names if n.count("/") >= 1}
        self._warned = False

    def origin(self, member: str) -> str:
        return f"{self.bundle_path}!/{member}"

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self._tops:
            return None
        rel = LIB + fullname.replace(".", "/")
        init = rel + "/__init__.py"
        if init in self._files:
            return self._spec(fullname, init, is_package=True)
        if rel + ".py" in self._files:
            return self._spec(fullname, rel + ".py", is_package=False)
        if rel in self._extensions:
            return self._extension_spec(fullname, rel)
        if rel in self._dirs:
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [self.origin(rel)]
            return spec
        return None

    def _spec(
        self, fullname: str, member: str, *, is_package: bool
    ) -> importlib.machinery.ModuleSpec:
        loader = _SourceLoader(self, member, is_package)
        spec = importlib.machinery.ModuleSpec(
            fullname, loader, origin=self.origin(member), is_package=is_package
        )
        if is_package:
            spec.submodule_search_locations = [self.origin(member.rsplit("/", 1)[0])]
        spec.has_location = True
        return spec

    def _extension_spec(self, fullname: str, rel: str) -> importlib.machinery.ModuleSpec | None:
        members = self._extensions[rel]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if rel + suffix in members:
                path = self._unpack(rel + suffix, fullname)
                if path is None:
                    return None
                loader = _WarningExtensionLoader(fullname, path)
                loader.finder = self
                return importlib.machinery.ModuleSpec(fullname, loader, origin=path)
        built_for = ", ".join(m[len(rel) :] for m in members)
        self.warn_fallback(fullname, f"it was built for {built_for}")
        return None

    def _unpack(self, member: str, fullname: str) -> str | None:
        data = self.archive.read(member)
        digest = hashlib.sha256(data).hexdigest()
        directory = os.path.join(cache_root(), "ext", digest)
        path = os.path.join(directory, member.rsplit("/", 1)[1])
        try:
            try:
                with open(path, "rb") as f:
                    if hashlib.sha256(f.read()).hexdigest() == digest:
                        return path
            except FileNotFoundError:
                pass
            os.makedirs(directory, mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            self.warn_fallback(fullname, f"the extension cache is not writable ({exc})")
            return None
        return path

    def code_for(self, source: bytes, origin: str) -> types.CodeType:
        """Compiled code for one payload module, from the bytecode cache when possible.

        Compiling the ~110 modules a run imports from source costs about 0.3 s of every
        start; a worker starts a bundle per task try, so the code objects are cached
        (``pyc/<sha256>``), keyed by the interpreter's bytecode magic, the file name the
        code reports in tracebacks, and the source itself. A cache that cannot be read
        or written only means compiling, never a failure.
        """
        key = hashlib.sha256(
            importlib.util.MAGIC_NUMBER + origin.encode("utf-8", "surrogatepass") + b"\0" + source
        ).hexdigest()
        path = os.path.join(cache_root(), "pyc", key[:2], key)
        try:
            with open(path, "rb") as f:
                blob = f.read()
            if blob[:32] == hashlib.sha256(blob[32:]).digest():
                code = marshal.loads(blob[32:])
                if isinstance(code, types.CodeType):
                    return code
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(source, origin, "exec", dont_inherit=True)
        try:
            body = marshal.dumps(code)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(hashlib.sha256(body).digest() + body)
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass
        return code

    def warn_fallback(self, fullname: str, why: str) -> None:
        """Say once per process that a compiled module is skipped, and why."""
        if self._warned:
            return
        self._warned = True
        sys.stderr.write(
            f"trio-coord bundle: warning: compiled module {fullname} is not used because {why}; "
            f"this interpreter takes {importlib.machinery.EXTENSION_SUFFIXES[0]!r} extensions. "
            "Packages with a pure-Python fallback use it (slower).\n"
        )
        sys.stderr.flush()


def install(archive: zipfile.ZipFile, bundle_path: str) -> PayloadFinder:
    """Put a finder for ``archive`` on ``sys.meta_path`` just before ``PathFinder``."""
    finder = PayloadFinder(archive, bundle_path)
    position = len(sys.meta_path)
    for i, entry in enumerate(sys.meta_path):
        if entry is importlib.machinery.PathFinder:
            position = i
            break
    sys.meta_path.insert(position, finder)
    return finder


def boot(
    archive: zipfile.ZipFile,
    bundle_path: str,
    info: dict[str, Any],
    argv: list[str],
    launch_error: str,
) -> int:
    """Called by the launcher's bootstrap once the binary region is verified.

    Returns:
        The process exit code from trio-coord's bundle command line.
    """
    install(archive, bundle_path)
    sys.argv = [bundle_path, *argv]
    from trio_coord.bundle.runner import run_packed

    return run_packed(info, bundle_path, argv, launch_error or None)
