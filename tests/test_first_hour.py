"""A new user's first hour, through the real command line: each step does the expected thing.

Every test here runs the installed ``trio-coord`` console script in a subprocess on real
files in ``tmp_path``, the way a user types the commands, and checks the exit status and
what is printed: one clear line for a mistake, never a traceback of trio-coord's own.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bundle_helpers import EXAMPLE, FRAGILE_BUNDLE, packed, packed_example, write_bundle
from test_bundle_airflow import dagbag

import trio_coord
from trio_coord.errors import UsageError

_SCRIPT = Path(sys.executable).parent / "trio-coord"
#: The console script a user runs; ``python -m trio_coord`` where it is not installed.
TRIO_COORD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "trio_coord"]


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``trio-coord ARGS`` as a user runs it (text output captured)."""
    return subprocess.run(
        [*TRIO_COORD, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# -- 1. every schedule form packs, inspects and exports ---------------------------------------

SCHEDULES = """
import datetime
import trio_coord
from trio_coord.airflow import export_dags

bundle = trio_coord.Bundle("schedules", version="1.0")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
FORMS = {
    "cron": "0 * * * *",
    "preset": "@daily",
    "once": "@once",
    "continuous": "@continuous",
    "interval": datetime.timedelta(hours=1),
    "none": None,
}
for name, schedule in FORMS.items():
    d = bundle.dag(name, schedule=schedule, start_date=START,
                   max_active_runs=1 if name == "continuous" else None)
    d.task(task_id="t")(lambda: None)

export_dags(bundle, globals())
"""

#: dag id -> (what ``inspect --json`` shows, what Airflow's DagBag reads back).
SCHEDULE_FORMS = {
    "cron": ("0 * * * *", "0 * * * *"),
    "preset": ("@daily", "@daily"),
    "once": ("@once", "@once"),
    "continuous": ("@continuous", "@continuous"),
    "interval": ("every 1:00:00", "1:00:00"),
    "none": (None, "None"),
}


@pytest.fixture(scope="module")
def schedules_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The bundle file with one DAG per schedule form, and its packed executable."""
    src = write_bundle(tmp_path_factory.mktemp("sched"), body=SCHEDULES, filename="schedules.py")
    out = src.parent / "schedules"
    proc = cli("pack", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return src, out


@pytest.mark.parametrize("dag_id", list(SCHEDULE_FORMS))
def test_every_schedule_form_packs_and_inspects(
    schedules_bundle: tuple[Path, Path], dag_id: str
) -> None:
    """Each schedule form (cron, preset, @once, @continuous, timedelta, None) packs and shows in inspect."""
    _, packed = schedules_bundle
    proc = cli("inspect", "--json", str(packed))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dags"][dag_id]["schedule"] == SCHEDULE_FORMS[dag_id][0]


@pytest.mark.slow
def test_every_schedule_form_exports_to_airflow(schedules_bundle: tuple[Path, Path]) -> None:
    """airflow-core 3.3.2's DagBag imports every schedule form without an import error."""
    src, _ = schedules_bundle
    out = dagbag(src)
    assert out["errors"] == {}
    assert {d: v["schedule"] for d, v in out["dags"].items()} == {
        d: airflow for d, (_, airflow) in SCHEDULE_FORMS.items()
    }


# -- 7. DAG-level values are checked at declaration, with the task-level validator -----------

_AWARE = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"retries": -1}, "retries must be a non-negative integer, got -1"),
        ({"retries": True}, "retries must be a non-negative integer"),
        ({"retry_delay": 5}, "retry_delay must be a non-negative datetime.timedelta"),
        ({"start_date": datetime.datetime(2026, 1, 1)}, "start_date must be a timezone-aware"),
        ({"max_active_runs": 0}, "max_active_runs must be a positive integer"),
        ({"schedule": "daily"}, "(did you mean '@daily'?)"),
        ({"schedule": "@dayly"}, "unknown schedule preset '@dayly' (did you mean '@daily'?)"),
        ({"schedule": "0 * *"}, "is not a cron expression"),
        ({"schedule": datetime.timedelta(0)}, "a timedelta schedule must be positive"),
        ({"schedule": 3600}, "schedule must be None, a cron string"),
        ({"schedule": "@continuous"}, "needs max_active_runs=1"),
        ({"retires": 2}, "unknown keyword 'retires' (did you mean 'retries'?)"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"tags": "etl"}, "tags must be a list of strings"),
    ],
)
def test_invalid_dag_level_values_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    """Each invalid DAG-level value raises UsageError naming the DAG and the rule."""
    bundle = trio_coord.Bundle("b")
    with pytest.raises(UsageError, match=re.escape(fragment)) as info:
        bundle.dag("d", **{"start_date": _AWARE, **kwargs})  # type: ignore[arg-type]
    assert str(info.value).startswith("DAG 'd': ")
    assert not bundle.dags


def test_task_and_dag_share_one_retries_rule() -> None:
    """retries=-1 on a task gets the same sentence as on its DAG (one validator)."""
    d = trio_coord.Bundle("b").dag("d")
    with pytest.raises(
        UsageError, match=re.escape("task d.t: retries must be a non-negative integer, got -1")
    ):
        d.task(task_id="t", retries=-1)(lambda: None)


def test_pack_points_at_the_users_line_for_an_invalid_dag(tmp_path: Path) -> None:
    """pack of a DAG with retries=-1: exit 1, the message, the user's file and line, no trio-coord frames."""
    src = write_bundle(
        tmp_path,
        body="import trio_coord\nbundle = trio_coord.Bundle('neg')\nd = bundle.dag('d', retries=-1)\n",
        filename="neg.py",
    )
    proc = cli("pack", str(src), "-o", str(tmp_path / "neg"))
    assert proc.returncode == 1
    assert (
        proc.stderr.startswith("trio-coord pack: error: bundle")
        and "DAG 'd': retries must be a non-negative integer, got -1" in proc.stderr
    )
    assert f'File "{src}", line 3, in <module>' in proc.stderr
    assert "trio_coord/" not in proc.stderr and "importlib" not in proc.stderr
    assert not (tmp_path / "neg").exists()


# -- 2. verify fails loudly on a root that cannot hold the bundle ------------------------------


def test_verify_refuses_a_root_that_does_not_exist(tmp_path: Path) -> None:
    """--root on a missing directory: exit 2 and one line saying what to give instead."""
    proc = cli("verify", "--root", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"trio-coord verify: error: --root {tmp_path / 'nowhere'} does not exist: give the "
        "directory listed in the workers' executables_root"
    ]


def test_verify_fails_on_an_empty_root(tmp_path: Path) -> None:
    """--root on a directory holding no bundle: exit 1, and the line says how to put one there."""
    (tmp_path / "README").write_text("not a bundle")
    proc = cli("verify", "--root", str(tmp_path))
    assert proc.returncode == 1
    assert (
        f"no bundles under {tmp_path}: pack one there with trio-coord pack FILE.py -o DIR/NAME"
        in proc.stdout.splitlines()
    )


@pytest.mark.parametrize("how", ["root", "file"])
def test_verify_fails_on_a_bundle_that_is_not_executable(tmp_path: Path, how: str) -> None:
    """A bundle without its execute bit (ignored by the coordinator): exit 1 and 'chmod +x'."""
    bundle = tmp_path / "hello"
    shutil.copyfile(packed_example(), bundle)
    bundle.chmod(0o644)
    proc = cli("verify", "--root", str(tmp_path)) if how == "root" else cli("verify", str(bundle))
    assert proc.returncode == 1
    assert re.search(
        rf"^\s*ignored: {re.escape(str(bundle))}: .*not executable by this user, so the "
        rf"coordinator skips it: run chmod \+x {re.escape(str(bundle))}$",
        proc.stdout,
        re.M,
    )


def test_verify_passes_a_root_with_a_usable_bundle(tmp_path: Path) -> None:
    """The control: one executable bundle in the root verifies with exit 0."""
    shutil.copy(packed_example(), tmp_path / "hello")
    proc = cli("verify", "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    assert f"usable: {tmp_path / 'hello'}: dags 'hello'" in proc.stdout


# -- 6. pack -o does not invent directories ------------------------------------------------------


def test_pack_refuses_an_output_directory_that_does_not_exist(tmp_path: Path) -> None:
    """pack -o into a missing directory: exit 1, one line naming it and --parents, nothing created."""
    out = tmp_path / "not" / "there" / "hello"
    proc = cli("pack", str(EXAMPLE), "-o", str(out))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"trio-coord pack: error: directory {out.parent} does not exist: create it, or pass --parents"
    ]
    assert not (tmp_path / "not").exists()


def test_pack_parents_creates_the_output_directory(tmp_path: Path) -> None:
    """pack -o with --parents creates the missing directories and writes the bundle."""
    out = tmp_path / "not" / "there" / "hello"
    proc = cli("pack", str(EXAMPLE), "-o", str(out), "--parents")
    assert proc.returncode == 0, proc.stderr
    assert os.access(out, os.X_OK)


# -- 3, 4. run takes a packed bundle, and refuses ids the bundle lacks before starting -----------


@pytest.mark.parametrize("kind", ["source", "packed"])
def test_run_runs_a_source_or_packed_bundle_with_the_same_flags(tmp_path: Path, kind: str) -> None:
    """trio-coord run on examples/hello_bundle.py and on its packed executable: same flags, same result."""
    bundle = str(EXAMPLE) if kind == "source" else str(packed_example())
    proc = cli(
        "run", bundle, "hello", "greet", "--var", "greeting_name=Ada", "--json", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["state"], summary["terminal"]) == ("success", "SucceedTask")
    assert summary["xcoms"]["return_value"]["greeting"] == "hello, Ada"
    assert "hello, Ada" in proc.stderr  # the task's log line


def test_run_refuses_a_packed_bundle_that_is_not_executable(tmp_path: Path) -> None:
    """A packed bundle without its execute bit: exit 2 and the chmod to run."""
    bundle = tmp_path / "hello"
    shutil.copyfile(packed_example(), bundle)
    bundle.chmod(0o644)
    proc = cli("run", str(bundle), "hello", "greet")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"trio-coord run: error: bundle {str(bundle)!r} is not executable: run chmod +x {bundle} "
        "(see trio-coord run --help)"
    ]


@pytest.mark.parametrize(
    ("dag_id", "task_id", "first_line"),
    [
        ("helo", "greet", "bundle {b} has no DAG 'helo' (did you mean 'hello'?)"),
        ("hello", "gret", "DAG 'hello' has no task 'gret' (did you mean 'greet'?)"),
        ("zzz", "greet", "bundle {b} has no DAG 'zzz';"),
    ],
)
@pytest.mark.parametrize("kind", ["source", "packed"])
def test_run_with_an_unknown_id_stops_before_starting(
    dag_id: str, task_id: str, first_line: str, kind: str
) -> None:
    """An unknown dag or task id: exit 2 before any task runs, with a suggestion and the bundle's ids."""
    bundle = str(EXAMPLE) if kind == "source" else str(packed_example())
    proc = cli("run", bundle, dag_id, task_id)
    assert proc.returncode == 2
    assert proc.stdout == ""  # no log line, no summary: nothing ran
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("trio-coord run: error: " + first_line.format(b=bundle))
    assert lines[0].endswith("the bundle holds (DAG: tasks):")
    assert lines[1:] == ["  hello: greet, shout, fail_sometimes"]


# -- 5. an error in the user's file: one traceback, the user's frames ----------------------------

BROKEN = {
    "syntax": (
        "import trio_coord\nbundle = trio_coord.Bundle('b')\nx = = 1\n",
        "SyntaxError: invalid syntax",
    ),
    "import": (
        "import trio_coord\nbundle = trio_coord.Bundle('b')\nimport no_such_package_xyz\n",
        "ModuleNotFoundError: No module named 'no_such_package_xyz'",
    ),
    "raise": (
        "import trio_coord\nbundle = trio_coord.Bundle('b')\n1 / 0\n",
        "ZeroDivisionError: division by zero",
    ),
}


def _broken(tmp_path: Path, kind: str) -> Path:
    return write_bundle(tmp_path, body=BROKEN[kind][0], filename="broken_bundle.py")


def _assert_one_user_traceback(stderr: str, path: Path, kind: str) -> None:
    assert stderr.count("Traceback (most recent call last)") <= 1
    assert len(re.findall("^" + re.escape(BROKEN[kind][1]), stderr, re.M)) == 1, stderr
    assert f'File "{path}", line 3' in stderr
    assert "trio_coord/" not in stderr and "<frozen" not in stderr
    assert "During handling" not in stderr and "direct cause" not in stderr


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize(
    ("command", "status"),
    [
        (("run", "{p}", "d", "t"), 4),
        (("pack", "{p}", "-o", "{d}/out"), 1),
        (("serve", "--bundle", "{p}", "--dump-bundle-spec"), 4),
    ],
)
def test_an_error_in_the_bundle_file_prints_one_traceback_of_the_users_code(
    tmp_path: Path, kind: str, command: tuple[str, ...], status: int
) -> None:
    """run, pack and serve print one traceback: the user's file and line, no trio-coord frames."""
    path = _broken(tmp_path, kind)
    proc = cli(*(a.format(p=path, d=tmp_path) for a in command))
    assert proc.returncode == status
    _assert_one_user_traceback(proc.stderr, path, kind)
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ("run", "{p}", "d", "t"),
        ("pack", "{p}", "-o", "{d}/out"),
        ("serve", "--bundle", "{p}", "--dump-bundle-spec"),
    ],
)
def test_debug_shows_trio_coords_own_frames(tmp_path: Path, command: tuple[str, ...]) -> None:
    """--debug adds trio-coord's loader frames to the traceback."""
    path = _broken(tmp_path, "import")
    proc = cli(*(a.format(p=path, d=tmp_path) for a in command), "--debug")
    assert "trio_coord/loader.py" in proc.stderr
    assert f'File "{path}", line 3' in proc.stderr


def test_a_packed_bundle_that_fails_to_import_shows_only_the_users_frame(tmp_path: Path) -> None:
    """run on a packed bundle whose module raises: one traceback, the module's line, no boot/loader frames."""
    bundle = packed(write_bundle(tmp_path, body=FRAGILE_BUNDLE, filename="fragile.py"), "fragile")
    proc = cli("run", str(bundle), "fragile", "t", env={"FRAGILE_BREAK": "1"})
    assert proc.returncode == 4
    assert proc.stderr.count("Traceback (most recent call last)") == 1
    assert re.search(r'File ".*!/lib/fragile\.py", line \d+, in <module>', proc.stderr)
    assert "!/_tc/" not in proc.stderr and "trio_coord/" not in proc.stderr


def test_run_of_a_broken_bundle_says_nothing_was_run(tmp_path: Path) -> None:
    """run ends with one line saying the import failed and no task ran (no summary on stdout)."""
    proc = cli("run", str(_broken(tmp_path, "raise")), "d", "t")
    assert (
        proc.stderr.splitlines()[-1]
        == "trio-coord run: the bundle failed to import; nothing was run"
    )
    assert textwrap.dedent(proc.stdout) == ""


# -- 11. a task's third-party dependency does not break the DAG processor's parse ---------------

THIRD_PARTY = EXAMPLE.parent / "third_party_bundle.py"


@pytest.fixture
def no_polars() -> None:
    """The example's dependency must be absent, as on a DAG processor without it."""
    import importlib.util

    if importlib.util.find_spec("polars") is not None:
        pytest.skip("polars is installed here; the test needs a Python without it")


@pytest.mark.slow
@pytest.mark.usefixtures("no_polars")
def test_guarded_third_party_imports_parse_where_the_package_is_missing(tmp_path: Path) -> None:
    """DagBag parses examples/third_party_bundle.py (import inside the task, guarded import) without polars."""
    copy = tmp_path / THIRD_PARTY.name
    shutil.copyfile(THIRD_PARTY, copy)
    out = dagbag(copy)
    assert out["errors"] == {}
    assert list(out["dags"]["report"]["tasks"]) == ["summarize"]


@pytest.mark.slow
@pytest.mark.usefixtures("no_polars")
def test_unguarded_third_party_import_breaks_the_parse(tmp_path: Path) -> None:
    """The same file with a plain module-level import fails in DagBag: what the docs warn about."""
    text = THIRD_PARTY.read_text()
    guarded = "try:  # the guarded form"
    assert guarded in text
    start = text.index(guarded)
    end = text.index("polars = None\n", start) + len("polars = None\n")
    broken = tmp_path / THIRD_PARTY.name
    broken.write_text(text[:start] + "import polars\n" + text[end:])
    out = dagbag(broken)
    assert out["dags"] == {}
    assert "No module named 'polars'" in "".join(out["errors"].values())
