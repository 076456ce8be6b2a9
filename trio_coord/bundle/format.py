"""The executable-bundle byte format (bundle.md §3): regions, trailer, hashing.

::

    0                 source_start      metadata_start      size-64       size
    |<- binary region ->|<- source region ->|<- metadata ->|<- trailer ->|

The 64-byte trailer holds ``source_len``, ``metadata_len``, ``footer_ver`` (1), the SHA-256
of the binary region, 12 reserved zero bytes and the magic ``AFBNDL01`` (all integers
little-endian). Only the binary region is hash-covered, so everything that executes lives
there; the source region is display text and the metadata region the YAML manifest.

The writer (:func:`assemble`) and the reader (:func:`read_bundle`) are deliberately
separate code paths: the packer verifies what the writer produced with the reader, which
applies the same checks, in the same order, as the released 1.3.2 coordinator
(``_Footer.read`` then the hash then the metadata read, all on one descriptor).

Standard library only: the bundle's bootstrap and ``trio-coord verify`` both use it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Final

from ..errors import CoordError

__all__ = [
    "MAGIC",
    "TRAILER_SIZE",
    "FOOTER_VERSION",
    "BundleFormatError",
    "Trailer",
    "BundleRead",
    "assemble",
    "read_trailer",
    "read_bundle",
]

MAGIC: Final = b"AFBNDL01"
TRAILER_SIZE: Final = 64
FOOTER_VERSION: Final = 1
#: u32 region lengths: the trailer cannot describe anything larger.
MAX_REGION: Final = 0xFFFF_FFFF
_TRAILER: Final = struct.Struct("<III32s12s8s")
_HASH_CHUNK: Final = 1 << 20


class BundleFormatError(CoordError):
    """The bytes end in the bundle magic but break a rule of the trailer or its regions."""


@dataclass(frozen=True, slots=True)
class Trailer:
    """The parsed trailer plus the offsets it implies for a file of ``size`` bytes."""

    size: int
    source_len: int
    metadata_len: int
    footer_ver: int
    binary_sha256: bytes

    @property
    def metadata_start(self) -> int:
        return self.size - TRAILER_SIZE - self.metadata_len

    @property
    def source_start(self) -> int:
        return self.metadata_start - self.source_len


def assemble(binary: bytes, source: bytes, metadata: bytes) -> bytes:
    """Concatenate the three regions and append their trailer.

    Raises:
        BundleFormatError: an empty binary region, or a region longer than a u32.
    """
    if not binary:
        raise BundleFormatError("the binary region must not be empty")
    for name, region in (("source", source), ("metadata", metadata)):
        if len(region) > MAX_REGION:
            raise BundleFormatError(f"the {name} region is larger than 4 GiB")
    trailer = _TRAILER.pack(
        len(source),
        len(metadata),
        FOOTER_VERSION,
        hashlib.sha256(binary).digest(),
        bytes(12),
        MAGIC,
    )
    return b"".join((binary, source, metadata, trailer))


def read_trailer(f: BinaryIO, size: int) -> Trailer | None:
    """Parse the last 64 bytes of an open file of ``size`` bytes.

    Returns:
        None when the file is not a bundle at all (too short, or no magic): the
        coordinator skips such files without a word.

    Raises:
        BundleFormatError: the magic is there but the trailer is unusable (unknown
            ``footer_ver``, non-zero reserved bytes, regions past the start of the file
            or an empty binary region).
    """
    if size < TRAILER_SIZE:
        return None
    f.seek(size - TRAILER_SIZE)
    raw = f.read(TRAILER_SIZE)
    if len(raw) != TRAILER_SIZE or raw[56:] != MAGIC:
        return None
    source_len, metadata_len, footer_ver, digest, reserved, _ = _TRAILER.unpack(raw)
    if footer_ver != FOOTER_VERSION:
        raise BundleFormatError(f"unsupported footer_ver {footer_ver} (only 1 is defined)")
    if reserved != bytes(12):
        raise BundleFormatError("the trailer's reserved bytes are not zero")
    trailer = Trailer(size, source_len, metadata_len, footer_ver, digest)
    if trailer.source_start < 0:
        raise BundleFormatError(
            "the trailer declares regions that extend past the start of the file"
        )
    if trailer.source_start == 0:
        raise BundleFormatError("the trailer leaves no room for the binary region")
    return trailer


@dataclass(frozen=True, slots=True)
class BundleRead:
    """What :func:`read_bundle` found; ``binary`` is only kept when asked for."""

    trailer: Trailer
    actual_sha256: bytes
    source: bytes
    metadata: bytes
    binary: bytes | None = None

    @property
    def hash_ok(self) -> bool:
        return self.actual_sha256 == self.trailer.binary_sha256


def read_bundle(path: str | os.PathLike[str], *, keep_binary: bool = False) -> BundleRead | None:
    """Read a bundle's trailer, hash its binary region and read the other two regions.

    Everything comes from one descriptor, as in the coordinator, so a file renamed over
    ``path`` meanwhile cannot mix two versions.

    Returns:
        None when the file is not a bundle (no magic or shorter than a trailer).

    Raises:
        BundleFormatError: an unusable trailer or a file truncated while reading.
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        trailer = read_trailer(f, size)
        if trailer is None:
            return None
        f.seek(0)
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        remaining = trailer.source_start
        while remaining > 0:
            chunk = f.read(min(_HASH_CHUNK, remaining))
            if not chunk:
                raise BundleFormatError("the file was truncated while hashing the binary region")
            digest.update(chunk)
            if keep_binary:
                chunks.append(chunk)
            remaining -= len(chunk)
        source = f.read(trailer.source_len)
        metadata = f.read(trailer.metadata_len)
        if len(source) != trailer.source_len or len(metadata) != trailer.metadata_len:
            raise BundleFormatError("the file was truncated while reading its regions")
    return BundleRead(
        trailer=trailer,
        actual_sha256=digest.digest(),
        source=source,
        metadata=metadata,
        binary=b"".join(chunks) if keep_binary else None,
    )
