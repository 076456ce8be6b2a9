"""The task's way to the supervisor: every request of the protocol as a typed method.

Two faces, one implementation: :class:`Client` is async and runs in the Trio task
(requests from concurrent callers are pipelined over the one comm channel);
:class:`SyncClient` offers the same methods, blocking, to tasks that run in a worker
thread, by calling back into Trio. It is derived from :class:`Client` method by
method (``_sync.py``), never written twice.

One module per Airflow concept: ``variables``, ``connections``, ``xcom``, ``assets``,
``dagruns``, ``task_instances``, ``state_stores``, ``hitl``, ``rendering`` (rendered
fields, map label, masking). ``_core`` holds what they share: the request path, the
reply check and the refinement of errors.

Errors are typed (``trio_coord.errors``), by meaning: :class:`~trio_coord.errors.NotFound`
when the thing does not exist, :class:`~trio_coord.errors.PermissionDenied` when the API
refused, :class:`~trio_coord.errors.AlreadyExists`, and
:class:`~trio_coord.errors.ApiServerError` (with ``status_code``) for any other failure
of the Execution API; all are :class:`~trio_coord.errors.SupervisorError`.
:class:`~trio_coord.errors.RequestTimeout` / :class:`~trio_coord.errors.SupervisorGone`
mean no answer can come. What Airflow answers with "nothing" rather than an error (a
missing XCom, a state-store key never set, no previous run) is ``None`` or ``default``.

Environment fast paths (protocol.md §9.8): ``AIRFLOW_VAR_<KEY>`` and
``AIRFLOW_CONN_<CONN_ID>`` are consulted before the supervisor, as Airflow's own
secrets chain does, and any secret found there is registered with the supervisor's
masker (``MaskSecret``) because the supervisor never saw it.
"""

from __future__ import annotations

from ._client import Client
from ._core import MISSING, RequestFn
from ._sync import SyncClient
from .connections import Connection
from .state_stores import NEVER_EXPIRE
from .variables import VariableKeys

__all__ = [
    "Client",
    "SyncClient",
    "Connection",
    "MISSING",
    "NEVER_EXPIRE",
    "RequestFn",
    "VariableKeys",
]
