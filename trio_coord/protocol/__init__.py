"""The sans-IO protocol core: framing, codec, messages, conversation state.

Nothing in this package performs I/O or imports trio (a test enforces it); the Trio
layer in ``trio_coord.runtime`` feeds it bytes and writes the bytes it returns.
"""

from __future__ import annotations

from .connection import (
    Closed,
    CommConnection,
    Event,
    ParseRequest,
    Reply,
    Startup,
    StrayReply,
)
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, FrameDecoder, encode_frame
from .states import TRANSITIONS, Input, State

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "NEED_DATA",
    "TRANSITIONS",
    "Closed",
    "CommConnection",
    "Event",
    "FrameDecoder",
    "Input",
    "ParseRequest",
    "Reply",
    "Startup",
    "State",
    "StrayReply",
    "encode_frame",
]
