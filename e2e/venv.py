"""The Airflow environment the e2e run deploys to: a venv of its own, cached between runs.

It is the environment a user's Airflow hosts would have: apache-airflow 3.3.2 with the
standard provider and task-sdk 1.3.2, and *neither trio-coord nor trio*. Workers need only
the packed bundle; the DAG processor gets trio-coord from a separate directory (see
cluster.py), never from this venv. Building it takes minutes, so it is kept under
``~/.cache/trio-coord-e2e/<hash>``, the hash covering everything that decides its content;
a venv without the completion marker, or one that fails the smoke check, is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONSTRAINTS = HERE / "constraints.txt"

#: What the Airflow hosts install. psutil is there already (Airflow needs it).
REQUIREMENTS = (
    "apache-airflow==3.3.2",
    "apache-airflow-task-sdk==1.3.2",
    "apache-airflow-providers-standard==1.21.0",
)

#: Run in the finished venv; a venv that fails it is rebuilt. trio must be absent: the
#: e2e proves that workers need nothing but the packed bundle and a Python.
SMOKE = """
import importlib.util, sys
import airflow, airflow.sdk, airflow.providers.standard.decorators.stub, psutil
from importlib.metadata import version
assert version("apache-airflow-core") == "3.3.2", version("apache-airflow-core")
assert version("apache-airflow-task-sdk") == "1.3.2", version("apache-airflow-task-sdk")
for banned in ("trio", "trio_coord"):
    assert importlib.util.find_spec(banned) is None, f"{banned} is installed in the Airflow venv"
"""

#: Bound on the whole install; a cold one takes a few minutes on a 2-core machine.
INSTALL_TIMEOUT_S = 1800
MARKER = ".e2e-complete"


class VenvError(RuntimeError):
    """The Airflow venv could not be built: the e2e run cannot proceed and must fail."""


def cache_root() -> Path:
    """``$TRIO_COORD_E2E_CACHE`` or ``~/.cache/trio-coord-e2e``."""
    env = os.environ.get("TRIO_COORD_E2E_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "trio-coord-e2e"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the project into Airflow's.

    ``PYTHONPATH`` (the project checkout), the active venv and any ``AIRFLOW_*`` or
    ``TRIO_COORD_*`` setting of the caller are dropped: the Airflow side sees only what the
    e2e run sets on purpose.
    """
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("AIRFLOW", "TRIO_COORD", "_AIRFLOW"))
    }
    env.update(extra)
    return env


def base_python() -> str:
    """The interpreter the project venv was made from (a venv of a venv would share it)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def spec_hash() -> str:
    """Hash of what decides the venv's content: requirements, constraints, Python version."""
    h = hashlib.sha256()
    h.update("\n".join(REQUIREMENTS).encode())
    h.update(CONSTRAINTS.read_bytes())
    h.update(SMOKE.encode())
    h.update(f"{sys.version_info[:3]}".encode())
    return h.hexdigest()[:16]


def _smoke_error(venv: Path) -> str | None:
    """Why the venv is not usable (no marker, no interpreter, failed smoke check), or None."""
    py = venv / "bin" / "python"
    if not (venv / MARKER).exists() or not py.exists():
        return "not built"
    done = subprocess.run(
        [str(py), "-I", "-c", SMOKE],
        cwd=str(venv),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=clean_env(),
    )
    return None if done.returncode == 0 else done.stderr[-2000:]


def ensure_venv() -> tuple[Path, float]:
    """The cached venv's path (building it if needed) and the seconds spent building (0 if cached).

    Raises:
        VenvError: pip failed or the result fails the smoke check; the message has pip's tail.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / spec_hash()
    with open(root / ".lock", "w") as lock:
        # Two e2e runs at once would otherwise build the same venv over each other.
        fcntl.flock(lock, fcntl.LOCK_EX)
        why = _smoke_error(venv)
        if why is None:
            return venv, 0.0
        if why != "not built":
            print(f"e2e: the cached Airflow venv {venv} is broken, rebuilding it:\n{why}")
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        print(f"e2e: building the Airflow venv {venv} (cold cache; takes minutes)", flush=True)
        _run([base_python(), "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--progress-bar", "off"]
        _run([*pip, "-c", str(CONSTRAINTS), *REQUIREMENTS])
        (venv / MARKER).write_text(" ".join(REQUIREMENTS) + "\n")
        why = _smoke_error(venv)
        if why is not None:
            (venv / MARKER).unlink()
            raise VenvError(f"the freshly built Airflow venv {venv} fails its smoke check:\n{why}")
        return venv, time.monotonic() - started


def run_step(
    what: str,
    argv: list[str],
    *,
    error: type[Exception],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run one set-up command; raise ``error`` with its output's tail if it fails or overruns."""
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} did not finish within {timeout:.0f}s") from exc
    if done.returncode != 0:
        out = (done.stdout + done.stderr).splitlines()[-40:]
        raise error(f"{what} failed (exit {done.returncode}):\n" + "\n".join(out))


def _run(cmd: list[str]) -> None:
    run_step(
        f"building the Airflow venv: {' '.join(cmd[:6])}",
        cmd,
        error=VenvError,
        timeout=INSTALL_TIMEOUT_S,
        env=clean_env(),
    )


if __name__ == "__main__":
    path, took = ensure_venv()
    print(f"{path} (built in {took:.0f}s)" if took else f"{path} (cached)")
