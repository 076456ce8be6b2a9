"""A client's own cost per GetVariable, in one process: ``python inproc.py trio|commsdecoder``.

The reply to each request is written into a socket pair *before* the request is sent,
so the client never waits for another process: what is timed is only its own work
(encode, write, wait machinery, read, decode, the reply model). No scheduling of a
second process is involved, which makes this the steadiest figure on a shared machine.
Prints one JSON line: the best of five batches, in microseconds per request.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

from airflow.sdk.execution_time.comms import (
    CommsDecoder,
    ToSupervisor,
    ToTask,
    VariableResult,
    _ResponseFrame,
)
from airflow.sdk.execution_time.comms import GetVariable as SdkGetVariable
from clients import _new_channel, _reader_of

N = 20_000
BATCHES = 5


def _replies() -> tuple[bytes, list[bytes]]:
    from model.fake_supervisor import Wire

    body = VariableResult(key="bench_var", value="benchmark value").model_dump()
    first = bytes(_ResponseFrame(id=0, body=Wire().startup_body()).as_bytes())
    return first, [bytes(_ResponseFrame(id=i, body=body).as_bytes()) for i in range(N + 2)]


def _drain(peer: socket.socket) -> None:
    try:
        while peer.recv(1 << 20, socket.MSG_DONTWAIT):
            pass
    except BlockingIOError:
        pass


class _Feed:
    """Writes the reply to the next request before it is made; drains what we sent."""

    def __init__(self, peer: socket.socket, replies: list[bytes]) -> None:
        self.peer, self.replies, self.i = peer, replies, 1

    def prime(self) -> None:
        self.peer.sendall(self.replies[self.i])
        self.i += 1
        if self.i % 64 == 0:
            _drain(self.peer)


def commsdecoder() -> float:
    _first, replies = _replies()
    ours, peer = socket.socketpair()
    decoder = CommsDecoder[ToTask, ToSupervisor](socket=ours)
    decoder.id_counter = iter(range(1, 10**9))
    feed, best = _Feed(peer, replies), float("inf")
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(N // BATCHES):
            feed.prime()
            decoder.send(SdkGetVariable(key="bench_var"))
        best = min(best, (time.perf_counter() - t0) / (N // BATCHES))
    return best * 1e6


def trio_coord_client(reply_spin: float | None = None) -> float:
    import trio

    import trio_coord.runtime  # noqa: F401  (trio_coord.client needs it loaded first)
    from trio_coord.client import Client
    from trio_coord.runtime.masking import Masker

    first, replies = _replies()
    result: list[float] = []

    async def main() -> None:
        ours, peer = socket.socketpair()
        channel = _new_channel(trio.SocketStream(trio.socket.from_stdlib_socket(ours)), reply_spin)
        peer.sendall(first)
        startup: Any = await channel.receive_first()

        async def send(msg: Any) -> Any:
            return await channel.request(msg, timeout=60.0)

        client = Client(send, startup.details, Masker(), environ={})
        async with trio.open_nursery() as nursery:
            await nursery.start(_reader_of(channel))  # as Run wires it
            feed, best = _Feed(peer, replies), float("inf")
            for _ in range(BATCHES):
                t0 = time.perf_counter()
                for _ in range(N // BATCHES):
                    feed.prime()
                    await client.get_variable("bench_var")
                best = min(best, (time.perf_counter() - t0) / (N // BATCHES))
            result.append(best * 1e6)
            nursery.cancel_scope.cancel()

    trio.run(main)
    return result[0]


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "commsdecoder":
        us = commsdecoder()
    elif kind == "trio-parked":  # polling off: every reply goes through the reader task
        us = trio_coord_client(reply_spin=0.0)
    else:  # as Run configures it: the reply is already there, so the first poll finds it
        us = trio_coord_client()
    print(json.dumps({"kind": f"inproc-{kind}", "us_per_request": us}))
