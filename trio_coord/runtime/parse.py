"""The parse workload: answer a first-frame ``DagFileParseRequest`` with one result.

Theory of operation
-------------------
A DAG processor that hands a file to a runtime expects exactly one
``DagFileParsingResult`` and nothing else (dag-parsing.md §2.1). A runtime that exits
without one is counted as a failed parse *with no message*, so every failure this
module can see becomes an ``import_errors`` entry instead:

* the bundle did not import: the whole file is one import error, the user's traceback
  as its text, and ``serialized_dags`` is empty;
* one DAG did not serialize: its line ``Dag "<id>": <reason>`` joins the file's
  import error while the other DAGs are still sent (§2.4).

Import errors are keyed by the file's path relative to the bundle root, the key the
processor stores and clears them under. After the result is written the processor
answers ``[id, nil, nil]``; it sends no answer at all when the result fails its
validation, so the wait for the acknowledgement is bounded (:data:`ACK_TIMEOUT`).

:func:`build_result` is pure (no I/O), so the model and the tests check the same code
that answers the real processor.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import posixpath

import trio

from ..authoring import Bundle
from ..bundle.unusable import UnusableBundle
from ..errors import CoordError, LocalProtocolError
from ..protocol.messages import (
    DagFileParseRequest,
    DagFileParsingResult,
    SerializedDag,
    encode_body,
)
from ..protocol.states import State
from ..tracebacks import user_traceback
from .comm import CommChannel
from .exit_codes import EXIT_FAILURE, EXIT_OK

__all__ = ["ACK_TIMEOUT", "answer_parse", "build_result", "relative_fileloc", "without_unsendable"]

log = logging.getLogger("trio_coord.runtime")

#: How long to wait for the processor's acknowledgement of the result. It stores the
#: result and answers at once; it never answers one that fails its validation.
ACK_TIMEOUT = 5.0


def relative_fileloc(file: str, bundle_path: str) -> str:
    """``file`` relative to ``bundle_path`` with ``/``; ``file`` itself when outside it."""
    file_n = posixpath.normpath(file.replace("\\", "/"))
    root = posixpath.normpath(bundle_path.replace("\\", "/"))
    if file_n == root:
        return "."
    prefix = root if root.endswith("/") else root + "/"
    if file_n.startswith(prefix):
        return file_n[len(prefix) :]
    return file


def build_result(bundle: Bundle, request: DagFileParseRequest) -> DagFileParsingResult:
    """The one result for ``request``: every DAG that serializes, the rest as import errors."""
    from ..dagparse import serialize_bundle

    rel = relative_fileloc(request.file, request.bundle_path)
    if isinstance(bundle, UnusableBundle):
        text = bundle.reason
        if bundle.cause is not None:
            text = user_traceback(bundle.cause).rstrip("\n") + "\n" + text
        return DagFileParsingResult(
            fileloc=request.file, serialized_dags=[], import_errors={rel: text}, warnings=[]
        )
    try:
        documents, failures = serialize_bundle(bundle, fileloc=request.file, relative_fileloc=rel)
    except Exception as exc:  # the serializer's own failure is still the file's error
        documents, lines = {}, [f"{type(exc).__name__}: {exc}"]
    else:
        lines = [
            f'Dag "{dag_id}": {reason.removeprefix(f"DAG {dag_id!r}: ")}'
            for dag_id, reason in failures.items()
        ]
    return DagFileParsingResult(
        fileloc=request.file,
        serialized_dags=[SerializedDag(data=documents[d]) for d in documents],
        import_errors={rel: "\n".join(lines)} if lines else {},
        warnings=[],
    )


def without_unsendable(result: DagFileParsingResult, rel: str) -> DagFileParsingResult:
    """``result`` minus the DAG documents the message schema refuses, each an import error line."""
    kept: list[SerializedDag] = []
    lines = [text for text in (result.import_errors or {}).values() if text]
    for entry in result.serialized_dags:
        try:
            encode_body(dataclasses.replace(result, serialized_dags=[entry], import_errors=None))
        except LocalProtocolError as exc:
            dag = entry.data.get("dag")
            dag_id = dag.get("dag_id") if isinstance(dag, dict) else None
            lines.append(f'Dag "{dag_id}": cannot be sent to the DAG processor: {exc}')
        else:
            kept.append(entry)
    return dataclasses.replace(
        result, serialized_dags=kept, import_errors={rel: "\n".join(lines)} if lines else {}
    )


async def answer_parse(
    channel: CommChannel, request: DagFileParseRequest, bundle: Bundle, *, ack_timeout: float
) -> int:
    """Send the result for ``request``, wait (bounded) for its acknowledgement, give the exit code.

    Exit codes: 0 once the result was written whole (a missing acknowledgement is logged:
    the processor may have stored it anyway); 1 when it could not be written or the
    processor answered it with an error.
    """
    if request.callback_requests:
        # Python runs callbacks and sends no result; this runtime has no callbacks to run,
        # and DAGs sent here would be taken as a parse of the file (§2.2).
        log.warning(
            "the DAG processor asked to run %d callback(s) for %s; "
            "trio-coord bundles define no DAG callbacks, so there is nothing to do",
            len(request.callback_requests),
            request.file,
        )
        return EXIT_OK
    result = build_result(bundle, request)
    for key, text in (result.import_errors or {}).items():
        log.error("import error in %s: %s", key, text)
    log.info(
        "parsed %s: %d DAG(s), %d import error(s)",
        request.file,
        len(result.serialized_dags),
        len(result.import_errors or {}),
    )
    with trio.move_on_after(ack_timeout if math.isfinite(ack_timeout) else math.inf) as scope:
        try:
            try:
                reply = await channel.exchange(result, timeout=math.inf)
            except LocalProtocolError:
                # A document the message schema refuses (nothing was written): move the
                # DAGs at fault to the import errors and send the rest.
                result = without_unsendable(
                    result, relative_fileloc(request.file, request.bundle_path)
                )
                for key, text in (result.import_errors or {}).items():
                    log.error("import error in %s: %s", key, text)
                reply = await channel.exchange(result, timeout=math.inf)
        except CoordError as exc:
            written = channel.conn.state is not State.PARSING
            log.error("could not deliver the DagFileParsingResult: %s", exc)
            return EXIT_OK if written else EXIT_FAILURE
    if scope.cancelled_caught:
        log.warning(
            "the DAG processor did not acknowledge the result within %g s "
            "(it sends no acknowledgement for a result it could not decode)",
            ack_timeout,
        )
        return EXIT_OK
    if reply.error is not None or reply.problem is not None:
        log.error("the DAG processor refused the result: %s", reply.error or reply.problem)
        return EXIT_FAILURE
    log.info("the DAG processor acknowledged the result")
    return EXIT_OK
