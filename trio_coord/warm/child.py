"""A forked child of the warm server, made into the process a cold start would have been.

What a cold start gets from its launcher by ``exec``, the child gets from the request:
the launcher's stdin/stdout/stderr (dup'ed onto 0-2), working directory, umask,
environment and argv. It leaves the server's session (``setsid``), closes the server's
descriptors and puts back the signal dispositions a fresh Python has, then runs
:func:`trio_coord.cli.bundle_main` over the already imported bundle, on the two sockets
the launcher dialled (the supervisor checks that they belong to the process it started,
and the launcher keeps its copies open, so they do).

Its life is tied to the launcher's: a thread blocks on the status socket and SIGKILLs
the child when it reads end-of-file, i.e. when the launcher is gone (the supervisor
SIGKILLs the launcher, never the child it does not know).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..runtime import trace
from ..runtime.dial import CONNECTED_FDS_ENV
from . import wire

if TYPE_CHECKING:
    from ..authoring import Bundle
    from ..cli import BundleSource

__all__ = ["make_child_runner", "watch_launcher"]

#: A launcher that does not answer "started" within this long is treated as gone.
GO_TIMEOUT: Final = 30.0
#: Signals whose disposition the server may have changed; a fresh Python has the default.
_RESET: Final = (
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCHLD,
)


def preload() -> None:
    """Import in the server what every try imports only once connected (runtime/entry.py).

    A cold start defers these so the dial is not delayed; a child of the server would
    otherwise import them in every try (measured: ~30 modules, most of a warm try's time).
    """
    import uuid  # noqa: F401  (the client's ids)

    import msgpack  # noqa: F401  (and its compiled extension, when the payload has one)

    from .. import loader  # noqa: F401
    from ..bundle import unusable  # noqa: F401
    from ..runtime import serve  # noqa: F401  (messages, codec, client, context, task runner)


def make_child_runner(
    bundle: Bundle, source: BundleSource
) -> Callable[[wire.RunRequest, list[int], Callable[[], None]], int]:
    """The function the server calls in each forked child; it returns the exit code."""
    from ..cli import bundle_main

    warm_source = dataclasses.replace(source, load=lambda _spec: bundle)

    def run(request: wire.RunRequest, fds: list[int], close_server: Callable[[], None]) -> int:
        close_server()
        status = socket.socket(fileno=fds[wire.FD_STATUS])
        _become_task_process(request, fds)
        status.settimeout(GO_TIMEOUT)
        status.send(b"started %d" % os.getpid())
        try:
            go = status.recv(16)
        except OSError:
            go = b""
        if go != b"go":
            return 0  # the launcher gave up and started cold: this try is not ours to run
        status.settimeout(None)
        watch_launcher(status)
        os.environ[CONNECTED_FDS_ENV] = f"{fds[wire.FD_COMM]},{fds[wire.FD_LOGS]}"
        # The trace file is read at import, which happened in the server: read it again.
        setattr(trace, "_PATH", os.environ.get(trace.TRACE_ENV) or None)  # noqa: B010
        argv = [os.fsdecode(a) for a in request.argv]
        sys.argv = argv
        try:
            code = bundle_main(argv[1:], warm_source)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            status.send(b"exit %d" % code)
        return code

    return run


def _become_task_process(request: wire.RunRequest, fds: list[int]) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in _RESET:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.setsid()
    os.umask(request.umask)
    os.fchdir(fds[wire.FD_CWD])
    os.close(fds[wire.FD_CWD])
    os.environ.clear()
    for key, value in request.env:
        os.environb[key] = value
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    for target, index in ((0, wire.FD_STDIN), (1, wire.FD_STDOUT), (2, wire.FD_STDERR)):
        os.dup2(fds[index], target)
    for index in (wire.FD_STDIN, wire.FD_STDOUT, wire.FD_STDERR):
        if fds[index] > 2:
            os.close(fds[index])


def watch_launcher(status: socket.socket) -> threading.Thread:
    """SIGKILL this process as soon as the launcher's end of ``status`` closes."""

    def watch() -> None:
        while True:
            try:
                data = status.recv(64)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="trio-coord-launcher-watch", daemon=True)
    thread.start()
    return thread
