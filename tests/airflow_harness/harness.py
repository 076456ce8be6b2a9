"""Runs ``driver.py`` (the real 1.3.2 supervisor) in a subprocess and parses its report."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
TEST_BUNDLE = f"{HERE / 'bundle_for_tests.py'}:bundle"
TI_ID = "019a0000-0000-7000-8000-000000000001"


@dataclass
class Report:
    """What the real supervisor did: its result, every API call, the task log it wrote."""

    exit_code: int | None
    final_state: str | None
    raised: str | None
    calls: list[dict[str, Any]]
    task_log: list[dict[str, Any]]
    xcoms: dict[str, Any]
    variables: dict[str, Any]
    stderr: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path_suffix: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method and c["path"].endswith(path_suffix)]

    @property
    def state_patches(self) -> list[dict[str, Any]]:
        return [c["body"] for c in self.api("PATCH", f"/task-instances/{TI_ID}/state")]

    def events(self, logger: str | None = None) -> list[str]:
        return [
            str(r.get("event", ""))
            for r in self.task_log
            if logger is None or r.get("logger") == logger
        ]

    def captured(self, channel: str) -> bytes:
        """Every raw byte the supervisor received on ``channel`` (comm, logs, stdout, stderr)."""
        return base64.b64decode(self.raw["capture"][channel])

    @property
    def task_log_bytes(self) -> bytes:
        """The task log file exactly as the supervisor wrote it."""
        return base64.b64decode(self.raw["task_log_raw"])

    @property
    def log_text(self) -> str:
        return "\n".join(json.dumps(r) for r in self.task_log)


def supervise(
    task_id: str, *, bundle: str = TEST_BUNDLE, timeout: float = 120, **scenario: Any
) -> Report:
    """Run ``task_id`` of ``bundle`` under the real supervisor and return what it recorded.

    The driver works in a temporary directory removed on return (unless the scenario
    names its own ``workdir``), so no run leaves an Airflow home behind.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    with tempfile.TemporaryDirectory(prefix="trio-coord-sup-", ignore_cleanup_errors=True) as tmp:
        scenario = {
            "bundle": bundle,
            "dag_id": "d1",
            "task_id": task_id,
            "workdir": tmp,
            **scenario,
        }
        proc = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(scenario)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    out = proc.stdout
    if "@@REPORT@@" not in out:
        raise AssertionError(
            f"driver failed (rc {proc.returncode}):\n{out[-3000:]}\n{proc.stderr[-5000:]}"
        )
    raw = json.loads(out.split("@@REPORT@@", 1)[1])
    return Report(
        exit_code=raw.get("exit_code"),
        final_state=raw.get("final_state"),
        raised=raw.get("raised"),
        calls=raw["calls"],
        task_log=raw["task_log"],
        xcoms=raw["xcoms"],
        variables=raw["variables"],
        stderr=proc.stderr,
        raw=raw,
    )
