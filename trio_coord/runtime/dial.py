"""Dialling the supervisor's two listeners, concurrently and under one deadline.

The supervisor gives a runtime ``startup_timeout`` (10 s by default) to connect both
sockets and then kills it (protocol.md §2.5, §12 row 20), so both dials run at once
under one bound, and a failure of either closes the other: a half-connected runtime
is of no use to anyone.
"""

from __future__ import annotations

import trio

from ..config import Address
from ..errors import ConnectTimeout, SupervisorGone

__all__ = ["dial_both"]


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
