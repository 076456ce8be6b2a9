"""The client against ``trio-coord run``'s embedded supervisor, for the kinds it keeps in memory:
variable keys, both state stores and rendered fields."""

from __future__ import annotations

from pathlib import Path

import pytest

import trio_coord.runtime  # noqa: F401  (the client is normally loaded by the runtime)
from trio_coord.client import Client
from trio_coord.errors import SupervisorError
from trio_coord.local.options import RunOptions
from trio_coord.local.session import Session
from trio_coord.protocol import Reply
from trio_coord.protocol.codec import packb
from trio_coord.protocol.messages import ErrorResponse, Inbound, Request
from trio_coord.protocol.peer import decode_request_frame
from trio_coord.runtime.masking import Masker

HELLO = str(Path(__file__).resolve().parent.parent / "examples" / "hello_bundle.py")


def local_client(**options: object) -> tuple[Client, Session]:
    """A client whose requests go through the embedded supervisor's session, over real frames."""
    session = Session(
        RunOptions(bundle=HELLO, dag_id="d", task_id="t", **options),  # type: ignore[arg-type]
        masker=Masker(),
    )

    async def send(msg: Request) -> Inbound | None:
        answer = session.answer(decode_request_frame(packb([1, msg.to_map()])))
        assert answer is not None
        body, error = answer
        in_body = isinstance(body, ErrorResponse)
        reply = Reply(1, msg, None if in_body else body, body if in_body else error, in_body)  # type: ignore[arg-type]
        return reply.result()

    return Client(send, session.details, Masker(), {}), session


async def test_state_stores_round_trip_in_memory() -> None:
    """Task and asset state written during a local run reads back; a deleted or cleared key reads as the default."""
    c, session = local_client()
    await c.set_task_state("k", {"n": 1})
    await c.set_asset_state("k", "by-name", name="a")
    await c.set_asset_state("k", "by-uri", uri="s3://a")
    assert await c.get_task_state("k") == {"n": 1}
    assert await c.get_asset_state("k", name="a") == "by-name"
    assert await c.get_asset_state("k", uri="s3://a") == "by-uri"
    await c.delete_task_state("k")
    await c.clear_asset_state(name="a")
    assert await c.get_task_state("k", "gone") == "gone"
    assert await c.get_asset_state("k", name="a", default="gone") == "gone"
    assert await c.get_asset_state("k", uri="s3://a") == "by-uri"
    await c.delete_asset_state("k", uri="s3://a")
    await c.set_task_state("x", 1)
    await c.clear_task_state()
    assert session.task_store == {} and session.asset_stores == {
        ("name", "a"): {},
        ("uri", "s3://a"): {},
    }


async def test_variable_keys_are_listed_by_prefix_and_page() -> None:
    """Variable keys come sorted, filtered by prefix, paged by offset and limit, with the full count."""
    c, _ = local_client(variables={"app_b": "1", "app_a": "2", "app_c": "3", "other": "4"})
    page = await c.get_variable_keys("app_", limit=2, offset=1)
    assert (page.keys, page.total_entries) == (["app_b", "app_c"], 3)


async def test_rendered_fields_are_recorded_redacted() -> None:
    """Rendered fields reach the local session already redacted by field name."""
    c, session = local_client()
    await c.set_rendered_fields({"sql": "select 1", "api_key": "k-123"})
    assert session.rendered_fields == {"sql": "select 1", "api_key": "***"}


async def test_get_dag_without_the_bundle_catalogue_is_a_404() -> None:
    """Without the supervisor loading the bundle's DAGs, GetDag is the API's 404, saying why."""
    c, _ = local_client()
    with pytest.raises(SupervisorError) as caught:
        await c.get_dag()
    assert caught.value.status_code == 404
    assert "not loaded" in str(caught.value)
