"""The sans-IO protocol core: framing, codec, messages, conversation state.

Nothing in this package performs I/O or imports trio (a test enforces it); the Trio
layer in ``trio_coord.runtime`` feeds it bytes and writes the bytes it returns.

The names below are loaded on first use (PEP 562): importing ``framing`` alone, as
the start-up path does before it dials, must not pay for building the message
catalogue's hundred-odd dataclasses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Closed": "connection",
    "CommConnection": "connection",
    "Event": "connection",
    "ParseRequest": "connection",
    "Reply": "connection",
    "Startup": "connection",
    "StrayReply": "connection",
    "DEFAULT_MAX_FRAME_SIZE": "framing",
    "NEED_DATA": "framing",
    "FrameDecoder": "framing",
    "encode_frame": "framing",
    "TRANSITIONS": "states",
    "Input": "states",
    "State": "states",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
