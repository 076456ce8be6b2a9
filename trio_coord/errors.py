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
    "ApiServerError",
    "ApiNotFound",
    "ApiPermissionDenied",
    "ApiConflict",
    "refine",
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


class ApiServerError(SupervisorError):
    """The Execution API failed the call the supervisor made for a request.

    It comes in the reply's error element (``API_SERVER_ERROR``): an HTTP error status
    after the supervisor's retries, or no HTTP answer at all (``status_code`` None).
    The subclasses below let a task catch it by meaning as well as by origin.
    """

    @property
    def message(self) -> str | None:
        """The supervisor's one-line account of the failure."""
        msg = self.detail.get("message") if isinstance(self.detail, dict) else None
        return msg if isinstance(msg, str) else None

    @property
    def api_detail(self) -> Any:
        """The API server's own JSON error body, when it sent one."""
        return self.detail.get("detail") if isinstance(self.detail, dict) else None


class ApiNotFound(ApiServerError, NotFound):
    """HTTP 404 from the API: a run, DAG or task instance that does not exist."""


class ApiPermissionDenied(ApiServerError, PermissionDenied):
    """HTTP 401 or 403 from the API."""


class ApiConflict(ApiServerError, AlreadyExists):
    """HTTP 409 from the API."""


#: HTTP status of an ``API_SERVER_ERROR`` -> the class that says what it means.
_API_STATUS: dict[int | None, type[ApiServerError]] = {
    404: ApiNotFound,
    401: ApiPermissionDenied,
    403: ApiPermissionDenied,
    409: ApiConflict,
}


def refine(exc: SupervisorError) -> SupervisorError:
    """The most specific class for ``exc``: an ``API_SERVER_ERROR`` by its HTTP status.

    The conversation layer maps the ``ErrorType`` names; only this error type needs
    its detail read to know what happened. Anything else is returned unchanged.
    """
    if type(exc) is not SupervisorError or exc.error != "API_SERVER_ERROR":
        return exc
    cls = _API_STATUS.get(exc.status_code, ApiServerError)
    return cls(exc.error, exc.detail, in_body=exc.in_body)
