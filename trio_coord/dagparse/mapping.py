"""A mapped task as airflow-core 3.3.2 serializes a mapped ``@task``: a MappedOperator.

Beside the usual operator keys it carries ``_is_mapped``, the expand input under
``op_kwargs_expand_input`` (Airflow's ``{"type": "dict-of-lists" | "list-of-dicts",
"value": ...}``, an upstream output as an ``xcomref``) and, instead of top-level options,
``partial_kwargs``: every option the task sets, as a typed value, with the ``partial``
constants as ``op_kwargs``. The scheduler reads the expand input to count the instances.
"""

from __future__ import annotations

from typing import Any, Final

from ..authoring import Task, XComArg
from ..authoring.mapping import DICT_OF_LISTS
from .values import encode_value

__all__ = ["EXPAND_INPUT_ATTR", "mapped_operator"]

#: Where a decorated task's expand input lives (its function's keyword arguments).
EXPAND_INPUT_ATTR: Final = "op_kwargs_expand_input"

#: Keys of a plain operator document that stay at the top of a mapped one.
_TOP_LEVEL: Final = frozenset(
    {"task_id", "task_type", "_task_module", "language", "template_fields", "params"}
    | {"downstream_task_ids", "start_date", "end_date"}
)

#: Keys whose value in ``partial_kwargs`` is the one the plain document has: the docstring,
#: and the backoff Airflow stores as a bare number.
_AS_WRITTEN: Final = frozenset({"doc", "retry_exponential_backoff"})


def _encode_input(value: Any) -> Any:
    if isinstance(value, XComArg):
        return {"__type": "xcomref", "__var": {"key": value.key, "task_id": value.task.task_id}}
    return encode_value(value)


def mapped_operator(task: Task, plain: dict[str, Any]) -> dict[str, Any]:
    """Turn ``plain`` (the ``__var`` of ``task`` written as an unmapped operator) into the
    mapped operator's ``__var``."""
    mapping = task.mapping
    if mapping is None:
        raise ValueError(f"task {task.task_id!r} is not mapped")
    out = {k: v for k, v in plain.items() if k in _TOP_LEVEL}
    partial: dict[str, Any] = {"op_args": [], "op_kwargs": encode_value(mapping.partial)}
    for key, written in plain.items():
        if key in _TOP_LEVEL or key == "retry_delay":
            continue
        # partial_kwargs keeps typed values (a duration as a typed timedelta, not seconds).
        partial[key] = written if key in _AS_WRITTEN else encode_value(task.option(key))
    retry_delay = task.option("retry_delay")
    if retry_delay is not None:
        partial["retry_delay"] = encode_value(retry_delay)
    out["partial_kwargs"] = partial
    expand_value: Any
    if mapping.kind == DICT_OF_LISTS:
        expand_value = {
            "__type": "dict",
            "__var": {name: _encode_input(v) for name, v in mapping.expand.items()},
        }
    else:
        kwargs = mapping.kwargs
        expand_value = (
            _encode_input(kwargs) if isinstance(kwargs, XComArg) else encode_value(kwargs)
        )
    out[EXPAND_INPUT_ATTR] = {"type": mapping.kind, "value": expand_value}
    out["_expand_input_attr"] = EXPAND_INPUT_ATTR
    out["_disallow_kwargs_override"] = mapping.strict
    out["_is_mapped"] = True
    return out
