"""Deferral: ``Defer`` and the ready temporal waits become ``DeferTask`` under the REAL 1.3.2
supervisor, Airflow's own code rebuilds the trigger from what was sent, and a second
supervised try resumes the task (or fails it after ``__fail__``)."""

from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from airflow_harness.harness import Report, supervise
from oracle import oracle_python

import trio_coord
from trio_coord import Defer, Trigger, defer_for, defer_until
from trio_coord.authoring.deferral import (
    DATETIME_TRIGGER,
    WAIT_DONE,
    temporal_wait_event,
    temporal_wait_moment,
)
from trio_coord.errors import UsageError
from trio_coord.protocol import serde
from trio_coord.runtime.deferral import defer_message

BUNDLE = f"{Path(__file__).parent / 'airflow_harness' / 'bundle_sensors.py'}:bundle"
MOMENT = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
TRACEBACK = [
    "Traceback (most recent call last):\n",
    '  File "/opt/triggers/files.py", line 12, in run\n',
    "ValueError: the bucket is gone\n",
]

# -- authoring and encoding (pure) ------------------------------------------------------


def test_defer_until_builds_the_standard_datetime_trigger() -> None:
    """defer_until names DateTimeTrigger with the moment in UTC and end_from_trigger False."""
    paris = datetime.timezone(datetime.timedelta(hours=1))
    d = defer_until(datetime.datetime(2030, 1, 2, 4, 4, 5, tzinfo=paris))
    assert d.trigger.classpath == DATETIME_TRIGGER
    assert d.trigger.kwargs == {"moment": MOMENT, "end_from_trigger": False}
    assert (d.method_name, d.kwargs, d.timeout) == (WAIT_DONE, {}, None)
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert defer_for(90, now=start).trigger.kwargs["moment"] == start + datetime.timedelta(
        seconds=90
    )


def test_temporal_trigger_kwargs_are_what_datetimetrigger_serializes() -> None:
    """The moment goes as a pendulum DateTime in UTC, serde version 2, as the native runner sends it."""
    msg = defer_message(defer_until(MOMENT, timeout=datetime.timedelta(minutes=2)))
    assert msg.trigger_kwargs == {
        "moment": {
            "__classname__": "pendulum.datetime.DateTime",
            "__version__": 2,
            "__data__": {
                "timestamp": MOMENT.timestamp(),
                "tz": {
                    "__classname__": "builtins.tuple",
                    "__version__": 1,
                    "__data__": ["UTC", "pendulum.tz.timezone.Timezone", 1, True],
                },
            },
        },
        "end_from_trigger": False,
    }
    assert (msg.trigger_timeout, msg.next_method, msg.next_kwargs) == (120.0, WAIT_DONE, {})


def test_serde_round_trips_the_supported_values() -> None:
    """Tuples, sets, dates, timedeltas and zoned datetimes survive encode then decode."""
    value = {
        "t": (1, "a", None),
        "s": {3},
        "f": frozenset({"x"}),
        "d": datetime.date(2030, 1, 2),
        "td": datetime.timedelta(seconds=1.5),
        "utc": MOMENT,
        "offset": MOMENT.astimezone(datetime.timezone(datetime.timedelta(hours=-5))),
        "nested": [{"k": (True,)}],
    }
    decoded = serde.decode(serde.encode(value))
    assert decoded == value
    assert decoded["offset"].utcoffset() == datetime.timedelta(hours=-5)
    assert serde.decode({"__type": "dict", "__var": {"a": {"__type": "tuple", "__var": [1]}}}) == {
        "a": (1,)
    }
    unknown = {"__classname__": "my.Thing", "__version__": 1, "__data__": {"x": 1}}
    assert serde.decode(unknown) == unknown


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Trigger("not a path"), "dotted"),
        (lambda: Defer(trigger="x", method_name="m"), "takes a trio_coord.Trigger"),  # type: ignore[arg-type]
        (lambda: Defer(trigger=Trigger("a.B"), method_name="bad name"), "identifier"),
        (lambda: Defer(trigger=Trigger("a.B"), method_name="__fail__"), "reserved"),
        (lambda: Defer(trigger=Trigger("a.B"), method_name="m", timeout=-1), "positive"),
        (lambda: defer_until(datetime.datetime(2030, 1, 1)), "aware datetime"),
        (lambda: defer_for("soon"), "timedelta or a number of seconds"),  # type: ignore[arg-type]
        (lambda: defer_message(defer_for(1, kwargs={"o": object()})), "cannot encode"),
    ],
)
def test_bad_deferrals_are_clear_errors(make: Any, words: str) -> None:
    """A malformed trigger, method name, timeout, moment or kwarg fails with a clear message."""
    with pytest.raises((UsageError, trio_coord.FailTask), match=words):
        make()


def test_resume_registration_is_checked() -> None:
    """@task.resume refuses a reserved or repeated method name."""
    dag = trio_coord.Bundle("b").dag("d")

    @dag.task
    def t() -> None: ...

    @t.resume("later")
    def later() -> None: ...

    with pytest.raises(UsageError, match="already resumes 'later'"):
        t.resume("later")(later)
    with pytest.raises(UsageError, match="reserved"):
        t.resume("__fail__")(later)
    assert t.resumers == {"later": later}


# -- Airflow's side of the trigger ------------------------------------------------------

AIRFLOW_SIDE = r"""
import json, os, sys, tempfile
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
from airflow.models.trigger import Trigger
from airflow.sdk.serde import deserialize, serialize
from airflow.providers.standard.triggers.temporal import DateTimeTrigger

sent = json.load(open(sys.argv[1]))
# The API server stores the kwargs as JSON; the triggerer decodes them with this.
kwargs = Trigger._decrypt_kwargs(json.dumps(sent["trigger_kwargs"]))
trigger = DateTimeTrigger(**kwargs)
classpath, own = trigger.serialize()
# What the trigger firing stores for the resumed try (handle_event_submit's steps).
next_kwargs = deserialize(sent["next_kwargs"])
next_kwargs["event"] = trigger.moment
json.dump(
    {
        "classpath": classpath,
        "moment": trigger.moment.isoformat(),
        "same_as_native": serialize(own) == sent["trigger_kwargs"],
        "next_kwargs": serialize(next_kwargs),
    },
    open(sys.argv[2], "w"),
)
"""


def in_airflow(sent: dict[str, Any]) -> dict[str, Any]:
    """Run AIRFLOW_SIDE with the oracle's airflow-core interpreter on what the runtime sent."""
    python, why = oracle_python()
    if python is None:
        pytest.skip(why)
    with tempfile.TemporaryDirectory(prefix="tc-defer-") as tmp:
        script, req, resp = Path(tmp, "side.py"), Path(tmp, "in.json"), Path(tmp, "out.json")
        script.write_text(AIRFLOW_SIDE)
        req.write_text(json.dumps(sent))
        done = subprocess.run(
            [python, str(script), str(req), str(resp)],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp,
        )
        assert resp.exists(), done.stderr[-3000:]
        answer: dict[str, Any] = json.loads(resp.read_text())
    return answer


# -- the real supervisor ----------------------------------------------------------------


def _deferred(r: Report) -> dict[str, Any]:
    assert (r.exit_code, r.final_state) == (0, "deferred"), r.events()
    (patch,) = r.state_patches
    assert patch["state"] == "deferred"
    return patch


@pytest.fixture(scope="module")
def first_try() -> Report:
    return supervise("defers", bundle=BUNDLE)


@pytest.mark.supervisor
def test_defer_for_patches_deferred(first_try: Report) -> None:
    """defer_for sends DeferTask: the API sees classpath, serde kwargs, timeout and next_method."""
    patch = _deferred(first_try)
    assert patch["classpath"] == DATETIME_TRIGGER
    assert patch["next_method"] == "done"
    assert patch["trigger_timeout"] in ("PT1H", 3600, 3600.0)
    assert patch["next_kwargs"] == {
        "label": "five minutes",
        "pair": {"__classname__": "builtins.tuple", "__version__": 1, "__data__": [1, 2]},
    }
    moment = patch["trigger_kwargs"]["moment"]
    assert moment["__classname__"] == "pendulum.datetime.DateTime"
    assert patch["trigger_kwargs"]["end_from_trigger"] is False
    assert first_try.xcoms == {}


@pytest.mark.supervisor
def test_airflow_rebuilds_the_trigger_and_the_task_resumes(first_try: Report) -> None:
    """airflow-core decodes the kwargs into a DateTimeTrigger equal to the native one; its event
    resumes a second supervised try in the registered method, which succeeds."""
    patch = _deferred(first_try)
    side = in_airflow(patch)
    assert side["classpath"] == DATETIME_TRIGGER
    assert side["same_as_native"] is True
    # The local stand-in for the triggerer builds the same resume kwargs as airflow-core.
    sent_moment = temporal_wait_moment(patch["classpath"], patch["trigger_kwargs"])
    assert temporal_wait_event(sent_moment, patch["next_kwargs"]) == side["next_kwargs"]
    moment = datetime.datetime.fromisoformat(side["moment"])
    sent = serde.decode(patch["trigger_kwargs"])["moment"]
    assert moment == sent and moment.utcoffset() == datetime.timedelta(0)

    r = supervise(
        "defers",
        bundle=BUNDLE,
        ti_context={"next_method": "done", "next_kwargs": side["next_kwargs"]},
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/defers/return_value"] == {
        "moment": moment.isoformat(),
        "label": "five minutes",
        "pair": [1, 2],
    }


@pytest.mark.supervisor
def test_ready_wait_resumes_to_success_without_code() -> None:
    """defer_until with no resume function: deferred, then the resumed try just succeeds."""
    patch = _deferred(supervise("waits", bundle=BUNDLE))
    assert patch["next_method"] == WAIT_DONE
    assert serde.decode(patch["trigger_kwargs"]) == {"moment": MOMENT, "end_from_trigger": False}
    assert temporal_wait_moment(patch["classpath"], patch["trigger_kwargs"]) == MOMENT
    r = supervise(
        "waits",
        bundle=BUNDLE,
        ti_context={
            "next_method": WAIT_DONE,
            "next_kwargs": temporal_wait_event(MOMENT, patch["next_kwargs"]),
        },
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms == {}


@pytest.mark.supervisor
def test_a_broad_except_does_not_swallow_defer() -> None:
    """Defer is a BaseException: the task's `except Exception` lets it through to DeferTask."""
    patch = _deferred(supervise("custom_trigger", bundle=BUNDLE))
    assert patch["classpath"] == "my_triggers.FileTrigger"
    assert patch["trigger_kwargs"] == {"path": "/data/in", "poll": 5.0}
    assert patch["next_method"] == "arrived"


@pytest.mark.supervisor
def test_fail_resume_logs_the_traceback_and_fails() -> None:
    """__fail__: the trigger's traceback is in the task log and the try fails (no retry left)."""
    r = supervise(
        "defers",
        bundle=BUNDLE,
        ti_context={
            "next_method": "__fail__",
            "next_kwargs": {"error": "Trigger failure", "traceback": TRACEBACK},
        },
    )
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    assert "ValueError: the bucket is gone" in r.log_text
    assert "Trigger failure" in r.log_text
    assert r.xcoms == {}


@pytest.mark.supervisor
def test_fail_resume_of_a_plain_task_is_retryable() -> None:
    """As with Airflow's TaskDeferralError, a failed trigger retries a task that has retries left."""
    r = supervise(
        "defers",
        bundle=BUNDLE,
        should_retry=True,
        ti_context={"next_method": "__fail__", "next_kwargs": {"error": "Trigger timeout"}},
    )
    assert (r.exit_code, r.final_state) == (0, "up_for_retry"), r.events()


@pytest.mark.supervisor
def test_fail_resume_of_a_soft_fail_sensor_is_skipped() -> None:
    """A sensor's trigger timeout is its sensor timeout: soft_fail skips it."""
    r = supervise(
        "deferring_sensor",
        bundle=BUNDLE,
        should_retry=True,
        ti_context={"next_method": "__fail__", "next_kwargs": {"error": "Trigger timeout"}},
    )
    assert (r.exit_code, r.final_state) == (0, "skipped"), r.events()


@pytest.mark.supervisor
def test_sensor_can_defer() -> None:
    """A poke that raises Defer defers the sensor."""
    patch = _deferred(supervise("deferring_sensor", bundle=BUNDLE))
    assert patch["next_method"] == "checked"


@pytest.mark.supervisor
def test_unknown_resume_method_fails_clearly_without_retry() -> None:
    """Resuming in a method the task does not register fails, naming the registered ones."""
    r = supervise(
        "defers",
        bundle=BUNDLE,
        should_retry=True,
        ti_context={"next_method": "vanished", "next_kwargs": {"event": None}},
    )
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    assert "no function is registered for method 'vanished'" in r.log_text
    assert "'done'" in r.log_text


def test_resume_binding_fills_event_kwargs_and_injected_names() -> None:
    """The resume function gets event and kwargs by name, **kwargs the rest, injected names win;
    a required parameter with nothing to fill it fails the try with a clear message."""
    from trio_coord.runtime.deferral import _bind

    dag = trio_coord.Bundle("b").dag("d")

    @dag.task
    def t() -> None: ...

    def resume(event, log, label="x", **rest):  # type: ignore[no-untyped-def]
        return None

    kwargs = {"event": 1, "label": "y", "other": 2, "log": "not injected"}
    inject, extra = _bind(t, "m", resume, kwargs)
    assert inject == ("log",)
    assert extra == {"event": 1, "label": "y", "other": 2}

    def needs(event, missing):  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(trio_coord.FailTask, match="parameter 'missing' is neither"):
        _bind(t, "m", needs, {"event": 1})


@pytest.mark.supervisor
def test_defer_from_a_nursery_child_defers() -> None:
    """A Defer raised in a nursery child (an exception group) still defers the task."""
    patch = _deferred(supervise("defers_in_nursery", bundle=BUNDLE))
    assert patch["next_method"] == "later"
