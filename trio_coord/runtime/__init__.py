"""The Trio layer: moves bytes, owns time and tasks.

``run_coordinator(bundle, config) -> int`` is the process entry point (dials, runs one
try, returns the exit code); ``serve_streams`` runs a try over streams you provide.
"""

from __future__ import annotations

from .serve import Run, run_coordinator, serve_streams

__all__ = ["Run", "run_coordinator", "serve_streams"]
