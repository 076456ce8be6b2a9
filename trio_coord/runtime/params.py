"""A try's params: the DAG's declared ones, with the run's conf on top, validated.

The rules are :func:`trio_coord.authoring.params.resolve_params`; this module only reads
the one Airflow setting that changes them, ``[core] dag_run_conf_overrides_params``, from
the environment the worker gives the runtime (``AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from ..authoring import Task
from ..authoring.params import merge_params, resolve_params
from ..context import TaskContext

__all__ = ["CONF_OVERRIDES_ENV", "run_params"]

CONF_OVERRIDES_ENV: Final = "AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS"


def run_params(
    task: Task, ctx: TaskContext, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The params the task sees.

    Raises:
        ParamError: a value (from the conf, or a default) fails its param's schema.
    """
    merged = merge_params(task.dag.params, task.option("params"))
    declared = {name: (p.default, p.schema) for name, (p, _source) in merged.items()}
    overrides = environ.get(CONF_OVERRIDES_ENV, "true").strip().lower() not in ("false", "0")
    return resolve_params(declared, ctx.dag_run.conf, conf_overrides=overrides)
