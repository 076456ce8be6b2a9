"""One task try against a minimal supervisor, timed: for the cold-start and logs benchmarks.

:func:`run_try` listens on two loopback ports, starts the runtime command with
``--comm``/``--logs``, and records, in ``time.perf_counter()`` seconds from just before
the exec:

* ``connected``: both sockets accepted (the start-up budget of bundle.md §5.8);
* ``terminal``: the terminal request (``SucceedTask``/``TaskState``/...) received;
* ``exited``: the process has exited.

Like the real supervisor it sends ``[0, StartupDetails, nil]`` (msgspec) and answers
every request with an empty reply; it reads the logs socket to the end, counting lines.
It is a stand-in for the timing harness only; the real supervisor is measured in
``supervised.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

TERMINALS = frozenset({"SucceedTask", "TaskState", "RetryTask", "DeferTask", "RescheduleTask"})


@dataclass
class TryResult:
    connected: float = float("nan")
    terminal: float = float("nan")
    exited: float = float("nan")
    returncode: int | None = None
    terminal_type: str | None = None
    xcoms: dict[str, Any] = field(default_factory=dict)
    log_lines: int = 0
    marked_lines: int = 0
    first_marked: float = float("nan")
    last_marked: float = float("nan")
    drop_warnings: list[str] = field(default_factory=list)
    stderr: str = ""


def _frame(obj: Any) -> bytes:
    payload = msgspec.msgpack.encode(obj)
    return len(payload).to_bytes(4, "big") + payload


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            return None
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def run_try(
    cmd: list[str],
    *,
    startup_body: dict[str, Any] | None,
    env: dict[str, str] | None = None,
    mark: bytes = b"bench record",
    timeout: float = 60.0,
) -> TryResult:
    """Run ``cmd + ['--comm=...', '--logs=...']`` for one try; ``startup_body=None``
    closes the comm socket once both are connected (start-up only)."""
    res = TryResult()
    comm_l = socket.create_server(("127.0.0.1", 0))
    logs_l = socket.create_server(("127.0.0.1", 0))
    comm_l.settimeout(timeout)
    logs_l.settimeout(timeout)
    argv = [
        *cmd,
        f"--comm=127.0.0.1:{comm_l.getsockname()[1]}",
        f"--logs=127.0.0.1:{logs_l.getsockname()[1]}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr_chunks: list[bytes] = []
    err_reader = threading.Thread(
        target=lambda: stderr_chunks.append(proc.stderr.read() if proc.stderr else b""),
        daemon=True,
    )
    err_reader.start()
    try:
        accepted: dict[str, socket.socket] = {}

        def accept(name: str, listener: socket.socket) -> None:
            conn, _ = listener.accept()
            accepted[name] = conn

        acceptors = [
            threading.Thread(target=accept, args=("comm", comm_l), daemon=True),
            threading.Thread(target=accept, args=("logs", logs_l), daemon=True),
        ]
        for a in acceptors:
            a.start()
        for a in acceptors:
            a.join(timeout)
        res.connected = time.perf_counter() - t0
        if len(accepted) < 2:
            raise RuntimeError(f"the runtime did not connect within {timeout} s")
        comm, logs = accepted["comm"], accepted["logs"]

        def read_logs() -> None:
            rest = b""
            while True:
                data = logs.recv(1 << 20)
                if not data:
                    return
                now = time.perf_counter() - t0
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                res.log_lines += len(lines)
                marked = sum(1 for line in lines if mark in line)
                if marked:
                    if res.marked_lines == 0:
                        res.first_marked = now
                    res.last_marked = now
                    res.marked_lines += marked
                for line in lines:
                    if b"records dropped" in line:
                        res.drop_warnings.append(line.decode(errors="replace"))

        log_reader = threading.Thread(target=read_logs, daemon=True)
        log_reader.start()
        if startup_body is None:
            comm.close()
        else:
            comm.sendall(_frame([0, startup_body, None]))
            while True:
                head = _read_exact(comm, 4)
                if head is None:
                    break
                payload = _read_exact(comm, int.from_bytes(head, "big"))
                if payload is None:
                    break
                frame = msgspec.msgpack.decode(payload)
                body = frame[1] or {}
                kind = body.get("type")
                if kind == "SetXCom":
                    res.xcoms[body["key"]] = body["value"]
                if kind in TERMINALS:
                    res.terminal = time.perf_counter() - t0
                    res.terminal_type = (
                        kind if kind != "TaskState" else f"TaskState:{body['state']}"
                    )
                comm.sendall(_frame([frame[0], None, None]))
            comm.close()
        res.returncode = proc.wait(timeout)
        res.exited = time.perf_counter() - t0
        log_reader.join(timeout)
        logs.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        comm_l.close()
        logs_l.close()
        err_reader.join(5)
        res.stderr = b"".join(stderr_chunks).decode(errors="replace")
    return res


def startup_body(task_id: str) -> dict[str, Any]:
    from model.fake_supervisor import Wire

    return Wire(dag_id="bench", task_id=task_id).startup_body()


def time_exit(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from exec to exit of ``cmd`` (the interpreter baselines)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


if __name__ == "__main__":  # a manual check: python tryrun.py CMD...
    import sys

    r = run_try(sys.argv[1:], startup_body=startup_body(os.environ.get("TASK", "noop")))
    print(json.dumps(r.__dict__, default=str, indent=1)[:3000])
