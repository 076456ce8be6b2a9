"""What ``trio-coord run``'s BUNDLE names, the program that runs it, and a look before running.

BUNDLE is either a source bundle (``FILE.py``, ``FILE.py:ATTR``, ``MODULE:ATTR``), run by
``python -m trio_coord serve --bundle BUNDLE``, or a packed bundle (a file with the
``AFBNDL01`` trailer), which is executed itself, exactly as Airflow's coordinator does.
Both answer the same bundle-mode flags, so :func:`bundle_program` is the only place that
tells them apart: the task run appends ``--comm``/``--logs``, :func:`describe_bundle`
appends ``--dump-bundle-spec``.

:func:`describe_bundle` imports the bundle once in a child process before anything else
starts, so a bundle that does not import, or a dag or task id it does not hold, is
reported in one message instead of a whole task run ending "failed" or "removed".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..authoring import did_you_mean
from ..bundle import format as bundle_format
from ..errors import UsageError

__all__ = ["BundleLooksBroken", "bundle_program", "describe_bundle", "check_ids", "is_packed"]

#: Bound on the look before running: the bundle's import at module level, plus an
#: interpreter start (a packed bundle may first unpack compiled extensions).
DESCRIBE_TIMEOUT: Final = 120.0


class BundleLooksBroken(Exception):
    """The bundle did not import; ``str()`` is what the child printed about it."""


def is_packed(spec: str) -> bool:
    """Whether ``spec`` is a file with a bundle trailer (rather than a source bundle)."""
    if not os.path.isfile(spec):
        return False
    try:
        return bundle_format.read_bundle(Path(spec)) is not None
    except (bundle_format.BundleFormatError, OSError):
        return False


def bundle_program(spec: str) -> list[str]:
    """The argv prefix that runs ``spec`` in bundle mode; bundle-mode flags follow it."""
    if is_packed(spec):
        return [os.path.abspath(spec)]
    return [sys.executable, "-m", "trio_coord", "serve", "--bundle", spec]


@dataclass(frozen=True, slots=True)
class BundleDescription:
    """dag id -> task ids, as ``--dump-bundle-spec`` lists them."""

    dags: dict[str, list[str]]


def describe_bundle(spec: str, env: dict[str, str], timeout: float) -> BundleDescription:
    """Import the bundle in a child, the way the task run will, and list its ids.

    Raises:
        BundleLooksBroken: the bundle did not import (the child's own message).
        UsageError: the child could not be started, or did not answer in time.
    """
    argv = [*bundle_program(spec), "--dump-bundle-spec"]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=min(timeout, DESCRIBE_TIMEOUT),
        )
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"importing bundle {spec!r} took more than {min(timeout, DESCRIBE_TIMEOUT):g} s; "
            "module-level code of a bundle should only declare DAGs and tasks"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot run bundle {spec!r}: {exc.strerror or exc}") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BundleLooksBroken(err.rstrip() or f"{argv[0]} exited with {proc.returncode}")
    try:
        doc = json.loads(proc.stdout)
        dags = {str(d): [str(t) for t in v["tasks"]] for d, v in doc["dags"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"bundle {spec!r} did not describe itself ({err.strip()})") from None
    return BundleDescription(dags)


def check_ids(spec: str, found: BundleDescription, dag_id: str, task_id: str) -> None:
    """Refuse a dag or task id the bundle does not hold, naming what it does hold.

    An empty ``task_id`` (a whole-DAG run) checks the DAG only.

    Raises:
        UsageError: one sentence with a close-match suggestion, then the ids.
    """
    tasks = found.dags.get(dag_id)
    if tasks is not None and (not task_id or task_id in tasks):
        return
    if tasks is None:
        what = f"bundle {spec} has no DAG {dag_id!r}{did_you_mean(dag_id, found.dags)}"
    else:
        what = f"DAG {dag_id!r} has no task {task_id!r}{did_you_mean(task_id, tasks)}"
    listing = "".join(
        f"\n  {d}: {', '.join(ts) or '(no tasks)'}" for d, ts in sorted(found.dags.items())
    )
    raise UsageError(f"{what}; the bundle holds (DAG: tasks):{listing or ' nothing'}")
