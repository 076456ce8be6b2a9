"""``trio-coord run``: parse, supervise one try, summarise, pick the exit status."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from ..errors import UsageError
from ..runtime.masking import Masker
from ..tracebacks import enable_debug
from .dag_run import PlannedTask, plan_dag
from .dag_runner import run_dag
from .hitl import run_answering
from .logs import Printer
from .options import PROG, RunOptions, parse_args
from .parse import parse_bundle
from .summary import render_dag_json, render_dag_text, render_json, render_text
from .supervisor import child_environment
from .target import DESCRIBE_TIMEOUT, BundleLooksBroken, check_ids, describe_bundle

__all__ = ["main", "EXIT_SUCCESS", "EXIT_NOT_SUCCESS", "EXIT_USAGE", "EXIT_IMPORT"]

#: The task ended in state success, and a worker would have recorded it so (without
#: TASK_ID: the DAG run would succeed).
EXIT_SUCCESS: Final = 0
#: Any other outcome: failed, up_for_retry, skipped, removed, deferred, stuck, not started.
EXIT_NOT_SUCCESS: Final = 1
#: The command line was wrong (one line on stderr), or names a dag or task the bundle lacks.
EXIT_USAGE: Final = 2
#: The bundle failed to import: its traceback is printed and nothing was run.
EXIT_IMPORT: Final = 4
#: ``trio-coord run`` was interrupted before the supervisor was running.
_EXIT_INTERRUPTED: Final = 130

# The supervisor-side masker warns about secrets too short to mask; the runtime says the
# same in the task log, so the parent's copy (a bare last-resort stderr line) is noise.
logging.getLogger(Masker.__module__).addHandler(logging.NullHandler())


def main(argv: Sequence[str]) -> int:
    """Run ``trio-coord run ARGV`` and return its exit status (see ``docs/local-run.md``)."""
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc} (see {PROG} --help)\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if opts.debug:
        enable_debug()
    try:
        check_ids(
            opts.bundle,
            describe_bundle(opts.bundle, child_environment(), opts.timeout),
            opts.dag_id,
            opts.task_id,
        )
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except BundleLooksBroken as exc:
        sys.stderr.write(f"{exc}\n{PROG}: the bundle failed to import; nothing was run\n")
        return EXIT_IMPORT
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return _EXIT_INTERRUPTED
    masker = Masker.from_env()
    printer = Printer(masker, logs=sys.stderr if opts.json else sys.stdout, quiet=opts.quiet)
    if opts.whole_dag:
        return _run_whole_dag(opts, printer, masker)
    return _run_and_render(
        lambda: trio.run(run_answering, opts, printer),
        render_json if opts.json else render_text,
        masker,
    )


def _run_whole_dag(opts: RunOptions, printer: Printer, masker: Masker) -> int:
    """``trio-coord run BUNDLE DAG``: plan from the bundle's own serialized DAG, then run it."""
    try:
        plan = plan_whole_dag(opts.bundle, opts.dag_id, opts.timeout)
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    return _run_and_render(
        lambda: trio.run(run_dag, opts, printer, plan),
        render_dag_json if opts.json else render_dag_text,
        masker,
    )


def _run_and_render(
    run: Callable[[], Any], render: Callable[[Any, Masker], str], masker: Masker
) -> int:
    """Run the local supervisor, print its summary, and turn what can go wrong into one line."""
    try:
        report = run()
    except UsageError as exc:  # --hitl-answer does not fit the question asked
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return _EXIT_INTERRUPTED
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot set up the local supervisor: {exc}\n")
        return EXIT_NOT_SUCCESS
    sys.stdout.write(render(report, masker))
    sys.stdout.flush()
    status: int = report.status
    return status


def plan_whole_dag(bundle: str, dag_id: str, timeout: float) -> list[PlannedTask]:
    """The DAG's tasks in run order, from the document the bundle's parse workload gives.

    Raises:
        UsageError: the bundle gave no document for ``dag_id``.
    """
    outcome = parse_bundle(bundle, timeout=min(timeout, DESCRIBE_TIMEOUT))
    result = outcome.result or {}
    for entry in result.get("serialized_dags") or ():
        data = entry.get("data") if isinstance(entry, dict) else None
        if isinstance(data, dict) and data.get("dag", {}).get("dag_id") == dag_id:
            return plan_dag(data)
    problem = outcome.problem or (result.get("import_errors") or {}) or "no such DAG"
    raise UsageError(f"bundle {bundle} gave no serialized DAG {dag_id!r}: {problem}")
