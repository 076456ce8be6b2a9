"""The native DAG serializer: trio-coord DAGs as Airflow 3.3's serialized-DAG documents.

Pure like ``trio_coord.protocol``: no trio and no Airflow import, so the parse workload
and ``trio-coord dags`` can use it anywhere. One module per part of the document:

* :mod:`.dag` -- the envelope and DAG object, whole bundles, fingerprints;
* :mod:`.tasks` -- operator objects; :mod:`.groups` -- the task-group tree;
* :mod:`.timetables` -- schedules; :mod:`.values` -- value encoding and canonical bytes.

The documents equal what airflow-core 3.3.2's ``DagSerialization.to_dict`` writes for the
same DAG (apart from the operator identity, which names trio-coord).
"""

from __future__ import annotations

from .dag import (
    SERIALIZER_VERSION,
    DagSerializationError,
    dag_fingerprint,
    serialize_bundle,
    serialize_dag,
)
from .values import canonical_json

__all__ = [
    "SERIALIZER_VERSION",
    "DagSerializationError",
    "canonical_json",
    "dag_fingerprint",
    "serialize_bundle",
    "serialize_dag",
]
