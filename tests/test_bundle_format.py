"""The AFBNDL01 byte format: our writer, our reader, and task-sdk 1.3.2's reader agree."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from bundle_helpers import real_coordinator_view
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.bundle import format as fmt

MANIFEST = (
    b'sdk:\n  supervisor_schema_version: "2026-06-16"\ndags:\n  "d1":\n    tasks:\n      - "t1"\n'
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def _with_trailer(data: bytes, **changes: int | bytes) -> bytes:
    """Rewrite fields of the last 64 bytes (source_len, metadata_len, footer_ver, digest, reserved)."""
    fields = dict(
        zip(
            ("source_len", "metadata_len", "footer_ver", "digest", "reserved", "magic"),
            struct.unpack("<III32s12s8s", data[-64:]),
            strict=True,
        )
    )
    fields.update(changes)
    return data[:-64] + struct.pack("<III32s12s8s", *fields.values())


@given(st.binary(min_size=1, max_size=300), st.binary(max_size=300), st.binary(max_size=300))
def test_assemble_then_read_round_trips(binary: bytes, source: bytes, metadata: bytes) -> None:
    """Any three regions come back unchanged, with the trailer's hash matching the binary region."""
    import tempfile

    data = fmt.assemble(binary, source, metadata)
    assert len(data) == len(binary) + len(source) + len(metadata) + 64
    assert data.endswith(b"AFBNDL01")
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        read = fmt.read_bundle(f.name, keep_binary=True)
    assert read is not None and read.hash_ok
    assert (read.binary, read.source, read.metadata) == (binary, source, metadata)
    assert read.trailer.binary_sha256 == hashlib.sha256(binary).digest()
    assert read.trailer.source_start == len(binary)


def test_trailer_layout_is_the_specified_one() -> None:
    """Lengths, version, digest, zero reserved bytes and magic sit at the §3.2 offsets, little-endian."""
    data = fmt.assemble(b"BIN", b"SRC!", b"META\n")
    t = data[-64:]
    assert t[0:4] == (4).to_bytes(4, "little") and t[4:8] == (5).to_bytes(4, "little")
    assert t[8:12] == (1).to_bytes(4, "little")
    assert t[12:44] == hashlib.sha256(b"BIN").digest()
    assert t[44:56] == bytes(12) and t[56:64] == b"AFBNDL01"


def test_empty_binary_region_is_refused_by_the_writer() -> None:
    """assemble() never produces a bundle the coordinator would reject for an empty binary region."""
    with pytest.raises(fmt.BundleFormatError, match="binary region"):
        fmt.assemble(b"", b"src", b"meta")


@pytest.mark.parametrize(
    ("data", "result"),
    [
        (b"short", None),
        (b"x" * 100, None),
        (fmt.assemble(b"bin", b"", MANIFEST) + b"\n", None),  # one byte after the trailer
    ],
)
def test_files_without_the_magic_are_not_bundles(tmp_path: Path, data: bytes, result: None) -> None:
    """Too short or no AFBNDL01 at the very end: read_bundle says "not a bundle" (None), not an error."""
    assert fmt.read_bundle(_write(tmp_path, "f", data)) is result


GOOD = fmt.assemble(b"#!/bin/sh\nexit 0\n", b"print()\n", MANIFEST)


BAD_TRAILERS = [
    ("footer_ver", _with_trailer(GOOD, footer_ver=2), "footer_ver 2"),
    ("reserved", _with_trailer(GOOD, reserved=b"\x01" + bytes(11)), "reserved"),
    ("past_start", _with_trailer(GOOD, source_len=10_000), "past the start"),
    ("no_binary", _with_trailer(GOOD, source_len=len(GOOD) - 64 - len(MANIFEST)), "no room"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_TRAILERS)
def test_unusable_trailers_are_errors(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    """Each §3.6 trailer rejection (version, reserved bytes, bounds, empty binary) raises BundleFormatError."""
    with pytest.raises(fmt.BundleFormatError, match=message):
        fmt.read_bundle(_write(tmp_path, name, data))


def test_unusable_trailers_are_skipped_by_airflow_too(tmp_path: Path) -> None:
    """The same four trailers make task-sdk 1.3.2's _read_bundle_metadata return None."""
    paths = [_write(tmp_path, name, data) for name, data, _ in BAD_TRAILERS]
    view = real_coordinator_view(read=paths)["read"]
    assert view == {str(p): None for p in paths}


def test_hash_mismatch_and_unprotected_regions_agree_with_airflow(tmp_path: Path) -> None:
    """A changed binary byte breaks the hash for both readers; a changed source byte breaks neither."""
    good = _write(tmp_path, "good", GOOD)
    tampered_bin = _write(tmp_path, "bin", b"X" + GOOD[1:])
    i = GOOD.index(b"print()")
    tampered_src = _write(tmp_path, "src", GOOD[:i] + b"P" + GOOD[i + 1 :])
    assert fmt.read_bundle(good).hash_ok  # type: ignore[union-attr]
    assert not fmt.read_bundle(tampered_bin).hash_ok  # type: ignore[union-attr]
    assert fmt.read_bundle(tampered_src).hash_ok  # type: ignore[union-attr]
    view = real_coordinator_view(read=[good, tampered_bin, tampered_src])["read"]
    assert view[str(good)] == {"dags": ["d1"], "schema": "2026-06-16"}
    assert view[str(tampered_bin)] is None
    assert view[str(tampered_src)] == {"dags": ["d1"], "schema": "2026-06-16"}
