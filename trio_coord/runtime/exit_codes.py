"""The runtime's exit codes (protocol.md §9.9), in one place for the entry point and the try.

The supervisor honours a terminal message only when the process exits 0 (§7), so task
failures are reported, never signalled by the exit code: a non-zero code means the
runtime itself could not finish the conversation.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_SECOND_SIGNAL"]

#: A terminal message was delivered, whatever the task's state.
EXIT_OK: Final = 0
#: The runtime failed: dial, no first frame, broken channel, undeliverable failure.
EXIT_FAILURE: Final = 1
#: A second SIGTERM/SIGINT: stop now (§9.6).
EXIT_SECOND_SIGNAL: Final = 2
