"""The Airflow oracle: real airflow-core 3.3.2 judging trio-coord's serialized DAGs.

The checks run in a subprocess (``airflow_side.py``) with an interpreter chosen by
:func:`oracle_python`, so the oracle can be an environment separate from the project's:

1. ``$TRIO_COORD_ORACLE_PYTHON`` when set;
2. else the Airflow venv of the end-to-end tests (``e2e.venv``), built here on first use
   and cached between runs (a cold build takes a few minutes; ``nox -s e2e`` then finds it
   ready);
3. else, when that venv cannot be built (no package index), this interpreter, if it has
   airflow-core installed (the project's test venv does), saying so once.

Tests skip, saying why, only when none of these has Airflow. Each test module asks
everything it needs in one :func:`ask` call: importing Airflow costs seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIDE = Path(__file__).with_name("airflow_side.py")
#: Bound on one oracle run (a DB migration alone takes ~5 s; a cold import ~3 s).
TIMEOUT_S = 240


def _e2e_python() -> tuple[str | None, str]:
    """The e2e Airflow venv's interpreter, building the venv if needed; else why not."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from e2e import venv

    try:
        path, _ = venv.ensure_venv()
    except venv.VenvError as exc:
        return None, f"the e2e Airflow venv could not be built: {exc}"
    return str(path / "bin" / "python"), "the e2e Airflow venv"


@functools.cache
def oracle_python() -> tuple[str | None, str]:
    """(interpreter, where it came from), or (None, why there is none)."""
    env = os.environ.get("TRIO_COORD_ORACLE_PYTHON")
    if env:
        return env, "TRIO_COORD_ORACLE_PYTHON"
    e2e, why = _e2e_python()
    if e2e:
        return e2e, why
    print(f"oracle: {why}; falling back to this interpreter", file=sys.stderr)
    if importlib.util.find_spec("airflow.serialization") is not None:
        return sys.executable, "the project's interpreter"
    return None, (
        "no Airflow oracle: set TRIO_COORD_ORACLE_PYTHON to a Python with "
        "apache-airflow-core==3.3.2, build the e2e venv, or install the test extra"
    )


def ask(request: dict[str, Any]) -> dict[str, Any]:
    """Run the oracle once on ``request`` (see airflow_side.py) and return its answer."""
    python, why = oracle_python()
    if python is None:
        pytest.skip(why)
    with tempfile.TemporaryDirectory(prefix="tc-oracle-") as tmp:
        req, resp = Path(tmp, "request.json"), Path(tmp, "response.json")
        req.write_text(json.dumps(request))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [python, str(SIDE), str(req), str(resp)],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT_S,
            cwd=tmp,
        )
        assert resp.exists(), f"oracle ({why}) wrote no answer:\n{done.stderr[-3000:]}"
        answer: dict[str, Any] = json.loads(resp.read_text())
    assert "crash" not in answer, f"oracle ({why}) crashed:\n{answer['crash']}"
    return answer


def failures(answer: dict[str, Any]) -> dict[str, Any]:
    """Every document that failed a level, and the wire check if it failed."""
    bad = {name: r for name, r in answer.get("levels", {}).items() if not r["ok"]}
    if not answer.get("wire", {}).get("ok", True):
        bad["<wire>"] = answer["wire"]
    return bad
