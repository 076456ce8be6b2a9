"""The warm server: one process per bundle hash that forks a child per task try.

Theory of operation
-------------------
``trio-coord warm BUNDLE`` runs ``BUNDLE --warm-server``: the bundle's own launcher and
bootstrap verify its binary region and boot its payload exactly as for a task, and then,
instead of dialling a supervisor, :func:`serve_packed` imports the user's bundle once and
listens on ``<warm dir>/<hash>.sock``.

A launcher connects, the server checks the peer's uid (``SO_PEERCRED``) and the
request's bundle hash, and forks. The child (:mod:`.child`) becomes what a cold start
would have been and talks to the launcher directly; the server only reaps it (a
``pidfd`` per child in the selector) and reports the wait status to the launcher.
A launcher that disappears (its connection closes) gets its child SIGKILLed.

The loop is a plain ``selectors`` loop, not Trio: ``fork()`` must happen in a process
with one thread and no event loop running, so the child starts ``trio.run`` afresh and
inherits no scheduler, wake-up descriptors or worker threads.

Bounds: at most ``max_children`` tries at once (more are refused: those launchers start
cold); no child and no request for ``idle_timeout`` seconds ends the server; SIGTERM,
SIGINT or ``trio-coord warm --stop`` stop accepting at once (the socket is removed) and
end the server when its last child has been reaped.
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import UsageError
from . import wire
from .paths import open_private_dir, socket_path, warm_dir

if TYPE_CHECKING:
    from ..cli import BundleSource

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CHILDREN",
    "PeerRefused",
    "WarmServer",
    "check_peer",
]

#: Half an hour without a try ends a server: a worker that runs the bundle at all keeps
#: it alive, and an old deployment's server does not outlive it by long.
DEFAULT_IDLE_TIMEOUT: Final = 1800.0
#: Each child is a whole task try; more than this at once start cold instead.
DEFAULT_MAX_CHILDREN: Final = 32
_CREDS: Final = struct.Struct("3i")
_ANCILLARY: Final = socket.CMSG_SPACE(wire.FD_COUNT * 4)


class PeerRefused(Exception):
    """A connection from a process of another user."""


def check_peer(sock: socket.socket, uid: int | None = None) -> int:
    """Return the peer's pid if it runs as ``uid`` (default: this process's euid).

    Raises:
        PeerRefused: it runs as another user (or its credentials cannot be read).
    """
    want = os.geteuid() if uid is None else uid
    try:
        pid, peer_uid, _gid = _CREDS.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size)
        )
    except OSError as exc:
        raise PeerRefused(f"cannot read the peer's credentials: {exc}") from None
    if peer_uid != want:
        raise PeerRefused(f"peer pid {pid} runs as uid {peer_uid}, not {want}")
    return int(pid)


@dataclass(eq=False)
class _Child:
    pid: int
    pidfd: int
    conn: socket.socket | None


@dataclass
class _Stats:
    started: float = field(default_factory=time.time)
    served: int = 0
    refused: int = 0


class WarmServer:
    """Listens on ``path`` and forks ``run_child(request, fds, close)`` per try."""

    def __init__(
        self,
        *,
        path: str,
        digest: str,
        identity: dict[str, Any],
        run_child: Callable[[wire.RunRequest, list[int], Callable[[], None]], int],
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_children: int = DEFAULT_MAX_CHILDREN,
    ) -> None:
        self.path = path
        self.digest = digest
        self.identity = identity
        self.run_child = run_child
        self.idle_timeout = idle_timeout
        self.max_children = max_children
        self.stats = _Stats()
        self.stopping = False
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._conns: set[socket.socket] = set()
        self._children: dict[int, _Child] = {}  # by pidfd
        self._wake_r, self._wake_w = socket.socketpair()
        self._last_activity = time.monotonic()

    # -- set-up and tear-down ---------------------------------------------------------

    def bind(self) -> None:
        """Listen on :attr:`path`, replacing a stale socket; refuse if a server answers.

        Raises:
            UsageError: another server for this hash is running.
        """
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for _attempt in range(2):
            try:
                listener.bind(self.path)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or _answers(self.path):
                    listener.close()
                    raise UsageError(f"a warm server already listens on {self.path}") from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)  # stale: left by a server that was killed
        os.chmod(self.path, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        self._inode = os.stat(self.path).st_ino
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, "listener")
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    def _unlink(self) -> None:
        """Remove our socket (only if it is still ours), so launchers go cold at once."""
        if self._listener is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        self._sel.unregister(self._listener)
        self._listener.close()
        self._listener = None

    def close_in_child(self) -> None:
        """Close every descriptor of the server's own in a freshly forked child."""
        signal.set_wakeup_fd(-1)
        if self._listener is not None:
            self._listener.close()
        for conn in self._conns:
            conn.close()
        for pidfd in self._children:
            os.close(pidfd)
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    # -- the loop -----------------------------------------------------------------------

    def serve(self) -> int:
        """Run until stopped or idle; return the exit code (0)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            while self._children or not (self.stopping or self._idle()):
                timeout = None if self._children else self._idle_left()
                for key, _events in self._sel.select(timeout):
                    self._dispatch(key)
                if self.stopping:
                    self._unlink()
        finally:
            signal.set_wakeup_fd(-1)
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._unlink()
        _say(f"exiting after {self.stats.served} tries")
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _idle_left(self) -> float:
        return max(0.0, self._last_activity + self.idle_timeout - time.monotonic())

    def _idle(self) -> bool:
        return not self._children and self._idle_left() <= 0

    def _dispatch(self, key: selectors.SelectorKey) -> None:
        what = key.data
        if what == "wake":
            with contextlib.suppress(OSError):
                self._wake_r.recv(64)
        elif what == "listener":
            self._accept()
        elif isinstance(what, _Child):
            self._reap(what)
        else:
            self._readable(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            check_peer(conn)
        except PeerRefused as exc:
            _say(f"refused a connection: {exc}")
            conn.close()
            return
        self._last_activity = time.monotonic()
        conn.setblocking(False)
        self._conns.add(conn)
        self._sel.register(conn, selectors.EVENT_READ, None)

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        self._conns.discard(conn)
        conn.close()

    def _owner(self, conn: socket.socket) -> _Child | None:
        return next((c for c in self._children.values() if c.conn is conn), None)

    def _readable(self, conn: socket.socket) -> None:
        child = self._owner(conn)
        if child is not None:
            # The launcher only ever closes this connection, by exiting: its task's
            # supervisor SIGKILLed it (or worse), so the task goes too.
            try:
                data = conn.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.conn = None
                self._drop(conn)
            return
        try:
            # Close-on-exec, as the sockets of a cold start are: a task's own child
            # processes must not hold the supervisor's connections open.
            data, ancdata, flags, _ = conn.recvmsg(
                wire.MAX_REQUEST, _ANCILLARY, socket.MSG_CMSG_CLOEXEC
            )
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn)
            return
        fds = _received_fds(ancdata)
        try:
            if not data:
                raise wire.WireError("")
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise wire.WireError("the request is too large")
            request = wire.parse_request(data)
        except wire.WireError as exc:
            _close_fds(fds)
            if str(exc):
                self._reply(conn, b"no " + str(exc).encode())
            self._drop(conn)
            return
        if request == "status":
            _close_fds(fds)
            self._reply(conn, json.dumps(self.status()).encode())
            self._drop(conn)
        elif request == "stop":
            _close_fds(fds)
            self.stopping = True
            self._reply(conn, b"ok")
            self._drop(conn)
        elif isinstance(request, wire.RunRequest):
            self._run(conn, request, fds)

    def _refuse(self, conn: socket.socket, fds: list[int], why: str) -> None:
        self.stats.refused += 1
        _close_fds(fds)
        self._reply(conn, b"no " + why.encode())
        self._drop(conn)

    def _run(self, conn: socket.socket, request: wire.RunRequest, fds: list[int]) -> None:
        if request.digest != self.digest:
            return self._refuse(conn, fds, f"this server serves bundle sha256 {self.digest}")
        if len(fds) != wire.FD_COUNT:
            return self._refuse(conn, fds, f"expected {wire.FD_COUNT} descriptors, got {len(fds)}")
        if self.stopping:
            return self._refuse(conn, fds, "the server is stopping")
        if len(self._children) >= self.max_children:
            return self._refuse(conn, fds, f"{self.max_children} tries are running already")
        self._last_activity = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            return self._refuse(conn, fds, f"fork failed: {exc}")
        if pid == 0:  # the child: never returns
            code = 1
            try:
                code = self.run_child(request, fds, self.close_in_child)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        _close_fds(fds)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # cannot watch it: wait for it the blocking way (rare; old kernel)
            os.waitpid(pid, 0)
            self._drop(conn)
            return None
        child = _Child(pid, pidfd, conn)
        self._children[pidfd] = child
        self._sel.register(pidfd, selectors.EVENT_READ, child)
        self._reply(conn, b"ok %d" % pid)
        return None

    def _reap(self, child: _Child) -> None:
        try:
            _pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            status = 0
        else:
            if _pid == 0:
                return
        self._sel.unregister(child.pidfd)
        os.close(child.pidfd)
        del self._children[child.pidfd]
        self.stats.served += 1
        self._last_activity = time.monotonic()
        if child.conn is not None:
            self._reply(child.conn, b"exit %d" % status)
            self._drop(child.conn)

    def _reply(self, conn: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            conn.send(data)

    def status(self) -> dict[str, Any]:
        """What ``trio-coord warm --status`` shows."""
        return {
            **self.identity,
            "sha256": self.digest,
            "pid": os.getpid(),
            "started": self.stats.started,
            "uptime": time.time() - self.stats.started,
            "served": self.stats.served,
            "running": len(self._children),
            "refused": self.stats.refused,
            "max_children": self.max_children,
            "idle_timeout": self.idle_timeout,
            "python": sys.executable,
            "stopping": self.stopping,
        }


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _answers(path: str) -> bool:
    """Whether a live server listens on ``path`` (a refused connection means stale)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _say(text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{stamp} trio-coord warm[{os.getpid()}]: {text}\n")
        sys.stderr.flush()


# -- the packed bundle's --warm-server mode --------------------------------------------


def _options(argv: list[str]) -> tuple[float, int]:
    idle, children = DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CHILDREN
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if not eq:
            value = next(it, "")
        if name == "--idle-timeout":
            try:
                idle = float(value)
            except ValueError:
                idle = -1.0
            if not idle > 0:
                raise UsageError(
                    f"--idle-timeout must be a positive number of seconds, got {value!r}"
                )
        elif name == "--max-children":
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--max-children must be a whole number >= 1, got {value!r}")
            children = int(value)
        else:
            raise UsageError(f"unknown warm server option {arg!r}")
    return idle, children


def serve_packed(
    source: BundleSource, info: dict[str, Any], bundle_path: str, digest: bytes, argv: list[str]
) -> int:
    """``BUNDLE --warm-server [--idle-timeout S] [--max-children N]``: exit code.

    Prints ``ready <pid> <socket>`` on stdout once listening (``trio-coord warm`` waits
    for that line), then points stdout at ``/dev/null``. Exit codes: 0 after an idle or
    requested stop, 2 usage (bad option, unusable directory, already running), 4 the
    bundle failed to import.
    """
    from ..cli import _report_load_failure

    try:
        idle, max_children = _options(argv)
        if len(digest) != 32:
            raise UsageError("this bundle's bootstrap did not report its SHA-256; repack it")
        if source.launch_error:
            raise UsageError(source.launch_error)
        directory = open_private_dir(warm_dir())
        path = socket_path(directory, digest.hex())
    except UsageError as exc:
        sys.stderr.write(f"trio-coord warm: error: {exc}\n")
        return 2
    try:
        bundle = source.load(None)
    except Exception as exc:
        _report_load_failure(exc)
        return 4
    from .child import make_child_runner, preload

    preload()

    ident = info.get("bundle", {})
    server = WarmServer(
        path=path,
        digest=digest.hex(),
        identity={
            "name": ident.get("name"),
            "version": ident.get("version"),
            "bundle": bundle_path,
        },
        run_child=make_child_runner(bundle, source),
        idle_timeout=idle,
        max_children=max_children,
    )
    try:
        server.bind()
    except UsageError as exc:
        sys.stderr.write(f"trio-coord warm: error: {exc}\n")
        return 2
    _say(f"serving {bundle_path} (sha256 {digest.hex()}) on {path}")
    sys.stdout.write(f"ready {os.getpid()} {path}\n")
    sys.stdout.flush()
    _detach_stdout()
    return server.serve()


def _detach_stdout() -> None:
    """Point fd 0 and 1 at /dev/null: whoever waited for "ready" may close its pipe."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
