"""The bundle-mode invocation matrix (bundle.md §6.3), run as real processes.

Every row runs twice: as ``trio-coord serve --bundle examples/hello_bundle.py ...`` and
as the packed example bundle executed directly, because both share one argument handler.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from bundle_helpers import (
    EXAMPLE,
    FRAGILE_BUNDLE,
    packed,
    packed_example,
    run_bundle,
    run_cli,
    scratch,
    write_bundle,
)

from trio_coord.bundle import manifest

SPEC = manifest.spec_document({"hello": ["greet", "shout", "fail_sometimes"]})
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=["serve", "packed"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run the bundle CLI of the example, through ``serve`` or as a packed executable."""
    if request.param == "serve":
        return lambda *args, env=None: run_cli("serve", "--bundle", str(EXAMPLE), *args, env=env)
    bundle = packed_example()
    return lambda *args, env=None: run_bundle(bundle, *args, env=env)


def _usage_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == f"error: {message}"
    assert lines[1].startswith("usage: ") and "Traceback" not in proc.stderr


def test_bundle_metadata_prints_name_and_version(run: Run) -> None:
    """--bundle-metadata: exit 0, {"Name", "Version"} (bundle.md §6.2) as 4-space JSON, nothing else on stdout."""
    proc = run("--bundle-metadata")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{\n    "Name": "hello",\n    "Version": "1.0.0"\n}\n'


def test_dump_bundle_spec_prints_the_live_spec(run: Run) -> None:
    """--dump-bundle-spec: exit 0, the §6.2 document of the registry."""
    proc = run("--dump-bundle-spec")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == manifest.render_json(SPEC)


@pytest.mark.parametrize(
    "args", [("--airflow-metadata",), ("--airflow-metadata", "--format", "yaml")]
)
def test_airflow_metadata_defaults_to_yaml(run: Run, args: tuple[str, ...]) -> None:
    """--airflow-metadata prints the same document as YAML that yaml.safe_load reads with string ids."""
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == manifest.render_yaml(SPEC)
    assert yaml.safe_load(proc.stdout)["sdk"]["supervisor_schema_version"] == "2026-06-16"


@pytest.mark.parametrize(
    "args", [("--airflow-metadata", "--format=json"), ("--format", "json", "--airflow-metadata")]
)
def test_airflow_metadata_json(run: Run, args: tuple[str, ...]) -> None:
    """--airflow-metadata --format json (either spelling, any order) prints the JSON document."""
    proc = run(*args)
    assert (proc.returncode, proc.stdout) == (0, manifest.render_json(SPEC)), proc.stderr


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        ((), "--comm and --logs are required for bundle execution"),
        (("--comm=127.0.0.1:1",), "--comm and --logs must be supplied together"),
        (("--logs", "127.0.0.1:1"), "--comm and --logs must be supplied together"),
        (("--bogus",), "unknown flag: --bogus"),
        (("--bogus=1", "--bundle-metadata"), "unknown flag: --bogus"),
        (("stray",), "unexpected argument: stray"),
        (("--format", "json"), "--format is only valid with --airflow-metadata"),
        (
            ("--airflow-metadata", "--format", "xml"),
            "unsupported --airflow-metadata format 'xml' (yaml or json)",
        ),
        (("--comm",), "flag needs a value: --comm"),
        (("--bundle-metadata=yes",), "flag --bundle-metadata takes no value"),
    ],
)
def test_usage_errors_exit_2_with_usage_on_stderr(
    run: Run, args: tuple[str, ...], first_line: str
) -> None:
    """Each malformed invocation: exit 2, "error: ..." then the usage on stderr, stdout empty."""
    _usage_error(run(*args), first_line)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_usage_on_stdout(run: Run, flag: str) -> None:
    """-h/--help: exit 0, usage and options on stdout, even next to other flags."""
    proc = run("--comm=1", flag)
    assert (
        proc.returncode == 0
        and proc.stdout.startswith("usage: ")
        and "--dump-bundle-spec" in proc.stdout
    )


def test_metadata_modes_win_over_coordinator_flags_and_each_other(run: Run) -> None:
    """Precedence: --bundle-metadata > --dump-bundle-spec > coordinator mode; no socket is dialled."""
    proc = run(
        "--comm=127.0.0.1:9", "--logs=127.0.0.1:9", "--dump-bundle-spec", "--bundle-metadata"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"Name": "hello", "Version": "1.0.0"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--comm=nocolon", "--logs=127.0.0.1:5"),
            "error: --comm expects HOST:PORT, got 'nocolon'",
        ),
        (
            ("--comm=127.0.0.1:5", "--logs=127.0.0.1:99999"),
            "error: --logs: port '99999' is not a number from 1 to 65535",
        ),
    ],
)
def test_bad_address_is_one_line_exit_2(run: Run, args: tuple[str, ...], message: str) -> None:
    """A malformed address: exit 2 and exactly one line on stderr, no traceback."""
    proc = run(*args)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, message + "\n", "")


def test_bad_environment_override_is_one_line_exit_2(run: Run) -> None:
    """A malformed TRIO_COORD_* setting in coordinator mode is a usage error too, not a traceback."""
    proc = run("--comm=127.0.0.1:5", "--logs=127.0.0.1:6", env={"TRIO_COORD_DIAL_TIMEOUT": "soon"})
    assert (proc.returncode, proc.stderr.count("\n")) == (2, 1), proc.stderr
    assert proc.stderr.startswith("error: TRIO_COORD_DIAL_TIMEOUT")


def _fragile() -> Path:
    return write_bundle(scratch("fragile-src"), body=FRAGILE_BUNDLE, filename="fragile.py")


@pytest.mark.parametrize("mode", ["--dump-bundle-spec", "--airflow-metadata"])
def test_import_failure_in_metadata_modes_exits_4_with_traceback(mode: str) -> None:
    """serve: a bundle whose import raises gives exit 4, the user's traceback and one error line."""
    proc = run_cli("serve", "--bundle", f"{_fragile()}:bundle", mode, env={"FRAGILE_BREAK": "1"})
    assert proc.returncode == 4 and proc.stdout == ""
    assert "Traceback" in proc.stderr and "fragile refuses to import today" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: importing bundle")


def test_packed_import_failure_exits_4_and_shows_payload_source_lines() -> None:
    """Packed: exit 4; the traceback names <bundle>!/lib/fragile.py with its source line."""
    bundle = packed(_fragile(), "fragile")
    proc = run_bundle(bundle, "--dump-bundle-spec", env={"FRAGILE_BREAK": "1"})
    assert proc.returncode == 4 and proc.stdout == ""
    assert f'File "{bundle}!/lib/fragile.py", line 13' in proc.stderr
    assert 'raise RuntimeError("fragile refuses to import today")' in proc.stderr
    # Identity comes from bundle.json: no import, so no failure.
    assert run_bundle(bundle, "--bundle-metadata", env={"FRAGILE_BREAK": "1"}).returncode == 0


def test_serve_needs_a_bundle() -> None:
    """serve without --bundle or $TRIO_COORD_BUNDLE: one usage line, exit 2."""
    proc = run_cli("serve", "--dump-bundle-spec", env={"TRIO_COORD_BUNDLE": ""})
    assert proc.returncode == 2
    assert (
        proc.stderr
        == "error: no bundle given: pass --bundle MODULE:ATTR or set TRIO_COORD_BUNDLE\n"
    )


def test_serve_reads_the_bundle_from_the_environment() -> None:
    """serve takes $TRIO_COORD_BUNDLE when --bundle is absent."""
    proc = run_cli("serve", "--bundle-metadata", env={"TRIO_COORD_BUNDLE": str(EXAMPLE)})
    assert proc.returncode == 0 and json.loads(proc.stdout)["Name"] == "hello"


def test_packed_bundle_has_no_bundle_flag() -> None:
    """A packed bundle knows its entry: --bundle is an unknown flag there."""
    _usage_error(run_bundle(packed_example(), "--bundle", "x.py"), "unknown flag: --bundle")


@pytest.mark.parametrize("command", ["serve", "pack", "inspect", "verify", ""])
def test_help_works_for_every_command(command: str) -> None:
    """trio-coord [COMMAND] --help exits 0 with a usage line on stdout."""
    proc = run_cli(*([command] if command else []), "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: trio-coord"), proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "a command is required"),
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("pack",), "the following arguments are required: BUNDLE_FILE"),
        (("inspect", "--json", "--source", "x"), "not allowed with argument"),
        (("verify",), "trio-coord verify: error: give at least one BUNDLE or --root DIR"),
    ],
)
def test_command_usage_errors_exit_2_without_traceback(args: tuple[str, ...], needle: str) -> None:
    """Command-line mistakes of trio-coord itself: exit 2, the reason on stderr, never a traceback."""
    proc = run_cli(*args)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_version() -> None:
    """trio-coord --version prints the package version."""
    from trio_coord import __version__

    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"trio-coord {__version__}\n")


def test_python_m_and_console_script_agree() -> None:
    """The installed trio-coord script is the same entry point as python -m trio_coord."""
    script = Path(sys.executable).parent / "trio-coord"
    if not script.exists():
        pytest.skip("trio-coord is not installed as a console script here")
    proc = subprocess.run(
        [str(script), "serve", "--bundle", str(EXAMPLE), "--bundle-metadata"],
        capture_output=True,
        text=True,
    )
    assert proc.stdout == run_cli("serve", "--bundle", str(EXAMPLE), "--bundle-metadata").stdout
