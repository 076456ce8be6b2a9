"""What the e2e run checks: one ``Scenario`` per DAG run, each a DAG, expected task states and hooks.

Adding a scenario takes a DAG in an example bundle (examples/e2e_bundle.py) and an entry
in ``SCENARIOS``: the DAG id and the final state each task must reach. Optional hooks run
with a ``Run`` (the API, the cluster, the run id): ``before`` after the run is created
and before the DAG is unpaused (to create variables, connections, XComs it will read),
``during`` while it runs (to act on it), ``check`` once it has finished (to assert on
XComs and logs). A hook fails the scenario by raising ``AssertionError`` with a message.
"""

from __future__ import annotations

import datetime
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from .api import Api
from .cluster import Cluster


@dataclass
class Run:
    """One scenario's DAG run, and the handles its hooks need."""

    cluster: Cluster
    dag_id: str
    run_id: str
    #: Facts a hook wants in the report (a measured time, an observed message).
    notes: dict[str, Any] = field(default_factory=dict)
    #: Values ``before`` made up and ``check`` looks for (secrets, expected XComs).
    made: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> Api:
        return self.cluster.api

    def log(self, task_id: str, try_number: int = 1) -> str:
        return self.api.log_text(self.dag_id, self.run_id, task_id, try_number)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.api.xcom(self.dag_id, self.run_id, task_id, key)

    def ti(self, task_id: str) -> dict[str, Any]:
        return self.api.task_instances(self.dag_id, self.run_id)[task_id]


Hook = Callable[[Run], None]


@dataclass(frozen=True)
class Scenario:
    """A DAG run and what must come of it."""

    name: str
    dag_id: str
    #: task id -> the state the task instance must end in.
    expect: Mapping[str, str]
    #: One sentence: the behaviour this scenario pins down.
    doc: str
    before: Hook | None = None
    during: Hook | None = None
    check: Hook | None = None
    timeout: float = 240.0


def expect_in(text: str, needle: str, what: str) -> None:
    """Assert that ``needle`` is in a log text, showing the text's tail if not."""
    if needle not in text:
        raise AssertionError(f"{what}: {needle!r} not found; log tail:\n{_tail(text)}")


def expect_not_in(text: str, needle: str, what: str) -> None:
    if needle in text:
        line = next(x for x in text.splitlines() if needle in x)
        raise AssertionError(f"{what}: {needle!r} leaked into the log: {line}")


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.splitlines()[-n:])


def expect_eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


# -- hello: the README's example bundle ----------------------------------------------------


def hello_check(r: Run) -> None:
    expect_in(r.log("greet"), "hello, world (run ", "greet's log")
    expect_in(r.log("greet"), "task finished: success", "greet's log")
    expect_eq(r.xcom("shout"), "HELLO, WORLD", "shout's return_value XCom")
    expect_eq(r.ti("fail_sometimes")["try_number"], 2, "fail_sometimes try number")
    expect_in(r.log("fail_sometimes", 1), "first try always fails", "fail_sometimes try 1 log")
    expect_in(r.log("fail_sometimes", 2), "second try succeeded", "fail_sometimes try 2 log")


# -- e2e_data: variables, connections, XComs from the API; secrets masked ---------------


def data_before(r: Run) -> None:
    made = r.made
    made["plain"] = f"plain-{secrets.token_hex(4)}"
    made["api_key"] = f"sk-{secrets.token_hex(12)}"
    made["password"] = f"pw-{secrets.token_hex(12)}"
    made["from_api"] = {"n": 7, "tag": secrets.token_hex(3)}
    r.api.post("/api/v2/variables", {"key": "e2e_plain", "value": made["plain"]})
    r.api.post("/api/v2/variables", {"key": "e2e_api_key", "value": made["api_key"]})
    r.api.post(
        "/api/v2/connections",
        {
            "connection_id": "e2e_conn",
            "conn_type": "http",
            "host": "db.example.internal",
            "login": "e2e-user",
            "password": made["password"],
        },
    )
    # Posted on the downstream task's instance, which runs only after read_inputs read it.
    r.api.post(
        f"{r.api.ti_path(r.dag_id, r.run_id, 'check_outputs')}/xcomEntries",
        {"key": "from_api", "value": made["from_api"]},
    )


def data_check(r: Run) -> None:
    made = r.made
    expected = {
        "plain": made["plain"],
        "host": "db.example.internal",
        "login": "e2e-user",
        "from_api": made["from_api"],
    }
    expect_eq(r.xcom("read_inputs"), expected, "read_inputs' return_value XCom")
    expect_eq(r.xcom("check_outputs"), {"seen": expected}, "check_outputs' return_value XCom")
    log = r.log("read_inputs")
    expect_in(log, f"variable e2e_plain={made['plain']}", "read_inputs' log")
    expect_in(
        log, "connection e2e_conn host=db.example.internal login=e2e-user", "read_inputs' log"
    )
    expect_in(log, f"xcom from the API: {made['from_api']!r}", "read_inputs' log")
    # The lines carrying secrets are there, masked: proof they were logged and hidden.
    expect_in(log, "secret variable e2e_api_key=***", "read_inputs' log")
    expect_in(log, "secret connection password=***", "read_inputs' log")
    for task_id in ("read_inputs", "check_outputs"):
        text = r.log(task_id)
        for name in ("api_key", "password"):
            expect_not_in(text, made[name], f"{task_id}'s log")


# -- e2e_retry ---------------------------------------------------------------------------


def retry_check(r: Run) -> None:
    expect_eq(r.ti("always_fails")["try_number"], 2, "always_fails try number")
    for n in (1, 2):
        log = r.log("always_fails", n)
        expect_in(log, f"try {n} is going to fail", f"always_fails try {n} log")
        expect_in(log, f"e2e failure on try {n}", f"always_fails try {n} log")


# -- e2e_sleeper: mark failed through the API while it runs ------------------------------

#: Bounds on the mark-failed scenario: the task must be seen running, and then gone.
RUNNING_WITHIN_S = 180.0
GONE_WITHIN_S = 60.0
#: Bound on the wait for the supervisor's "Process exited" line once the process is gone.
VERDICT_WITHIN_S = 60.0


def _process_ended(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def sleeper_during(r: Run) -> None:
    deadline = time.monotonic() + RUNNING_WITHIN_S
    pid = None
    while pid is None:
        ti = r.ti("sleep_long")
        if ti["state"] == "running":
            m = re.search(r"sleeping in pid (\d+)", r.log("sleep_long"))
            pid = int(m.group(1)) if m else None
        if pid is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"sleep_long not seen running within {RUNNING_WITHIN_S:.0f}s (state {ti['state']})"
                )
            time.sleep(0.5)
    bundle = str(r.cluster.executables_root / "e2e")
    pids = {p.pid for p in r.cluster.processes_matching(bundle)}
    if pid not in pids:
        raise AssertionError(
            f"the task's pid {pid} is not a bundle process under the scheduler ({sorted(pids)})"
        )
    r.made["pid"] = pid
    # The process the supervisor started and watches: the task's own unless the try started
    # warm, when it is the bundle's launcher (the task runs in a child of the warm server).
    r.made["supervised_pid"] = r.ti("sleep_long").get("pid") or pid
    marked = time.monotonic()
    r.api.patch(r.api.ti_path(r.dag_id, r.run_id, "sleep_long"), {"new_state": "failed"})
    while not _process_ended(pid):
        if time.monotonic() - marked > GONE_WITHIN_S:
            raise AssertionError(
                f"bundle process {pid} still running {GONE_WITHIN_S:.0f}s after mark-failed"
            )
        time.sleep(0.1)
    r.notes["process gone after mark-failed"] = f"{time.monotonic() - marked:.1f} s"


def sleeper_check(r: Run) -> None:
    """The process ended on the SIGTERM path: the runtime logged it, no SIGKILL was needed."""
    expect_eq(r.ti("sleep_long")["state"], "failed", "sleep_long state")
    log = r.log("sleep_long")
    expect_in(log, "sleeping in pid", "sleep_long's log")
    expect_in(log, "received SIGTERM; cancelling the task", "sleep_long's log")
    expect_in(log, "task stopped: failed: received SIGTERM", "sleep_long's log")
    pid = r.made["supervised_pid"]
    # The run is over as soon as the API marks the task failed; the supervisor writes its
    # verdict on the process a moment later.
    deadline = time.monotonic() + VERDICT_WITHIN_S
    while True:
        worker_log = r.cluster.components["scheduler"].log.read_text(errors="replace")
        mine = [x for x in worker_log.splitlines() if re.search(rf"\bpid={pid}\b", x)]
        exits = [x for x in mine if "Process exited" in x]
        if exits or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not exits or "signal_sent=SIGTERM" not in exits[0]:
        raise AssertionError(f"the supervisor did not see pid {pid} exit after SIGTERM: {exits}")
    stuck = [x for x in mine if "did not terminate in time" in x]
    expect_eq(stuck, [], "supervisor escalations for the bundle process")
    told = re.search(r'"timestamp":"([^"]+)","level":"\w+","event":"Server indicated', _raw_log(r))
    seen = re.match(r"(\S+Z)", exits[0])
    if told and seen:
        took = _ts(seen.group(1)) - _ts(told.group(1))
        r.notes["supervisor: SIGTERM -> exit seen"] = f"{took.total_seconds():.1f} s"


def _raw_log(r: Run) -> str:
    """The task log file as the worker wrote it (JSON lines), for exact timestamps."""
    path = (
        r.cluster.home / "logs" / f"dag_id={r.dag_id}" / f"run_id={r.run_id}"
        / "task_id=sleep_long" / "attempt=1.log"
    )  # fmt: skip
    return path.read_text(errors="replace") if path.exists() else ""


def _ts(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- e2e_missing_bundle: a DAG file whose bundle was never deployed ---------------------

#: What 1.3.2's coordinator raises, in the worker, when no bundle declares the dag id.
MISSING_REASON = "cannot find executable bundle containing dag_id='e2e_missing_bundle'"


def missing_check(r: Run) -> None:
    """Airflow 1.3.2 fails the task before it starts: the reason is in the worker's log only.

    The coordinator raises while the LocalExecutor's worker prepares the task, so the task
    instance never reaches ``running`` (no start date), its task log has no line from the
    task, and the executor's "failed" event makes the scheduler fail it. With LocalExecutor
    the worker's log is the scheduler's.
    """
    ti = r.ti("never_runs")
    expect_eq(ti["start_date"], None, "never_runs' start date (it never started)")
    log = r.log("never_runs")
    expect_not_in(log, "this line must not appear", "never_runs' log")
    expect_not_in(log, "trio_coord", "never_runs' log")
    worker_log = r.cluster.components["scheduler"].log.read_text(errors="replace")
    expect_in(worker_log, MISSING_REASON, "the scheduler's (LocalExecutor worker's) log")
    r.notes["reason, in the scheduler's log"] = next(
        x for x in worker_log.splitlines() if MISSING_REASON in x
    )[:200]


# -- starting the later scenarios in a staggered way ---------------------------------------

#: The longest a scenario waits for the scheduler's queue to drain before it is unpaused.
SETTLE_WITHIN_S = 90.0


def settle(r: Run) -> None:
    """Wait until no task instance is ``queued``, so this scenario's tasks start after those.

    Every bundle process must connect within Airflow's 10 s limit; on a loaded machine a
    burst of cold starts misses it ("process did not connect within timeout"). Unpausing
    the later scenarios one by one once the queue has drained keeps the burst to what
    the scheduler already has in hand. Past the bound the scenario starts anyway.
    """
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_WITHIN_S:
        queued = r.api.get("/api/v2/dags/~/dagRuns/~/taskInstances", state="queued", limit=1)
        if not queued["total_entries"]:
            break
        time.sleep(0.5)
    r.notes["waited for the queue to drain"] = f"{time.monotonic() - started:.1f} s"


def _then(*hooks: Hook) -> Hook:
    def run_all(r: Run) -> None:
        for hook in hooks:
            hook(r)

    return run_all


# -- e2e_vocabulary: branch, mapping over an output, TaskFlow, reschedule sensor, deferral --

#: The Variable the sensor of e2e_vocabulary waits for (examples/e2e_bundle.py's VOCAB_FLAG).
VOCAB_FLAG = "e2e_vocab_flag"
#: Values the vocabulary DAG computes: make_numbers returns [1, 2, 3, 4].
VOCAB_SQUARES = [1, 4, 9, 16]
#: How long nap defers, and wait_flag's poke interval (examples/e2e_bundle.py): long enough
#: that the scheduler has seen the previous process exit before the try is queued again. Airflow 3.3.2 fails a resumed
#: try whose deferring process's exit the LocalExecutor reports after it was queued again
#: (same try number: "finished with state success, but the task instance's state attribute
#: is queued"); on a loaded machine that exit was seen 6 s after the task deferred.
VOCAB_DEFER_S = 15
#: Bound on seeing the sensor rescheduled, and then the deferral, while watching the run.
VOCAB_STATE_WITHIN_S = 180.0


def _watch_states(r: Run, task_id: str, wanted: str, seen: set[str]) -> None:
    """Poll one task's state until it is ``wanted``; every state seen on the way is kept."""
    deadline = time.monotonic() + VOCAB_STATE_WITHIN_S
    while True:
        state = r.ti(task_id)["state"]
        seen.add(str(state))
        if state == wanted:
            return
        if state in ("success", "failed", "skipped", "upstream_failed"):
            raise AssertionError(f"{task_id} ended {state!r} before it was seen {wanted!r}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{task_id} not seen {wanted!r} within {VOCAB_STATE_WITHIN_S:.0f}s "
                f"(states seen: {sorted(seen)})"
            )
        time.sleep(0.25)


def vocabulary_during(r: Run) -> None:
    """The sensor waits for a Variable set only once it was seen ``up_for_reschedule``.

    The deferring task runs after the sensor, so it defers while this hook watches: it must
    be seen ``deferred`` (the real triggerer then fires the DateTimeTrigger and it resumes).
    """
    sensor: set[str] = set()
    _watch_states(r, "wait_flag", "up_for_reschedule", sensor)
    r.api.post("/api/v2/variables", {"key": VOCAB_FLAG, "value": r.run_id})
    r.notes["wait_flag states seen before the flag was set"] = sorted(sensor)
    nap: set[str] = set()
    _watch_states(r, "nap", "deferred", nap)
    r.made["nap_deferred_at"] = time.monotonic()


def vocabulary_check(r: Run) -> None:
    instances = r.api.mapped_instances(r.dag_id, r.run_id, "square")
    expect_eq([ti["map_index"] for ti in instances], [0, 1, 2, 3], "square's map indexes")
    expect_eq({ti["state"] for ti in instances}, {"success"}, "square's instance states")
    for i, expected in enumerate(VOCAB_SQUARES):
        path = f"{r.api.ti_path(r.dag_id, r.run_id, 'square')}/xcomEntries/return_value"
        got = r.api.get(path, map_index=i)["value"]
        expect_eq(got, expected, f"square[{i}]'s return_value XCom")
    expect_eq(r.xcom("total"), sum(VOCAB_SQUARES), "total's return_value XCom (the reduce)")
    expect_eq(
        r.xcom("describe"),
        {"total": sum(VOCAB_SQUARES), "text": f"sum of squares is {sum(VOCAB_SQUARES)}"},
        "describe's return_value XCom (TaskFlow: total's value passed in)",
    )
    expect_eq(r.xcom("join"), sum(VOCAB_SQUARES), "join's return_value XCom")
    expect_eq(
        r.xcom("choose", "skipmixin_key"), {"followed": ["make_numbers"]}, "choose's skipmixin_key"
    )
    expect_in(r.log("total"), "squares from 4 instances: [1, 4, 9, 16]", "total's log")
    sensor_log = r.log("wait_flag")
    expect_in(sensor_log, f"poke: {VOCAB_FLAG}=None", "wait_flag's log (a poke before the flag)")
    expect_in(sensor_log, f"poke: {VOCAB_FLAG}={r.run_id!r}", "wait_flag's log (the last poke)")
    expect_eq(r.xcom("wait_flag"), r.run_id, "wait_flag's return_value XCom (its xcom_value)")
    nap_log = r.log("nap")
    expect_in(nap_log, f"deferring to the triggerer for {VOCAB_DEFER_S} s", "nap's log")
    expect_in(nap_log, "task finished: success", "nap's log (the resumed try)")
    expect_eq(r.ti("nap")["try_number"], 1, "nap's try number (a resumed try is the same try)")
    # The triggerer's own lines about this trigger are part of the task's log.
    expect_in(nap_log, "Trigger fired event", "nap's log (the triggerer's part)")


# -- e2e_asset_producer -> e2e_asset_consumer -------------------------------------------

ORDERS_URI = "file:///e2e/orders"
#: Bound on the asset-scheduled run appearing and finishing after the producer's run.
CONSUMER_WITHIN_S = 120.0


def assets_before(r: Run) -> None:
    r.api.wait_dag("e2e_asset_consumer", 60)
    r.api.set_paused("e2e_asset_consumer", False)


def assets_check(r: Run) -> None:
    events = r.api.asset_events(source_dag_id=r.dag_id, source_run_id=r.run_id)
    expect_eq(len(events), 1, f"asset events from {r.run_id}")
    event = events[0]
    expect_eq(event["uri"], ORDERS_URI, "the asset event's URI")
    expect_eq(event["source_task_id"], "publish_orders", "the asset event's source task")
    extra = {"rows": 120, "producer_run": r.run_id}
    expect_eq(event["extra"], extra, "the asset event's extra, as the REST API shows it")
    deadline = time.monotonic() + CONSUMER_WITHIN_S
    while True:
        runs = [
            x for x in r.api.dag_runs("e2e_asset_consumer") if x["run_type"] == "asset_triggered"
        ]
        done = [x for x in runs if x["state"] in ("success", "failed")]
        if done:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no finished asset-triggered run of e2e_asset_consumer within "
                f"{CONSUMER_WITHIN_S:.0f}s (runs: {[(x['run_id'], x['state']) for x in runs]})"
            )
        time.sleep(0.5)
    consumer = done[0]
    expect_eq(consumer["state"], "success", "the asset-triggered run's state")
    # Read again: the event lists the run it created once that run exists.
    (event,) = r.api.asset_events(source_dag_id=r.dag_id, source_run_id=r.run_id)
    created = [(x["dag_id"], x["run_id"]) for x in event["created_dagruns"]]
    expect_eq(
        created, [("e2e_asset_consumer", consumer["dag_run_id"])], "the runs the event created"
    )
    got = r.api.xcom("e2e_asset_consumer", consumer["dag_run_id"], "read_orders")
    expect_eq(got, extra, "read_orders' return_value XCom (the extra its inlet read)")


# -- e2e_trigger_parent -> e2e_trigger_child --------------------------------------------


def trigger_before(r: Run) -> None:
    r.api.wait_dag("e2e_trigger_child", 60)
    r.api.set_paused("e2e_trigger_child", False)


def trigger_check(r: Run) -> None:
    child_run_id = r.xcom("kick_child", "trigger_run_id")
    child = r.api.run("e2e_trigger_child", child_run_id)
    conf = {"parent_run": r.run_id, "batch": 7}
    expect_eq(child["state"], "success", f"the triggered run {child_run_id}'s state")
    expect_eq(child["conf"], conf, "the triggered run's conf")
    expect_eq(
        r.api.xcom("e2e_trigger_child", child_run_id, "echo_conf"),
        conf,
        "echo_conf's return_value XCom (the conf its task saw)",
    )
    # The parent waited: it ended after the child run did.
    parent_end = _ts(r.ti("kick_child")["end_date"])
    child_end = _ts(child["end_date"])
    if parent_end < child_end:
        raise AssertionError(
            f"kick_child ended at {parent_end} before the run it waits for ({child_end})"
        )


# -- e2e_state_cursor --------------------------------------------------------------------


def cursor_check(r: Run) -> None:
    cursor = {"offset": 500, "stored_on_try": 1}
    expect_eq(r.ti("resume_from_cursor")["try_number"], 2, "resume_from_cursor's try number")
    first = r.log("resume_from_cursor", 1)
    expect_in(first, "try 1 read cursor None", "resume_from_cursor try 1 log")
    expect_in(first, "failing try 1 after storing the cursor", "resume_from_cursor try 1 log")
    expect_in(r.log("resume_from_cursor", 2), f"try 2 read cursor {cursor!r}", "try 2 log")
    expect_eq(
        r.xcom("resume_from_cursor"), {"resumed_from": 500, "on_try": 2}, "the return_value XCom"
    )
    expect_eq(
        r.api.task_state(r.dag_id, r.run_id, "resume_from_cursor"),
        {"cursor": cursor},
        "the task state store, as the REST API shows it",
    )


# -- e2e_hitl: a person answers the question through the REST API ------------------------

#: What the person answers (examples/e2e_bundle.py's ``review`` offers "ship" and "hold").
HITL_CHOICE = "ship"


def hitl_during(r: Run) -> None:
    """Once ``review`` is parked ``awaiting_input``, find its question and answer it."""
    seen: set[str] = set()
    _watch_states(r, "review", "awaiting_input", seen)
    r.notes["review states seen before awaiting_input"] = sorted(seen)
    questions = r.api.hitl_details(r.dag_id, r.run_id, task_id="review", response_received=False)
    expect_eq(len(questions), 1, "open questions of review, as the REST API lists them")
    q = questions[0]
    expect_eq(q["subject"], "Ship the e2e release?", "the question's subject")
    expect_eq(q["options"], ["ship", "hold"], "the question's options")
    expect_eq(q["multiple"], False, "the question's multiple")
    body = f"Release candidate of run {r.run_id}: ship it or hold it?"
    expect_eq(q["body"], body, "the question's body (what the decorated function returned)")
    if "note" not in (q.get("params") or {}):
        raise AssertionError(f"the question has no 'note' form field: {q.get('params')!r}")
    expect_eq(q["task_instance"]["state"], "awaiting_input", "the question's task instance state")
    note = f"approved by the e2e {secrets.token_hex(3)}"
    r.made["note"] = note
    answered = r.api.answer_hitl(r.dag_id, r.run_id, "review", [HITL_CHOICE], {"note": note})
    expect_eq(answered["chosen_options"], [HITL_CHOICE], "the answer as the API recorded it")


def hitl_check(r: Run) -> None:
    note = r.made["note"]
    expect_eq(
        r.xcom("act_on_answer"),
        {"chosen": HITL_CHOICE, "note": note},
        "act_on_answer's return_value XCom (what it read from review's answer)",
    )
    answer = r.xcom("review")
    expect_eq(answer["chosen_options"], [HITL_CHOICE], "review's pushed answer: chosen_options")
    expect_eq(answer["params_input"], {"note": note}, "review's pushed answer: params_input")
    ti = r.ti("review")
    # A resumed try keeps its try number: the question and the answer are in one try's log.
    expect_eq(ti["try_number"], 1, "review's try number (the resumed try is the same try)")
    log = r.log("review", ti["try_number"])
    expect_in(log, "Waiting for response to 'Ship the e2e release?'", "review's log")
    expect_in(log, "Pausing task as AWAITING_INPUT", "review's log")
    expect_in(log, f"Answered: {[HITL_CHOICE]!r}", "review's log (the resumed try)")
    expect_in(log, "task finished: success", "review's log (the resumed try)")
    expect_in(
        r.log("act_on_answer"),
        f"the person chose {HITL_CHOICE!r} with note {note!r}",
        "act_on_answer's log",
    )
    (q,) = r.api.hitl_details(r.dag_id, r.run_id, task_id="review")
    expect_eq(q["response_received"], True, "the question's response_received after the run")
    expect_eq(q["chosen_options"], [HITL_CHOICE], "the question's chosen_options after the run")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "hello",
        "hello",
        {"greet": "success", "shout": "success", "fail_sometimes": "success"},
        "The README's example bundle runs under Airflow: every task succeeds, XCom flows, a retry succeeds.",
        check=hello_check,
    ),
    Scenario(
        "data",
        "e2e_data",
        {"read_inputs": "success", "check_outputs": "success"},
        "Variables, a connection and an XCom created through the REST API reach the task; secrets are masked in its log.",
        before=data_before,
        check=data_check,
    ),
    Scenario(
        "retry-then-fail",
        "e2e_retry",
        {"always_fails": "failed"},
        "A task that always raises is retried once and then fails, each try with its own log.",
        check=retry_check,
    ),
    Scenario(
        "mark-failed",
        "e2e_sleeper",
        {"sleep_long": "failed"},
        "Marking a running task failed through the API ends its bundle process within seconds.",
        during=sleeper_during,
        check=sleeper_check,
    ),
    Scenario(
        "missing-bundle",
        "e2e_missing_bundle",
        {"never_runs": "failed"},
        "A task whose bundle is not under executables_root fails before it starts; the worker's log says why.",
        check=missing_check,
    ),
    Scenario(
        "vocabulary",
        "e2e_vocabulary",
        {
            "choose": "success",
            "make_numbers": "success",
            "not_taken": "skipped",
            "square": "success",
            "total": "success",
            "describe": "success",
            "join": "success",
            "wait_flag": "success",
            "nap": "success",
        },
        "A branch skips the other path, a task maps over an upstream output and a reduce sums it, a reschedule sensor and a deferral go through their states.",
        before=settle,
        during=vocabulary_during,
        check=vocabulary_check,
    ),
    Scenario(
        "assets",
        "e2e_asset_producer",
        {"publish_orders": "success"},
        "An outlet's asset event, with its extra, starts the asset-scheduled DAG, whose inlet reads the extra.",
        before=_then(assets_before, settle),
        check=assets_check,
    ),
    Scenario(
        "trigger-and-wait",
        "e2e_trigger_parent",
        {"kick_child": "success"},
        "A trigger_dagrun task starts another DAG with conf and waits until that run succeeds.",
        before=_then(trigger_before, settle),
        check=trigger_check,
    ),
    Scenario(
        "state-store-cursor",
        "e2e_state_cursor",
        {"resume_from_cursor": "success"},
        "A cursor stored in the task state store by a failed try is read back by the retry.",
        before=settle,
        check=cursor_check,
    ),
    Scenario(
        "hitl",
        "e2e_hitl",
        {"review": "success", "act_on_answer": "success"},
        "A HITL task waits awaiting_input; a person answers through the REST API and Airflow resumes it with the answer, which the downstream reads.",
        before=settle,
        during=hitl_during,
        check=hitl_check,
    ),
)
