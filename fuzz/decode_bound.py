"""Fuzzer for the decode memory bound: payloads made of very many tiny items.

The invariant: ``codec.unpackb`` either refuses a payload with ``RemoteProtocolError`` or
decodes it with a traced peak of at most ``DECODE_MEMORY_FACTOR`` times its size plus
``DECODE_MEMORY_ALLOWANCE`` (docs/protocol.md, "Limits"). The frame fuzzer cannot test
this: its inputs are small, and the bound is only at stake for payloads of tens of KiB or
more made of the items that cost the most per byte (empty maps and arrays, small ints,
short strings, nested one-item containers, maps with many keys).

Inputs come from a seeded random engine: an array or map of many copies of a few drawn
items, sometimes nested, sometimes with counts that lie (more or fewer items than the
payload holds), sometimes cut short or with a byte flipped. Sizes straddle the size below
which the decoder does not scan (``codec._NO_SCAN_BELOW``).

Usage::

    python fuzz/decode_bound.py 300          # that many inputs
    python fuzz/decode_bound.py 120s         # for two minutes
    python fuzz/decode_bound.py 300 --seed 7

Exit status 0 when every input kept the invariant; 1 with the failing input written to
``fuzz/crashes/`` (hex) otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

# From this directory (the scripts and tests/test_fuzz.py put it on sys.path).
from reproducers import RunStats, fuzz_for, save_reproducer

from trio_coord.errors import RemoteProtocolError
from trio_coord.protocol import codec

#: Items that cost the most per wire byte once built.
TINY: tuple[bytes, ...] = (
    b"\x80",  # {}
    b"\x90",  # []
    b"\x91\x90",  # [[]]
    b"\x81\xa1a\x80",  # {"a": {}}
    b"\xec",  # -20
    b"\x05",  # 5 (a cached small int)
    b"\xc0",  # nil
    b"\xa1z",  # "z"
    b"\xa2ab",  # "ab"
    b"\xcd\x03\xe8",  # 1000
    b"\xcb" + bytes(8),  # 0.0
    b"\xd6\xff\x00\x00\x00\x01",  # a timestamp
    b"\xa3\xe4\xb8\x80",  # a non-ASCII string
)


def bound(size: int) -> int:
    """The most decoding a payload of ``size`` bytes may take, in traced bytes."""
    return codec.DECODE_MEMORY_FACTOR * size + codec.DECODE_MEMORY_ALLOWANCE


@dataclass
class Stats(RunStats):
    refused: int = 0
    largest: int = 0
    #: The highest peak / bound seen among decoded payloads.
    closest: float = 0.0

    def line(self) -> str:
        return (
            f"{self.inputs} inputs in {self.seconds:.0f} s: {self.refused} refused, "
            f"{self.decoded} decoded (peak up to {self.closest:.2f} of the bound), "
            f"largest {self.largest} bytes"
        )


def check_payload(payload: bytes, stats: Stats | None = None) -> None:
    """Decode ``payload`` under tracemalloc: refused, or decoded within the bound.

    Raises:
        AssertionError: the invariant does not hold.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        codec.unpackb(payload)
    except RemoteProtocolError:
        refused = True
    else:
        refused = False
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was_tracing:
        tracemalloc.stop()
    limit = bound(len(payload))
    assert peak <= limit, f"{'refusing' if refused else 'decoding'} took {peak} > {limit} bytes"
    if stats is not None:
        stats.inputs += 1
        stats.largest = max(stats.largest, len(payload))
        if refused:
            stats.refused += 1
        else:
            stats.decoded += 1
            stats.closest = max(stats.closest, peak / limit)


class Engine:
    """Seeded payloads of many tiny items (see the module docstring)."""

    def __init__(self, seed: int, max_size: int = 1 << 20) -> None:
        self.rng = random.Random(seed)
        sizes = (codec._NO_SCAN_BELOW // 2, codec._NO_SCAN_BELOW, 1 << 18, 1 << 20)
        self.sizes = tuple(n for n in sizes if n <= max_size) or (max_size,)

    def _node(self, depth: int) -> bytes:
        rng = self.rng
        if depth >= 3 or rng.random() < 0.6:
            return rng.choice(TINY)
        n = rng.randint(0, 12)
        if rng.random() < 0.5:
            return (
                b"\xdc" + n.to_bytes(2, "big") + b"".join(self._node(depth + 1) for _ in range(n))
            )
        prefix = rng.choice(("", "k", "é"))
        keys = (f"{prefix}{i}".encode() for i in range(n))
        return (
            b"\xde"
            + n.to_bytes(2, "big")
            + b"".join(bytes((0xA0 | len(k),)) + k + self._node(depth + 1) for k in keys)
        )

    def next_input(self) -> bytes:
        rng = self.rng
        parts = [self._node(1) for _ in range(rng.randint(1, 3))]
        unit = len(b"".join(parts))
        # From below the no-scan size to about 25 times it (1 MiB).
        target = rng.choice(self.sizes)
        copies = max(1, rng.randint(target // 2, target) // unit)
        count = copies * len(parts)
        as_map = rng.random() < 0.2 and count % 2 == 0
        if as_map:  # the same items, read as key/value pairs (keys of any type are refused)
            count //= 2
        lie = rng.random()
        if lie < 0.1:
            count += rng.randint(1, 1000)  # claims more than there is: truncated
        elif lie < 0.2:
            count = max(0, count - rng.randint(1, 1000))  # fewer: trailing bytes
        head = (b"\xdf" if as_map else b"\xdd") + count.to_bytes(4, "big")
        data = bytearray(head + b"".join(parts) * copies)
        if rng.random() < 0.1:
            del data[rng.randrange(len(data)) :]
        if rng.random() < 0.1 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)


def run(budget: str, *, seed: int, max_size: int = 1 << 20, report_every: float = 10.0) -> Stats:
    """Fuzz for ``budget``: a count of inputs (``"300"``) or seconds (``"60s"``)."""
    engine = Engine(seed, max_size)
    stats = Stats()

    def one(i: int) -> None:
        payload = engine.next_input()
        try:
            check_payload(payload, stats)
        except BaseException:
            save_reproducer(f"decode-bound-{seed}-{i}.hex", payload.hex(), "input")
            raise

    def line(seconds: float) -> str:
        stats.seconds = seconds
        return stats.line()

    tracemalloc.start()
    try:
        _, stats.seconds = fuzz_for(budget, one, line, report_every)
    finally:
        tracemalloc.stop()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("budget", nargs="?", default="300", help="inputs (N) or seconds (Ns)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        stats = run(args.budget, seed=args.seed)
    except AssertionError as exc:
        print(f"decode bound broken: {exc}", file=sys.stderr)
        return 1
    print(stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
