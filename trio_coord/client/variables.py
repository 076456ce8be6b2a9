"""Variables: read (``AIRFLOW_VAR_<KEY>`` first, then the supervisor), list, write, delete.

A value read is registered with the log masker under its key (the supervisor applies
the same sensitive-name rule); one from the environment, or a secret nested inside a
JSON variable, is also sent to the supervisor's masker, which never saw it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import NotFound
from ..protocol.messages import (
    DeleteVariable,
    GetVariable,
    GetVariableKeys,
    PutVariable,
    VariableKeysResult,
    VariableResult,
)
from ._core import MISSING, ClientCore

__all__ = ["VariableKeys", "VariablesMixin"]


@dataclass(frozen=True, slots=True)
class VariableKeys:
    """One page of variable keys, and how many there are in all."""

    keys: list[str]
    total_entries: int


class VariablesMixin(ClientCore):
    async def get_variable(
        self, key: str, default: Any = MISSING, *, deserialize_json: bool = False
    ) -> Any:
        """The variable's value; ``default`` (if given) when it does not exist.

        Raises:
            NotFound: no such variable and no default.
            PermissionDenied: the API refused access (never treated as not found).
        """
        env = self._environ.get(f"AIRFLOW_VAR_{key.upper()}")
        if env is not None:
            # The supervisor never saw this value, so it cannot mask it unless told.
            await self._register(env, key, told=False)
            return await self._deserialize(key, env) if deserialize_json else env
        try:
            reply = await self._ask(GetVariable(key=key), VariableResult)
        except NotFound:
            if default is MISSING:
                raise
            return default
        value = reply.value
        if value is not None:
            # The supervisor registered the raw value under its key already (it applies
            # the same name rule); register it here too, for lines it cannot mask.
            await self._register(value, key, told=True)
        if deserialize_json and value is not None:
            return await self._deserialize(key, value)
        return value

    async def _deserialize(self, key: str, raw: str) -> Any:
        """Parse a JSON variable; secrets under sensitive keys inside it are registered.

        The supervisor only registered the raw text, under the variable's key: a value
        under ``"password"`` nested inside it is unknown to it until told.
        """
        value = json.loads(raw)
        # A map's values count by their own keys; a string or a list by the variable's.
        await self._register(value, None if isinstance(value, dict) else key, told=False)
        return value

    async def set_variable(self, key: str, value: Any, *, description: str | None = None) -> None:
        """Create or replace a variable; non-string values are stored as JSON."""
        text = value if isinstance(value, str) or value is None else json.dumps(value)
        await self.request(PutVariable(key=key, value=text, description=description))

    async def delete_variable(self, key: str) -> None:
        """Delete a variable (deleting one that does not exist is not an error)."""
        await self.request(DeleteVariable(key=key))

    async def get_variable_keys(
        self, prefix: str | None = None, *, limit: int = 1000, offset: int = 0
    ) -> VariableKeys:
        """One page of the variable keys the task may read, optionally by ``prefix``.

        Only keys stored in Airflow are listed: ``AIRFLOW_VAR_*`` values are not.
        """
        reply = await self._ask(
            GetVariableKeys(prefix=prefix, limit=limit, offset=offset), VariableKeysResult
        )
        return VariableKeys(keys=list(reply.keys), total_entries=reply.total_entries)
