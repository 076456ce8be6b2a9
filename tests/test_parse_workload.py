"""The parse workload (a first-frame DagFileParseRequest) against a scripted processor, in virtual time.

The real airflow-core 3.3.2 processor drives the same code in tests/test_parse_e2e.py;
here each edge (no acknowledgement, an error acknowledgement, callbacks, a bundle that
did not import) is pinned at its exact virtual time.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from test_runtime import Supervisor, converse

import trio_coord
from trio_coord.bundle.unusable import UnusableBundle
from trio_coord.errors import LocalProtocolError
from trio_coord.protocol.connection import CommConnection, ParseRequest
from trio_coord.protocol.messages import DagFileParseRequest, SetXCom
from trio_coord.runtime.parse import ACK_TIMEOUT, build_result, relative_fileloc

FILE = "/srv/bundle/etl/flows.py"


def parse_request(**overrides: Any) -> list[Any]:
    body: dict[str, Any] = {
        "file": FILE,
        "bundle_path": "/srv/bundle",
        "bundle_name": "trio-bundle",
        "callback_requests": [],
        "type": "DagFileParseRequest",
    }
    body.update(overrides)
    return [0, body, None]


def two_dags() -> trio_coord.Bundle:
    bundle = trio_coord.Bundle("b")
    extract = bundle.dag("extract_load")
    a = extract.task(task_id="extract")(lambda: 1)
    b = extract.task(task_id="load")(lambda: 2)
    a >> b
    bundle.dag("report").task(task_id="mail")(lambda: None)
    return bundle


async def ack(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
    await sup.send([rid, None, None])
    return False


async def no_ack(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
    return False


def result_of(sup: Supervisor) -> dict[str, Any]:
    assert sup.types == ["DagFileParsingResult"]
    return sup.requests[0][1]


async def test_result_holds_every_dag_and_is_acknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A parse request gets exactly one result with one document per DAG; after the ack, exit 0."""
    code, sup, _ = await converse(two_dags(), parse_request(), ack)
    assert code == 0
    result = result_of(sup)
    assert result["fileloc"] == FILE
    assert [d["data"]["dag"]["dag_id"] for d in result["serialized_dags"]] == [
        "extract_load",
        "report",
    ]
    assert all(d["data"]["__version"] == 3 for d in result["serialized_dags"])
    assert all(
        d["data"]["dag"]["relative_fileloc"] == "etl/flows.py" for d in result["serialized_dags"]
    )
    assert not result["import_errors"]


async def test_missing_ack_is_waited_for_exactly_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without an acknowledgement the runtime gives up after ACK_TIMEOUT, not before, and exits 0."""
    start = trio.current_time()
    code, sup, _ = await converse(two_dags(), parse_request(), no_ack)
    assert code == 0
    assert ACK_TIMEOUT <= trio.current_time() - start < ACK_TIMEOUT + 0.01
    assert any("did not acknowledge" in r["event"] for r in sup.log_records)


async def test_error_ack_exits_non_zero(autojump_clock: trio.testing.MockClock) -> None:
    """A result the processor answers with an error element ends the process with exit 1."""

    async def refuse(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        await sup.send(
            [
                rid,
                None,
                {"error": "GENERIC_ERROR", "detail": {"why": "no"}, "type": "ErrorResponse"},
            ]
        )
        return False

    code, sup, _ = await converse(two_dags(), parse_request(), refuse)
    assert code == 1
    assert sup.types == ["DagFileParsingResult"]


async def test_unimportable_bundle_is_one_import_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A bundle that did not import becomes serialized_dags [] and its traceback under the relative path."""
    try:
        raise ZeroDivisionError("division by zero in flows.py")
    except ZeroDivisionError as exc:
        cause = exc
    bundle = UnusableBundle("b", "importing the bundle failed: ZeroDivisionError", cause=cause)
    code, sup, _ = await converse(bundle, parse_request(), ack)
    assert code == 0
    result = result_of(sup)
    assert result["serialized_dags"] == []
    assert list(result["import_errors"]) == ["etl/flows.py"]
    text = result["import_errors"]["etl/flows.py"]
    assert "Traceback" in text and "ZeroDivisionError: division by zero in flows.py" in text


async def test_callback_request_sends_no_dags(autojump_clock: trio.testing.MockClock) -> None:
    """A request that carries callbacks gets no result at all (DAGs sent there would be misread), exit 0."""
    callback = {"type": "DagCallbackRequest", "filepath": "flows.py", "dag_id": "report"}
    code, sup, _ = await converse(two_dags(), parse_request(callback_requests=[callback]), ack)
    assert code == 0
    assert sup.types == []


def test_a_dag_that_fails_to_serialize_is_reported_and_the_others_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One DAG's serialization failure is a 'Dag "<id>": reason' line under the relative path; the rest are sent."""
    from trio_coord import dagparse

    real = dagparse.serialize_bundle

    def failing(bundle: Any, **kw: Any) -> Any:
        docs, errors = real(bundle, **kw)
        docs.pop("report")
        return docs, {**errors, "report": "ValueError: bad schedule"}

    monkeypatch.setattr(dagparse, "serialize_bundle", failing)
    request = DagFileParseRequest(file=FILE, bundle_path="/srv/bundle", bundle_name="b")
    result = build_result(two_dags(), request)
    assert [d.data["dag"]["dag_id"] for d in result.serialized_dags] == ["extract_load"]  # type: ignore[index,call-overload]
    assert result.import_errors == {"etl/flows.py": 'Dag "report": ValueError: bad schedule'}


async def test_a_dag_the_schema_refuses_is_reported_and_the_others_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A document that would not pass the message schema becomes an import error; the other DAGs still go out."""
    bundle = two_dags()
    bundle.dags["report"].schedule = object()  # type: ignore[assignment]
    code, sup, _ = await converse(bundle, parse_request(), ack)
    assert code == 0
    result = result_of(sup)
    assert [d["data"]["dag"]["dag_id"] for d in result["serialized_dags"]] == ["extract_load"]
    (text,) = result["import_errors"].values()
    assert text.startswith('Dag "report": cannot be sent to the DAG processor: ')


async def test_a_dag_with_a_cycle_is_reported_in_go_wording(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A DAG the serializer refuses is one 'Dag "<id>": <reason>' line under the relative path."""
    bundle = two_dags()
    report = bundle.dags["report"]
    first = report.task(task_id="first")(lambda: None)
    second = report.task(task_id="second")(lambda: None)
    first >> second
    second.upstream.append("second")  # a self-loop, added behind the declaration checks
    code, sup, _ = await converse(bundle, parse_request(), ack)
    assert code == 0
    result = result_of(sup)
    assert [d["data"]["dag"]["dag_id"] for d in result["serialized_dags"]] == ["extract_load"]
    text = result["import_errors"]["etl/flows.py"]
    assert text.startswith('Dag "report": ') and "cycle" in text


@pytest.mark.parametrize(
    ("file", "root", "expected"),
    [
        ("/b/x.py", "/b", "x.py"),
        ("/b/sub/x.py", "/b/", "sub/x.py"),
        ("/b", "/b", "."),
        ("/elsewhere/x.py", "/b", "/elsewhere/x.py"),
        ("/bb/x.py", "/b", "/bb/x.py"),
    ],
)
def test_relative_fileloc(file: str, root: str, expected: str) -> None:
    """Import errors are keyed by the path under the bundle root, or the file itself when outside it."""
    assert relative_fileloc(file, root) == expected


def test_task_only_request_is_refused_while_parsing() -> None:
    """While parsing, a request outside the parse channel's union is refused before anything is written."""
    from helpers import FrameFactory

    conn = CommConnection()
    conn.receive_data(FrameFactory().parse_request())
    assert isinstance(conn.next_event(), ParseRequest)
    with pytest.raises(LocalProtocolError, match="parse channel"):
        conn.send_request(SetXCom(key="k", value=1, dag_id="d", run_id="r", task_id="t"))
    assert conn.pending == ()
