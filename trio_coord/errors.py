"""The one exception hierarchy of trio-coord.

Two sides, one root, the way h11 splits blame: ``RemoteProtocolError`` means the
supervisor sent something we cannot accept; ``LocalProtocolError`` means *we* were
about to send something the real supervisor would silently drop (protocol.md §12
rows 7-8: an undecodable request gets no reply, so the runtime would wait forever).
Everything a caller may need to tell apart gets its own class; nothing else escapes.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "CoordError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ConnectTimeout",
    "SupervisorGone",
    "RequestTimeout",
    "SupervisorError",
    "NotFound",
    "PermissionDenied",
    "AlreadyExists",
    "UsageError",
    "describe",
]

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlong = 40


def describe(value: Any) -> str:
    """A short, bounded repr of a peer's value for an error message.

    Wire values are hostile: a plain ``repr`` of a deeply nested list raises
    RecursionError, and of a huge string floods the log. This never does either.
    """
    try:
        return _REPR.repr(value)
    except Exception:  # a repr that fails is still not the caller's problem
        return f"<{type(value).__name__}>"


class CoordError(Exception):
    """Root of every error trio-coord raises on purpose."""


class ProtocolError(CoordError):
    """A violation of the coordinator protocol, by one side or the other."""


class LocalProtocolError(ProtocolError):
    """We were about to send something the supervisor would not accept; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The supervisor sent bytes, a frame or a body that break protocol.md."""


class UsageError(CoordError):
    """A user mistake on the command line or in a bundle: reported in one line, exit 2."""


class ConnectTimeout(CoordError):
    """Dialling the supervisor's comm or logs socket took longer than allowed."""


class SupervisorGone(CoordError):
    """The comm channel ended (EOF, reset, broken write) while we still needed it."""


class RequestTimeout(CoordError):
    """The supervisor did not answer a request in time.

    The real supervisor never answers a body it cannot decode, so a reply that does not
    come is treated as fatal for that request rather than waited on forever.
    """


class SupervisorError(CoordError):
    """The supervisor answered a request with an error.

    Attributes:
        error: the ``ErrorType`` string (``API_SERVER_ERROR``, ``GENERIC_ERROR``, ...).
        detail: the error's ``detail`` map (may be ``None``).
        in_body: True when the error came as the reply body (an expected negative
            answer), False when it came in the error element (the handler raised).
    """

    def __init__(self, error: str, detail: Any = None, *, in_body: bool = False) -> None:
        self.error = error
        self.detail = detail
        self.in_body = in_body
        super().__init__(f"{error}: {detail!r}" if detail is not None else error)

    @property
    def status_code(self) -> int | None:
        """The HTTP status the Execution API answered with, when the supervisor says."""
        if isinstance(self.detail, dict):
            code = self.detail.get("status_code")
            if isinstance(code, int):
                return code
        return None


class NotFound(SupervisorError):
    """The thing asked for does not exist (``*_NOT_FOUND``)."""


class PermissionDenied(SupervisorError):
    """The Execution API refused access (``PERMISSION_DENIED``); never a "not found"."""


class AlreadyExists(SupervisorError):
    """``TriggerDagRun`` for a run that exists (``DAGRUN_ALREADY_EXISTS``)."""
