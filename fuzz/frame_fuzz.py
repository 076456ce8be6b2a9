"""Frame fuzzer for the sans-IO decoder: framing, codec and CommConnection.

The invariant (h11's, STYLE.md practice 5): any byte stream, fed in one piece or in any
chunking, either yields frames or raises ``RemoteProtocolError`` - never another
exception - and yields the *same* frames and the same verdict however it is cut. On top:

* the framing agrees with the model's plain splitter (``model.protocol_model.split_frames``);
* after every ``NEED_DATA`` the decoder holds at most one prefix plus ``max_frame_size``
  bytes (nothing it has been told is oversized is ever buffered);
* every payload ``codec.unpackb`` accepts, msgspec (what the supervisor uses) decodes to
  the same value;
* a ``CommConnection`` in mid-conversation turns the stream into events or one sticky
  ``RemoteProtocolError``.

Inputs come from a seeded random engine: valid supervisor frames (encoded with msgspec)
and broken ones (``model.strategies.garbage_payload``), spliced and mutated at byte
level (bit flips, cuts, inserted bytes and length prefixes, duplicated slices).

Usage::

    python fuzz/frame_fuzz.py 100000          # that many inputs
    python fuzz/frame_fuzz.py 300s            # for five minutes
    python fuzz/frame_fuzz.py 20000 --seed 7 --max-frame-size 4096

Exit status 0 when every input kept the invariant; 1 with the failing input written to
``fuzz/crashes/`` (hex) otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import math
import random
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

# From this directory (the scripts and tests/test_fuzz.py put it on sys.path).
from reproducers import RunStats, fuzz_for, save_reproducer

from model.fake_supervisor import Wire, encode, frame
from model.protocol_model import Answer, AnswerKind, FirstFrame, split_frames
from model.strategies import GARBAGE_KINDS, garbage_payload
from trio_coord.errors import RemoteProtocolError, SupervisorError
from trio_coord.protocol import (
    NEED_DATA,
    Closed,
    CommConnection,
    FrameDecoder,
    Reply,
    StrayReply,
    codec,
)
from trio_coord.protocol import messages as m


@dataclass
class Stats(RunStats):
    bytes: int = 0
    frames: int = 0
    rejected_frames: int = 0
    stream_errors: int = 0
    events: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else math.inf
        frate = self.frames / self.seconds if self.seconds else math.inf
        return (
            f"{self.inputs} inputs ({rate:,.0f}/s), {self.frames} frames ({frate:,.0f}/s), "
            f"{self.decoded} decoded, {self.rejected_frames} rejected by the codec, "
            f"{self.stream_errors} stream errors, {self.events} connection events, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s; ends: {self.verdicts}"
        )


# -- the invariant ---------------------------------------------------------------------------


def _pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _decode(data: bytes, cuts: Sequence[int], limit: int, eof: bool) -> tuple[list[bytes], str]:
    dec = FrameDecoder(limit)
    frames: list[bytes] = []
    try:
        for piece in _pieces(data, cuts):
            dec.receive_data(piece)
            while True:
                got = dec.next_frame()
                if got is NEED_DATA:
                    break
                assert isinstance(got, bytes), got
                frames.append(got)
            # Memory bound: once drained, at most one prefix and one frame's body are held.
            assert dec.buffered <= 4 + limit, (dec.buffered, limit)
        if eof:
            dec.receive_data(b"")
            got = dec.next_frame()
            assert got is None, got  # everything complete was drained above
            return frames, "boundary"
        return frames, "open"  # without EOF, a boundary and a partial frame look alike
    except RemoteProtocolError:
        return frames, "error"


_ONE_US = datetime.timedelta(microseconds=1)


def _same(a: Any, b: Any) -> bool:
    """Equal as the wire means it; iterative, since a frame may nest far deeper than the
    interpreter's recursion limit."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif not _same_leaf(x, y):
            return False
    return True


def _same_leaf(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        # The wire holds nanoseconds; msgpack truncates to microseconds, msgspec rounds.
        # The supervisor's own values are whole microseconds, so this never matters there.
        return a.tzinfo is not None and b.tzinfo is not None and abs(a - b) <= _ONE_US
    return type(a) is type(b) and a == b


_NOW = datetime.datetime(2026, 6, 16, tzinfo=datetime.UTC)
_STARTUP = Wire().first_frame(FirstFrame.STARTUP) or b""
_REQUESTS = (
    m.GetVariable(key="k"),
    m.SetXCom(key="k", value=1, dag_id="d", run_id="r", task_id="t"),
    m.DeleteVariable(key="k"),
)


def check_stream(data: bytes, cuts: Sequence[int], limit: int, stats: Stats | None = None) -> None:
    """Assert the fuzzer's invariants for one input; raises AssertionError (or worse) if not."""
    stats = stats if stats is not None else Stats()
    stats.inputs += 1
    stats.bytes += len(data)
    for eof in (False, True):
        whole = _decode(data, (), limit, eof)
        cut = _decode(data, cuts, limit, eof)
        ref = split_frames(data, limit, eof=eof)
        if not eof and ref[1] != "error":
            ref = (ref[0], "open")
        assert whole == ref, ("decoder in one piece disagrees with the model", whole[1], ref[1])
        assert cut == ref, ("decoder in pieces disagrees with the model", cut[1], ref[1])
    frames, verdict = split_frames(data, limit, eof=True)
    stats.verdicts[verdict] = stats.verdicts.get(verdict, 0) + 1
    stats.frames += len(frames)
    for payload in frames:
        try:
            ours = codec.unpackb(payload)
        except RemoteProtocolError:
            stats.rejected_frames += 1
            continue
        stats.decoded += 1
        try:
            theirs = msgspec.msgpack.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise AssertionError(f"we accept a payload msgspec rejects: {payload[:64]!r}") from None
        assert _same(ours, theirs), ("codec and msgspec disagree", ours, theirs)
    _check_connection(data, cuts, limit, stats)


def _check_connection(data: bytes, cuts: Sequence[int], limit: int, stats: Stats) -> None:
    conn = CommConnection(max_frame_size=max(limit, len(_STARTUP)))
    conn.receive_data(_STARTUP)
    conn.next_event()
    for req in _REQUESTS:
        conn.send_request(req)
    failed: RemoteProtocolError | None = None
    for piece in [*_pieces(data, cuts), b""]:
        conn.receive_data(piece)
        while failed is None:
            try:
                ev = conn.next_event()
            except RemoteProtocolError as exc:
                failed = exc
                stats.stream_errors += 1
                break
            if ev is NEED_DATA:
                break
            stats.events += 1
            if isinstance(ev, Closed):
                break
            assert isinstance(ev, Reply | StrayReply), ev
            if isinstance(ev, Reply):
                # A bad reply or the supervisor's error fails only this request.
                with contextlib.suppress(RemoteProtocolError, SupervisorError):
                    ev.result()
        if failed is not None:
            break
    if failed is not None:
        try:
            conn.next_event()
        except RemoteProtocolError:
            pass
        else:
            raise AssertionError("a broken connection produced another event")


# -- the random engine -----------------------------------------------------------------------


def seed_corpus() -> list[bytes]:
    """Valid frames the real supervisor could send, and one of every kind of broken frame."""
    wire = Wire(xcom_keys_to_clear=("a", "b"))
    seeds = [b for k in FirstFrame if (b := wire.first_frame(k)) is not None]
    req = {"key": "k", "conn_id": "c"}
    for kind in ("GetVariable", "GetConnection", "GetXCom", "DeleteVariable", "SetXCom"):
        for answer in (
            Answer(AnswerKind.RESULT),
            Answer(AnswerKind.EMPTY),
            Answer(AnswerKind.ERROR_BODY, "VARIABLE_NOT_FOUND"),
            Answer(AnswerKind.ERROR_ELEMENT),
            Answer(AnswerKind.WRONG_BODY),
        ):
            for rid in (1, 2, 3, 0, 2**63 - 1):
                seeds.append(wire.answer_frame(rid, kind, req, answer))
    seeds.append(frame(encode([1, None])))  # 2 elements (§3.2)
    seeds.append(frame(encode([2, None, None, "extra"])))  # extra elements are ignored
    for kind in GARBAGE_KINDS:
        for n in (0, 1, 2, 3, 77, 4999):
            seeds.append(frame(garbage_payload(kind, n)))
    return seeds


_MARKERS = bytes([0xC1, 0xDB, 0xDF, 0xDD, 0xC7, 0xD4, 0xD6, 0xD7, 0xFF, 0x00, 0x93, 0x91])


class Engine:
    """Seeded inputs: spliced seeds, then byte-level mutations, then a random chunking."""

    def __init__(self, seed: int, limit: int) -> None:
        self.rng = random.Random(seed)
        self.limit = limit
        self.corpus = seed_corpus()

    def next_input(self) -> tuple[bytes, list[int]]:
        rng = self.rng
        parts = [rng.choice(self.corpus) for _ in range(rng.randint(1, 4))]
        data = bytearray(b"".join(parts))
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 5))):
            self._mutate(data)
        cuts = sorted(
            rng.sample(range(1, max(len(data), 1)), min(max(len(data) - 1, 0), rng.randint(0, 8)))
        )
        if rng.random() < 0.05 and len(data) < 4096:
            cuts = list(range(1, len(data)))  # one byte at a time
        return bytes(data), cuts

    def _mutate(self, data: bytearray) -> None:
        rng = self.rng
        if not data:
            data += rng.randbytes(rng.randint(1, 8))
            return
        at = rng.randrange(len(data))
        op = rng.randrange(8)
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[at:]
        elif op == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            size = rng.choice((0, 1, self.limit, self.limit + 1, 2**32 - 1, rng.randrange(2**32)))
            data[at:at] = struct.pack(">I", size)
        elif op == 4:
            end = min(len(data), at + rng.randint(1, 64))
            data[at:at] = data[at:end]
        elif op == 5:
            data[at] = rng.choice(_MARKERS)
        elif op == 6:
            del data[at : at + rng.randint(1, 16)]
        else:
            data[at:at] = rng.choice(self.corpus)


def run(budget: str, *, seed: int, limit: int, report_every: float = 10.0) -> Stats:
    """Fuzz for ``budget``: a count of inputs (``"5000"``) or seconds (``"60s"``)."""
    engine = Engine(seed, limit)
    stats = Stats()

    def one(i: int) -> None:
        data, cuts = engine.next_input()
        try:
            check_stream(data, cuts, limit, stats)
        except BaseException:
            save_reproducer(
                f"frame-{seed}-{i}.hex", f"limit {limit}\ncuts {cuts}\n{data.hex()}\n", "input"
            )
            raise

    def line(seconds: float) -> str:
        stats.seconds = seconds
        return stats.line()

    _, stats.seconds = fuzz_for(budget, one, line, report_every)
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("budget", nargs="?", default="20000", help="inputs (N) or seconds (Ns)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-frame-size", type=int, default=4096)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"frame fuzz: budget {args.budget}, seed {seed}, max frame {args.max_frame_size}")
    stats = run(args.budget, seed=seed, limit=args.max_frame_size)
    print("frame fuzz done:", stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
