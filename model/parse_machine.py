"""A Hypothesis state machine for the parse workload: the real runtime against a fake processor.

Rules build a scenario (DAGs that serialize, DAGs that do not, a bundle that does not
import, where the file lies, callbacks, a malformed first frame, what the processor does
after the result); ``converse`` then runs the runtime's :class:`~trio_coord.runtime.serve.Run`
over memory streams in virtual time against a fake DAG processor, and holds what it sent
and returned against ``model/parse_model.py``. Nothing here shares code with the runtime's
parse module.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

import trio_coord
from model.parse_model import Ack, ParseScenario, expect
from trio_coord.bundle.unusable import UnusableBundle
from trio_coord.config import Config
from trio_coord.runtime.logs import LevelFilter, LogPipeline
from trio_coord.runtime.masking import Masker
from trio_coord.runtime.serve import Run

__all__ = ["ParseMachine", "converse_parse", "first_frame"]

#: Virtual seconds after which a conversation counts as hung (the ack bound is 5 s).
HANG_BOUND = 60.0

_DAG_IDS = st.sampled_from(["a", "b", "c", "etl", "x.y", "123"])


def _frame(obj: Any) -> bytes:
    payload = msgspec.msgpack.encode(obj)
    return len(payload).to_bytes(4, "big") + payload


def _bundle(s: ParseScenario) -> trio_coord.Bundle:
    if s.import_fails:
        try:
            raise ImportError("no module named 'missing_dependency'")
        except ImportError as exc:
            return UnusableBundle("m", "importing the bundle failed", cause=exc)
    bundle = trio_coord.Bundle("m")
    for dag_id in s.good_dags:
        bundle.dag(dag_id).task(task_id="t")(lambda: None)
    for dag_id in s.broken_dags:
        task = bundle.dag(dag_id).task(task_id="t")(lambda: None)
        task.upstream.append("t")  # a cycle, added behind the declaration checks
    return bundle


def first_frame(s: ParseScenario) -> bytes:
    """The fake processor's first frame for ``s``."""
    body: dict[str, Any] = {
        "file": s.file,
        "bundle_path": s.bundle_path,
        "bundle_name": "model",
        "callback_requests": [{"type": "DagCallbackRequest"}] * s.callbacks,
        "type": "DagFileParseRequest",
    }
    if not s.first_frame_ok:
        del body["file"]  # a request the runtime cannot decode
    return _frame([0, body, None])


async def _processor(
    first: bytes, ack: Ack, comm: trio.abc.Stream, sent: list[tuple[int, dict[str, Any]]]
) -> None:
    """The fake DAG processor: first frame, then read until EOF, reacting to the result."""
    await comm.send_all(first)
    buf = b""
    while True:
        try:
            data = await comm.receive_some()
        except trio.BrokenResourceError:
            return
        if not data:
            return
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            size = int.from_bytes(buf[:4], "big")
            rid, msg, *_ = msgspec.msgpack.decode(buf[4 : 4 + size])
            buf = buf[4 + size :]
            sent.append((rid, msg))
            if ack is Ack.OK:
                await comm.send_all(_frame([rid, None, None]))
            elif ack is Ack.ERROR:
                error = {"error": "GENERIC_ERROR", "detail": None, "type": "ErrorResponse"}
                await comm.send_all(_frame([rid, None, error]))
            elif ack is Ack.CLOSE:
                await comm.aclose()
                return


async def converse_parse(
    bundle: trio_coord.Bundle, first: bytes, ack: Ack
) -> tuple[int, list[tuple[int, dict[str, Any]]], float, list[bytes]]:
    """Run one parse conversation in virtual time: exit code, frames sent, duration, log lines."""
    rt_comm, sup_comm = trio.testing.memory_stream_pair()
    rt_logs, sup_logs = trio.testing.memory_stream_pair()
    masker = Masker()
    pipeline = LogPipeline(level_filter=LevelFilter.from_env({}), masker=masker)
    run = Run(bundle, Config(), pipeline, masker, environ={})
    logs = bytearray()
    sent: list[tuple[int, dict[str, Any]]] = []
    code: list[int] = []
    start = trio.current_time()
    pipeline.install()
    try:
        with trio.fail_after(HANG_BOUND):
            async with trio.open_nursery() as nursery:

                async def drain() -> None:
                    while data := await sup_logs.receive_some():
                        logs.extend(data)

                async def runtime() -> None:
                    code.append(await run.serve(rt_comm, rt_logs))
                    nursery.cancel_scope.cancel()

                nursery.start_soon(drain)
                nursery.start_soon(_processor, first, ack, sup_comm, sent)
                nursery.start_soon(runtime)
    finally:
        pipeline.uninstall()
    return code[0], sent, trio.current_time() - start, bytes(logs).splitlines()


class ParseMachine(RuleBasedStateMachine):
    """Scenario-building rules, then one conversation checked against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.s = ParseScenario()
        self.conversations = 0

    def _ids(self) -> set[str]:
        return {*self.s.good_dags, *self.s.broken_dags}

    @precondition(lambda self: len(self._ids()) < 4)
    @rule(dag_id=_DAG_IDS)
    def add_good_dag(self, dag_id: str) -> None:
        if dag_id not in self._ids():
            self.s.good_dags.append(dag_id)

    @precondition(lambda self: len(self._ids()) < 4)
    @rule(dag_id=_DAG_IDS)
    def add_broken_dag(self, dag_id: str) -> None:
        if dag_id not in self._ids():
            self.s.broken_dags.append(dag_id)

    @rule()
    def bundle_fails_to_import(self) -> None:
        self.s.import_fails = True

    @rule(where=st.sampled_from(["top", "nested", "outside", "trailing-slash-root"]))
    def place_file(self, where: str) -> None:
        self.s.bundle_path = "/srv/bundle/" if where == "trailing-slash-root" else "/srv/bundle"
        self.s.file = {
            "top": "/srv/bundle/dags.py",
            "nested": "/srv/bundle/team/etl/dags.py",
            "outside": "/elsewhere/dags.py",
            "trailing-slash-root": "/srv/bundle/dags.py",
        }[where]

    @rule(n=st.integers(1, 2))
    def ask_for_callbacks(self, n: int) -> None:
        self.s.callbacks = n

    @rule()
    def break_first_frame(self) -> None:
        self.s.first_frame_ok = False

    @rule(ack=st.sampled_from(Ack))
    def processor_answers(self, ack: Ack) -> None:
        self.s.ack = ack

    @rule()
    def converse(self) -> None:
        s, want = self.s, expect(self.s)
        code, sent, elapsed, _ = trio.run(
            converse_parse,
            _bundle(s),
            first_frame(s),
            s.ack,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        self.conversations += 1
        assert code == want.exit_code, (s, code)
        assert len(sent) == want.results, (s, sent)
        assert elapsed <= HANG_BOUND
        if want.results:
            ((rid, body),) = sent
            assert rid >= 1 and body["type"] == "DagFileParsingResult"
            assert body["fileloc"] == s.file
            docs = {d["data"]["dag"]["dag_id"] for d in body["serialized_dags"]}
            assert docs == want.dag_ids, (s, docs)
            errors = body.get("import_errors") or {}
            if want.error_key is None:
                assert not errors, errors
            else:
                assert list(errors) == [want.error_key], (s, errors)
                text = errors[want.error_key]
                for dag_id in want.failed_dags:
                    assert f'Dag "{dag_id}": ' in text, text
            if s.ack is Ack.NONE:
                assert elapsed >= 5.0  # waited for the acknowledgement, up to its bound
        self.s = ParseScenario()
