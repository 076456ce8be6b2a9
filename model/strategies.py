"""Hypothesis strategies: what the model may choose, and the broken bytes the fuzzer feeds.

Two families:

* **conversation choices** (keys, values, log lines, answers, first frames, clock steps)
  used by the machines in ``model/machines.py``;
* **frames and mutations** (:func:`valid_frames`, :func:`garbage_frames`,
  :func:`mutated_streams`, :func:`chunkings`) used by the decoder fuzzer: valid
  supervisor frames encoded with msgspec, then broken on purpose - bad length prefixes,
  truncations, oversize claims, garbage msgpack, wrong shapes, duplicate keys, unknown
  extension types, out-of-range timestamps, deep nesting, huge strings, invalid UTF-8.

Every *garbage* frame is complete (its prefix matches its body), so a runtime that reads
it must notice at once; a truncated frame is only garbage once the stream ends.
"""

from __future__ import annotations

import logging
import random
import struct
from typing import Any, Final

import msgspec
from hypothesis import strategies as st

from .fake_supervisor import Wire, encode, frame
from .protocol_model import (
    BODY_ERRORS,
    CLIENT_CALLS,
    SUCCESS_BODY,
    TERMINAL_TYPES,
    Answer,
    AnswerKind,
    FirstFrame,
    RaiseKind,
)

__all__ = [
    "LOG_LEVELS",
    "CLOCK_STEPS",
    "ENV_SECRET_KEY",
    "ENV_SECRET",
    "ENVIRON",
    "map_indexes",
    "keys",
    "json_values",
    "log_texts",
    "secrets",
    "first_frames",
    "unsendable_values",
    "answers_for",
    "client_calls",
    "ClientCall",
    "CALL_ORDER",
    "raise_kinds",
    "valid_frames",
    "garbage_frames",
    "garbage_payloads",
    "garbage_payload",
    "GARBAGE_KINDS",
    "mutated_streams",
    "chunkings",
    "msgpack_str",
    "msgpack_map_header",
]

#: Log levels a task uses, by name (the supervisor's lower-case names, §8.4).
LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

#: Virtual seconds a clock step may take. These and the machine's per-step tick are
#: multiples of 1/128 and the machines' timeouts are not, so no sum of steps ever lands
#: *on* a deadline (where "expired" would depend on the comparison the code happens to use).
CLOCK_STEPS: Final = (0.25, 3.5, 40.125, 101.0)

# -- conversation choices -----------------------------------------------------------------

#: A variable the runtime finds in its environment (the ``AIRFLOW_VAR_*`` fast path,
#: §9.8): its key is a sensitive name, so its value must be masked, and the supervisor,
#: which never saw it, must be told with ``MaskSecret`` before the task gets it.
ENV_SECRET_KEY: Final = "db_password"
ENV_SECRET: Final = "envsecretvalue!secret"
#: The environment the runtime machine runs with.
ENVIRON: Final = {f"AIRFLOW_VAR_{ENV_SECRET_KEY.upper()}": ENV_SECRET}

#: ``ti.map_index`` of the try: unmapped (-1) most often, else a mapped instance.
map_indexes = st.sampled_from([-1, -1, 0, 3])

#: Names no AIRFLOW_VAR_/AIRFLOW_CONN_ fast path can shadow (the machines pass environ={}).
keys = st.from_regex(r"[a-z][a-z0-9_]{0,14}", fullmatch=True)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Log message text; never contains "!" (every secret does, so no secret masks a token).
#: Lone surrogates included: a str may hold them, and the runtime must still send a line
#: the supervisor can decode.
log_texts = st.text(st.characters(exclude_characters="!", exclude_categories=[]), max_size=40)

#: Values the task registers with MaskSecret: long enough to be masked, all contain "!".
secrets = st.text(st.sampled_from("abcdefghijklmnop"), min_size=5, max_size=12).map(
    lambda s: f"{s}!secret"
)


def _cycle() -> list[Any]:
    value: list[Any] = [1, {"a": "b"}]
    value[1]["self"] = value
    return value


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: Return values no XCom can hold (§9.4): a reference cycle, a non-finite float, nesting
#: one level deeper than the supervisor accepts (254), a key that is not a string, bytes.
unsendable_values = st.one_of(
    st.builds(_cycle),
    st.sampled_from([float("nan"), {"a": [float("inf")]}]),
    st.builds(_nested, st.just(255)),
    st.sampled_from([{1: "one"}, {"k": b"raw bytes"}, [1, {(1, 2): 3}]]),
)

first_frames = st.sampled_from(
    [FirstFrame.STARTUP] * 12
    + [
        FirstFrame.UNKNOWN_TASK,
        FirstFrame.INVALID_STARTUP,
        FirstFrame.OTHER_TYPE,
        FirstFrame.ERROR_ELEMENT,
        FirstFrame.EOF,
    ]
)

#: How a body raises. Hypothesis strongly favours the first choice of a sampled_from
#: (a 300-conversation run raised SKIP 22 times, the others 3), so the common failure,
#: an ordinary exception, comes first.
raise_kinds = st.sampled_from([RaiseKind.ERROR, RaiseKind.SKIP, RaiseKind.FAIL] * 2)


def answers_for(request_type: str) -> st.SearchStrategy[Answer]:
    """The answers a supervisor (real or broken) may give ``request_type``."""
    if request_type in TERMINAL_TYPES:
        # §5.7: the empty reply after the PATCH, or the error element if it failed.
        return st.sampled_from([Answer(AnswerKind.EMPTY)] * 3 + [Answer(AnswerKind.ERROR_ELEMENT)])
    # SkipDownstreamTasks, whose only failure is an error element, gets as many errors as
    # results: its error path (the try must fail) is otherwise rarely reached.
    results = 2 if request_type == "SkipDownstreamTasks" else 4
    options = [Answer(AnswerKind.RESULT)] * results + [
        Answer(AnswerKind.ERROR_ELEMENT, "API_SERVER_ERROR"),
        Answer(AnswerKind.ERROR_ELEMENT, "GENERIC_ERROR"),
    ]
    if SUCCESS_BODY[request_type] is not None:
        # protocol.md pins what a nil or foreign body means only where a typed result is
        # expected (§12 row 34); a body where the empty reply is due is left open, so the
        # model does not generate it.
        options += [Answer(AnswerKind.EMPTY), Answer(AnswerKind.WRONG_BODY)]
    options += [Answer(AnswerKind.ERROR_BODY, e) for e in BODY_ERRORS.get(request_type, ())]
    return st.sampled_from(options)


#: The client calls, most used first (Hypothesis favours the first of a sampled_from):
#: the original eight, whose answers have the richest semantics (defaults, masking, the
#: environment's secret), then every other request kind a task can ask for.
CALL_ORDER: Final = (
    "get_variable",
    "set_xcom",
    "get_xcom",
    "mask_secret",
    "get_connection",
    "set_variable",
    "delete_xcom",
    "delete_variable",
    "get_variable_keys",
    "get_xcom_count",
    "get_xcom_item",
    "get_xcom_slice",
    "get_task_state",
    "set_task_state",
    "delete_task_state",
    "clear_task_state",
    "get_asset_state_by_name",
    "get_asset_state_by_uri",
    "set_asset_state_by_name",
    "set_asset_state_by_uri",
    "delete_asset_state_by_name",
    "delete_asset_state_by_uri",
    "clear_asset_state_by_name",
    "clear_asset_state_by_uri",
    "get_asset_by_name",
    "get_asset_by_uri",
    "get_assets_by_alias",
    "get_asset_events",
    "get_asset_alias_events",
    "validate_inlets_and_outlets",
    "get_dag",
    "get_dagrun",
    "get_dagrun_state",
    "get_dr_count",
    "get_previous_dagrun",
    "get_prev_successful_dagrun",
    "get_previous_ti",
    "get_first_reschedule_date",
    "get_ti_count",
    "get_task_states",
    "get_task_breadcrumbs",
    "trigger_dagrun",
    "skip_downstream_tasks",
    "set_rendered_fields",
    "set_rendered_map_index",
    "create_hitl_detail",
)
assert set(CALL_ORDER) == set(CLIENT_CALLS)

#: The model's call name -> the client method, where they differ (one method, two forms).
_METHOD_OF: Final = {
    "get_asset_by_name": "get_asset",
    "get_asset_by_uri": "get_asset",
    **{f"{verb}_asset_state_by_{form}": f"{verb}_asset_state"
       for verb in ("get", "set", "delete", "clear") for form in ("name", "uri")},
}  # fmt: skip

#: A client call: the model's name, the client method, its arguments, and has_default.
ClientCall = tuple[str, str, tuple[Any, ...], dict[str, Any], bool]

_store_values = json_values.filter(lambda v: v is not None)


@st.composite
def client_calls(draw: st.DrawFn, *, extended: bool = True, only: str | None = None) -> ClientCall:
    """A client call with valid arguments; ``extended=False``: only the original eight;
    ``only``: that call."""
    name = only or draw(st.sampled_from(CALL_ORDER if extended else CALL_ORDER[:8]))
    method = _METHOD_OF.get(name, name)
    key = draw(keys)
    if name == "get_variable" and draw(st.integers(0, 2)) == 0:
        key = ENV_SECRET_KEY
    if name == "get_variable":
        if draw(st.booleans()):
            return name, method, (key, draw(json_values)), {}, True
        return name, method, (key,), {}, False
    if name in ("set_variable", "set_xcom"):
        return name, method, (key, draw(json_values)), {}, False
    if name == "mask_secret":
        return name, method, (draw(secrets),), {}, False
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if name.endswith("_by_name"):
        kwargs["name"] = f"asset_{key}"
    elif name.endswith("_by_uri"):
        kwargs["uri"] = f"s3://bucket/{key}"
    if (
        name in ("delete_variable", "get_connection", "get_xcom", "delete_xcom", "get_task_state")
        or name == "delete_task_state"
        or name.startswith(("get_asset_s", "delete_asset_s"))
    ):
        args = (key,)
    elif name == "set_task_state" or name.startswith("set_asset_state"):
        args = (key, draw(_store_values))
    elif name == "get_variable_keys":
        args = (draw(st.none() | keys),)
    elif name == "get_xcom_item":
        args = (draw(st.integers(-3, 5)), key)
    elif name == "get_xcom_slice":
        args = (key,)
        kwargs = {"start": draw(st.none() | st.integers(-3, 3)), "stop": None}
    elif name in ("get_xcom_count", "get_dagrun_state", "get_task_breadcrumbs"):
        args = () if name != "get_xcom_count" else (key,)
    elif name in ("get_assets_by_alias", "get_asset_alias_events"):
        args = (f"alias_{key}",)
    elif name == "get_asset_events":
        kwargs = {"name": f"asset_{key}"}
    elif name == "trigger_dagrun":
        args = (f"dag_{key}", f"run_{key}")
    elif name == "skip_downstream_tasks":
        args = ([key, (f"{key}_m", draw(st.integers(0, 3)))],)
    elif name == "set_rendered_fields":
        args = ({key: draw(st.text(max_size=10))},)
    elif name == "set_rendered_map_index":
        args = (f"label {key}",)
    elif name == "create_hitl_detail":
        args = (["yes", "no"], f"subject {key}")
    elif name in ("get_ti_count", "get_task_states", "get_dr_count"):
        kwargs = {"dag_id": f"dag_{key}"} if name == "get_dr_count" else {"task_ids": [key]}
    return name, method, args, kwargs, False


# -- frames and mutations ------------------------------------------------------------------


def msgpack_str(data: bytes) -> bytes:
    """A msgpack str header + ``data`` (which need not be UTF-8)."""
    n = len(data)
    if n < 32:
        return bytes([0xA0 | n]) + data
    if n < 2**8:
        return b"\xd9" + struct.pack(">B", n) + data
    if n < 2**16:
        return b"\xda" + struct.pack(">H", n) + data
    return b"\xdb" + struct.pack(">I", n) + data


def msgpack_map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


_WIRE = Wire()


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    """A frame the real supervisor could send: a startup or a reply, 2 or 3 elements."""
    kind = draw(
        st.sampled_from(["startup", "empty", "variable", "error_body", "error_element", "ok"])
    )
    rid = draw(st.integers(0, 2**63 - 1))
    msg: list[Any]
    if kind == "startup":
        msg = [0, _WIRE.startup_body(), None]
    elif kind == "empty":
        msg = [rid, None, None]
    elif kind == "variable":
        msg = [
            rid,
            {
                "key": draw(keys),
                "value": draw(st.none() | st.text(max_size=30)),
                "type": "VariableResult",
            },
            None,
        ]
    elif kind == "ok":
        msg = [rid, {"ok": True, "type": "OKResponse"}, None]
    else:
        err = {
            "error": draw(st.sampled_from(["VARIABLE_NOT_FOUND", "API_SERVER_ERROR"])),
            "detail": None,
            "type": "ErrorResponse",
        }
        msg = [rid, err, None] if kind == "error_body" else [rid, None, err]
    if draw(st.booleans()) and msg[2] is None:
        msg = msg[:2]  # §3.2: a 2-element response must be accepted too
    return frame(encode(msg))


def _ext(code: int, data: bytes) -> bytes:
    return b"\xc7" + struct.pack(">Bb", len(data), code) + data


#: Kinds of broken frame bodies :func:`garbage_payload` builds.
GARBAGE_KINDS: Final = (
    "random",
    "trailing",
    "bad_utf8",
    "dup_keys",
    "int_key",
    "unknown_ext",
    "bad_timestamp",
    "deep",
    "not_array",
    "short_array",
    "bad_id",
    "truncated_doc",
    "huge_claim",
    "huge_string",
)


def garbage_payload(kind: str, n: int) -> bytes:
    """A complete frame body of ``kind`` that no strict decoder accepts as a supervisor frame.

    Deterministic in ``(kind, n)``; ``n`` (any non-negative int) picks sizes and values,
    so the hypothesis strategy and the fuzzer's random engine share one builder.
    """
    rid = encode(1 + n % 1000)
    if kind == "random":
        data = random.Random(n).randbytes(1 + n % 64)
        try:
            msgspec.msgpack.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises both
            return data
        return b"\xc1" + data  # 0xc1 is never valid msgpack
    if kind == "trailing":
        return encode([1, None, None]) + bytes([n % 256]) * (1 + n % 8)
    if kind == "bad_utf8":
        bad = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"a\x80b")[n % 4]
        return (
            b"\x93"
            + rid
            + msgpack_map_header(1)
            + msgpack_str(b"type")
            + msgpack_str(bad)
            + b"\xc0"
        )
    if kind == "dup_keys":
        return (
            b"\x93" + rid + msgpack_map_header(2)
            + msgpack_str(b"type") + msgpack_str(b"OKResponse")
            + msgpack_str(b"type") + msgpack_str(b"XComResult") + b"\xc0"
        )  # fmt: skip
    if kind == "int_key":
        return b"\x93" + rid + msgpack_map_header(1) + bytes([n % 128]) + b"\x02\xc0"
    if kind == "unknown_ext":
        code = n % 256 - 128
        code = 5 if code == -1 else code
        return b"\x93" + rid + _ext(code, bytes(n % 9)) + b"\xc0"
    if kind == "bad_timestamp":
        # A timestamp extension of no valid size, nanoseconds >= 10**9, or past year 9999.
        body = (
            b"\xd5\xff\x00\x01",
            b"\xd7\xff" + struct.pack(">Q", (10**9 + 5) << 34),
            b"\xc7\x0c\xff" + struct.pack(">Iq", 0, 2**62),
            b"\xc7\x0c\xff" + struct.pack(">Iq", 0, -(2**62)),
        )[n % 4]
        return b"\x93" + rid + msgpack_map_header(1) + msgpack_str(b"end_date") + body + b"\xc0"
    if kind == "deep":
        # Nested where the id goes: too deep for msgpack, or at best a list for an id.
        return b"\x93" + b"\x91" * (1 + n % 5000) + b"\x01" + b"\xc0\xc0"
    if kind == "not_array":
        return encode(({"type": "OKResponse"}, "frame", 7, None, True)[n % 5])
    if kind == "short_array":
        return encode(([], [1])[n % 2])
    if kind == "bad_id":
        return encode([("1", None, 1.5, [1], {"a": 1})[n % 5], None, None])
    if kind == "truncated_doc":
        whole = encode([1, {"key": "k", "value": "v" * 20, "type": "VariableResult"}, None])
        return whole[: 1 + n % (len(whole) - 1)]
    if kind == "huge_claim":
        # A str header claiming far more bytes than the frame holds.
        return b"\x93" + rid + b"\xdb" + struct.pack(">I", 2**31 + n) + b"abc"
    if kind == "huge_string":
        # A valid huge string where the id goes (the body would only fail one request).
        return b"\x93" + msgpack_str(b"x" * (70_000 + n % 1000)) + b"\xc0\xc0"
    raise ValueError(f"unknown garbage kind {kind!r}")


@st.composite
def garbage_payloads(draw: st.DrawFn) -> bytes:
    """A complete frame body that no strict decoder accepts as a supervisor frame."""
    return garbage_payload(draw(st.sampled_from(GARBAGE_KINDS)), draw(st.integers(0, 2**16)))


@st.composite
def garbage_frames(draw: st.DrawFn, max_frame_size: int = 1 << 20) -> bytes:
    """Bytes that break the comm stream at once: a bad prefix or a complete bad frame."""
    choice = draw(st.sampled_from(["zero", "oversize", "payload", "payload", "payload"]))
    if choice == "zero":
        return b"\x00\x00\x00\x00"
    if choice == "oversize":
        return struct.pack(">I", draw(st.integers(max_frame_size + 1, 2**32 - 1)))
    return frame(draw(garbage_payloads()))


@st.composite
def mutated_streams(draw: st.DrawFn, max_frame_size: int = 1 << 20) -> bytes:
    """A byte stream of valid frames, garbage frames, and raw byte-level mutations."""
    parts = draw(
        st.lists(st.one_of(valid_frames(), garbage_frames(max_frame_size)), min_size=1, max_size=4)
    )
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "prefix"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = struct.pack(">I", draw(st.integers(0, 2**32 - 1)))
    return bytes(data)


def chunkings(data_len: int) -> st.SearchStrategy[list[int]]:
    """Cut points for feeding ``data_len`` bytes in pieces (sorted, unique, inside)."""
    if data_len < 2:
        return st.just([])
    return st.lists(st.integers(1, data_len - 1), max_size=8, unique=True).map(sorted)
