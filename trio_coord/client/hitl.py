"""Human in the loop: ask a person to choose among options for this task instance.

Only the request that creates the question is here. Waiting for the answer is the
``AwaitInputTask`` terminal flow, and the two requests that would read or update the
answer are refused by the 1.3.2 supervisor ("Unhandled request"), so no method sends them.
"""

from __future__ import annotations

from typing import Any

from ..protocol.messages import CreateHITLDetailPayload, HITLDetailRequestResult, HITLUser
from ._core import ClientCore

__all__ = ["HITLMixin"]


class HITLMixin(ClientCore):
    async def create_hitl_detail(
        self,
        options: list[str],
        subject: str,
        *,
        body: str | None = None,
        defaults: list[str] | None = None,
        multiple: bool = False,
        params: dict[str, Any] | None = None,
        assigned_users: list[HITLUser] | None = None,
    ) -> HITLDetailRequestResult:
        """Record a question for a person (what ``HITLOperator`` creates), as stored.

        No form fields and nobody assigned are sent as ``{}`` and ``[]``, never ``null``:
        the supervisor forwards the fields as they are, and the Execution API of Airflow
        3.3 refuses a null ``params`` or ``assigned_users`` (HTTP 422), failing the try.
        """
        msg = CreateHITLDetailPayload(
            ti_id=self._ti.id,
            options=options,
            subject=subject,
            body=body,
            defaults=defaults,
            multiple=multiple,
            params={} if params is None else params,
            assigned_users=[] if assigned_users is None else assigned_users,
        )
        return await self._ask(msg, HITLDetailRequestResult)
