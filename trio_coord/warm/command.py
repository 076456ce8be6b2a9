"""``trio-coord warm``: start, list and stop warm servers.

Starting one runs ``BUNDLE --warm-server`` in a new session with its stderr appended to
``<warm dir>/<hash>.log`` and waits for its ``ready`` line, so the command returns once
launchers can use it (or fails with the server's own error message). ``--foreground``
execs the same command in place, for a service manager.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from ..errors import UsageError
from . import wire
from .paths import bundle_digest, open_private_dir, socket_path, warm_dir
from .server import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CHILDREN

__all__ = ["add_arguments", "query", "run"]

#: How long ``trio-coord warm BUNDLE`` waits for the server's ``ready`` line (the
#: bundle's import happens in between).
START_TIMEOUT: Final = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bundles", nargs="*", metavar="BUNDLE", help="packed bundle file(s) (one to start)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--status", action="store_true", help="list running warm servers (of BUNDLE, or all)"
    )
    mode.add_argument("--stop", action="store_true", help="stop warm servers (of BUNDLE, or all)")
    parser.add_argument(
        "--foreground", action="store_true", help="run the server in this process (systemd)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help=f"exit after this long without a task (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-children",
        type=int,
        default=DEFAULT_MAX_CHILDREN,
        metavar="N",
        help=f"tries run at once; more start cold (default {DEFAULT_MAX_CHILDREN})",
    )
    parser.add_argument("--json", action="store_true", help="--status as JSON lines")
    parser.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    directory = warm_dir()
    if ns.status or ns.stop:
        paths = [socket_path(directory, bundle_digest(b)) for b in ns.bundles]
        if not ns.bundles:
            paths = sorted(str(p) for p in Path(directory).glob("*.sock"))
        return _stop(paths) if ns.stop else _status(paths, as_json=ns.json)
    if len(ns.bundles) != 1:
        raise UsageError("give exactly one BUNDLE to start a warm server for")
    if not ns.idle_timeout > 0 or ns.max_children < 1:
        raise UsageError("--idle-timeout must be > 0 and --max-children >= 1")
    bundle = os.path.abspath(ns.bundles[0])
    digest = bundle_digest(bundle)
    directory = open_private_dir(directory)
    path = socket_path(directory, digest)
    argv = [
        bundle,
        wire.WARM_SERVER_FLAG,
        f"--idle-timeout={ns.idle_timeout:g}",
        f"--max-children={ns.max_children}",
    ]
    if ns.foreground:
        os.execv(bundle, argv)
    running = query(path)
    if running is not None:
        print(f"a warm server for {bundle} is running already (pid {running['pid']}, {path})")
        return 0
    return _start(argv, path)


def _start(argv: list[str], path: str) -> int:
    log_path = path[: -len(".sock")] + ".log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "ab") as log_file:
        start = log_file.tell()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    line = _read_line(proc, START_TIMEOUT)
    if line.startswith(b"ready "):
        pid = line.split()[1].decode()
        print(f"warm server for {argv[0]} running: pid {pid}, socket {path}, log {log_path}")
        return 0
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    code = proc.wait()
    with open(log_path, "rb") as f:
        f.seek(start)
        tail = f.read().decode("utf-8", "replace").strip()
    sys.stderr.write(f"trio-coord warm: the server did not start (exit {code}):\n{tail}\n")
    return code if code > 0 else 1


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    if proc.stdout is None:
        return b""
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    proc.stdout.close()
    return data.split(b"\n", 1)[0]


def query(path: str, request: bytes = wire.STATUS, timeout: float = 5.0) -> dict[str, Any] | None:
    """The server's status at ``path``, or None when none answers there.

    A socket nobody listens on (its server was killed) is removed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        sock.close()
        return None
    except OSError:
        sock.close()
        return None
    with sock:
        try:
            sock.send(request)
            reply = sock.recv(1 << 16)
        except OSError:
            return None
    if request == wire.STOP:
        return {"stopped": reply == b"ok"}
    try:
        answer: dict[str, Any] = json.loads(reply)
    except ValueError:
        return None
    return answer


def _status(paths: list[str], *, as_json: bool) -> int:
    rows = []
    for path in paths:
        info = query(path)
        if info is None:
            continue
        info["socket"] = path
        rows.append(info)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print(f"no warm servers in {warm_dir()}")
        return 0
    print(f"{'BUNDLE':<20} {'VERSION':<10} {'SHA256':<12} {'PID':>7} {'UPTIME':>9} "
          f"{'SERVED':>7} {'RUNNING':>7}  PATH")  # fmt: skip
    for r in rows:
        uptime = str(datetime.timedelta(seconds=int(r["uptime"])))
        state = " (stopping)" if r.get("stopping") else ""
        print(
            f"{r.get('name')!s:<20} {r.get('version')!s:<10} {r['sha256'][:12]:<12} "
            f"{r['pid']:>7} {uptime:>9} {r['served']:>7} {r['running']:>7}  {r['bundle']}{state}"
        )
    return 0


def _stop(paths: list[str]) -> int:
    if not paths:
        print(f"no warm servers in {warm_dir()}")
    for path in paths:
        answer = query(path, wire.STOP)
        if answer is None:
            print(f"no warm server at {path}")
        else:
            print(f"stopping the warm server at {path} (it ends when its running tries do)")
    return 0
