"""A local DAG processor: run a bundle's parse workload and collect its one result.

``trio-coord dags`` and the parse benchmark use this. It plays the manager side of the
parse conversation the way airflow-core's ``DagFileProcessorProcess`` does: listen on two
loopback ports, start the bundle (a packed executable, or ``trio-coord serve`` for a
source file) with ``--comm``/``--logs``, send ``[0, DagFileParseRequest, nil]``, read
the ``DagFileParsingResult``, acknowledge it with ``[id, nil, nil]`` and wait for the
exit. So what it prints is exactly what a DAG processor would receive. Every wait is
bounded by one deadline, and the child is killed when it passes.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

import trio

from ..protocol import codec
from ..protocol.framing import NEED_DATA, FrameDecoder, encode_frame
from .supervisor import _kill, _port, child_command, child_environment

__all__ = ["ParseOutcome", "parse_bundle", "run_parse"]

#: The bundle name sent in the request; import errors do not depend on it.
BUNDLE_NAME = "trio-coord-dags"


@dataclass
class ParseOutcome:
    """What the bundle answered: the result body (None if none came), exit code, log records."""

    result: dict[str, Any] | None
    exit_code: int | None
    logs: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    def log_text(self) -> str:
        """The runtime's warnings and errors, one per line (what to show when it failed)."""
        return "\n".join(
            f"{r.get('level', '?')}: {r.get('event', '')}"
            for r in self.logs
            if str(r.get("level", "")).lower() in ("warning", "error", "critical")
        )


async def _read_result(comm: trio.abc.Stream, decoder: FrameDecoder) -> tuple[Any, Any] | None:
    """The first ``[id, body]`` frame the runtime writes, or None at EOF."""
    while True:
        payload = decoder.next_frame()
        if payload is None:
            return None
        if payload is not NEED_DATA:
            if not isinstance(payload, bytes):  # NEED_DATA was handled above
                raise TypeError(f"the frame decoder returned {type(payload).__name__}")
            frame = codec.unpackb(payload)
            if isinstance(frame, list) and len(frame) >= 2:
                return frame[0], frame[1]
            return None
        data = await comm.receive_some(65536)
        decoder.receive_data(data)


async def run_parse(
    spec: str, file: str, bundle_path: str, *, timeout: float = 60.0
) -> ParseOutcome:
    """Drive ``spec``'s parse workload for ``file`` under ``bundle_path``; bounded by ``timeout``."""
    (comm_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1)
    (logs_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1)
    command = child_command(spec, _port(comm_listener), _port(logs_listener))
    outcome = ParseOutcome(None, None)
    try:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, env=child_environment(), start_new_session=True
        )
    except OSError as exc:
        await comm_listener.aclose()
        await logs_listener.aclose()
        return ParseOutcome(None, None, problem=f"could not start {command[0]}: {exc}")
    log_bytes = bytearray()
    try:
        with trio.move_on_after(timeout) as scope:
            async with comm_listener, logs_listener:
                comm = await _accept_or_exit(comm_listener, process)
                logs = await _accept_or_exit(logs_listener, process) if comm else None
            if comm is not None and logs is not None:
                async with comm, logs, trio.open_nursery() as nursery:

                    async def drain() -> None:
                        while data := await logs.receive_some(65536):
                            log_bytes.extend(data)

                    nursery.start_soon(drain)
                    request = {
                        "file": file,
                        "bundle_path": bundle_path,
                        "bundle_name": BUNDLE_NAME,
                        "callback_requests": [],
                        "type": "DagFileParseRequest",
                    }
                    await comm.send_all(encode_frame(codec.packb([0, request, None])))
                    got = await _read_result(comm, FrameDecoder())
                    if got is not None:
                        request_id, body = got
                        outcome.result = body if isinstance(body, dict) else None
                        await comm.send_all(encode_frame(codec.packb([request_id, None, None])))
            outcome.exit_code = await process.wait()
        if scope.cancelled_caught:
            outcome.problem = f"the bundle did not finish its parse within {timeout:g} s"
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        outcome.problem = f"lost the bundle: {exc}"
    finally:
        if process.returncode is None:
            _kill(process)
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await process.wait()
        outcome.exit_code = process.returncode
    for line in bytes(log_bytes).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            outcome.logs.append(record)
    return outcome


async def _accept_or_exit(
    listener: trio.SocketListener, process: trio.Process
) -> trio.SocketStream | None:
    """The runtime's connection, or None when it exits before connecting."""
    result: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            result.append(await listener.accept())
            nursery.cancel_scope.cancel()

        async def exited() -> None:
            await process.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(accept)
        nursery.start_soon(exited)
    return result[0] if result else None


def parse_bundle(spec: str, *, timeout: float = 60.0) -> ParseOutcome:
    """Parse ``spec`` (a source file or a packed bundle) as a DAG processor would."""
    path = os.path.abspath(spec)
    return trio.run(
        functools.partial(run_parse, spec, path, os.path.dirname(path), timeout=timeout)
    )
