"""Sensors: declaration checks, the poke loop and reschedule mode under the REAL 1.3.2
supervisor, and what the scheduler reads from a sensor's serialized task."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from airflow_harness.harness import TI_ID, supervise

import trio_coord
from trio_coord.authoring.sensors import SensorOptions, check_sensor_options
from trio_coord.errors import UsageError
from trio_coord.runtime.sensors import next_poke_interval

BUNDLE = f"{Path(__file__).parent / 'airflow_harness' / 'bundle_sensors.py'}:bundle"
START_DATE_PATH = f"GET /task-reschedules/{TI_ID}/start_date"


def _sensor(**options: object) -> trio_coord.Task:
    dag = trio_coord.Bundle("b").dag("d")

    def check() -> bool:
        return True

    task: trio_coord.Task = dag.task.sensor(**options)(check)  # type: ignore[arg-type]
    return task


# -- declaration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mode": "smart"}, "mode must be one of 'poke', 'reschedule'"),
        ({"poke_interval": -1}, "poke_interval must be a timedelta or a non-negative number"),
        ({"poke_interval": "60"}, "poke_interval"),
        ({"timeout": datetime.timedelta(seconds=-5)}, "timeout must be"),
        ({"max_wait": -0.5}, "max_wait must be"),
        ({"poke_interval": float("nan")}, "poke_interval"),
        ({"soft_fail": "yes"}, "soft_fail must be True or False"),
        ({"exponential_backoff": 1}, "exponential_backoff must be True or False"),
    ],
)
def test_bad_sensor_options_are_usage_errors(options: dict[str, object], words: str) -> None:
    """Each bad sensor option fails at the decorator with a UsageError naming what is accepted."""
    with pytest.raises(UsageError, match=words):
        _sensor(**options)


def test_sensor_options_accept_seconds_and_timedeltas() -> None:
    """Durations are float seconds or timedeltas, as in Airflow; the defaults are Airflow's."""
    opts = check_sensor_options(
        "s",
        {
            "poke_interval": datetime.timedelta(minutes=2),
            "timeout": 90,
            "max_wait": 30.5,
            "mode": "reschedule",
        },
    )
    assert (opts.poke_interval, opts.timeout, opts.max_wait, opts.reschedule) == (
        120.0,
        90.0,
        30.5,
        True,
    )
    default = check_sensor_options("s", {})
    assert default == SensorOptions(poke_interval=60.0, timeout=7 * 24 * 3600.0, mode="poke")
    assert _sensor(timeout=None).kind == "sensor"


def test_exponential_backoff_matches_airflow_formula() -> None:
    """With exponential_backoff the interval grows with the poke count and is capped by max_wait."""
    opts = check_sensor_options("s", {"poke_interval": 10, "exponential_backoff": True})
    common = {"dag_id": "d", "task_id": "t", "started_at": 1.5, "run_duration": 0.0}
    steps = [next_poke_interval(opts, poke_count=n, **common) for n in (1, 2, 3, 4)]
    assert 5 <= steps[0] < 10 and 10 <= steps[1] < 20 and 20 <= steps[2] < 40
    assert 40 <= steps[3] < 80
    capped = check_sensor_options(
        "s", {"poke_interval": 10, "exponential_backoff": True, "max_wait": 12}
    )
    assert next_poke_interval(capped, poke_count=4, **common) == 12
    plain = check_sensor_options("s", {"poke_interval": 7})
    assert next_poke_interval(plain, poke_count=9, **common) == 7


# -- the real supervisor ----------------------------------------------------------------

pytestmark_supervisor = pytest.mark.supervisor


@pytestmark_supervisor
def test_poke_mode_succeeds_after_three_pokes_and_pushes_the_value() -> None:
    """A poke-mode sensor pokes until done and pushes the PokeReturnValue's xcom_value."""
    r = supervise("poke_three", bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/poke_three/return_value"] == {"pokes": 3}
    assert [p["state"] for p in r.state_patches] == ["success"]
    assert [e for e in r.events("task") if e.startswith("poke number")] == [
        "poke number 1",
        "poke number 2",
        "poke number 3",
    ]


@pytestmark_supervisor
def test_poke_mode_timeout_fails_without_retry() -> None:
    """A sensor past its timeout fails (TaskState failed), even when the server would retry."""
    r = supervise("poke_never", bundle=BUNDLE, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    assert [p["state"] for p in r.state_patches] == ["failed"]
    assert "Sensor has timed out" in r.log_text and "SensorTimeout" in r.log_text


@pytestmark_supervisor
def test_poke_mode_timeout_with_soft_fail_is_skipped() -> None:
    """soft_fail turns the sensor timeout into a skip."""
    r = supervise("poke_never_soft", bundle=BUNDLE, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "skipped"), r.events()
    assert [p["state"] for p in r.state_patches] == ["skipped"]


@pytestmark_supervisor
def test_silent_fail_logs_poke_errors_and_pokes_again() -> None:
    """With silent_fail a poke's exception is logged and counts as not done."""
    r = supervise("flaky", bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.log_text.count("the service is not up yet") >= 2


@pytestmark_supervisor
def test_reschedule_mode_ends_the_try_up_for_reschedule() -> None:
    """Not done in reschedule mode: PATCH up_for_reschedule with reschedule_date = now + interval."""
    before = datetime.datetime.now(datetime.UTC)
    r = supervise("resched", bundle=BUNDLE)
    after = datetime.datetime.now(datetime.UTC)
    assert (r.exit_code, r.final_state) == (0, "up_for_reschedule"), r.events()
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_reschedule"
    when = datetime.datetime.fromisoformat(patch["reschedule_date"])
    delay = datetime.timedelta(seconds=30)
    assert before + delay <= when <= after + delay
    # A first try asks no start date: there was no reschedule before it.
    assert not r.api("GET", f"/task-reschedules/{TI_ID}/start_date")


@pytestmark_supervisor
def test_reschedule_timeout_counts_from_the_first_try() -> None:
    """A later try reads the first start date; past the timeout from there, it fails (no retry)."""
    long_ago = "2020-01-01T00:00:00Z"
    r = supervise(
        "resched",
        bundle=BUNDLE,
        should_retry=True,
        ti_context={"task_reschedule_count": 4, "max_tries": 3},
        routes={START_DATE_PATH: {"json": long_ago}},
    )
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    (ask,) = r.api("GET", f"/task-reschedules/{TI_ID}/start_date")
    # max_tries 3 - retries 2 + 1: the try this sequence of reschedules began with.
    assert ask["params"] == {"try_number": "2"}
    assert "Sensor has timed out" in r.log_text


@pytestmark_supervisor
def test_reschedule_within_the_timeout_reschedules_again() -> None:
    """A recent first start is within the timeout: the try is rescheduled once more."""
    recent = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).isoformat()
    r = supervise(
        "resched",
        bundle=BUNDLE,
        ti_context={"task_reschedule_count": 1},
        routes={START_DATE_PATH: {"json": recent}},
    )
    assert (r.exit_code, r.final_state) == (0, "up_for_reschedule"), r.events()
    assert len(r.api("GET", f"/task-reschedules/{TI_ID}/start_date")) == 1


@pytestmark_supervisor
def test_reschedule_timeout_with_soft_fail_is_skipped() -> None:
    """soft_fail in reschedule mode: a timeout counted from the first try skips the task."""
    r = supervise(
        "resched_soft",
        bundle=BUNDLE,
        ti_context={"task_reschedule_count": 2},
        routes={START_DATE_PATH: {"json": "2020-01-01T00:00:00Z"}},
    )
    assert (r.exit_code, r.final_state) == (0, "skipped"), r.events()


@pytestmark_supervisor
def test_reschedule_sensor_done_succeeds() -> None:
    """A reschedule-mode sensor whose poke is done succeeds in that try."""
    r = supervise("resched_done", bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()


# -- what the scheduler reads: export route (DagBag) and native serialization (oracle) --

SENSOR_DAGS = '''
"""Sensor DAGs for the serialization tests, exported with trio_coord.airflow."""
import trio_coord
from trio_coord.airflow import export_dags

bundle = trio_coord.Bundle("sensing")
dag = bundle.dag("sensing", retries=1)


@dag.task.sensor(poke_interval=120, timeout=3600, mode="reschedule")
def wait_file():
    return True


@dag.task.sensor(poke_interval=5)
def wait_poke():
    return True


@dag.task
def after():
    return None


wait_file >> wait_poke >> after
export_dags(bundle, globals())
'''

SCHEDULER_SIDE = r"""
import copy, json, sys
from airflow.serialization.serialized_objects import DagSerialization
from airflow.ti_deps.deps.ready_to_reschedule import ReadyToRescheduleDep

docs = json.load(open(sys.argv[1]))
out = {}
for route, doc in docs.items():
    dag = DagSerialization.from_dict(copy.deepcopy(doc))
    out[route] = {
        t.task_id: {
            "reschedule": getattr(t, "reschedule", None),
            "ready_to_reschedule_dep": any(isinstance(d, ReadyToRescheduleDep) for d in t.deps),
        }
        for t in dag.tasks
    }
json.dump(out, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def serialized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sensor DAG through both routes, judged by airflow-core in the oracle venv."""
    import json
    import subprocess
    import tempfile

    from oracle import ask, failures, oracle_python

    from trio_coord.dagparse import serialize_dag
    from trio_coord.loader import load_bundle

    root = tmp_path_factory.mktemp("sensor-dags")
    path = root / "sensing.py"
    path.write_text(SENSOR_DAGS)
    dag = load_bundle(str(path)).dags["sensing"]
    native = serialize_dag(dag, fileloc=str(path), relative_fileloc="sensing.py")
    answer = ask({"validate": {"sensing": native}, "dagbag": [str(path)]})
    assert answer["dagbag_errors"] == {}
    assert failures(answer) == {}
    exported = answer["dagbag_docs"]["sensing"]
    python, _ = oracle_python()
    with tempfile.TemporaryDirectory() as tmp:
        req, resp = Path(tmp, "in.json"), Path(tmp, "out.json")
        req.write_text(json.dumps({"native": native, "export": exported}))
        script = Path(tmp, "side.py")
        script.write_text(SCHEDULER_SIDE)
        done = subprocess.run(
            [str(python), str(script), str(req), str(resp)],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp,
            env={"AIRFLOW_HOME": tmp, "PATH": "/usr/bin:/bin"},
        )
        assert resp.exists(), done.stderr[-3000:]
        loaded = json.loads(resp.read_text())
    return {
        "native": native,
        "export": exported,
        "loaded": loaded,
        "defaults": answer["operator_defaults"],
    }


def _task(doc: dict[str, object], task_id: str) -> dict[str, object]:
    tasks = doc["dag"]["tasks"]  # type: ignore[index]
    (found,) = [t["__var"] for t in tasks if t["__var"]["task_id"] == task_id]
    return found  # type: ignore[no-any-return]


@pytest.mark.parametrize("route", ["native", "export"])
def test_serialized_sensor_carries_is_sensor_and_reschedule(
    serialized: dict[str, object], route: str
) -> None:
    """Both routes write _is_sensor and reschedule as BaseSensorOperator does; plain tasks neither."""
    doc = serialized[route]
    resched, poke, plain = (_task(doc, t) for t in ("wait_file", "wait_poke", "after"))  # type: ignore[arg-type]
    assert (resched["_is_sensor"], resched["reschedule"]) == (True, True)
    assert (poke["_is_sensor"], poke["reschedule"]) == (True, False)
    assert resched["ui_color"] == "#e6f1f2"
    assert "_is_sensor" not in plain and "reschedule" not in plain


@pytest.mark.parametrize("route", ["native", "export"])
def test_scheduler_loads_the_sensor_with_the_reschedule_dependency(
    serialized: dict[str, object], route: str
) -> None:
    """airflow-core's loader gives the sensors ReadyToRescheduleDep and reads reschedule mode."""
    loaded = serialized["loaded"][route]  # type: ignore[index]
    assert loaded["wait_file"] == {"reschedule": True, "ready_to_reschedule_dep": True}
    assert loaded["wait_poke"] == {"reschedule": False, "ready_to_reschedule_dep": True}
    assert loaded["after"]["ready_to_reschedule_dep"] is False


# -- trio-coord run (one try, embedded supervisor) --------------------------------------


@pytest.mark.parametrize(
    ("task_id", "state", "terminal"),
    [
        ("poke_three", "success", "SucceedTask"),
        ("resched", "up_for_reschedule", "RescheduleTask"),
        ("defers", "deferred", "DeferTask"),
    ],
)
def test_local_run_shows_the_try_outcome(
    capsys: pytest.CaptureFixture[str], task_id: str, state: str, terminal: str
) -> None:
    """trio-coord run pokes a poke-mode sensor to success; reschedule and defer end the try."""
    import json

    from trio_coord.local import main

    bundle = BUNDLE.rsplit(":", 1)[0]
    code = main([bundle, "d1", task_id, "--json", "--timeout", "60"])
    summary = json.loads(capsys.readouterr().out)
    assert (summary["state"], summary["terminal"]) == (state, terminal)
    assert code == (0 if state == "success" else 1)


def test_sensor_dag_is_the_same_on_both_routes(serialized: dict[str, object]) -> None:
    """Native serialization and the export route agree on every compared field of the sensors."""
    from dagparse_cases import EXPORT_ROUTE_DIFFERENCES, IGNORED_TASK_KEYS, compare

    diffs = compare(
        serialized["export"],  # type: ignore[arg-type]
        serialized["native"],  # type: ignore[arg-type]
        serialized["defaults"],  # type: ignore[arg-type]
        ignored_task_keys=IGNORED_TASK_KEYS | EXPORT_ROUTE_DIFFERENCES,
    )
    assert diffs == [], "\n".join(diffs)


@pytestmark_supervisor
def test_sigterm_interrupts_the_sleep_between_pokes() -> None:
    """SIGTERM during a poke-mode sleep cancels it: the try reports up_for_retry and exits 0."""
    r = supervise("sleepy", bundle=BUNDLE, should_retry=True, sigterm_after=3)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry"), (r.raw.get("elapsed"), r.events())
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_retry"
