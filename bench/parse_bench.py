"""DAG parse: trio-coord's native parse workload against Airflow 3.3.2's own Python parse.

The same bundle file (100 DAGs x 10 tasks, a chain with one fan-out each, ending with
``export_dags``) is parsed three ways, each timed from process start to the last document
in hand:

* ``parse.serve``: ``trio-coord serve`` answering a ``DagFileParseRequest`` (a local
  processor sends the request, reads the result, acknowledges it; ``local/parse.py``);
* ``parse.packed``: the same through the packed bundle executable;
* ``parse.python``: a fresh interpreter running Airflow's export route, ``DagBag`` over the
  file (``export_dags`` turns each DAG into an ``airflow.sdk.DAG``) and
  ``DagSerialization.to_dict`` for each DAG, as the DAG processor's parse child does.

Usage: python bench/parse_bench.py [--rounds N]  (prints the medians as JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

DAGS, TASKS = 100, 10

PYTHON_PARSE = """
import sys, time
t0 = float(sys.argv[2])
import airflow.sdk  # export_dags acts only inside Airflow, as in the DAG processor
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
assert not bag.import_errors, bag.import_errors
docs = [DagSerialization.to_dict(d) for d in bag.dags.values()]
assert len(docs) == int(sys.argv[3]), len(docs)
print(time.time() - t0)
"""


def bundle_source(dags: int = DAGS, tasks: int = TASKS) -> str:
    """A bundle file of ``dags`` DAGs of ``tasks`` tasks, exported for Airflow."""
    lines = [
        "import datetime",
        "import trio_coord",
        "from trio_coord.airflow import export_dags",
        "",
        'bundle = trio_coord.Bundle("parsebench", version="1.0.0")',
        "START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)",
        "",
        "def noop():",
        "    pass",
        "",
        f"for i in range({dags}):",
        '    d = bundle.dag(f"dag_{i:03d}", schedule="0 3 * * *", start_date=START, tags=["bench"])',
        "    prev = None",
        f"    for j in range({tasks}):",
        '        t = d.task(task_id=f"task_{j:02d}")(noop)',
        "        if prev is not None:",
        "            prev >> t",
        "        if j % 3 != 1:",
        "            prev = t",
        "",
        "export_dags(bundle, globals())",
        "",
    ]
    return "\n".join(lines)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRIO_COORD"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def time_native(spec: str, file: Path) -> float:
    """Seconds from starting ``spec`` to its acknowledged DagFileParsingResult and exit."""
    import trio

    from trio_coord.local.parse import run_parse

    t0 = time.perf_counter()
    outcome = trio.run(run_parse, spec, str(file), str(file.parent))
    took = time.perf_counter() - t0
    result = outcome.result or {}
    if outcome.exit_code != 0 or len(result.get("serialized_dags") or []) != DAGS:
        raise RuntimeError(f"native parse of {spec} failed: {outcome}")
    if result.get("import_errors"):
        raise RuntimeError(f"native parse reported import errors: {result['import_errors']}")
    return took


def time_python(file: Path, home: Path) -> float:
    """Seconds from starting a Python interpreter to Airflow's serialized documents in hand."""
    env = _env() | {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", PYTHON_PARSE, str(file), repr(t0), str(DAGS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Airflow's parse failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def prepare(tmp: Path) -> dict[str, Callable[[], float]]:
    """Write and pack the bundle under ``tmp``; return the three timed variants by key."""
    src = tmp / "src"
    src.mkdir()
    file = src / "parsebench.py"
    file.write_text(bundle_source(), encoding="utf-8")
    packed = tmp / "parsebench.bundle"
    subprocess.run(
        [sys.executable, "-m", "trio_coord", "pack", str(file), "-o", str(packed)],
        check=True,
        env=_env(),
        stdout=subprocess.DEVNULL,
    )
    home = tmp / "airflow-home"
    home.mkdir()
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
    time_python(file, home)  # the first run writes Airflow's caches; not counted
    return {
        "parse.serve": lambda: time_native(str(file), file),
        "parse.packed": lambda: time_native(str(packed), file),
        "parse.python": lambda: time_python(file, home),
    }


def measure(rounds: int, tmp: Path) -> dict[str, list[float]]:
    """Interleaved rounds of the three variants; seconds per variant."""
    variants = prepare(tmp)
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(rounds):
        order = list(variants)
        order = order[i % len(order) :] + order[: i % len(order)]
        for key in order:
            samples[key].append(variants[key]())
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trio-coord-parsebench-") as tmp:
        samples = measure(args.rounds, Path(tmp))
    out = {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
        for k, v in samples.items()
    }
    out["ratio.serve"] = {"median": out["parse.serve"]["median"] / out["parse.python"]["median"]}
    out["ratio.packed"] = {"median": out["parse.packed"]["median"] / out["parse.python"]["median"]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
