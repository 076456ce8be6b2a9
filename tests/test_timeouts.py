"""execution_timeout: the runtime ends a try that runs too long, as Airflow's AirflowTaskTimeout.

Supervised runs use ``tests/airflow_harness/bundle_branching.py`` (0.5 s timeouts around
tasks that would sleep 300 s), under the REAL 1.3.2 supervisor.
"""

from __future__ import annotations

import datetime
import json
import textwrap

import pytest
from airflow_harness.harness import HERE, supervise

from trio_coord.local import main

BUNDLE = f"{HERE / 'bundle_branching.py'}:bundle"


@pytest.mark.supervisor
@pytest.mark.parametrize("task_id", ["slow_async", "slow_sync"])
def test_timeout_with_retries_left_is_up_for_retry_with_a_log_line(task_id: str) -> None:
    """A sync or async task past its execution_timeout ends up_for_retry, long before its 300 s sleep ends."""
    r = supervise(task_id, bundle=BUNDLE, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry")
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_retry"
    assert "the task timed out after 0.5 s (execution_timeout)" in r.events()
    assert r.raw["elapsed"] < 100  # the 300 s sleep was abandoned, not waited for


@pytest.mark.supervisor
def test_timeout_without_retries_left_fails() -> None:
    """With no retry left the timed-out try sends TaskState(failed)."""
    r = supervise("slow_async", bundle=BUNDLE)
    assert (r.exit_code, r.final_state) == (0, "failed")
    assert [p["state"] for p in r.state_patches] == ["failed"]


ZERO = """
import datetime
import trio_coord

bundle = trio_coord.Bundle("zero")
d = bundle.dag("d", default_args={"execution_timeout": datetime.timedelta(0)})


@d.task
def never(log):
    log.info("the body ran")
    return 1


@d.task(execution_timeout=datetime.timedelta(seconds=30))
async def quick():
    return "done"
"""


@pytest.fixture(scope="module")
def zero_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("zero") / "zero_bundle.py"
    path.write_text(textwrap.dedent(ZERO))
    return f"{path}:bundle"


def test_zero_timeout_from_default_args_fails_before_the_body_runs(
    zero_bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """execution_timeout=0 in default_args: the try times out without running the function."""
    code = main([zero_bundle, "d", "never", "--json", "--timeout", "60"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1 and summary["state"] == "failed"
    assert "timed out after 0 s" in summary["last_error"]
    assert "the body ran" not in err


def test_a_task_within_its_timeout_succeeds(
    zero_bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task's own execution_timeout overrides default_args; finishing in time is a success."""
    code = main([zero_bundle, "d", "quick", "--json", "--timeout", "60"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["xcoms"] == {"return_value": "done"}


def test_local_run_shows_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    """trio-coord run: the timeout is the last error, and with --should-retry the state is up_for_retry."""
    code = main([BUNDLE, "d1", "slow_sync", "--should-retry", "--json", "--timeout", "60"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["state"] == "up_for_retry" and code == 1
    assert summary["last_error"] == "the task timed out after 0.5 s (execution_timeout)"
    assert summary["duration_s"] < 100


def test_negative_timeout_is_refused_at_declaration() -> None:
    """execution_timeout must be a non-negative timedelta."""
    import trio_coord
    from trio_coord.errors import UsageError

    d = trio_coord.Bundle("b").dag("d")
    with pytest.raises(UsageError, match="execution_timeout must be a non-negative"):

        @d.task(execution_timeout=datetime.timedelta(seconds=-1))
        def t() -> None: ...

    with pytest.raises(UsageError, match="execution_timeout must be a non-negative"):

        @d.task(execution_timeout=5)
        def u() -> None: ...
