"""Coverage-guided fuzzing of the sans-IO decoder with atheris (libFuzzer for Python).

The same invariant as ``frame_fuzz.py`` (it calls its ``check_stream``), but libFuzzer
chooses the inputs, steering by the line coverage of ``trio_coord.protocol``: the frame
limit, the chunking and the byte stream all come from the fuzzer's data.

Usage::

    python fuzz/atheris_decoder.py --make-corpus DIR      # seed DIR with frame_fuzz's corpus
    python fuzz/atheris_decoder.py DIR -runs=200000       # or -max_total_time=300

``nox -s atheris -- <runs>`` does both in a temporary directory. A failing input is written
by libFuzzer as ``crash-<sha1>`` in the working directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: ``frame_fuzz``, imported on first use: under libFuzzer, :func:`main` must instrument
#: ``trio_coord.protocol`` before anything imports it; without atheris (the tests) the
#: entry function runs as plain Python.
_frame_fuzz: ModuleType | None = None


def _checker() -> ModuleType:
    global _frame_fuzz
    if _frame_fuzz is None:
        import frame_fuzz

        _frame_fuzz = frame_fuzz
    return _frame_fuzz


def parse_input(data: bytes) -> tuple[int, list[int], bytes] | None:
    """Split one libFuzzer input into (frame limit, cut points, stream); None if too short.

    A 2-byte frame limit, a cut count, 2-byte cut points, then the stream. The header is
    read from the front (atheris' FuzzedDataProvider takes integers from the end), so a
    seed is simply a header followed by frames.
    """
    if len(data) < 3:
        return None
    limit = 1 + int.from_bytes(data[0:2], "big") % 8192
    ncuts = data[2] % 9
    header = 3 + 2 * ncuts
    cuts = [int.from_bytes(data[i : i + 2], "big") for i in range(3, min(header, len(data)), 2)]
    return limit, cuts, data[header:]


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: the decoder, in the input's chunking, must agree with the model."""
    parsed = parse_input(data)
    if parsed is not None:
        limit, cuts, stream = parsed
        _checker().check_stream(stream, cuts, limit)


#: The header of every seed: limit 1 + 0x0fff = 4096, no cuts.
SEED_HEADER = b"\x0f\xff\x00"


def make_corpus(directory: Path) -> int:
    """Write frame_fuzz's seed corpus as libFuzzer inputs (limit 4096, no cuts)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = _checker().seed_corpus()
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:04d}").write_bytes(SEED_HEADER + seed)
    return len(seeds)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        print(f"wrote {make_corpus(Path(sys.argv[2]))} seeds to {sys.argv[2]}")
        return
    import atheris

    with atheris.instrument_imports(include=["trio_coord.protocol"]):
        import trio_coord.protocol.codec
        import trio_coord.protocol.connection
        import trio_coord.protocol.fields
        import trio_coord.protocol.framing
        import trio_coord.protocol.messages
        import trio_coord.protocol.states  # noqa: F401
    _checker()  # imports the rest after the instrumented modules
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
