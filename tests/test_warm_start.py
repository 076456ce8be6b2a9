"""Warm start: a packed bundle's try forked by a warm server, under the REAL 1.3.2 supervisor.

Every scenario runs twice through Airflow's own ``ExecutableCoordinator`` (the same
packed bundle, the same supervisor), once with a warm server for the bundle running and
once with ``TRIO_COORD_WARM=0``, and the two outcomes must be the same. The task reports
its parent pid, which shows which path ran: a warm child's parent is the warm server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow_harness.harness import DRIVER, Report, supervise
from bundle_helpers import bare_python, packed, run_cli, scratch, write_bundle

from trio_coord.errors import UsageError
from trio_coord.warm import wire
from trio_coord.warm.command import query
from trio_coord.warm.paths import bundle_digest, open_private_dir, socket_path
from trio_coord.warm.server import PeerRefused, check_peer

pytestmark = [pytest.mark.supervisor, pytest.mark.slow]

WARM_BUNDLE = """
import os
import sys

import trio
import trio_coord

bundle = trio_coord.Bundle("warmtest", version="1.0")
d = bundle.dag("warm")


def _mark():
    path = os.environ.get("WARM_TEST_MARK")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write("%d %d" % (os.getpid(), os.getppid()))
        os.rename(path + ".tmp", path)


@d.task
def ok():
    print("to stdout from the task", flush=True)
    print("to stderr from the task", file=sys.stderr, flush=True)
    mask = os.umask(0)
    os.umask(mask)
    return {
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "value": os.environ.get("WARM_TEST_VALUE"),
        "umask": mask,
        "sid_is_pid": os.getsid(0) == os.getpid(),
    }


@d.task
def fds_inherited():
    import subprocess

    out = subprocess.run(["ls", "/proc/self/fd"], capture_output=True, text=True, close_fds=False)
    return sorted(int(n) for n in out.stdout.split())


@d.task
def boom():
    raise RuntimeError("boom on purpose")


@d.task
async def slow():
    _mark()
    await trio.sleep(300)


@d.task
def hard_exit():
    sys.stdout.flush()
    os._exit(7)


@d.task
def killed():
    os.kill(os.getpid(), 9)
"""


@pytest.fixture(scope="module")
def bundle() -> Path:
    src = write_bundle(scratch("warm-src"), body=WARM_BUNDLE, filename="warmtest.py")
    return packed(src, "warmtest")


@pytest.fixture(scope="module")
def root(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("warm-exe")
    shutil.copy2(bundle, root / "warmtest")
    return root


def _env(warm_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "TRIO_COORD_PYTHON": str(bare_python()),
        "TRIO_COORD_CACHE_DIR": str(scratch("warm-cache")),
        "TRIO_COORD_WARM_DIR": str(warm_dir),
        **extra,
    }


def _short_dir() -> Path:
    """A warm directory with a short path (a Unix socket path has at most 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="tcw-"))


class Server:
    """A warm server started with ``trio-coord warm``, stopped (or killed) at the end."""

    def __init__(self, bundle: Path, warm_dir: Path, *extra: str) -> None:
        self.bundle = bundle
        self.dir = warm_dir
        proc = run_cli("warm", str(bundle), *extra, env=_env(warm_dir))
        assert proc.returncode == 0, proc.stderr
        self.socket = socket_path(str(warm_dir), bundle_digest(str(bundle)))
        info = query(self.socket)
        assert info is not None, proc.stdout
        self.pid = int(info["pid"])

    def status(self) -> dict[str, Any] | None:
        return query(self.socket)

    def close(self) -> None:
        run_cli("warm", "--stop", env=_env(self.dir))
        _wait_gone(self.pid)


def _wait_gone(pid: int, timeout: float = 60) -> bool:
    """Wait (bounded) until ``pid`` has exited; True when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[Server]:
    srv = Server(bundle, _short_dir())
    yield srv
    srv.close()
    shutil.rmtree(srv.dir, ignore_errors=True)


def _run(task_id: str, root: Path, warm_dir: Path, *, warm: bool, **scenario: Any) -> Report:
    coordinator = {
        "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
        "kwargs": {"executables_root": [str(root)], "task_startup_timeout": 10},
    }
    env = _env(warm_dir, TRIO_COORD_WARM="1" if warm else "0", **scenario.pop("env", {}))
    return supervise(task_id, dag_id="warm", coordinator=coordinator, env=env, **scenario)


def _outcome(r: Report) -> tuple[Any, ...]:
    """What the supervisor made of the try, without times, pids or record order."""
    events = sorted(
        (str(rec.get("level")), str(rec.get("logger")), str(rec.get("event")))
        for rec in r.task_log
        if rec.get("logger") != "supervisor"
    )
    states = [p.get("state") for p in r.state_patches]
    return (r.exit_code, r.final_state, r.raised, states, events)


def _both(
    task_id: str, root: Path, server: Server, tmp_path: Path, **scenario: Any
) -> tuple[Report, Report]:
    """Run the scenario warm, then cold; a mark file per run for the ``*_on_file`` keys."""
    out = []
    for warm in (True, False):
        scen = {k: v for k, v in scenario.items() if k != "env"}
        env = dict(scenario.get("env", {}))
        mark = tmp_path / f"mark-{'warm' if warm else 'cold'}"
        env["WARM_TEST_MARK"] = str(mark)
        for key in ("sigterm_on_file", "close_comm_on_file"):
            if key in scen:
                scen[key] = str(mark)
        out.append(_run(task_id, root, server.dir, warm=warm, env=env, **scen))
    return out[0], out[1]


def test_success_with_output_is_the_same_warm_and_cold(
    root: Path, server: Server, tmp_path: Path
) -> None:
    """A task printing on stdout and stderr succeeds alike; warm, it runs in a child of the server with the launcher's cwd, umask and environment."""
    before = server.status()
    assert before is not None
    warm, cold = _both("ok", root, server, tmp_path, env={"WARM_TEST_VALUE": "from-worker"})
    assert _outcome(warm) == _outcome(cold), (warm.log_text, cold.log_text)
    assert (warm.exit_code, warm.final_state) == (0, "success"), warm.stderr[-3000:]
    texts = " ".join(warm.events())
    assert "to stdout from the task" in texts and "to stderr from the task" in texts
    got_warm = warm.xcoms["warm/r1/ok/return_value"]
    got_cold = cold.xcoms["warm/r1/ok/return_value"]
    assert got_warm["ppid"] == server.pid and got_cold["ppid"] != server.pid
    for key in ("cwd", "value", "umask"):
        assert got_warm[key] == got_cold[key], key
    assert got_warm["value"] == "from-worker"
    assert got_warm["sid_is_pid"]  # its own session, out of the server's
    after = server.status()
    assert after is not None and after["served"] == before["served"] + 1


@pytest.mark.parametrize(
    ("task_id", "scenario", "expected"),
    [
        ("boom", {}, (0, "failed")),
        ("boom", {"should_retry": True}, (0, "up_for_retry")),
        ("hard_exit", {}, (7, None)),
        ("killed", {}, (-9, None)),
        ("slow", {"sigterm_on_file": True}, (None, None)),
        ("slow", {"close_comm_on_file": True}, (None, None)),
    ],
    ids=["failure", "retry", "exit-7", "sigkill-itself", "sigterm", "comm-closed"],
)
def test_outcomes_are_the_same_warm_and_cold(
    root: Path,
    server: Server,
    tmp_path: Path,
    task_id: str,
    scenario: dict[str, Any],
    expected: tuple[Any, Any],
) -> None:
    """Failure, retry, a hard exit code, death by signal, SIGTERM and a closed comm socket end exactly as a cold start does."""
    warm, cold = _both(task_id, root, server, tmp_path, **scenario)
    assert _outcome(warm) == _outcome(cold), (warm.log_text, cold.log_text)
    code, state = expected
    if code is not None:
        assert warm.exit_code == code, warm.stderr[-3000:]
    if state is not None:
        assert warm.final_state == state
    if task_id == "slow":
        # Warm really ran (the mark holds the pid of the child, whose parent is the server).
        assert (tmp_path / "mark-warm").exists()
        if "sigterm_on_file" in scenario:
            assert "received SIGTERM" in warm.log_text


def _driver_killed_midway(root: Path, warm_dir: Path, mark: Path, *, warm: bool) -> tuple[int, int]:
    """Run the slow task and SIGKILL the supervisor once it runs; return the task's pid."""
    coordinator = {
        "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
        "kwargs": {"executables_root": [str(root)], "task_startup_timeout": 10},
    }
    with tempfile.TemporaryDirectory(prefix="tcw-sup-") as work:
        scenario = {
            "dag_id": "warm",
            "task_id": "slow",
            "workdir": work,
            "coordinator": coordinator,
            "sigkill_supervisor_on_file": str(mark),
            "env": _env(warm_dir, TRIO_COORD_WARM="1" if warm else "0", WARM_TEST_MARK=str(mark)),
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        proc = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(scenario)],
            capture_output=True,
            timeout=120,
            env=env,
        )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    pid, ppid = map(int, mark.read_text().split())
    return pid, ppid


def _launchers(bundle_file: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if str(bundle_file) in cmd and wire.WARM_SERVER_FLAG not in cmd:
            found.append(p)
    return found


def test_supervisor_gone_ends_the_try_warm_and_cold(
    root: Path, server: Server, tmp_path: Path
) -> None:
    """The supervisor SIGKILLed mid-task: the task process and its launcher both exit, warm as cold."""
    for warm in (True, False):
        mark = tmp_path / f"gone-{warm}"
        pid, ppid = _driver_killed_midway(root, server.dir, mark, warm=warm)
        assert (ppid == server.pid) == warm
        assert _wait_gone(pid), f"the task process outlived its supervisor (warm={warm})"
        deadline = time.monotonic() + 60
        while _launchers(root / "warmtest") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _launchers(root / "warmtest") == []


class _FakeSupervisor:
    """Two listening sockets that accept and then say nothing (the runtime waits)."""

    def __init__(self) -> None:
        self.servers = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]

    def args(self) -> list[str]:
        comm, logs = (s.getsockname()[1] for s in self.servers)
        return [f"--comm=127.0.0.1:{comm}", f"--logs=127.0.0.1:{logs}"]

    def close(self) -> None:
        for s in self.servers:
            s.close()


def test_sigkilled_launcher_takes_its_warm_child_along(bundle: Path) -> None:
    """When the launcher is SIGKILLed (the supervisor's last resort), the forked child dies too, not just orphaned."""
    srv = Server(bundle, _short_dir())
    fake = _FakeSupervisor()
    try:
        launcher = subprocess.Popen(
            [str(bundle), *fake.args()],
            env={**os.environ, **_env(srv.dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while not children and time.monotonic() < deadline:
            children = psutil.Process(srv.pid).children()
            time.sleep(0.02)
        assert len(children) == 1, "the warm server never forked a child"
        launcher.kill()
        launcher.wait()
        assert _wait_gone(children[0].pid), "the child outlived its launcher"
        deadline = time.monotonic() + 60
        while (srv.status() or {}).get("running") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (srv.status() or {}).get("running") == 0
    finally:
        fake.close()
        srv.close()


def test_killed_server_falls_back_to_a_cold_start(bundle: Path, root: Path, tmp_path: Path) -> None:
    """A warm server killed between two tasks: the second still succeeds, cold, and the stale socket is cleaned up."""
    srv = Server(bundle, _short_dir())
    first = _run("ok", root, srv.dir, warm=True)
    assert (first.exit_code, first.final_state) == (0, "success"), first.stderr[-3000:]
    assert first.xcoms["warm/r1/ok/return_value"]["ppid"] == srv.pid
    os.kill(srv.pid, signal.SIGKILL)
    assert _wait_gone(srv.pid)
    assert os.path.exists(srv.socket)  # left behind by the killed server
    debug = {"env": {"AIRFLOW__LOGGING__NAMESPACE_LEVELS": "trio_coord.runtime=DEBUG"}}
    second = _run("ok", root, srv.dir, warm=True, **debug)
    assert (second.exit_code, second.final_state) == (0, "success"), second.stderr[-3000:]
    assert second.xcoms["warm/r1/ok/return_value"]["ppid"] != srv.pid
    (why,) = [r for r in second.task_log if "warm start not used" in str(r.get("event"))]
    assert why["level"] == "debug" and "Connection refused" in why["event"], why
    noise = [r for r in second.task_log if r.get("level") in ("warning", "error", "critical")]
    assert [r["event"] for r in noise] == ["to stderr from the task"]  # the task's own line
    listing = run_cli("warm", "--status", env=_env(srv.dir))
    assert listing.returncode == 0 and "no warm servers" in listing.stdout
    assert not os.path.exists(srv.socket)  # --status removed the stale socket
    shutil.rmtree(srv.dir, ignore_errors=True)


def test_private_directory_rules(bundle: Path, root: Path) -> None:
    """A warm directory others can write is refused by trio-coord warm and ignored by the launcher (the task starts cold)."""
    srv = Server(bundle, _short_dir())
    try:
        srv.dir.chmod(0o777)
        r = _run("ok", root, srv.dir, warm=True)
        assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
        assert r.xcoms["warm/r1/ok/return_value"]["ppid"] != srv.pid
        again = run_cli("warm", str(bundle), env=_env(srv.dir))
        assert again.returncode == 2
        assert "writable by group or others" in again.stderr and "Fix: chmod 700" in again.stderr
        with pytest.raises(UsageError, match="writable by group or others"):
            open_private_dir(str(srv.dir))
    finally:
        srv.dir.chmod(0o700)
        srv.close()
        shutil.rmtree(srv.dir, ignore_errors=True)


def test_foreign_owned_directory_is_refused(tmp_path: Path) -> None:
    """A warm directory owned by another uid is refused with the reason."""
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    os.chown(foreign, 12345, 12345)
    with pytest.raises(UsageError, match="owned by uid 12345"):
        open_private_dir(str(foreign))


def _send_run(path: str, digest: str) -> bytes:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fds = [0, 1, 2, os.open(".", os.O_RDONLY), a.fileno(), a.fileno(), b.fileno()]
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
        c.settimeout(30)
        c.connect(path)
        c.sendmsg(
            [wire.encode_run(digest, 0o22, [b"x", b"--comm=127.0.0.1:1"], [(b"A", b"1")])],
            [
                (
                    socket.SOL_SOCKET,
                    socket.SCM_RIGHTS,
                    b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds),
                )
            ],
        )
        os.close(fds[3])
        b.close()
        reply = c.recv(4096)
        # Refused: the server kept none of our descriptors, so our pair sees end-of-file.
        a.settimeout(30)
        assert a.recv(64) == b""
    a.close()
    return reply


def test_request_for_another_bundle_hash_is_refused(server: Server) -> None:
    """The server forks nothing for a request naming another bundle's hash (or a malformed one), and says why."""
    other = "0" * 64
    reply = _send_run(server.socket, other)
    assert reply.startswith(b"no this server serves bundle sha256 "), reply
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
        c.settimeout(30)
        c.connect(server.socket)
        c.send(b"TCW1 run\0garbage")
        assert c.recv(4096).startswith(b"no ")
    status = server.status()
    assert status is not None and status["running"] == 0


def test_peer_check_refuses_another_uid() -> None:
    """check_peer accepts a peer of this uid and refuses one of any other uid (SO_PEERCRED)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        assert check_peer(a) == os.getpid()
        with pytest.raises(PeerRefused, match=f"runs as uid {os.geteuid()}, not 4242"):
            check_peer(a, 4242)


def test_the_server_flag_is_spelled_alike() -> None:
    """The packed runner recognises the flag trio-coord warm passes."""
    from trio_coord.bundle import runner

    assert runner.WARM_SERVER_FLAG == wire.WARM_SERVER_FLAG


def test_wire_round_trip_and_rejects() -> None:
    """A run request decodes to what was encoded; junk is a WireError, not a crash."""
    data = wire.encode_run("ab" * 32, 0o27, [b"/b", b"--comm=h:1"], [(b"K", b"v=w"), (b"E", b"")])
    req = wire.parse_request(data)
    assert req == wire.RunRequest(
        "ab" * 32, 0o27, (b"/b", b"--comm=h:1"), ((b"K", b"v=w"), (b"E", b""))
    )
    assert wire.parse_request(b"TCW1 status") == "status"
    for junk in (b"", b"TCW1 run", b"TCW1 run\0h\0x\01\0a", b"TCW1 run\0h\018\05\0a", b"nope"):
        with pytest.raises(wire.WireError):
            wire.parse_request(junk)


def test_idle_server_exits_and_removes_its_socket(bundle: Path) -> None:
    """A server with a short idle timeout ends by itself and leaves no socket behind."""
    srv = Server(bundle, _short_dir(), "--idle-timeout", "0.5")
    assert _wait_gone(srv.pid)
    assert not os.path.exists(srv.socket)
    shutil.rmtree(srv.dir, ignore_errors=True)


def test_second_start_reports_the_running_server(server: Server) -> None:
    """trio-coord warm for a bundle whose server runs says so and starts nothing."""
    proc = run_cli("warm", str(server.bundle), env=_env(server.dir))
    assert proc.returncode == 0 and f"pid {server.pid}" in proc.stdout
    listing = run_cli("warm", "--status", env=_env(server.dir))
    assert "warmtest" in listing.stdout and str(server.pid) in listing.stdout


def test_directory_mode_check_of_the_launcher_matches(tmp_path: Path) -> None:
    """The socket directory trio-coord warm creates is 0700 and the launcher's own check accepts it."""
    d = open_private_dir(str(tmp_path / "w"))
    st = os.lstat(d)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_a_full_server_sends_the_next_try_cold(bundle: Path, root: Path) -> None:
    """With --max-children 1 and one try running, the next try is refused by the server and starts cold, successfully."""
    srv = Server(bundle, _short_dir(), "--max-children", "1")
    fake = _FakeSupervisor()
    try:
        busy = subprocess.Popen(
            [str(bundle), *fake.args()],
            env={**os.environ, **_env(srv.dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while (srv.status() or {}).get("running") != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        r = _run("ok", root, srv.dir, warm=True)
        assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
        assert r.xcoms["warm/r1/ok/return_value"]["ppid"] != srv.pid
        status = srv.status()
        assert status is not None and status["refused"] == 1
        busy.kill()
        busy.wait()
    finally:
        fake.close()
        srv.close()


def test_task_subprocesses_do_not_inherit_the_sockets(
    root: Path, server: Server, tmp_path: Path
) -> None:
    """A task's own child process sees only stdin/stdout/stderr open, warm as cold (the supervisor's sockets are close-on-exec)."""
    warm, cold = _both("fds_inherited", root, server, tmp_path)
    got = [r.xcoms["warm/r1/fds_inherited/return_value"] for r in (warm, cold)]
    assert got[0] == got[1], got
    assert got[0][:3] == [0, 1, 2] and len(got[0]) <= 4  # plus ls's own directory handle


def test_metadata_modes_never_go_warm(server: Server) -> None:
    """--bundle-metadata with a warm server running is answered by the bundle itself, as always."""
    from bundle_helpers import run_bundle

    proc = run_bundle(server.bundle, "--bundle-metadata", env=_env(server.dir))
    assert proc.returncode == 0 and json.loads(proc.stdout) == {
        "Name": "warmtest",
        "Version": "1.0",
    }


def test_adopted_sockets_must_lead_to_the_named_supervisor() -> None:
    """The runtime adopts the launcher's sockets only when they are connected to the --comm/--logs addresses; otherwise it closes them and dials."""
    from trio_coord.config import Address
    from trio_coord.runtime.dial import CONNECTED_FDS_ENV, adopt_connected

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        fds = [s.detach() for s in socks]
        environ = {CONNECTED_FDS_ENV: f"{fds[0]},{fds[1]}"}
        wrong = Address("127.0.0.1", port + 1 if port < 65535 else port - 1)
        assert adopt_connected(wrong, wrong, environ) is None
        assert CONNECTED_FDS_ENV not in environ
        for fd in fds:  # closed, not leaked
            with pytest.raises(OSError):
                os.fstat(fd)
        assert adopt_connected(wrong, wrong, {}) is None


def test_stop_removes_the_socket_at_once_and_lets_running_tries_finish(bundle: Path) -> None:
    """trio-coord warm --stop: the socket goes at once, the running try's child is not killed, and the server exits after it."""
    srv = Server(bundle, _short_dir())
    fake = _FakeSupervisor()
    try:
        busy = subprocess.Popen(
            [str(bundle), *fake.args()],
            env={**os.environ, **_env(srv.dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while not children and time.monotonic() < deadline:
            children = psutil.Process(srv.pid).children()
            time.sleep(0.02)
        assert len(children) == 1
        stop = run_cli("warm", "--stop", env=_env(srv.dir))
        assert stop.returncode == 0 and "stopping" in stop.stdout
        assert not os.path.exists(srv.socket)
        assert children[0].is_running() and psutil.Process(srv.pid).is_running()
        busy.kill()  # the try ends (here: its launcher is killed, which takes the child along)
        busy.wait()
        assert _wait_gone(children[0].pid) and _wait_gone(srv.pid)
    finally:
        fake.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(srv.pid, signal.SIGKILL)
        shutil.rmtree(srv.dir, ignore_errors=True)


def test_warm_refuses_a_bundle_that_does_not_import_or_is_no_bundle(tmp_path: Path) -> None:
    """trio-coord warm fails with the bundle's own import error (exit 4), or names a file that is not a packed bundle (exit 2); no server stays behind."""
    from bundle_helpers import FRAGILE_BUNDLE

    fragile = packed(
        write_bundle(scratch("warm-fragile-src"), body=FRAGILE_BUNDLE, filename="fragile.py"),
        "warm-fragile",
    )
    warm_dir = _short_dir()
    try:
        proc = run_cli("warm", str(fragile), env={**_env(warm_dir), "FRAGILE_BREAK": "1"})
        assert proc.returncode == 4, proc.stderr
        assert "fragile refuses to import today" in proc.stderr
        assert list(warm_dir.glob("*.sock")) == []
        text = tmp_path / "not-a-bundle"
        text.write_text("hello\n")
        proc = run_cli("warm", str(text), env=_env(warm_dir))
        assert proc.returncode == 2 and "is not a packed bundle" in proc.stderr, proc.stderr
    finally:
        shutil.rmtree(warm_dir, ignore_errors=True)
