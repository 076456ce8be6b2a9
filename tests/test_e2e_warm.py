"""The e2e run's warm-start checks, without Airflow: reading ``trio-coord warm --status --json``,
deciding whether the tries went warm, and the perf bundle's cold twin.

The e2e run itself (``nox -s e2e``) is the integration test; these pin the logic that decides
whether that run fails, including against the status a real warm server prints.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pytest
from bundle_helpers import packed, run_cli, scratch

# The e2e harness is a directory of the repository, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e import perf
from e2e.warm import WarmError, WarmServer, parse_status, served_problems

pytestmark = pytest.mark.timeout(180)


def _line(**over: object) -> str:
    row: dict[str, object] = {
        "name": "e2e",
        "version": "1.0.0",
        "sha256": "ab" * 32,
        "pid": 4242,
        "uptime": 12.5,
        "served": 3,
        "running": 0,
        "bundle": "/x/executable-bundles/e2e",
        "socket": "/x/w/abab.sock",
    }
    row.update(over)
    return json.dumps(row)


def test_status_lines_are_read_by_bundle() -> None:
    text = _line() + "\n\n" + _line(bundle="/x/hello", pid=7, served=0, stopping=True) + "\n"
    got = parse_status(text)
    assert got["/x/executable-bundles/e2e"] == WarmServer(
        "/x/executable-bundles/e2e", "ab" * 32, 4242, 3, 0, False
    )
    assert got["/x/hello"].stopping and got["/x/hello"].served == 0
    assert parse_status("") == {}


@pytest.mark.parametrize(
    "text",
    [
        "no warm servers in /tmp/w",  # the human form, not --json
        _line(served="3"),
        _line(served=True),
        _line(pid=None),
        json.dumps({"bundle": "/x/e2e"}),
        "[1, 2]",
        _line() + "\n" + _line(pid=5),
    ],
)
def test_anything_else_is_refused_with_the_line(text: str) -> None:
    with pytest.raises(WarmError, match="warm --status"):
        parse_status(text)


def _server(bundle: str = "/r/e2e", pid: int = 10, served: int = 0) -> WarmServer:
    return WarmServer(bundle, "cd" * 32, pid, served, 0)


def test_served_check_passes_only_when_every_named_server_served_enough() -> None:
    started = {"e2e": _server(), "hello": _server("/r/hello", 11)}
    now = {"/r/e2e": _server(served=5), "/r/hello": _server("/r/hello", 11, served=1)}
    assert served_problems(started, now, {"e2e": 5, "hello": 1}) == []
    # A server that served none: its bundle's tries all went cold, silently.
    cold = {**now, "/r/hello": _server("/r/hello", 11, served=0)}
    assert served_problems(started, cold, {"e2e": 1, "hello": 1}) == [
        "the warm server of hello served 0 tries, expected at least 1: the others started cold"
    ]
    # Fewer than the runs that should have been warm.
    assert "served 5 tries, expected at least 6" in served_problems(started, now, {"e2e": 6})[0]


def test_served_check_names_a_server_gone_replaced_or_never_started() -> None:
    started = {"e2e": _server()}
    assert served_problems(started, {}, {"e2e": 1}) == ["the warm server of e2e (pid 10) is gone"]
    replaced = {"/r/e2e": _server(pid=99, served=8)}
    assert served_problems(started, replaced, {"e2e": 1}) == [
        "the warm server of e2e was pid 10, now pid 99"
    ]
    assert served_problems(started, {}, {"perf": 1}) == ["no warm server was started for perf"]


def test_the_cold_twin_differs_only_in_its_two_names() -> None:
    warm = perf.BUNDLE_SOURCE.read_text()
    cold = perf.cold_variant(warm)
    assert f'"{perf.COLD_DAG}"' in cold and f'"{perf.WARM_DAG}"' not in cold
    assert '"perf-noop-cold"' in cold and '"perf-noop-warm"' not in cold
    changed = [(a, b) for a, b in zip(warm.splitlines(), cold.splitlines(), strict=True) if a != b]
    assert len(changed) == 2, changed
    compile(cold, "perf_noop_cold.py", "exec")


def test_the_cold_twin_refuses_an_edited_source() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        perf.cold_variant('bundle.dag("something_else")')
    twice = perf.BUNDLE_SOURCE.read_text() + '\n# "perf_noop_warm"\n'
    with pytest.raises(ValueError, match="exactly once"):
        perf.cold_variant(twice)


def test_runtimes_leave_the_warm_dag_out_without_servers() -> None:
    assert perf.runtimes(warm=True) == {
        perf.NATIVE: perf.NATIVE_DAG,
        perf.COLD: perf.COLD_DAG,
        perf.WARM: perf.WARM_DAG,
    }
    assert perf.WARM not in perf.runtimes(warm=False)


def test_table_gives_the_ratio_of_medians_to_native() -> None:
    def samples(*totals: float) -> list[perf.Sample]:
        return [perf.Sample(1.0, t - 1.0) for t in totals]

    native, warm = samples(2.0, 2.2, 9.0), samples(1.0, 1.1, 1.2)
    assert statistics.median(s.queued_to_end for s in native) == pytest.approx(2.2)
    text = perf.table({"one at a time": {perf.NATIVE: native, perf.WARM: warm}})
    rows = text.splitlines()[2:]
    assert "| 1.00x |" in rows[0] and "| 0.50x |" in rows[1]
    assert perf.ratio(warm, None) == "-"


def test_status_of_a_real_warm_server_reads_as_one_server_that_served_nothing() -> None:
    """The field names the e2e run relies on are those ``trio-coord warm --status --json`` prints."""
    bundle = packed(perf.BUNDLE_SOURCE, "perf-noop-warm")
    warm_dir = Path(tempfile.mkdtemp(prefix="tcw-"))
    env = {
        "TRIO_COORD_WARM_DIR": str(warm_dir),
        "TRIO_COORD_CACHE_DIR": str(scratch("e2e-warm-cache")),
    }
    started = run_cli("warm", str(bundle), env=env)
    try:
        assert started.returncode == 0, started.stderr
        status = run_cli("warm", "--status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        servers = parse_status(status.stdout)
        assert list(servers) == [str(bundle)]
        server = servers[str(bundle)]
        assert (server.served, server.running, server.stopping) == (0, 0, False)
        assert served_problems({"perf": server}, servers, {"perf": 0}) == []
        assert served_problems({"perf": server}, servers, {"perf": 1}) != []
    finally:
        run_cli("warm", "--stop", env=env)
    gone = run_cli("warm", "--status", "--json", env=env)
    assert parse_status(gone.stdout) == {}
    shutil.rmtree(warm_dir, ignore_errors=True)
