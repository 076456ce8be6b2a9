"""What the launcher, the warm server and its children say to each other.

Everything travels over ``AF_UNIX`` ``SOCK_SEQPACKET`` sockets, so each message is one
record and needs no framing. The launcher's side is written out again, in raw stdlib
calls, in the bundle's bootstrap (``bundle/launcher.py``); the tests run both.

Launcher -> server, one record::

    b"TCW1 run" NUL <sha256 hex> NUL <umask> NUL <argc> NUL argv... NUL env entries...

with :data:`FD_COUNT` descriptors attached (``SCM_RIGHTS``) in the order of the
``FD_*`` constants. The server answers ``b"ok <pid>"`` or ``b"no <reason>"`` and, when
the child has been reaped, ``b"exit <wait status>"``.

Child <-> launcher, over the socket pair whose end is ``FD_STATUS``: ``b"started
<pid>"``, then ``b"go"`` (the launcher still wants the try: a launcher that gave up
never says it, so no try runs twice), and at the end ``b"exit <code>"``.

``b"TCW1 status"`` and ``b"TCW1 stop"`` are the control requests of ``trio-coord warm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "FD_COUNT",
    "RunRequest",
    "WARM_SERVER_FLAG",
    "WireError",
    "encode_run",
    "parse_request",
]

#: The first argument that turns a packed bundle into a warm server.
WARM_SERVER_FLAG: Final = "--warm-server"
MAGIC: Final = b"TCW1"
RUN: Final = MAGIC + b" run"
STATUS: Final = MAGIC + b" status"
STOP: Final = MAGIC + b" stop"

FD_STDIN, FD_STDOUT, FD_STDERR, FD_CWD, FD_COMM, FD_LOGS, FD_STATUS = range(7)
FD_COUNT: Final = 7
#: Largest request accepted (the environment dominates; Airflow's is a few KiB).
MAX_REQUEST: Final = 1 << 20


class WireError(ValueError):
    """A request that does not follow the format above."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One try to fork: the launcher's identity of the bundle and its process settings."""

    digest: str
    umask: int
    argv: tuple[bytes, ...]
    env: tuple[tuple[bytes, bytes], ...]


def encode_run(digest: str, umask: int, argv: list[bytes], env: list[tuple[bytes, bytes]]) -> bytes:
    """The launcher's request (the tests use it; the bootstrap builds the same bytes)."""
    fields = [RUN, digest.encode("ascii"), b"%d" % umask, b"%d" % len(argv), *argv]
    fields += [k + b"=" + v for k, v in env]
    return b"\0".join(fields)


def parse_request(data: bytes) -> RunRequest | str:
    """A run request, or ``"status"``/``"stop"``.

    Raises:
        WireError: anything else.
    """
    if data == STATUS:
        return "status"
    if data == STOP:
        return "stop"
    fields = data.split(b"\0")
    if len(fields) < 4 or fields[0] != RUN:
        raise WireError("not a trio-coord warm request")
    try:
        digest = fields[1].decode("ascii")
        umask = int(fields[2])
        argc = int(fields[3])
    except (UnicodeDecodeError, ValueError):
        raise WireError("malformed run request header") from None
    if not 1 <= argc <= len(fields) - 4 or not 0 <= umask <= 0o777:
        raise WireError("malformed run request header")
    argv = tuple(fields[4 : 4 + argc])
    env: list[tuple[bytes, bytes]] = []
    for entry in fields[4 + argc :]:
        key, eq, value = entry.partition(b"=")
        if not eq or not key:
            raise WireError("malformed environment entry in run request")
        env.append((key, value))
    return RunRequest(digest=digest, umask=umask, argv=argv, env=tuple(env))
