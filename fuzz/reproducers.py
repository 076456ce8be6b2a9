"""Where a fuzzer leaves what broke an invariant, so that the failure can be replayed."""

from __future__ import annotations

import sys
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
