"""Where a fuzzer leaves what broke an invariant, so that the failure can be replayed."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Reproducers land here (gitignored).
CRASHES = Path(__file__).resolve().parent / "crashes"


def save_reproducer(name: str, text: str, what: str) -> Path:
    """Write ``text`` to ``fuzz/crashes/<name>`` and say so on stderr; the caller re-raises."""
    CRASHES.mkdir(exist_ok=True)
    path = CRASHES / name
    path.write_text(text)
    print(f"invariant broken; {what} saved to {path}", file=sys.stderr)
    return path


def fuzz_for(
    budget: str, one: Callable[[int], None], line: Callable[[float], str], report_every: float
) -> tuple[int, float]:
    """Call ``one(i)`` for ``budget`` (a count of inputs, ``"5000"``, or seconds, ``"60s"``).

    Prints ``line(seconds so far)`` every ``report_every`` seconds; returns the number of
    inputs and the seconds taken. What ``one`` raises ends the run (it saves its input).
    """
    seconds = float(budget[:-1]) if budget.endswith("s") else math.inf
    count = int(budget) if not budget.endswith("s") else sys.maxsize
    start = last = time.perf_counter()
    done = 0
    while done < count:
        one(done)
        done += 1
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if now - last >= report_every:
            last = now
            print(line(now - start), flush=True)
    return done, time.perf_counter() - start


@dataclass
class RunStats:
    """What every fuzzer counts; each adds its own figures."""

    inputs: int = 0
    decoded: int = 0
    seconds: float = 0.0
