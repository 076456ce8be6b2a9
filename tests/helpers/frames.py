"""Raw comm-channel bytes for tests: what the real supervisor writes, and what a broken one might.

Theory of use
-------------
The real 1.3.2 supervisor encodes every frame with ``msgspec.msgpack.Encoder`` (protocol.md
§3.4), so every *valid* frame built here goes through msgspec, never through the msgpack
library our codec uses: a test that encodes with the library it decodes with proves little.
Bodies are plain dicts, so a test can drop, add or corrupt any key before encoding.

Broken frames come in two layers:

* **payloads** (``*_payload`` methods and the ``raw_*`` builders) are msgpack documents that
  msgspec would never write: invalid UTF-8, duplicate or non-string keys, unknown extension
  types, out-of-range timestamps, deep nesting, trailing bytes. Wrap one with :meth:`frame`.
* **framing faults** (:meth:`prefix`, :meth:`zero_length`, :meth:`oversize_prefix`,
  :meth:`truncated`) break the 4-byte length prefix itself.

``raw_*`` builders take and return msgpack *fragments* (already-encoded bytes), so any value
can be spliced anywhere: ``f.raw_map((f.encode("a"), f.encode(1)), (f.encode("a"), f.encode(2)))``
is a map with a duplicate key. :func:`chunked` splits a byte string at given offsets, for
feeding a decoder in arbitrary pieces.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

__all__ = ["MAX_MSGPACK_DEPTH", "FrameFactory", "chunked", "supervisor_encode"]

#: How many containers msgpack's C unpacker nests before it raises ``StackError``.
MAX_MSGPACK_DEPTH = 1024

_UTC = datetime.UTC
_ENCODER = msgspec.msgpack.Encoder()


def supervisor_encode(obj: Any) -> bytes:
    """Encode ``obj`` as the real supervisor does: msgspec, aware datetimes as timestamps."""
    return _ENCODER.encode(obj)


def chunked(data: bytes, cuts: Iterable[int]) -> Iterator[bytes]:
    """Split ``data`` at the given offsets (any order, duplicates and out-of-range ignored)."""
    start = 0
    for cut in sorted({c for c in cuts if 0 < c < len(data)}):
        yield data[start:cut]
        start = cut
    if start < len(data) or not data:
        yield data[start:]


def _sized_head(n: int, code8: int) -> bytes:
    """The header of a str/bin of ``n`` bytes: ``code8``, +1 and +2 are its 8/16/32-bit forms."""
    for offset, fmt in enumerate((">B", ">H", ">I")):
        if n < 2 ** (8 << offset):
            return bytes([code8 + offset]) + struct.pack(fmt, n)
    raise ValueError(f"{n} bytes do not fit a msgpack length")


class FrameFactory:
    """Builds the bytes a supervisor, or a broken peer, could put on the comm socket.

    Args:
        ti_id: the task-instance id used in default ``StartupDetails`` bodies.
        now: the instant used for every default date-time field.
    """

    def __init__(
        self,
        *,
        ti_id: str = "0190a2e4-0000-7000-8000-000000000001",
        now: datetime.datetime = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_UTC),
    ) -> None:
        self.ti_id = ti_id
        self.now = now

    # -- the frame layer ----------------------------------------------------------------

    @staticmethod
    def prefix(length: int) -> bytes:
        """The 4-byte big-endian length prefix for ``length`` (0 .. 2**32-1)."""
        return length.to_bytes(4, "big")

    def frame(self, payload: bytes) -> bytes:
        """Prefix ``payload`` with its length: one whole frame, however broken the payload."""
        return self.prefix(len(payload)) + payload

    @staticmethod
    def encode(obj: Any) -> bytes:
        """A msgpack fragment for ``obj``, encoded like the supervisor (see :func:`supervisor_encode`)."""
        return supervisor_encode(obj)

    # -- valid bodies (plain dicts, ``type`` last as the supervisor writes it) -------------

    @staticmethod
    def body(type_: str, **fields: Any) -> dict[str, Any]:
        """A message body: ``fields`` followed by ``"type": type_``."""
        return {**fields, "type": type_}

    def task_instance(self, **overrides: Any) -> dict[str, Any]:
        """The ``ti`` map of a StartupDetails body, with the ten keys 1.3.2 sends."""
        ti: dict[str, Any] = {
            "id": self.ti_id,
            "task_id": "extract",
            "dag_id": "etl",
            "run_id": "manual__2024-01-02T03:04:05+00:00",
            "try_number": 1,
            "dag_version_id": "0190a2e4-0000-7000-8000-000000000002",
            "map_index": -1,
            "hostname": None,
            "context_carrier": None,
            "queue": "default",
        }
        ti.update(overrides)
        return ti

    def dag_run(self, **overrides: Any) -> dict[str, Any]:
        """The ``ti_context.dag_run`` map of a StartupDetails body."""
        run: dict[str, Any] = {
            "dag_id": "etl",
            "run_id": "manual__2024-01-02T03:04:05+00:00",
            "logical_date": self.now,
            "data_interval_start": self.now,
            "data_interval_end": self.now,
            "run_after": self.now,
            "start_date": self.now,
            "end_date": None,
            "clear_number": 0,
            "run_type": "manual",
            "state": "running",
            "conf": {},
            "triggering_user_name": None,
            "consumed_asset_events": [],
            "partition_key": None,
            "partition_date": None,
            "note": None,
            "team_name": None,
        }
        run.update(overrides)
        return run

    def startup_details_body(self, **overrides: Any) -> dict[str, Any]:
        """A complete ``StartupDetails`` body; ``overrides`` replace top-level keys."""
        fields: dict[str, Any] = {
            "ti": self.task_instance(),
            "dag_rel_path": "etl.py",
            "bundle_info": {"name": "trio-bundle", "version": None},
            "start_date": self.now,
            "ti_context": {
                "dag_run": self.dag_run(),
                "task_reschedule_count": 0,
                "max_tries": 0,
                "variables": [],
                "connections": [],
                "next_method": None,
                "next_kwargs": None,
                "xcom_keys_to_clear": [],
                "should_retry": False,
                "start_date": self.now,
            },
            "sentry_integration": "",
        }
        fields.update(overrides)
        return self.body("StartupDetails", **fields)

    def parse_request_body(self, **overrides: Any) -> dict[str, Any]:
        """A ``DagFileParseRequest`` body as airflow-core 3.3.2 sends it."""
        fields: dict[str, Any] = {
            "file": "/bundle/etl.py",
            "bundle_path": "/bundle",
            "bundle_name": "trio-bundle",
            "callback_requests": [],
        }
        fields.update(overrides)
        return self.body("DagFileParseRequest", **fields)

    def error_body(self, error: str = "GENERIC_ERROR", detail: Any = None) -> dict[str, Any]:
        """An ``ErrorResponse`` map, for either placement (body or error element)."""
        return self.body("ErrorResponse", error=error, detail=detail)

    # -- valid supervisor frames ---------------------------------------------------------

    def reply(
        self,
        request_id: Any,
        body: Any = None,
        error: Any = None,
        *,
        arity: int = 3,
        extra: Sequence[Any] = (),
    ) -> bytes:
        """A whole reply frame ``[id, body, error, *extra]``, or ``[id, body]`` with ``arity=2``.

        The real supervisor always writes three elements; a runtime must also accept two
        (no error element) and ignore any ``extra`` elements beyond the third (§3.2).
        """
        elements: list[Any] = [request_id, body, error, *extra]
        if arity == 2:
            if error is not None or extra:
                raise ValueError("a 2-element reply has no error element")
            elements = elements[:2]
        return self.frame(self.encode(elements))

    def startup(self, *, request_id: Any = 0, error: Any = None, **overrides: Any) -> bytes:
        """The supervisor's first frame, ``[0, StartupDetails, nil]``."""
        return self.reply(request_id, self.startup_details_body(**overrides), error)

    def parse_request(self, *, request_id: Any = 0, error: Any = None, **overrides: Any) -> bytes:
        """The parse supervisor's first frame, ``[0, DagFileParseRequest, nil]``."""
        return self.reply(request_id, self.parse_request_body(**overrides), error)

    # -- raw msgpack fragments -----------------------------------------------------------

    @staticmethod
    def raw_str(data: bytes) -> bytes:
        """A msgpack ``str`` holding arbitrary bytes (they need not be UTF-8)."""
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        return _sized_head(len(data), 0xD9) + data

    @staticmethod
    def raw_bin(data: bytes) -> bytes:
        """A msgpack ``bin`` holding ``data``."""
        return _sized_head(len(data), 0xC4) + data

    @staticmethod
    def raw_array(*items: bytes) -> bytes:
        """A msgpack array of already-encoded fragments."""
        n = len(items)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(items)

    @staticmethod
    def raw_map(*pairs: tuple[bytes, bytes]) -> bytes:
        """A msgpack map of already-encoded (key, value) fragments, in order, repeats allowed."""
        n = len(pairs)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(k + v for k, v in pairs)

    @staticmethod
    def raw_ext(code: int, data: bytes) -> bytes:
        """A msgpack extension value of type ``code`` (-128..127), in its smallest form."""
        fixext = {1: b"\xd4", 2: b"\xd5", 4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}
        tag = struct.pack(">b", code)
        if len(data) in fixext:
            return fixext[len(data)] + tag + data
        return b"\xc7" + struct.pack(">B", len(data)) + tag + data

    @classmethod
    def timestamp32(cls, seconds: int) -> bytes:
        """The 4-byte timestamp form (``d6 ff``): whole seconds, 0 .. 2**32-1."""
        return cls.raw_ext(-1, struct.pack(">I", seconds))

    @classmethod
    def timestamp64(cls, seconds: int, nanoseconds: int) -> bytes:
        """The 8-byte timestamp form (``d7 ff``): 30-bit nanoseconds over 34-bit seconds."""
        return cls.raw_ext(-1, struct.pack(">Q", nanoseconds << 34 | seconds))

    @classmethod
    def timestamp96(cls, seconds: int, nanoseconds: int) -> bytes:
        """The 12-byte timestamp form (``c7 0c ff``): u32 nanoseconds, then i64 seconds."""
        return cls.raw_ext(-1, struct.pack(">Iq", nanoseconds, seconds))

    # -- broken payloads -----------------------------------------------------------------

    #: A byte msgpack reserves and never uses: no document starts with it.
    GARBAGE = b"\xc1"

    def invalid_utf8_payload(self) -> bytes:
        """A map whose string value is not UTF-8."""
        return self.raw_map((self.encode("key"), self.raw_str(b"\xff\xfe")))

    def duplicate_keys_payload(self, key: str = "type") -> bytes:
        """A map naming ``key`` twice (msgpack itself would keep the last value)."""
        return self.raw_map(
            (self.encode(key), self.encode("StartupDetails")),
            (self.encode(key), self.encode("ErrorResponse")),
        )

    def bin_key_payload(self) -> bytes:
        """A map whose key is ``bin``, not ``str``."""
        return self.raw_map((self.raw_bin(b"type"), self.encode("ErrorResponse")))

    def int_key_payload(self) -> bytes:
        """A map whose key is an integer."""
        return self.raw_map((self.encode(1), self.encode("one")))

    def unknown_ext_payload(self, code: int = 5) -> bytes:
        """An extension value of a type nothing in the protocol uses."""
        return self.raw_ext(code, b"\x00\x01\x02\x03")

    def out_of_range_timestamp_payload(self) -> bytes:
        """A valid 96-bit timestamp far beyond ``datetime``'s year 9999."""
        return self.timestamp96(2**62, 0)

    def deep_nesting_payload(self, depth: int = MAX_MSGPACK_DEPTH + 1) -> bytes:
        """``depth`` nested one-element arrays around nil."""
        return b"\x91" * depth + b"\xc0"

    def trailing_bytes_payload(self, obj: Any = None, junk: bytes = b"\xc0") -> bytes:
        """One valid document followed by more bytes."""
        return self.encode(obj) + junk

    # -- broken framing ------------------------------------------------------------------

    def zero_length(self) -> bytes:
        """A prefix declaring an empty frame (it wedges the real supervisor, §12 row 4)."""
        return self.prefix(0)

    def oversize_prefix(self, limit: int) -> bytes:
        """A prefix declaring one byte more than ``limit``."""
        return self.prefix(limit + 1)

    @staticmethod
    def truncated(frame: bytes, keep: int) -> bytes:
        """The first ``keep`` bytes of ``frame`` (negative: drop that many from the end)."""
        return frame[:keep]
