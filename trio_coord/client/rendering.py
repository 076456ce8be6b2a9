"""What the UI shows of a try: its rendered fields and map label; and what it must not show.

``mask_secret`` hides a value in every log line, in this process and in the
supervisor. A rendered-map-index label is masked before it leaves (the API stores it
and the UI shows it); rendered fields are sent masked as well, for the same reason.
"""

from __future__ import annotations

from typing import Any, cast

from ..protocol.messages import MaskSecret, SetRenderedFields, SetRenderedMapIndex
from ._core import ClientCore

__all__ = ["RenderingMixin"]


class RenderingMixin(ClientCore):
    async def set_rendered_map_index(self, label: str) -> None:
        """Show ``label`` instead of the map index in the UI (kept through the terminal message)."""
        await self.request(SetRenderedMapIndex(rendered_map_index=label))

    async def set_rendered_fields(self, fields: dict[str, Any]) -> None:
        """Record the task's rendered template fields (the UI's "Rendered Template" tab).

        Each value is redacted by its field's name first, as Airflow does: every value
        under a sensitive name becomes ``***``, every known secret is hidden, and what
        JSON cannot carry becomes text.
        """
        rendered = {name: self._masker.redact(value, name) for name, value in fields.items()}
        await self.request(SetRenderedFields(rendered_fields=cast(dict[str, Any], rendered)))

    async def mask_secret(self, value: Any, name: str | None = None) -> None:
        """Hide ``value`` in every task log line, here and in the supervisor."""
        self._masker.add(value, name)
        await self.request(MaskSecret(value=value, name=name))
