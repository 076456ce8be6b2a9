"""A throw-away Airflow 3.3.2 deployment, one process per component, as docs/deployment.md sets it up.

``Cluster`` makes a temporary directory holding ``AIRFLOW_HOME`` (SQLite), the DAG folder
and the ``executables_root``, migrates the database, and starts the scheduler
(LocalExecutor: tasks run on the scheduler's host), the DAG processor, the API server and
the triggerer, each in a process group of its own with its log in a file. Every wait is
bounded; when a component does not come up, the error names it and shows its log's tail.
``close()`` always stops everything (SIGTERM to each group, SIGKILL to whatever is left of
the process trees), checks that the ports it took are free again, and removes the
directory.

Only the scheduler gets the ``[sdk]`` coordinator settings (it is the only host that runs
tasks), and only the DAG processor can import trio_coord (it parses the bundle files):
if either were needed elsewhere, the run would fail.

Unless the cluster is made with ``warm=False``, the scheduler's environment also names a
warm directory under the cluster's own temporary directory, and ``start_warm`` starts a
``trio-coord warm`` server there for a packed bundle, with the worker's settings, as
docs/warm-start.md tells a user to. ``close()`` stops those servers too and checks that
none of their processes (nor the tries they forked) outlive the run.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .api import Api, ApiError
from .venv import clean_env, run_step
from .warm import WarmError, WarmServer, parse_status

ROOT = Path(__file__).resolve().parent.parent

#: Bounds on the start-up waits (generous: the machine is a shared 2-core one).
MIGRATE_TIMEOUT_S = 300
START_TIMEOUT_S = 240
STOP_GRACE_S = 20

COORDINATOR = "airflow.sdk.coordinators.executable.ExecutableCoordinator"
QUEUE = "trio-coord"
LOOPBACK = ("127.0.0.1", "::1")


class ClusterError(RuntimeError):
    """A component could not be set up or did not come up: the e2e run fails with this."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing listens on ``port`` (we can bind it ourselves)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Component:
    """One Airflow component process, leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    children: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The component and every process below it (tasks run below the scheduler)."""
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


class Cluster:
    """Set up, start, and always tear down one Airflow deployment (use as a context manager)."""

    def __init__(self, venv: Path, *, warm: bool = True) -> None:
        self.venv = venv
        self.warm = warm
        self.tmp = Path(tempfile.mkdtemp(prefix="trio-coord-e2e-"))
        # Short: the sockets in it are <warm dir>/<32 hex digits>.sock, at most 107 bytes.
        self.warm_dir = self.tmp / "w"
        self.warm_servers: dict[str, WarmServer] = {}
        self.home = self.tmp / "airflow-home"
        self.dags = self.home / "dags"
        self.executables_root = self.tmp / "executable-bundles"
        self.dagproc_lib = self.tmp / "dag-processor-lib"
        self.logs = self.tmp / "component-logs"
        self.ports = {"api": free_port(), "scheduler_health": free_port()}
        self.components: dict[str, Component] = {}
        self._stopped: list[psutil.Process] = []
        self.api = Api(f"http://127.0.0.1:{self.ports['api']}")
        for d in (self.dags, self.executables_root, self.logs):
            d.mkdir(parents=True)

    # -- configuration ------------------------------------------------------------------

    def coordinator_env(self) -> dict[str, str]:
        """The two worker settings, in the environment-variable form docs/deployment.md §5 gives."""
        coordinators = {
            "trio": {
                "classpath": COORDINATOR,
                "kwargs": {
                    "executables_root": [str(self.executables_root)],
                    "task_startup_timeout": 10,
                },
            }
        }
        return {
            "AIRFLOW__SDK__COORDINATORS": json.dumps(coordinators),
            "AIRFLOW__SDK__QUEUE_TO_COORDINATOR": json.dumps({QUEUE: "trio"}),
        }

    def runtime_env(self) -> dict[str, str]:
        """What the bundles' processes see of trio-coord's settings, in tries and warm servers.

        The module cache lives inside the throw-away directory, not the user's home; the
        warm directory is the one ``start_warm`` puts the servers in. A cold cluster says
        ``TRIO_COORD_WARM=0`` as well, so that no launcher looks for a server at all.
        """
        env = {
            "TRIO_COORD_CACHE_DIR": str(self.tmp / "bundle-cache"),
            "TRIO_COORD_WARM_DIR": str(self.warm_dir),
        }
        if not self.warm:
            env["TRIO_COORD_WARM"] = "0"
        return env

    def base_env(self) -> dict[str, str]:
        """Settings every component shares: one home, one database, one set of secrets."""
        api = f"http://127.0.0.1:{self.ports['api']}"
        secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
        return clean_env(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            AIRFLOW_HOME=str(self.home),
            # Component logs are read while the components run (scenario checks, errors).
            PYTHONUNBUFFERED="1",
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__FERNET_KEY=secret,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{api}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            # Short retries, so the retry scenarios (and hello's fail_sometimes) take seconds.
            AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY="2",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.ports["api"]),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__BASE_URL=api,
            AIRFLOW__API__SECRET_KEY=secret,
            AIRFLOW__API_AUTH__JWT_SECRET=secret,
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="True",
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST="127.0.0.1",
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(
                self.ports["scheduler_health"]
            ),
        )

    # -- deployment (docs/deployment.md §3 and §4) --------------------------------------

    def pack(self, source: Path, name: str) -> Path:
        """``trio-coord pack`` in the project's environment, straight into ``executables_root``."""
        out = self.executables_root / name
        self._run_checked(
            "trio-coord pack", ["trio-coord", "pack", str(source), "-o", str(out)], env=None
        )
        return out

    def add_dag_file(self, source: Path) -> None:
        """Copy a DAG file (a bundle file is one) into the DAG folder."""
        shutil.copy2(source, self.dags / source.name)

    def install_trio_coord_for_dag_processor(self) -> None:
        """trio_coord (no dependencies: not trio) in a directory only the DAG processor sees."""
        pip = [str(self.venv / "bin" / "pip"), "install", "-q", "--no-deps"]
        self._run_checked(
            "pip install trio-coord for the DAG processor",
            [*pip, "--target", str(self.dagproc_lib), str(ROOT)],
            env=clean_env(),
        )

    # -- processes ----------------------------------------------------------------------

    def start(self) -> None:
        """Migrate the database, start the four components and wait until each is healthy."""
        env = self.base_env()
        self._run_checked("airflow db migrate", ["airflow", "db", "migrate"], env=env)
        worker = {**self.coordinator_env(), **self.runtime_env()}
        # --skip-serve-logs: the log servers listen on every interface, and are not needed when
        # the API server reads task logs from the same AIRFLOW_HOME.
        self._spawn("scheduler", ["airflow", "scheduler", "--skip-serve-logs"], {**env, **worker})
        self._spawn(
            "dag-processor",
            ["airflow", "dag-processor"],
            {**env, "PYTHONPATH": str(self.dagproc_lib)},
        )
        self._spawn("api-server", ["airflow", "api-server"], env)
        self._spawn("triggerer", ["airflow", "triggerer", "--skip-serve-logs"], env)
        self.wait_healthy()
        self.check_loopback_only()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.components[name] = Component(name, proc, log)

    def _run_checked(self, what: str, argv: list[str], env: dict[str, str] | None) -> None:
        run_step(what, argv, error=ClusterError, timeout=MIGRATE_TIMEOUT_S, env=env, cwd=self.tmp)

    def check_alive(self) -> None:
        """Raise, with its log's tail, if any component has exited."""
        for c in self.components.values():
            if not c.alive():
                raise ClusterError(
                    f"the {c.name} exited with {c.proc.returncode}; last lines of {c.log}:\n{tail(c.log)}"
                )

    def wait_healthy(self) -> dict[str, Any]:
        """Wait for the API server, then for the heartbeats of the other three components."""
        wanted = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
        last: dict[str, Any] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.api.get("/api/v2/monitor/health")
            except ApiError as exc:
                last = {"error": str(exc)}
            else:
                bad = {k for k in wanted if (last.get(k) or {}).get("status") != "healthy"}
                if not bad:
                    return last
            time.sleep(1)
        unhealthy = dict(last)
        who = {
            "scheduler": "scheduler",
            "triggerer": "triggerer",
            "dag_processor": "dag-processor",
        }
        logs = "".join(
            f"\n--- {c} ({self.components[c].log}) ---\n{tail(self.components[c].log)}"
            for k, c in who.items()
            if (unhealthy.get(k) or {}).get("status") != "healthy"
        )
        if "error" in unhealthy:
            logs = f"\n--- api-server ---\n{tail(self.components['api-server'].log)}" + logs
        raise ClusterError(
            f"Airflow did not become healthy within {START_TIMEOUT_S}s; last /monitor/health: "
            f"{unhealthy}{logs}"
        )

    def check_loopback_only(self) -> None:
        """Raise if any component process listens on an address other than the loopback."""
        wide = []
        for c in self.components.values():
            for p in c.tree():
                with contextlib.suppress(psutil.Error):
                    for conn in p.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN and conn.laddr.ip not in LOOPBACK:
                            wide.append(
                                f"{c.name} pid {p.pid} on {conn.laddr.ip}:{conn.laddr.port}"
                            )
        if wide:
            raise ClusterError("listening beyond 127.0.0.1: " + ", ".join(wide))

    # -- warm servers (docs/warm-start.md) ----------------------------------------------

    def _warm_cli(self, what: str, *args: str) -> str:
        """``trio-coord warm ARGS`` from this checkout, with the worker's trio-coord settings.

        The environment is the scheduler's (PATH, the cache and warm directories) plus a
        PYTHONPATH naming this checkout for the command itself; the server it starts runs
        the bundle's launcher, which isolates its interpreter from PYTHONPATH.
        """
        env = clean_env(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            PYTHONPATH=str(ROOT),
            **self.runtime_env(),
        )
        try:
            done = subprocess.run(
                [sys.executable, "-m", "trio_coord", "warm", *args],
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=MIGRATE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{what}: no answer within {exc.timeout:.0f} s") from None
        if done.returncode != 0:
            raise ClusterError(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def start_warm(self, name: str) -> WarmServer:
        """Start the warm server of the packed bundle ``name`` (under executables_root).

        The idle timeout outlasts any e2e run: a server that went away mid-run would turn the
        rest of the run cold, which the served counts would then report as a failure.
        """
        if not self.warm:
            raise ClusterError("start_warm on a cluster made with warm=False")
        bundle = self.executables_root / name
        self._warm_cli(f"trio-coord warm {name}", str(bundle), "--idle-timeout", "7200")
        status = self.warm_status()
        server = next((s for s in status.values() if s.bundle == str(bundle)), None)
        if server is None:
            raise ClusterError(f"trio-coord warm {name} returned, but --status does not list it")
        self.warm_servers[name] = server
        return server

    def warm_status(self) -> dict[str, WarmServer]:
        """``trio-coord warm --status --json``: the servers answering in the warm directory."""
        if not self.warm:
            return {}
        try:
            return parse_status(self._warm_cli("trio-coord warm --status", "--status", "--json"))
        except WarmError as exc:
            raise ClusterError(str(exc)) from None

    def warm_trees(self) -> list[psutil.Process]:
        """The warm servers and every process below them (the tries they forked)."""
        procs = []
        for s in self.warm_servers.values():
            with contextlib.suppress(psutil.Error):
                me = psutil.Process(s.pid)
                procs += [me, *me.children(recursive=True)]
        return procs

    def stop_warm(self) -> list[str]:
        """``trio-coord warm --stop``; what had to be killed rather than exiting on its own.

        A server ends when its running tries do; the components are stopped first, so any
        try still running has lost its launcher and ends itself. Whatever is left after the
        grace period is killed and reported.
        """
        if not self.warm_servers:
            return []
        trees = self.warm_trees()
        problems = []
        try:
            self._warm_cli("trio-coord warm --stop", "--stop")
        except ClusterError as exc:
            problems.append(str(exc).splitlines()[0])
        if not _wait_for(lambda: not any(_alive(p) for p in trees), STOP_GRACE_S):
            for p in trees:
                if _alive(p):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                    problems.append(f"warm:{p.pid}")
        self._stopped += trees
        return problems

    def processes_matching(self, needle: str) -> list[psutil.Process]:
        """Processes below any component or warm server whose command line mentions ``needle``.

        A try that starts warm runs in a process forked by the bundle's warm server (its
        launcher, below the scheduler, waits for it): both are the try's processes.
        """
        found = []
        trees = [c.tree() for c in self.components.values()] + [self.warm_trees()]
        for tree in trees:
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    if any(needle in part for part in p.cmdline()):
                        found.append(p)
        return found

    def stop(self) -> list[str]:
        """Stop every component; returns what had to be killed rather than exiting on SIGTERM."""
        trees = {name: c.tree() for name, c in self.components.items()}
        for c in self.components.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGTERM)
        killed = []
        deadline = time.monotonic() + STOP_GRACE_S
        for name, c in self.components.items():
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(name)
        # Whatever is left, in the groups or re-parented out of them (task processes).
        for name, procs in trees.items():
            for p in procs:
                if _alive(p):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                    if name not in killed:
                        killed.append(f"{name}:{p.pid}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.components[name].proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.components[name].proc.wait(timeout=STOP_GRACE_S)
        self._stopped = [p for procs in trees.values() for p in procs]
        return killed

    def survivors(self) -> list[str]:
        """Processes of the stopped components that still run (after ``stop``)."""
        _wait_for(lambda: not any(_alive(p) for p in self._stopped), 5)
        return [str(p.pid) for p in self._stopped if _alive(p)]

    def close(self) -> list[str]:
        """Stop everything, check the ports are free again, remove the directory.

        Returns problems found while cleaning up (a port still taken); the caller fails the run
        on them, after everything that can be cleaned has been.
        """
        problems = []
        killed = self.stop() + self.stop_warm()
        if killed:
            print(f"e2e: needed SIGKILL: {', '.join(killed)}")
        problems += [f"process {x} survived the teardown" for x in self.survivors()]
        for name, port in self.ports.items():
            if not _wait_for(functools.partial(port_is_free, port), 15):
                problems.append(f"port {port} ({name}) is still in use after teardown")
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.tmp.exists():
            problems.append(f"{self.tmp} could not be removed")
        return problems

    def keep_logs(self, dest: Path) -> None:
        """Copy the component logs and task logs out before the directory goes away."""
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.logs, dest / "components")
        if (self.home / "logs").exists():
            shutil.copytree(self.home / "logs", dest / "tasks")


def _alive(p: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its parent's reaping is left)."""
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


@contextlib.contextmanager
def running_cluster(
    venv: Path, setup: Callable[[Cluster], None], *, warm: bool = True
) -> Iterator[Cluster]:
    """A started cluster; ``setup`` deploys bundles and DAG files before the components start."""
    cluster = Cluster(venv, warm=warm)
    problems: list[str] = []
    try:
        setup(cluster)
        cluster.start()
        yield cluster
    finally:
        keep = os.environ.get("TRIO_COORD_E2E_KEEP_LOGS")
        if keep:
            cluster.keep_logs(Path(keep))
        problems = cluster.close()
    if problems:
        raise ClusterError("teardown left things behind: " + "; ".join(problems))
