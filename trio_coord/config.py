"""Everything ``serve`` needs to know, read once at start-up.

Timeouts are part of the protocol's safety story (protocol.md §2.6, §6.1, §12): the
supervisor drops what it cannot decode without replying, so every wait on it is
bounded; the defaults below are the settled ones (docs/decisions.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .errors import UsageError
from .protocol.framing import DEFAULT_MAX_FRAME_SIZE, WIRE_MAX_FRAME_SIZE

__all__ = ["Address", "Config", "parse_address"]

#: The supervisor waits 10 s for both connections (§2.5); dialling longer is useless.
DEFAULT_DIAL_TIMEOUT: Final = 10.0
#: One request may take minutes while the API client retries (§3.8); 10 min bounds it.
DEFAULT_REQUEST_TIMEOUT: Final = 600.0
#: The terminal request's reply waits on a PATCH with the same retries (§6.1).
DEFAULT_TERMINAL_TIMEOUT: Final = 600.0
#: After the first SIGTERM the supervisor SIGKILLs 5 s later (§9.6): finish in time.
DEFAULT_SHUTDOWN_GRACE: Final = 4.0
#: Longest task-log line one record may make before it is truncated with a marker
#: (runtime/logs/pipeline.py explains why); ``TRIO_COORD_MAX_LOG_RECORD`` overrides it.
DEFAULT_MAX_LOG_RECORD: Final = 1024 * 1024
#: The smallest limit accepted: a truncated record keeps 1 KiB for its time, logger, bound
#: fields and marker, and needs room for some of its message besides.
LOWEST_MAX_LOG_RECORD: Final = 4096
#: How long a lone request polls for its reply before sleeping (runtime/comm.py,
#: "Polling before sleeping"): 100 µs, a little more than a local supervisor's
#: fastest round trip; ``TRIO_COORD_REPLY_SPIN_US=0`` switches polling off.
DEFAULT_REPLY_SPIN: Final = 100e-6


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(flag: str, value: str) -> Address:
    """Parse ``HOST:PORT`` with a right split on the last ``:`` (§2.4).

    Raises:
        UsageError: no port, a port that is not 1-65535, or an empty host.
    """
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host:
        raise UsageError(f"{flag} expects HOST:PORT, got {value!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"{flag}: port {port!r} is not a number from 1 to 65535")
    return Address(host, int(port))


def _env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise UsageError(f"{name} must be positive, got {raw!r}")
    return value


def _env_int(
    environ: Mapping[str, str], name: str, default: int, low: int, high: int, expected: str
) -> int:
    raw = environ.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise UsageError(f"{name} must be {expected}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Config:
    """The runtime's settings; ``from_env`` reads the optional overrides once."""

    #: Where to dial; None when the runtime is handed ready-made streams (tests, the model).
    comm: Address | None = None
    logs: Address | None = None
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    terminal_timeout: float = DEFAULT_TERMINAL_TIMEOUT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    reply_spin: float = DEFAULT_REPLY_SPIN
    max_log_record: int = DEFAULT_MAX_LOG_RECORD

    @classmethod
    def from_env(
        cls, comm: Address, logs: Address, environ: Mapping[str, str] = os.environ
    ) -> Config:
        """Build a Config, taking ``TRIO_COORD_*`` overrides from the environment."""
        size = _env_int(
            environ, "TRIO_COORD_MAX_FRAME_SIZE", DEFAULT_MAX_FRAME_SIZE,
            1, WIRE_MAX_FRAME_SIZE, "1..2**32-1",
        )  # fmt: skip
        spin_us = _env_int(
            environ, "TRIO_COORD_REPLY_SPIN_US", round(DEFAULT_REPLY_SPIN * 1e6),
            0, 10_000, "0..10000 microseconds",
        )  # fmt: skip
        max_log_record = _env_int(
            environ, "TRIO_COORD_MAX_LOG_RECORD", DEFAULT_MAX_LOG_RECORD,
            LOWEST_MAX_LOG_RECORD, WIRE_MAX_FRAME_SIZE,
            f"a number of bytes from {LOWEST_MAX_LOG_RECORD} to 2**32-1",
        )  # fmt: skip
        return cls(
            comm=comm,
            logs=logs,
            dial_timeout=_env_float(environ, "TRIO_COORD_DIAL_TIMEOUT", DEFAULT_DIAL_TIMEOUT),
            request_timeout=_env_float(
                environ, "TRIO_COORD_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT
            ),
            terminal_timeout=_env_float(
                environ, "TRIO_COORD_TERMINAL_TIMEOUT", DEFAULT_TERMINAL_TIMEOUT
            ),
            shutdown_grace=_env_float(environ, "TRIO_COORD_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE),
            max_frame_size=size,
            reply_spin=spin_us / 1e6,
            max_log_record=max_log_record,
        )
