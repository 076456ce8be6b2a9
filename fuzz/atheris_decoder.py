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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["trio_coord.protocol"]):
    import trio_coord.protocol  # noqa: F401

import frame_fuzz  # noqa: E402


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: limit, cut points, then the stream."""
    fdp = atheris.FuzzedDataProvider(data)
    limit = fdp.ConsumeIntInRange(1, 8192)
    cuts = [fdp.ConsumeIntInRange(1, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    frame_fuzz.check_stream(stream, cuts, limit)


def make_corpus(directory: Path) -> int:
    """Write frame_fuzz's seed corpus as libFuzzer inputs (limit 4096, no cuts)."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = b"\x0f\xff\x00"  # what FuzzedDataProvider turns into a limit near 4096, no cuts
    seeds = frame_fuzz.seed_corpus()
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:04d}").write_bytes(prefix + seed)
    return len(seeds)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        print(f"wrote {make_corpus(Path(sys.argv[2]))} seeds to {sys.argv[2]}")
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
