"""The Trio layer: moves bytes, owns time and tasks.

``run_coordinator(bundle, config) -> int`` is the process entry point (dials, runs one
try, returns the exit code); ``serve_streams`` runs a try over streams you provide.
``Run`` and ``serve_streams`` load on first use, so the entry point can dial before
the message catalogue is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entry import run_coordinator

if TYPE_CHECKING:
    from .serve import Run, serve_streams

__all__ = ["Run", "run_coordinator", "serve_streams"]


def __getattr__(name: str) -> Any:
    if name in ("Run", "serve_streams"):
        from . import serve

        return getattr(serve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
