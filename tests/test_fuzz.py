"""Short passes of the frame and serve fuzzers (``nox -s fuzz`` runs them long)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import strategies as s

#: The long profile runs for many minutes: no per-test timeout then (pytest-timeout).
pytestmark = pytest.mark.timeout(0 if settings.default.max_examples >= 1000 else 300)

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import atheris_decoder  # noqa: E402  (imports no atheris until it fuzzes)
import decode_bound  # noqa: E402
import frame_fuzz  # noqa: E402
import serve_fuzz  # noqa: E402


@given(data=s.mutated_streams(max_frame_size=4096), cut_seed=st.data())
def test_any_stream_decodes_or_raises_remote_protocol_error(
    data: bytes, cut_seed: st.DataObject
) -> None:
    """Hypothesis-made streams, in any chunking, yield the model's frames or RemoteProtocolError."""
    cuts = cut_seed.draw(s.chunkings(len(data)))
    frame_fuzz.check_stream(data, cuts, 4096)


@given(payload=s.garbage_payloads(), limit=st.sampled_from([1024, 4096, 1 << 20]))
def test_every_garbage_frame_breaks_the_stream(payload: bytes, limit: int) -> None:
    """Every frame the garbage strategy builds is refused, so the machines may call it fatal."""
    from trio_coord.errors import RemoteProtocolError
    from trio_coord.protocol import CommConnection
    from trio_coord.protocol.messages import GetVariable

    conn = CommConnection(max_frame_size=max(limit, len(frame_fuzz._STARTUP)))
    conn.receive_data(frame_fuzz._STARTUP)
    conn.next_event()
    conn.send_request(GetVariable(key="k"))
    conn.receive_data(len(payload).to_bytes(4, "big") + payload)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@pytest.mark.parametrize("seed", [1, 2])
def test_frame_fuzzer_short_pass(seed: int) -> None:
    """A seeded pass of the random frame engine keeps the decoder invariant on every input."""
    stats = frame_fuzz.run("1500", seed=seed, limit=4096, report_every=1e9)
    assert stats.inputs == 1500 and stats.stream_errors > 0 and stats.decoded > 0


def test_decode_bound_fuzzer_short_pass() -> None:
    """Seeded payloads of many tiny items are refused or decode within 10x their size + 4 MiB."""
    stats = decode_bound.run("12", seed=1, max_size=1 << 18)
    assert stats.inputs == 12 and stats.refused > 0 and stats.decoded > 0


def test_serve_fuzzer_short_pass() -> None:
    """Fuzzed conversations with the in-process runtime end with 0 or 1, never hang, log exit 1."""
    stats = serve_fuzz.run("40", seed=11, limit=1 << 20, report_every=1e9)
    assert stats.conversations == 40 and stats.fuzzed_frames > 0
    assert set(stats.exit_codes) <= {0, 1}


def test_trio_coord_serve_survives_fuzz_and_floods_within_its_memory_bound() -> None:
    """Real `trio-coord serve` processes exit 0/1 and stay near a clean run's RSS despite 32 MiB floods."""
    stats = serve_fuzz.Stats()
    serve_fuzz.run_processes(2, seed=5, limit=1 << 20, stats=stats)
    assert stats.subprocesses == 2 and stats.baseline_rss_kb > 0


def test_atheris_entry_reads_its_header_and_checks_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The libFuzzer entry takes limit and cuts from the input's front and checks the rest."""
    calls: list[tuple[bytes, list[int], int]] = []

    def record(data: bytes, cuts: Sequence[int], limit: int) -> None:
        calls.append((data, list(cuts), limit))

    monkeypatch.setattr(frame_fuzz, "check_stream", record)
    stream = frame_fuzz.seed_corpus()[0]
    atheris_decoder.test_one_input(b"\x0f\xff\x02\x00\x05\x00\x09" + stream)
    atheris_decoder.test_one_input(b"\x00\x07\x01\x00")  # a cut count, one cut cut short
    atheris_decoder.test_one_input(b"\x00\x00")  # too short for a header: nothing to check
    assert calls == [(stream, [5, 9], 4096), (b"", [0], 8)]


def test_atheris_seed_corpus_passes_the_decoder_invariant(tmp_path: Path) -> None:
    """Every seed the harness writes for libFuzzer goes through the entry and the real check."""
    count = atheris_decoder.make_corpus(tmp_path)
    seeds = sorted(tmp_path.iterdir())
    assert count == len(seeds) == len(frame_fuzz.seed_corpus()) > 50
    for path in seeds:
        data = path.read_bytes()
        assert data.startswith(atheris_decoder.SEED_HEADER)
        atheris_decoder.test_one_input(data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_atheris_harness_runs_on_its_corpus(tmp_path: Path) -> None:
    """Under libFuzzer (where atheris is installed) the harness runs a short session cleanly."""
    harness = str(FUZZ / "atheris_decoder.py")
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, harness, "--make-corpus", str(corpus)], check=True)
    out = subprocess.run(
        [sys.executable, harness, str(corpus), "-runs=3000", "-seed=1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done 3000 runs" in out.stderr
