"""Runs ``parse_driver.py`` (airflow-core 3.3.2's own DAG-file processor) and parses its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARSE_DRIVER = Path(__file__).resolve().parent / "parse_driver.py"


@dataclass
class ParseReport:
    """What the processor made of the runtime: exit code, decoded result, loaded DAGs, runtime log."""

    ready: bool
    exit_code: int | None
    result: dict[str, Any] | None
    dags: dict[str, Any]
    runtime_log: list[dict[str, Any]]
    stderr: str

    @property
    def events(self) -> list[str]:
        return [str(r.get("event", "")) for r in self.runtime_log]


def processor_parse(
    runtime: list[str],
    file: Path,
    bundle_path: Path,
    *,
    bundle_name: str = "trio-bundle",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> ParseReport:
    """Let the real ``DagFileProcessorProcess`` parse ``file`` through ``runtime``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | (env or {})
    with tempfile.TemporaryDirectory(prefix="trio-coord-parse-", ignore_cleanup_errors=True) as tmp:
        scenario = {
            "runtime": runtime,
            "file": str(file),
            "bundle_path": str(bundle_path),
            "bundle_name": bundle_name,
            "workdir": tmp,
            "timeout": timeout - 20,
        }
        proc = subprocess.run(
            [sys.executable, str(PARSE_DRIVER), json.dumps(scenario)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    head, sep, tail = proc.stdout.partition("@@REPORT@@")
    if not sep:
        raise AssertionError(
            f"parse driver failed (rc {proc.returncode}):\n{head[-3000:]}\n{proc.stderr[-5000:]}"
        )
    raw = json.loads(tail.splitlines()[0])
    return ParseReport(stderr=proc.stderr, **raw)
