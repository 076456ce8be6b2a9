"""Shared test helpers: raw comm-channel frames (:mod:`tests.helpers.frames`), call counts."""

from __future__ import annotations

from .counting import CallCounter
from .frames import MAX_MSGPACK_DEPTH, FrameFactory, chunked, supervisor_encode

__all__ = ["MAX_MSGPACK_DEPTH", "CallCounter", "FrameFactory", "chunked", "supervisor_encode"]
