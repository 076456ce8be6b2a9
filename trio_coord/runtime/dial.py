"""Dialling the supervisor's two listeners, concurrently and under one deadline.

The supervisor gives a runtime ``startup_timeout`` (10 s by default) to connect both
sockets and then kills it (protocol.md §2.5, §12 row 20), so both dials run at once
under one bound, and a failure of either closes the other: a half-connected runtime
is of no use to anyone.

A packed bundle's launcher may have dialled already (a warm start, or its fall-back to a
cold start after dialling: docs/warm-start.md); it then names the two connected sockets
in :data:`CONNECTED_FDS_ENV`, and :func:`adopt_connected` takes them over instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from typing import Final

import trio

from ..config import Address
from ..errors import ConnectTimeout, SupervisorGone

__all__ = ["CONNECTED_FDS_ENV", "adopt_connected", "dial_both"]

#: ``"COMM_FD,LOGS_FD"``: sockets the launcher connected to ``--comm``/``--logs`` already.
CONNECTED_FDS_ENV: Final = "TRIO_COORD_CONNECTED_FDS"


def adopt_connected(
    comm: Address, logs: Address, environ: MutableMapping[str, str] = os.environ
) -> tuple[trio.SocketStream, trio.SocketStream] | None:
    """The launcher's already-connected sockets as streams, or None to dial as usual.

    The variable is removed so the task's own child processes never see it. A socket
    is adopted only when it is a connected TCP socket whose peer is the address the
    supervisor named; anything else (a stale variable, a closed descriptor) is closed
    and ignored, and the runtime dials itself.
    """
    raw = environ.pop(CONNECTED_FDS_ENV, "")
    if not raw:
        return None
    socks: list[socket.socket] = []
    try:
        for text in raw.split(","):
            socks.append(socket.socket(fileno=int(text)))
        if len(socks) != 2:
            raise ValueError(f"{CONNECTED_FDS_ENV} names {len(socks)} descriptors, not 2")
        for sock, want in zip(socks, (comm, logs), strict=True):
            if sock.type != socket.SOCK_STREAM or not _same_peer(sock, want):
                raise ValueError(f"descriptor {sock.fileno()} is not connected to {want}")
    except (ValueError, OSError):
        for sock in socks:
            sock.close()
        return None
    streams = [trio.SocketStream(trio.socket.from_stdlib_socket(s)) for s in socks]
    return streams[0], streams[1]


def _same_peer(sock: socket.socket, want: Address) -> bool:
    host, port = sock.getpeername()[:2]
    if port != want.port:
        return False
    if host == want.host:
        return True
    try:
        infos = socket.getaddrinfo(want.host, want.port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[4][0] == host for info in infos)


async def dial_both(
    comm: Address, logs: Address, *, timeout: float
) -> tuple[trio.SocketStream, trio.SocketStream]:
    """Connect to the comm and logs listeners; return ``(comm, logs)`` streams.

    Raises:
        ConnectTimeout: both were not connected within ``timeout`` seconds.
        SupervisorGone: a connection was refused or failed (the message names which).
    """
    streams: dict[str, trio.SocketStream] = {}
    errors: dict[str, OSError] = {}

    async def dial(name: str, addr: Address) -> None:
        try:
            streams[name] = await trio.open_tcp_stream(addr.host, addr.port)
        except OSError as exc:
            errors[name] = exc

    try:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(dial, "comm", comm)
                nursery.start_soon(dial, "logs", logs)
    except trio.TooSlowError:
        await _close_all(streams)
        missing = ", ".join(
            f"--{n}={a}" for n, a in (("comm", comm), ("logs", logs)) if n not in streams
        )
        raise ConnectTimeout(f"could not connect to {missing} within {timeout:g} s") from None
    if errors:
        await _close_all(streams)
        detail = "; ".join(f"--{n}: {e.strerror or e}" for n, e in sorted(errors.items()))
        raise SupervisorGone(f"could not connect to the supervisor ({detail})")
    return streams["comm"], streams["logs"]


async def _close_all(streams: dict[str, trio.SocketStream]) -> None:
    for stream in streams.values():
        await trio.aclose_forcefully(stream)
