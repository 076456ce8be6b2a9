"""Start-up of a packed bundle: the in-memory importer and its private caches (bundle.md §5.5-5.6).

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

Nothing executes unless it comes from the hashed payload or was checked, at the moment
of use, against something derived from it. Compiled bytecode and extension modules live
in a :class:`PrivateCache`: a directory owned by this user and writable by no one else,
walked and used through directory descriptors (``O_NOFOLLOW``), whose files are created
``O_EXCL`` under random names and renamed into place. A bytecode entry carries an HMAC,
under a key only this user can read, over its name (the hash of the module's source
and the interpreter's bytecode format) and its bytes; an extension module is hashed
through the descriptor it is then loaded from (``/proc/self/fd/N``), against the hash of
the payload member. A directory that fails the checks is replaced by a fresh temporary
one, with one warning per process.

An extension module is used only when one of the interpreter's extension suffixes
matches; otherwise, or when it cannot be cached or loaded, the import fails as if the
module were absent, which is what makes packages such as msgpack fall back to their
pure-Python implementation (one warning per process says so).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import importlib.abc
import importlib.machinery
import importlib.resources.abc
import importlib.util
import marshal
import os
import stat
import sys
import threading
import time
import types
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "DEFAULT_CACHE_MAX_MB",
    "PayloadFinder",
    "PrivateCache",
    "boot",
    "cache_root",
    "compile_source",
    "install",
]

LIB = "lib/"
_EXT_ENDINGS = (".so", ".pyd")
#: Cap of the cache's total size unless ``$TRIO_COORD_CACHE_MAX_MB`` says otherwise.
DEFAULT_CACHE_MAX_MB = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Largest cache file read back; anything bigger is not ours (a bound on memory).
_MAX_ENTRY = 256 << 20
_KEY_SIZE = 32
#: Temporary files older than this are leftovers of a killed process.
_STALE_TMP_S = 3600
#: A warning about the same refused cache directory repeats at most this often.
_REMIND_S = 86400
#: A hit refreshes an entry's mtime (its LRU age) at most this often.
_TOUCH_S = 3600


def cache_root() -> str:
    """The configured cache directory; :func:`PrivateCache.open` decides whether to trust it."""
    explicit = os.environ.get("TRIO_COORD_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "trio-coord")


def compile_source(source: bytes, origin: str) -> types.CodeType:
    """Compile one payload module (a seam the tests count calls through)."""
    return compile(source, origin, "exec", dont_inherit=True)


class _Untrusted(Exception):
    """A cache directory that must not be used; the text says why and how to fix it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def _cap_bytes(notes: Callable[[str, str], None]) -> int:
    raw = os.environ.get("TRIO_COORD_CACHE_MAX_MB", "").strip()
    if not raw:
        return DEFAULT_CACHE_MAX_MB << 20
    if raw.isdigit() and int(raw) > 0:
        return int(raw) << 20
    notes(
        "cap",
        f"TRIO_COORD_CACHE_MAX_MB={raw!r} is not a positive whole number of MiB; "
        f"the cache is capped at the default {DEFAULT_CACHE_MAX_MB} MiB",
    )
    return DEFAULT_CACHE_MAX_MB << 20


def _random_name() -> str:
    return "." + os.urandom(12).hex() + ".tmp"


class PrivateCache:
    """A cache directory only this user can write, used through descriptors.

    The trust is the directory itself: it and every directory above it must be
    writable by no one but this user or root (the sticky ``/tmp`` is fine, since no one
    can rename our entry in it), and the cache directory and the ones we create below it
    must not be symbolic links. Ancestors above the configured path are resolved first
    (a symlinked home is fine: where it leads is what gets checked). Once opened, every
    access is relative to the directory's descriptor with ``O_NOFOLLOW``, so renaming or
    re-pointing a path afterwards cannot redirect us.
    """

    def __init__(self, path: str, fd: int, cap: int) -> None:
        self.path = path
        self.fd = fd
        self.cap = cap
        self._uid = os.geteuid()
        self._subdirs: dict[str, int] = {}
        self._key: bytes | None = None
        self._written = 0
        self._swept = False
        self.write_failed: OSError | None = None

    # -- opening --------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, cap: int) -> PrivateCache:
        """Open (creating, mode 0700) the cache at ``path`` or raise :class:`_Untrusted`."""
        path = os.path.abspath(path)
        parent, name = os.path.split(path.rstrip("/") or "/")
        if not name:
            raise _Untrusted("is the root directory", "set TRIO_COORD_CACHE_DIR to a directory")
        parts = [p for p in os.path.realpath(parent).split("/") if p] + [name]
        uid = os.geteuid()
        fd = os.open("/", _DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                created = False
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise _Untrusted(
                            f"cannot be created ({exc.strerror})",
                            f"create it yourself (mkdir -m 700 {path})",
                        ) from None
                    created = True
                    child = cls._open_dir(part, fd, path)
                except OSError:
                    child = cls._open_dir(part, fd, path)
                os.close(fd)
                fd = child
                st = os.fstat(fd)
                if created or last:
                    cls._check_ours(st, path, fix_mode=fd)
                elif st.st_uid not in (uid, 0) or (
                    st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
                ):
                    raise _Untrusted(
                        f"lies inside /{'/'.join(parts[: i + 1])}, which someone else can "
                        "change (owner uid %d, mode %o)" % (st.st_uid, stat.S_IMODE(st.st_mode)),
                        "point TRIO_COORD_CACHE_DIR at a directory under your home",
                    )
            if not os.access(".", os.W_OK, dir_fd=fd):
                raise _Untrusted(
                    "cannot be written",
                    f"make {path} writable, or point TRIO_COORD_CACHE_DIR at a writable directory",
                )
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, cap)

    @classmethod
    def open_keyed(cls, path: str, cap: int) -> PrivateCache:
        """:meth:`open` and make sure the HMAC key is usable (closing it again if not)."""
        cache = cls.open(path, cap)
        try:
            cache.key()
        except BaseException:
            cache.close()
            raise
        return cache

    @staticmethod
    def _open_dir(part: str, dir_fd: int, path: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            try:
                link = stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                link = False
            if link:
                raise _Untrusted(
                    f"is reached through the symbolic link {part!r}",
                    f"replace the link with a real directory (rm {path}; mkdir -m 700 {path}) "
                    "or point TRIO_COORD_CACHE_DIR at one",
                ) from None
            raise _Untrusted(
                f"cannot be opened ({exc.strerror})",
                "point TRIO_COORD_CACHE_DIR at a directory you own",
            ) from None

    @staticmethod
    def _check_ours(st: os.stat_result, path: str, *, fix_mode: int) -> None:
        if st.st_uid != os.geteuid():
            raise _Untrusted(
                f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})",
                "remove it, or point TRIO_COORD_CACHE_DIR at a directory you own",
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise _Untrusted(
                f"is writable by group or others (mode {mode:o})",
                f"chmod 700 {path}",
            )
        if mode & 0o077:
            os.fchmod(fix_mode, 0o700)  # ours and safe, but its code is no one else's to read

    def _subdir(self, name: str) -> int:
        fd = self._subdirs.get(name)
        if fd is None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=self.fd)
            fd = self._open_dir(name, self.fd, os.path.join(self.path, name))
            self._check_ours(os.fstat(fd), os.path.join(self.path, name), fix_mode=fd)
            self._subdirs[name] = fd
        return fd

    def close(self) -> None:
        for fd in [*self._subdirs.values(), self.fd]:
            os.close(fd)
        self._subdirs.clear()

    # -- files ----------------------------------------------------------------------

    def _read(self, dir_fd: int, name: str) -> tuple[int, bytes] | None:
        """An open descriptor and the bytes of our regular file ``name``, or None."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != self._uid
                or st.st_mode & 0o077
                or st.st_size > _MAX_ENTRY
            ):
                os.close(fd)
                return None
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            if st.st_mtime < time.time() - _TOUCH_S and os.utime in os.supports_fd:
                os.utime(fd)
            return fd, b"".join(chunks)
        except OSError:
            os.close(fd)
            return None

    def _write(self, dir_fd: int, name: str, data: bytes, *, entry: bool = True) -> bool:
        """Write ``name`` whole: a new ``O_EXCL`` file under a random name, renamed into place."""
        tmp = _random_name()
        try:
            fd = os.open(tmp, _NEW_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if entry:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.unlink(tmp, dir_fd=dir_fd)
        except OSError as exc:
            self.write_failed = self.write_failed or exc
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            return False
        if entry:
            self._written += len(data)
            if not self._swept or self._written > self.cap // 8:
                self.sweep()
        return True

    def key(self) -> bytes:
        """This cache's HMAC key (created once, 0600, by whoever gets there first)."""
        if self._key is None:
            got = self._read(self.fd, "key")
            if got is None:
                self._write(self.fd, "key", os.urandom(_KEY_SIZE), entry=False)
                got = self._read(self.fd, "key")
            if got is None or len(got[1]) != _KEY_SIZE:
                raise _Untrusted(
                    "holds no usable key file (it must be 32 bytes, mode 0600, yours)",
                    f"remove {os.path.join(self.path, 'key')}",
                )
            os.close(got[0])
            self._key = got[1]
        return self._key

    def seen_recently(self, event: str) -> bool:
        """Whether ``event`` was recorded here within a day; records it if not."""
        name = "seen-" + hashlib.sha256(event.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_mtime > time.time() - _REMIND_S:
                return True
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass
        return not self._write(self.fd, name, b"", entry=False)

    # -- bytecode -------------------------------------------------------------------

    def load_code(self, name: str) -> bytes | None:
        """The marshalled code stored under ``name``, if its HMAC checks out."""
        got = self._read(self._subdir("pyc"), name)
        if got is None:
            return None
        os.close(got[0])
        blob = got[1]
        mac = hmac.new(self.key(), name.encode("ascii") + blob[32:], hashlib.sha256).digest()
        return blob[32:] if hmac.compare_digest(blob[:32], mac) else None

    def store_code(self, name: str, body: bytes) -> None:
        mac = hmac.new(self.key(), name.encode("ascii") + body, hashlib.sha256).digest()
        self._write(self._subdir("pyc"), name, mac + body)

    # -- extension modules ----------------------------------------------------------

    def extension_fd(self, data: bytes, filename: str) -> tuple[int, str] | None:
        """A read-only descriptor (and the path) of a file holding exactly ``data``.

        The bytes are hashed through that descriptor; the caller loads the module from
        ``/proc/self/fd/N`` of it, so the bytes that were checked are the ones mapped.
        """
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest}-{filename}"
        ext = self._subdir("ext")
        for _attempt in range(2):
            got = self._read(ext, name)
            if got is not None:
                fd, seen = got
                if hmac.compare_digest(hashlib.sha256(seen).hexdigest(), digest):
                    return fd, os.path.join(self.path, "ext", name)
                os.close(fd)
            if not self._write(ext, name, data):
                return None
        return None

    # -- size bound -----------------------------------------------------------------

    def sweep(self) -> None:
        """Evict the least recently used entries until the cache fits its cap.

        Entries are whole files renamed into place, and a reader holds the descriptor
        it checked, so unlinking one under a concurrent reader is harmless.
        """
        self._swept, self._written = True, 0
        entries: list[tuple[float, int, int, str]] = []
        total = 0
        now = time.time()
        for sub in ("pyc", "ext"):
            try:
                dir_fd = self._subdir(sub)
                listing = list(os.scandir(dir_fd))
            except (OSError, _Untrusted):
                continue
            for entry in listing:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        _rmtree(entry.name, dir_fd)  # a layout of older versions
                    elif entry.name.endswith(".tmp"):
                        if st.st_mtime < now - _STALE_TMP_S:
                            os.unlink(entry.name, dir_fd=dir_fd)
                    else:
                        entries.append((st.st_mtime, st.st_size, dir_fd, entry.name))
                        total += st.st_size
                except OSError:
                    continue
        entries.sort()
        for _mtime, size, dir_fd, name in entries:
            if total <= self.cap:
                break
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                continue
            total -= size


def _rmtree(name: str, dir_fd: int) -> None:
    import shutil

    shutil.rmtree(name, dir_fd=dir_fd)


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
        self._said: set[str] = set()
        self._pending: list[str] = []
        #: Where warnings go; None keeps them for :meth:`route_notices` (see :func:`boot`).
        self.report: Callable[[str], None] | None = _to_stderr
        self._cache: PrivateCache | None = None
        self._cache_opened = False
        self._cache_lock = threading.Lock()
        #: Descriptors of loaded extension modules, open for the process's life: the
        #: mapping is permanent anyway, and a reused descriptor number would make the
        #: dynamic loader hand back the library loaded under the same /proc path.
        self._extension_fds: list[int] = []

    def origin(self, member: str) -> str:
        return f"{self.bundle_path}!/{member}"

    # -- warnings -------------------------------------------------------------------

    def notice(self, kind: str, text: str) -> None:
        """One warning per ``kind`` per process (a worker runs one process per task try)."""
        if kind in self._said:
            return
        self._said.add(kind)
        message = f"trio-coord bundle: warning: {text}"
        if self.report is None:
            self._pending.append(message)
        else:
            self.report(message)

    def route_notices(self, report: Callable[[str], None] | None) -> None:
        """Send the kept warnings, and any later one, to ``report``."""
        self.report = report
        if report is not None:
            pending, self._pending = self._pending, []
            for message in pending:
                report(message)

    def warn_fallback(self, fullname: str, why: str) -> None:
        """Say once per process that a compiled module is skipped, and why."""
        self.notice(
            "extension",
            f"compiled module {fullname} is not used because {why}; "
            f"this interpreter takes {importlib.machinery.EXTENSION_SUFFIXES[0]!r} extensions. "
            "Packages with a pure-Python fallback use it (slower).",
        )

    # -- the cache ------------------------------------------------------------------

    def cache(self) -> PrivateCache | None:
        """The private cache, opened on first use; None when there is none at all."""
        with self._cache_lock:  # imports in two threads must not open two caches
            if not self._cache_opened:
                self._cache_opened = True
                self._cache = self._open_cache()
        return self._cache

    def _open_cache(self) -> PrivateCache | None:
        cap = _cap_bytes(self.notice)
        path = cache_root()
        try:
            return PrivateCache.open_keyed(path, cap)
        except _Untrusted as exc:
            why = exc
        except OSError as exc:
            why = _Untrusted(
                f"cannot be used ({exc.strerror})",
                "point TRIO_COORD_CACHE_DIR at a directory you own",
            )
        fallback, temporary = self._fallback_cache(cap, path)
        if fallback is not None and not temporary and fallback.seen_recently(f"{path}\0{why}"):
            return fallback  # told within the day; the task logs need not all repeat it
        self._refuse(path, why, temporary=temporary)
        return fallback

    @staticmethod
    def _fallback_cache(cap: int, refused: str) -> tuple[PrivateCache | None, bool]:
        """A per-user private cache under ``$XDG_RUNTIME_DIR`` or the temporary directory,
        else one for this process only (removed at exit); True for the latter."""
        import tempfile

        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        shared = os.path.join(base, f"trio-coord-cache-{os.geteuid()}")
        if os.path.abspath(refused) != shared:
            try:
                return PrivateCache.open_keyed(shared, cap), False
            except (OSError, _Untrusted):
                pass
        try:
            tmp = tempfile.mkdtemp(prefix="trio-coord-cache-")
            atexit.register(_rmtree_path, tmp)
            return PrivateCache.open_keyed(tmp, cap), True
        except (OSError, _Untrusted):
            return None, True

    def _refuse(self, path: str, why: _Untrusted, *, temporary: bool = True) -> None:
        cost = (
            "a private directory for this process only, so every start compiles every "
            "module again (slower starts)"
            if temporary
            else "a private per-user directory that is lost at reboot (the first start "
            "after that is slower); this warning repeats at most once a day"
        )
        self.notice(
            "cache",
            f"cache directory {path} is not used because it {why.problem}; this process "
            f"caches in {cost}. Fix: {why.fix}.",
        )

    def _cache_failed(self, cache: PrivateCache, exc: BaseException) -> None:
        """Stop using a cache that broke under us; say so once."""
        if isinstance(exc, _Untrusted):
            self._refuse(cache.path, exc)
        else:
            self._refuse(
                cache.path,
                _Untrusted(
                    f"cannot be written ({getattr(exc, 'strerror', None) or exc})",
                    f"free space or make {cache.path} writable, or point "
                    "TRIO_COORD_CACHE_DIR at a writable directory",
                ),
            )
        self._cache = None

    # -- finding --------------------------------------------------------------------

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
                path = self._verified_extension(rel + suffix, fullname)
                if path is None:
                    return None
                loader = _WarningExtensionLoader(fullname, path)
                loader.finder = self
                return importlib.machinery.ModuleSpec(fullname, loader, origin=path)
        built_for = ", ".join(m[len(rel) :] for m in members)
        self.warn_fallback(fullname, f"it was built for {built_for}")
        return None

    def _verified_extension(self, member: str, fullname: str) -> str | None:
        """A path that reads exactly the payload member's bytes until the process ends.

        On Linux that is ``/proc/self/fd/N`` of the descriptor the bytes were hashed
        through, so nothing can be swapped in between the check and ``dlopen``.
        Elsewhere it is the file's path in the private cache, which only this user
        can change.
        """
        cache = self.cache()
        got = None
        if cache is not None:
            try:
                got = cache.extension_fd(self.archive.read(member), member.rsplit("/", 1)[1])
            except (OSError, _Untrusted) as exc:
                self._cache_failed(cache, exc)
            if got is None and cache.write_failed is not None:
                self._cache_failed(cache, cache.write_failed)
        if got is None:
            self.warn_fallback(fullname, "it cannot be put in a private cache directory")
            return None
        fd, path = got
        self._extension_fds.append(fd)
        return f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else path

    # -- bytecode -------------------------------------------------------------------

    def code_for(self, source: bytes, origin: str) -> types.CodeType:
        """Compiled code for one payload module, from the bytecode cache when it checks out.

        Compiling the ~110 modules a run imports costs about 0.3 s of every start and a
        worker starts a bundle per task try, so code objects are cached. An entry is
        named by the hash of the interpreter's bytecode format, the file name the code
        reports in tracebacks and the source as read from the hashed payload; it is
        used only when its HMAC (key private to this user) matches that name and its
        bytes, so a planted or damaged entry is compiled over, never run.
        """
        cache = self.cache()
        if cache is None:
            return compile_source(source, origin)
        name = hashlib.sha256(
            _CODE_FORMAT + origin.encode("utf-8", "surrogatepass") + b"\0" + source
        ).hexdigest()
        try:
            body = cache.load_code(name)
        except (OSError, _Untrusted) as exc:
            self._cache_failed(cache, exc)
            return compile_source(source, origin)
        if body is not None:
            try:
                code = marshal.loads(body)
            except (ValueError, EOFError, TypeError):
                code = None
            if isinstance(code, types.CodeType):
                return code
        code = compile_source(source, origin)
        try:
            cache.store_code(name, marshal.dumps(code))
        except (OSError, _Untrusted, ValueError) as exc:
            self._cache_failed(cache, exc)
        if cache.write_failed is not None:
            self._cache_failed(cache, cache.write_failed)
        return code


#: What else a code object depends on besides its source and file name.
_CODE_FORMAT = (
    b"trio-coord code v2\0"
    + importlib.util.MAGIC_NUMBER
    + f"{sys.implementation.cache_tag}-O{sys.flags.optimize}\0".encode("ascii")
)


def _to_stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _rmtree_path(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


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
    digest: bytes = b"",
) -> int:
    """Called by the launcher's bootstrap once the binary region is verified.

    ``digest`` is the SHA-256 the binary region was just checked against: a warm server
    (``--warm-server``) serves only requests naming it.

    Returns:
        The process exit code from trio-coord's bundle command line.
    """
    finder = install(archive, bundle_path)
    # Warnings wait for the runner: under a supervisor it sends them to the task log as
    # warning records (stderr lines become error records there); whatever is left at
    # exit goes to stderr.
    finder.route_notices(None)
    atexit.register(lambda: finder.route_notices(_to_stderr))
    sys.argv = [bundle_path, *argv]
    from trio_coord.bundle.runner import run_packed

    return run_packed(info, bundle_path, argv, launch_error or None, finder, digest=digest)
