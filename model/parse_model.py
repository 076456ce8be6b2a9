"""The parse conversation as a pure model: what a runtime must do for one DagFileParseRequest.

Written from the rules of the parse workload, not from the runtime's code, so the
stateful machine (``model/parse_machine.py``) can hold one against the other:

* a valid request without callbacks gets **exactly one** ``DagFileParsingResult``
  (fresh id, ``fileloc`` echoing the request's ``file``) and nothing else;
* a request carrying callbacks gets **no** frame at all, and exit 0;
* a first frame that is not a well-formed request gets no frame, and exit 1;
* every DAG that serializes is in ``serialized_dags``; every other DAG, and the whole
  file when the bundle did not import, is reported under **one** key: the file's path
  relative to the bundle root (or the file itself when it is outside the root), each
  failed DAG on a line ``Dag "<id>": ...``;
* exit code: 1 when the processor answers the result with an error element, else 0
  (acknowledged, no acknowledgement within the bound, or the channel closed after the
  result was written);
* the wait for the acknowledgement ends at the bound, never later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Ack", "ParseScenario", "Expected", "expect", "relative_key"]


class Ack(enum.Enum):
    """What the fake processor does after the result arrives."""

    OK = "ack [id, nil, nil]"
    NONE = "no answer (as for a result it could not decode)"
    ERROR = "an error element"
    CLOSE = "close the channel"


@dataclass
class ParseScenario:
    """One conversation: the bundle's DAGs, the request, the processor's behaviour."""

    good_dags: list[str] = field(default_factory=list)
    broken_dags: list[str] = field(default_factory=list)
    import_fails: bool = False
    file: str = "/srv/bundle/dags.py"
    bundle_path: str = "/srv/bundle"
    callbacks: int = 0
    first_frame_ok: bool = True
    ack: Ack = Ack.OK


@dataclass(frozen=True)
class Expected:
    """What the runtime must have sent and returned."""

    results: int
    exit_code: int
    dag_ids: frozenset[str]
    error_key: str | None
    failed_dags: frozenset[str]


def relative_key(file: str, bundle_path: str) -> str:
    """The import-error key: ``file`` under ``bundle_path`` with ``/``, else ``file``."""
    root = bundle_path.rstrip("/")
    if file == root:
        return "."
    if file.startswith(root + "/"):
        return file[len(root) + 1 :]
    return file


def expect(s: ParseScenario) -> Expected:
    """The model's answer for ``s``."""
    nothing: frozenset[str] = frozenset()
    if not s.first_frame_ok:
        return Expected(0, 1, nothing, None, nothing)
    if s.callbacks:
        return Expected(0, 0, nothing, None, nothing)
    if s.import_fails:
        return Expected(
            1, 1 if s.ack is Ack.ERROR else 0, nothing, relative_key(s.file, s.bundle_path), nothing
        )
    failed = frozenset(s.broken_dags)
    return Expected(
        results=1,
        exit_code=1 if s.ack is Ack.ERROR else 0,
        dag_ids=frozenset(s.good_dags),
        error_key=relative_key(s.file, s.bundle_path) if failed else None,
        failed_dags=failed,
    )
