"""The benchmark's reply server: answers the comm channel the way the 1.3.2 supervisor does.

Run as its own process (the machine has two cores: server and client must not share
one interpreter). It prints ``PORT`` on stdout, then serves one connection after
another until it is killed:

1. on accept, it writes the supervisor's first frame (``[0, StartupDetails, nil]``);
2. then, for every request frame it reads, one reply, encoded exactly as the
   supervisor encodes (``_ResponseFrame.as_bytes()`` from apache-airflow-task-sdk
   1.3.2, msgspec underneath), with bodies from the SDK's own pydantic models
   (``model_dump()``), as ``ActivitySubprocess.send_msg`` does.

What it answers: ``GetVariable`` -> ``VariableResult``; ``SetXCom`` -> empty reply
(value stored); ``GetXCom`` -> ``XComResult`` with the stored value; anything else an
empty reply. Unlike the supervisor, it skips the pydantic validation of each request
and the Execution API call behind it: what is measured is the client, so the server
must not be the bottleneck. Pipelined requests are answered in batches: every frame
found in one read is answered, and the replies go out in one ``sendall``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import msgspec
from airflow.sdk.execution_time.comms import (
    VariableResult,
    XComResult,
    _RequestFrame,
    _ResponseFrame,
)

#: The variable every GetVariable benchmark reads.
VARIABLE_VALUE = "benchmark value"


def startup_frame() -> bytes:
    """``[0, StartupDetails, nil]`` with the body the model's fake supervisor uses."""
    from model.fake_supervisor import Wire

    return bytes(_ResponseFrame(id=0, body=Wire().startup_body()).as_bytes())


def _grow(buf: bytearray, view: memoryview, have: int, size: int) -> tuple[bytearray, memoryview]:
    new = bytearray(size)
    new[:have] = view[:have]
    view.release()
    return new, memoryview(new)


def serve_connection(conn: socket.socket, first: bytes) -> None:
    decode = msgspec.msgpack.Decoder(_RequestFrame).decode
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(first)
    xcoms: dict[str, Any] = {}
    variable_bodies: dict[str, dict[str, Any]] = {}
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    have = 0
    while True:
        if have == len(buf):  # a frame larger than the buffer: grow it
            buf, view = _grow(buf, view, have, 2 * len(buf))
        n = conn.recv_into(view[have:])
        if n == 0:
            return
        have += n
        pos = 0
        out: list[bytes | bytearray] = []
        while have - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if have - pos - 4 < size:
                if size + 4 > len(buf) - pos:
                    view[: have - pos] = view[pos:have]
                    have -= pos
                    pos = 0
                    buf, view = _grow(buf, view, have, size + 4)
                break
            frame = decode(view[pos + 4 : pos + 4 + size])
            pos += 4 + size
            body = frame.body or {}
            kind = body.get("type")
            if kind == "GetVariable":
                key = body["key"]
                reply = variable_bodies.get(key)
                if reply is None:
                    reply = VariableResult(key=key, value=VARIABLE_VALUE).model_dump()
                    variable_bodies[key] = reply
                out.append(_ResponseFrame(id=frame.id, body=reply).as_bytes())
            elif kind == "SetXCom":
                xcoms[body["key"]] = body["value"]
                out.append(_ResponseFrame(id=frame.id).as_bytes())
            elif kind == "GetXCom":
                key = body["key"]
                value = xcoms.get(key)
                out.append(
                    _ResponseFrame(
                        id=frame.id,
                        body=XComResult.model_construct(key=key, value=value).model_dump(),
                    ).as_bytes()
                )
            else:
                out.append(_ResponseFrame(id=frame.id).as_bytes())
        if pos:
            view[: have - pos] = view[pos:have]
            have -= pos
        if out:
            conn.sendall(out[0] if len(out) == 1 else b"".join(out))


def main() -> None:
    first = startup_frame()
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        try:
            serve_connection(conn, first)
        except (ConnectionError, OSError) as exc:
            print(f"server: connection ended: {exc}", file=sys.stderr)
        finally:
            conn.close()


if __name__ == "__main__":
    main()
