"""The async client: every concept's methods on one object, one request path underneath."""

from __future__ import annotations

from ._core import ClientCore  # noqa: F401  (named in the docstring)
from .assets import AssetsMixin
from .connections import ConnectionsMixin
from .dagruns import DagRunsMixin
from .hitl import HITLMixin
from .rendering import RenderingMixin
from .state_stores import StateStoresMixin
from .task_instances import TaskInstancesMixin
from .variables import VariablesMixin
from .xcom import XComMixin

__all__ = ["Client"]


class Client(
    VariablesMixin,
    ConnectionsMixin,
    XComMixin,
    AssetsMixin,
    DagRunsMixin,
    TaskInstancesMixin,
    StateStoresMixin,
    HITLMixin,
    RenderingMixin,
):
    """Async access to the supervisor for one task try; built like :class:`ClientCore`."""
