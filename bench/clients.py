"""Benchmark clients, one per process: ``python clients.py KIND PORT SECONDS [ARG]``.

Each connects to the reply server (bench/server.py) on 127.0.0.1:PORT, reads the first
frame, warms up, then runs for SECONDS and prints one JSON object on stdout.

Kinds:

``blocking``      the floor in Python: a blocking socket, msgpack, nothing else.
``commsdecoder``  apache-airflow-task-sdk 1.3.2's task-side ``CommsDecoder.send`` (the
                  native runner's client), one caller.
``trio-floor``    the floor in Trio: one task, ``trio.SocketStream.send_all`` then
                  ``receive_some`` and msgpack, nothing else (what the issue calls "a
                  plain sequential Trio loop").
``trio``          ARG = callers (default 1), then optionally the reply polling budget in
                  µs (default: Run's). trio-coord's ``Client.get_variable`` over ``CommChannel``, with the
                  channel's reader task running, exactly as ``Run`` wires them;
                  ARG = number of concurrent callers (default 1).
``xcom-trio`` / ``xcom-commsdecoder``   ARG = MiB: one ``SetXCom`` then one
                  ``GetXCom`` of a str of that size, timed, with the peak RSS growth of
                  each call (VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from typing import Any

KEY = "bench_var"
WARMUP = 0.2


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- memory ------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _rss_kib() -> int:
    return _status_kib("VmRSS:")


def _hwm_kib() -> int:
    return _status_kib("VmHWM:")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _emit_xcom(kind: str, mib: int, set_: tuple[float, float], get: tuple[float, float]) -> None:
    """One XCom result: (seconds, peak RSS growth in MiB) of the set and the get."""
    _emit(kind=kind, mib=mib, set_s=set_[0], get_s=get[0], set_rss_mib=set_[1], get_rss_mib=get[1])


def _measure(call: Any) -> tuple[float, float]:
    """Run ``call()``; return (seconds, peak RSS growth in MiB over the RSS before it)."""
    _reset_hwm()
    before = _rss_kib()
    t0 = time.perf_counter()
    call()
    elapsed = time.perf_counter() - t0
    return elapsed, (_hwm_kib() - before) / 1024


def _new_channel(stream: Any, reply_spin: float | None = None) -> Any:
    """A CommChannel configured as Run configures it (default settings), or with the
    given reply polling budget; trees without polling (``--before``) get none."""
    import inspect

    from trio_coord.config import Config
    from trio_coord.protocol import CommConnection
    from trio_coord.runtime.comm import CommChannel

    kwargs: dict[str, Any] = {}
    if "reply_spin" in inspect.signature(CommChannel).parameters:
        kwargs["reply_spin"] = Config().reply_spin if reply_spin is None else reply_spin
    return CommChannel(stream, CommConnection(), **kwargs)


def _reader_of(channel: Any) -> Any:
    """The channel's background reader, as Run starts it (``watch`` in trees before
    2026-11-25, for ``--before``)."""
    return getattr(channel, "run_reader", None) or channel.watch


# -- the floor: blocking socket + msgpack -----------------------------------------------


def blocking(port: int, seconds: float) -> None:
    import msgpack

    sock = _connect(port)
    buf = bytearray(1 << 16)
    view = memoryview(buf)

    def read_frame() -> Any:
        got = 0
        while got < 4:
            n = sock.recv_into(view[got:4])
            if not n:
                raise EOFError
            got += n
        size = int.from_bytes(buf[:4], "big")
        nonlocal_buf = buf if size <= len(buf) else bytearray(size)
        v = memoryview(nonlocal_buf)
        got = 0
        while got < size:
            n = sock.recv_into(v[got:size])
            if not n:
                raise EOFError
            got += n
        return msgpack.unpackb(v[:size])

    read_frame()  # StartupDetails
    body = {"key": KEY, "type": "GetVariable"}
    i = 0

    def once() -> None:
        nonlocal i
        i += 1
        payload = msgpack.packb([i, body])
        sock.sendall(len(payload).to_bytes(4, "big") + payload)
        reply = read_frame()
        assert reply[0] == i and reply[1]["value"], reply

    _timed_loop(once, seconds, "blocking")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _timed_loop(once: Any, seconds: float, kind: str) -> None:
    end = time.perf_counter() + WARMUP
    while time.perf_counter() < end:
        once()
    n = 0
    cpu0 = _cpu()
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(64):
            once()
        n += 64
        now = time.perf_counter()
        if now >= end:
            break
    cpu_us = (_cpu() - cpu0) / n * 1e6
    _emit(kind=kind, ops=n, seconds=now - t0, rate=n / (now - t0), cpu_us=cpu_us)


async def _async_loop(once: Any, duration: float) -> tuple[int, float]:
    """Await ``once()`` in batches of 64 for ``duration`` seconds; (calls, seconds)."""
    n = 0
    t0 = time.perf_counter()
    end = t0 + duration
    while True:
        for _ in range(64):
            await once()
        n += 64
        now = time.perf_counter()
        if now >= end:
            return n, now - t0


# -- the floor in Trio: one task, no protocol layer ------------------------------------


def trio_floor(port: int, seconds: float) -> None:
    import msgpack
    import trio

    async def main() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buf = bytearray()

        async def read_frame() -> Any:
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
                data = await stream.receive_some(1 << 16)
                if not data:
                    raise EOFError
                buf.extend(data)
            size = int.from_bytes(buf[:4], "big")
            frame = msgpack.unpackb(bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
            return frame

        await read_frame()  # StartupDetails
        body = {"key": KEY, "type": "GetVariable"}
        i = 0

        async def once() -> None:
            nonlocal i
            i += 1
            payload = msgpack.packb([i, body])
            await stream.send_all(len(payload).to_bytes(4, "big") + payload)
            reply = await read_frame()
            assert reply[0] == i and reply[1]["value"], reply

        await _async_loop(once, WARMUP)
        cpu0 = _cpu()
        n, elapsed = await _async_loop(once, seconds)
        cpu_us = (_cpu() - cpu0) / n * 1e6
        _emit(kind="trio-floor", ops=n, seconds=elapsed, rate=n / elapsed, cpu_us=cpu_us)

    trio.run(main)


# -- the native runner's client -----------------------------------------------------------


def _comms_decoder(port: int) -> Any:
    from airflow.sdk.execution_time.comms import CommsDecoder, ToSupervisor, ToTask

    decoder = CommsDecoder[ToTask, ToSupervisor](socket=_connect(port))
    decoder._get_response()  # StartupDetails, as the task runner's startup() reads it
    return decoder


def commsdecoder(port: int, seconds: float) -> None:
    from airflow.sdk.execution_time.comms import GetVariable

    decoder = _comms_decoder(port)

    def once() -> None:
        reply = decoder.send(GetVariable(key=KEY))
        assert reply.value, reply

    _timed_loop(once, seconds, "commsdecoder")


def xcom_commsdecoder(port: int, mib: int) -> None:
    from airflow.sdk.execution_time.comms import GetXCom, SetXCom

    decoder = _comms_decoder(port)
    value = "x" * (mib << 20)
    ids = {"dag_id": "d", "run_id": "r", "task_id": "t"}
    set_s, set_rss = _measure(lambda: decoder.send(SetXCom(key="big", value=value, **ids)))
    got: list[Any] = []
    get_s, get_rss = _measure(lambda: got.append(decoder.send(GetXCom(key="big", **ids))))
    assert len(got[0].value) == len(value)
    _emit_xcom("xcom-commsdecoder", mib, (set_s, set_rss), (get_s, get_rss))


# -- trio-coord ------------------------------------------------------------------------------


async def _trio_client(port: int, reply_spin: float | None = None) -> Any:
    import trio

    import trio_coord.runtime  # noqa: F401  first: trio_coord.client needs it loaded
    from trio_coord.client import Client
    from trio_coord.runtime.masking import Masker

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    channel = _new_channel(stream, reply_spin)
    first = await channel.receive_first()

    async def send(msg: Any) -> Any:
        return await channel.request(msg, timeout=60.0)

    return channel, Client(send, first.details, Masker(), environ={})


def trio_requests(port: int, seconds: float, callers: int, reply_spin: float | None = None) -> None:
    import trio

    async def main() -> None:
        channel, client = await _trio_client(port, reply_spin)
        async with trio.open_nursery() as nursery:
            await nursery.start(_reader_of(channel))
            count = 0
            stop = False

            async def caller() -> None:
                nonlocal count
                while not stop:
                    value = await client.get_variable(KEY)
                    assert value
                    count += 1

            async def timed(duration: float) -> tuple[int, float]:
                nonlocal stop, count
                stop, count = False, 0
                t0 = time.perf_counter()
                async with trio.open_nursery() as inner:
                    for _ in range(callers):
                        inner.start_soon(caller)
                    await trio.sleep(duration)
                    stop = True
                return count, time.perf_counter() - t0

            if callers == 1:
                # The one-caller path as a task runs it: no extra task, no sleep beside it.
                async def once() -> None:
                    assert await client.get_variable(KEY)

                async def sequential(duration: float) -> tuple[int, float]:
                    return await _async_loop(once, duration)

                run = sequential
            else:
                run = timed
            await run(WARMUP)
            polls0 = getattr(channel, "polls", 0), getattr(channel, "poll_hits", 0)
            cpu0 = _cpu()
            n, elapsed = await run(seconds)
            cpu_us = (_cpu() - cpu0) / n * 1e6
            nursery.cancel_scope.cancel()
        _emit(
            kind="trio",
            callers=callers,
            ops=n,
            seconds=elapsed,
            rate=n / elapsed,
            cpu_us=cpu_us,
            # Requests that polled for their reply, and those answered while polling.
            polls=getattr(channel, "polls", polls0[0]) - polls0[0],
            poll_hits=getattr(channel, "poll_hits", polls0[1]) - polls0[1],
        )

    trio.run(main)


def xcom_trio(port: int, mib: int) -> None:
    import trio

    value = "x" * (mib << 20)

    async def main() -> None:
        channel, client = await _trio_client(port)
        async with trio.open_nursery() as nursery:
            await nursery.start(_reader_of(channel))
            got: list[Any] = []

            async def measure(afn: Any) -> tuple[float, float]:
                _reset_hwm()
                before = _rss_kib()
                t0 = time.perf_counter()
                await afn()
                elapsed = time.perf_counter() - t0
                return elapsed, (_hwm_kib() - before) / 1024

            set_s, set_rss = await measure(lambda: client.set_xcom("big", value))

            async def get() -> None:
                got.append(await client.get_xcom("big"))

            get_s, get_rss = await measure(get)
            assert len(got[0]) == len(value)
            nursery.cancel_scope.cancel()
        _emit_xcom("xcom-trio", mib, (set_s, set_rss), (get_s, get_rss))

    trio.run(main)


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    arg = argv[2] if len(argv) > 2 else "1"
    if kind == "blocking":
        blocking(port, float(arg))
    elif kind == "commsdecoder":
        commsdecoder(port, float(arg))
    elif kind == "trio-floor":
        trio_floor(port, float(arg))
    elif kind == "trio":
        callers = int(argv[3]) if len(argv) > 3 else 1
        spin = float(argv[4]) * 1e-6 if len(argv) > 4 else None  # µs; default: Run's
        trio_requests(port, float(arg), callers, spin)
    elif kind == "xcom-trio":
        xcom_trio(port, int(arg))
    elif kind == "xcom-commsdecoder":
        xcom_commsdecoder(port, int(arg))
    else:
        raise SystemExit(f"unknown client kind {kind!r}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(sys.argv[1:])
