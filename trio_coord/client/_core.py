"""What every client method shares: one request path, typed replies, secret registration.

Each concept module (variables, xcom, assets...) adds methods to :class:`ClientCore`
through a mixin; the methods differ only in the message they build and the result
they unwrap, so the sending, the reply check and the error refinement live here once.

Errors reach a method already typed by the conversation layer (``NotFound`` for a
``*_NOT_FOUND`` body, ``PermissionDenied``, ``AlreadyExists``); :func:`request`
refines the one remaining kind, ``API_SERVER_ERROR``, by its HTTP status
(:func:`trio_coord.errors.refine`), so ``except NotFound`` catches a missing DAG run
(an HTTP 404) as well as a missing variable (a body-level error).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from ..errors import RemoteProtocolError, SupervisorError, describe, refine
from ..protocol.messages import (
    Inbound,
    MaskSecret,
    Request,
    SetRenderedMapIndex,
    StartupDetails,
    TaskInstance,
)
from ..runtime.masking import Masker

__all__ = ["ClientCore", "MISSING", "RequestFn", "own_map_index"]

R = TypeVar("R", bound=Inbound)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Default of ``default=`` arguments: "raise NotFound rather than return a default".
MISSING: Final = _Missing()

RequestFn = Callable[[Request], Awaitable[Inbound | None]]


class ClientCore:
    """Async access to the supervisor for one task try.

    Args:
        send: performs one request and returns its reply body (the runtime binds it to
            the comm channel with its timeout).
        details: the try's ``StartupDetails``, for the default dag/run/task ids.
        masker: the log masker; secrets the task obtains are registered with it.
        environ: where the ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` fast paths and the
            ``AIRFLOW__STATE_STORE__*`` settings are looked up.
    """

    def __init__(
        self,
        send: RequestFn,
        details: StartupDetails,
        masker: Masker,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._send = send
        self._details = details
        self._masker = masker
        self._environ = environ
        self.requests_made = 0
        # Secrets the supervisor registered itself (a connection's password and extra, a
        # variable it served); the runtime never needs to tell it of those.
        self._told: set[str] = set()
        #: The label set with :meth:`set_rendered_map_index`; repeated in the terminal
        #: message, which would otherwise overwrite it with null (protocol.md §6.3).
        self.rendered_map_index: str | None = None

    @property
    def _ti(self) -> TaskInstance:
        return self._details.ti

    async def request(self, msg: Request) -> Inbound | None:
        """Send any request of the protocol and return its reply body (None when empty).

        Raises:
            SupervisorError: the supervisor answered with an error (a subclass says
                which: NotFound, PermissionDenied, AlreadyExists, ApiServerError).
        """
        self.requests_made += 1
        if isinstance(msg, SetRenderedMapIndex) and msg.rendered_map_index is not None:
            # A label is shown in the UI and stored by the API server: no secret in it.
            msg = dataclasses.replace(
                msg, rendered_map_index=self._masker.mask(msg.rendered_map_index)
            )
        try:
            reply = await self._send(msg)
        except SupervisorError as exc:
            refined = refine(exc)
            if refined is exc:
                raise
            raise refined from None
        if isinstance(msg, SetRenderedMapIndex):
            self.rendered_map_index = msg.rendered_map_index
        return reply

    async def _ask(self, msg: Request, result: type[R]) -> R:
        """Send ``msg`` and return its reply body, which must be a ``result``."""
        reply = await self.request(msg)
        if not isinstance(reply, result):
            raise RemoteProtocolError(
                f"{msg.TYPE}: expected a {result.__name__} reply, got {describe(reply)}"
            )
        return reply

    async def _register(self, value: Any, name: str | None, *, told: bool) -> None:
        """Register the secrets in ``value`` locally, and with the supervisor unless ``told``.

        Local first, so that nothing the task logs after the value is returned can miss
        it. Each secret the supervisor has not been told of goes in a ``MaskSecret`` of
        its own, without a name: the name rule was applied here, and the supervisor's
        configuration of sensitive names may not be the one this process sees.
        """
        found = self._masker.add(value, name)
        if told:
            self._told.update(found)
            return
        # Told again on every read, as Airflow's own runner does, so each read is
        # followed by its MaskSecret whatever came before it.
        for secret in dict.fromkeys(found):
            if secret not in self._told:
                await self.request(MaskSecret(value=secret, name=None))


def own_map_index(map_index: int | None) -> int | None:
    """This try's map index as the XCom requests carry it."""
    # §9.2: an unmapped task omits map_index (the API then uses -1).
    return None if map_index is None or map_index < 0 else map_index
