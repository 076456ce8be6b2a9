"""Where warm servers listen, and the checks that make the place private.

One directory per user: ``$TRIO_COORD_WARM_DIR``, else ``$XDG_RUNTIME_DIR`` (or
``/tmp``) ``/trio-coord-warm-<uid>``. It is opened with the bundle cache's rules
(:class:`~trio_coord.bundle.importer.PrivateCache`: created 0700, owned by this user,
no symbolic link, no ancestor another user can change), so the same reasons refuse it.
A server's socket is named by the first 32 hex digits of its bundle's SHA-256, which the
launcher reads from the trailer without hashing; the full hash is checked in the request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from ..bundle.format import BundleFormatError, read_trailer
from ..bundle.importer import PrivateCache, _Untrusted
from ..errors import UsageError

__all__ = [
    "WARM_DIR_ENV",
    "WARM_ENV",
    "bundle_digest",
    "open_private_dir",
    "socket_path",
    "warm_dir",
]

WARM_DIR_ENV: Final = "TRIO_COORD_WARM_DIR"
#: ``0`` (or off/no/false) stops the launcher from looking for a warm server.
WARM_ENV: Final = "TRIO_COORD_WARM"
#: Longest ``sun_path`` on Linux, without its terminating NUL.
_MAX_SOCKET_PATH: Final = 107


def warm_dir(environ: Mapping[str, str] = os.environ) -> str:
    """The directory the launcher looks in (the bootstrap computes it the same way)."""
    explicit = environ.get(WARM_DIR_ENV)
    if explicit:
        return explicit
    base = environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return f"{base}/trio-coord-warm-{os.geteuid()}"


def socket_path(directory: str, digest_hex: str) -> str:
    """The socket of the server for the bundle whose binary region hashes to ``digest_hex``.

    Raises:
        UsageError: the path is too long for a Unix socket.
    """
    path = f"{directory}/{digest_hex[:32]}.sock"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise UsageError(
            f"the warm socket path {path} is longer than {_MAX_SOCKET_PATH} bytes;"
            f" set {WARM_DIR_ENV} to a shorter directory"
        )
    return path


def open_private_dir(path: str) -> str:
    """Create or check the warm directory; return its absolute path.

    Raises:
        UsageError: another user owns it or can change it, or it is a symbolic link;
            the message says how to fix it.
    """
    try:
        cache = PrivateCache.open(path, 0)
    except _Untrusted as exc:
        raise UsageError(
            f"the warm server directory {path} is not used because it {exc.problem}."
            f" Fix: {exc.fix.replace('TRIO_COORD_CACHE_DIR', WARM_DIR_ENV)}"
        ) from None
    cache.close()
    return os.path.abspath(path)


def bundle_digest(path: str) -> str:
    """The binary region's SHA-256 as the trailer states it (hex), without hashing.

    Raises:
        UsageError: the file cannot be read or is not a packed bundle.
    """
    try:
        with open(path, "rb") as f:
            trailer = read_trailer(f, os.fstat(f.fileno()).st_size)
    except (OSError, BundleFormatError) as exc:
        raise UsageError(f"cannot read the bundle {path}: {exc}") from None
    if trailer is None:
        raise UsageError(
            f"{path} is not a packed bundle (no trailer); pack it with trio-coord pack"
        )
    return trailer.binary_sha256.hex()
