"""The runtime process's title, so ``ps`` and ``top`` say which task try a process is.

A packed bundle is started as ``python -I -S -c <bootstrap> BUNDLE ...``, which tells an
operator nothing. Pure Python can change only the kernel's short name of the process
(``/proc/PID/comm``, what ``top``, ``ps -o comm`` and ``pgrep`` show): ``prctl
(PR_SET_NAME)`` through ctypes, 15 bytes at most. The full command line lives in the
process's original ``argv`` memory, which only a C extension can find and overwrite
safely; when the optional ``setproctitle`` package is importable, it is used for that
too. Everything here is best effort: a title is never worth failing a try over.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Final

__all__ = ["COMM_LIMIT", "set_title", "starting_title", "task_title"]

#: The kernel keeps 15 bytes of a process name (16 with the terminating NUL).
COMM_LIMIT: Final = 15
_PR_SET_NAME: Final = 15


def starting_title(bundle: str) -> tuple[str, str]:
    """(full title, short name) before StartupDetails said which try this is."""
    return f"trio-coord bundle {bundle} starting", _short(f"tc:{bundle}")


def task_title(
    bundle: str, dag_id: str, task_id: str, try_number: int, map_index: int
) -> tuple[str, str]:
    """(full title, short name) once the try is known; the short name leads with the task id."""
    mapped = f" map {map_index}" if map_index >= 0 else ""
    full = f"trio-coord {bundle}: {dag_id}.{task_id} try {try_number}{mapped}"
    return full, _short(f"tc:{task_id}")


def _short(name: str) -> str:
    data = name.encode("utf-8")[:COMM_LIMIT]
    return data.decode("utf-8", errors="ignore")


def set_title(title: tuple[str, str]) -> None:
    """Show ``title`` (full, short) as far as this platform allows; never raises."""
    full, short = title
    try:
        import setproctitle  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        with contextlib.suppress(Exception):  # a title is cosmetic
            setproctitle.setproctitle(full)
    # After setproctitle, which also sets the kernel name, to its title's first 15 bytes.
    _set_comm(short)


def _set_comm(name: str) -> None:
    if not sys.platform.startswith("linux"):
        return
    # The process's own symbols include libc's; no library search (which can fork).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode("utf-8")), 0, 0, 0)
