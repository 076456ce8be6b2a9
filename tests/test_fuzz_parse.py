"""A short pass of the parse-workload fuzzer (fuzz/parse_fuzz.py): malformed parse requests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

import parse_fuzz


def test_parse_fuzzer_short_pass() -> None:
    """Malformed DagFileParseRequest frames never hang the runtime, and each gets one result or a clear exit 1."""
    assert parse_fuzz.run(80, seed=3) == 80
