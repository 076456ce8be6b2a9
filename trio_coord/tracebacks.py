"""Tracebacks for the user's own mistakes: their frames only, printed once.

When a bundle file fails to import, the frames that matter are the user's: the file and
line that raised. The frames of trio-coord's loader and of ``importlib`` above them are
noise to someone who mistyped a name, and a chained "during handling of the above..."
repeat doubles the noise. :func:`user_traceback` keeps the user's frames (and the
``SyntaxError`` caret, which carries its own location); ``--debug`` (which sets
:data:`DEBUG_ENV`, so child processes inherit it) asks for everything instead.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["DEBUG_ENV", "debug_enabled", "enable_debug", "user_frames", "user_traceback"]

#: Set to ``1`` by ``--debug``; read here and by every child process trio-coord starts.
DEBUG_ENV: Final = "TRIO_COORD_DEBUG"

_PACKAGE: Final = str(Path(__file__).resolve().parent) + os.sep
_IMPORTLIB: Final = str(Path(traceback.__file__).resolve().parent / "importlib") + os.sep


def debug_enabled() -> bool:
    """Whether full tracebacks, trio-coord's frames included, were asked for."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def enable_debug() -> None:
    """Turn debug tracebacks on for this process and the ones it starts."""
    os.environ[DEBUG_ENV] = "1"


def _internal(filename: str) -> bool:
    # A packed bundle's own importer shows as "<bundle>!/_tc/boot.py".
    if filename.startswith("<frozen ") or "!/_tc/" in filename:
        return True
    resolved = os.path.realpath(filename)
    return resolved.startswith((_PACKAGE, _IMPORTLIB)) or filename.startswith(_PACKAGE)


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without trio-coord's and importlib's frames: a new chain, ``tb`` is unchanged.

    An exception given this traceback renders, wherever it is rendered (the CLI, the
    task log), as the user's frames only.
    """
    kept: list[TracebackType] = []
    while tb is not None:
        if not _internal(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    out: TracebackType | None = None
    for entry in reversed(kept):
        out = TracebackType(out, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return out


def user_traceback(exc: BaseException, *, debug: bool | None = None) -> str:
    """``exc`` formatted for the person whose code raised it.

    Without debug: one traceback of the frames outside trio-coord and importlib, no
    chained exceptions, ending with the exception line (for a ``SyntaxError``, its file,
    line and caret). With debug: :func:`traceback.format_exception`, chain and all.
    """
    if debug_enabled() if debug is None else debug:
        return "".join(traceback.format_exception(exc))
    frames = traceback.extract_tb(user_frames(exc.__traceback__))
    lines: list[str] = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.StackSummary.from_list(frames).format()
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
