"""Mutation check of the stateful machines: does the model notice when trio_coord is wrong?

Each entry of :data:`MUTATIONS` is a realistic bug, written as exact source edits. For each
one the runner copies ``trio_coord/``, ``model/``, the stateful tests and the pytest
configuration to a scratch directory, applies the edits there (never to the working tree),
runs ``tests/test_stateful.py`` (the default ``ci`` Hypothesis profile) with that directory
first on ``PYTHONPATH``, and records which machine failed and with what message.

Usage::

    python mutants/run.py                 # baseline + every mutation, then the table
    python mutants/run.py --only NAME ... # some of them
    python mutants/run.py --check         # only check that every snippet still applies
    python mutants/run.py --list

Exit status: 0 when the unmutated copy passes and every mutation is caught; 1 when a
mutation survives (or the baseline fails); 2 when a snippet no longer matches the source:
the table must then be updated with the code (see docs/testing.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which must occur exactly once in ``path``) with ``new``."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutation:
    name: str
    description: str
    edits: tuple[Edit, ...]


def _m(name: str, description: str, *edits: tuple[str, str, str]) -> Mutation:
    return Mutation(name, description, tuple(Edit(*e) for e in edits))


_TR = "trio_coord/runtime/task_runner.py"
_SERVE = "trio_coord/runtime/serve.py"
_COMM = "trio_coord/runtime/comm.py"
_CLIENT_CORE = "trio_coord/client/_core.py"
_CLIENT_VARS = "trio_coord/client/variables.py"
_STATES = "trio_coord/protocol/states.py"
_CONN = "trio_coord/protocol/connection.py"
_LOGS = "trio_coord/runtime/logs/pipeline.py"
_FIELDS = "trio_coord/protocol/fields.py"
_BRANCH = "trio_coord/runtime/branching.py"
_DEFER = "trio_coord/runtime/deferral.py"
_SENSORS = "trio_coord/runtime/sensors.py"

#: The table: one realistic bug per row. Snippets are exact (whitespace included).
MUTATIONS: tuple[Mutation, ...] = (
    _m(
        "trace_carrier_dropped",
        "the task span is never started: requests of a traced try go out without its carrier",
        (
            _SERVE,
            "tracing = start_tracing(details, self._environ)",
            "tracing = None",
        ),
    ),
    _m(
        "retry_swapped",
        "should_retry read backwards: RetryTask when the server said no, failed when it said yes",
        (_TR, "if retryable and ctx.should_retry:", "if retryable and not ctx.should_retry:"),
    ),
    _m(
        "xcom_value_not_checked",
        "a SetXCom value is encoded without check_json: NaN, bytes, a non-string key are sent",
        (
            _CONN,
            "size = check_json(body[field], name(msg), INLINE_CHECK_ITEMS if inline else None)",
            "size = 0",
        ),
    ),
    _m(
        "startup_uuid_not_validated",
        "a UUID field of StartupDetails is taken as it comes: a try with ti.id 'not-a-uuid' runs",
        (_FIELDS, "            uuid.UUID(value)\n", "            pass\n"),
    ),
    _m(
        "xcom_not_cleared",
        "xcom_keys_to_clear ignored: stale XComs of an earlier try survive",
        (_TR, "for key in ctx.ti_context.xcom_keys_to_clear or ():", "for key in ():"),
    ),
    _m(
        "push_after_terminal",
        "the return value is pushed after SucceedTask instead of before it",
        (
            _TR,
            "            push_error = await _push_result(task, client, value)\n",
            "            client.push_later = functools.partial(_push_result, task, client, value)\n",
        ),
        (
            _SERVE,
            "        return await self._deliver(channel, self._masked(terminal), carrier=carrier)\n",
            "        code = await self._deliver(channel, self._masked(terminal), carrier=carrier)\n"
            "        if getattr(client, 'push_later', None) is not None:\n"
            "            await client.push_later()\n"
            "        return code\n",
        ),
    ),
    _m(
        "reply_to_wrong_caller",
        "the reader hands a reply to the waiter of the previous id when there is one",
        (
            _COMM,
            "waiter = waiters.get(event.request_id)",
            "waiter = waiters.get(event.request_id - 1) or waiters.get(event.request_id)",
        ),
    ),
    _m(
        "frame_after_terminal_accepted",
        "the state table lets a reply frame through after the terminal reply",
        (
            _STATES,
            "    (S.DONE, I.RECV_EOF): S.CLOSED,\n",
            "    (S.DONE, I.RECV_EOF): S.CLOSED,\n    (S.DONE, I.RECV_REPLY): S.DONE,\n",
        ),
    ),
    _m(
        "env_secret_not_sent",
        "an AIRFLOW_VAR_* secret is masked locally but no MaskSecret tells the supervisor",
        (
            _CLIENT_VARS,
            "await self._register(env, key, told=False)",
            "await self._register(env, key, told=True)",
        ),
    ),
    _m(
        "env_secret_not_masked_locally",
        "a secret is sent in MaskSecret but never added to the runtime's own masker",
        (
            _CLIENT_CORE,
            "        found = self._masker.add(value, name)\n",
            "        found = type(self._masker)().add(value, name)\n",
        ),
    ),
    _m(
        "request_without_timeout",
        "requests wait for their reply forever (the supervisor drops bodies it cannot decode)",
        (
            _SERVE,
            "channel.request, timeout=config.request_timeout\n",
            "channel.request, timeout=math.inf\n",
        ),
    ),
    _m(
        "terminal_sent_twice",
        "the terminal message is sent again when its reply carries an API error",
        (
            _STATES,
            "    (S.DONE, I.RECV_EOF): S.CLOSED,\n",
            "    (S.DONE, I.RECV_EOF): S.CLOSED,\n    (S.DONE, I.SEND_TERMINAL): S.TERMINAL_SENT,\n",
        ),
        (
            _SERVE,
            "                if reply.error is not None:\n",
            "                if reply.error is not None:\n"
            "                    await channel.exchange(terminal, timeout=math.inf)\n",
        ),
    ),
    _m(
        "request_ids_reused",
        "request ids come from the size of the pending table, so answered ids come back",
        (
            _CONN,
            "request_id = self._next_id",
            "request_id = FIRST_REQUEST_ID + len(self._pending)",
        ),
    ),
    _m(
        "exit_1_after_delivered_failure",
        "a delivered TaskState(failed)/RetryTask exits 1, so the supervisor ignores it",
        (
            _SERVE,
            "                return EXIT_OK\n        if scope.cancelled_caught:",
            "                return EXIT_FAILURE if failure else EXIT_OK\n"
            "        if scope.cancelled_caught:",
        ),
    ),
    _m(
        "log_batch_reversed",
        "the log pump writes a batch newest record first",
        (
            _LOGS,
            'await self._send(stream, b"".join(batch))',
            'await self._send(stream, b"".join(reversed(batch)))',
        ),
    ),
    _m(
        "logs_not_drained",
        "the logs socket is closed without waiting for the pump: the last records are lost",
        (_SERVE, "await pump_done.wait()", "await trio.lowlevel.checkpoint()"),
    ),
    _m(
        "map_index_ignored",
        "StartupDetails' map_index is ignored: a mapped task writes and clears the unmapped XComs",
        (
            _CLIENT_CORE,
            "return None if map_index is None or map_index < 0 else map_index",
            "return None",
        ),
    ),
    _m(
        "failure_without_traceback",
        "a task's exception is logged without its exception chain",
        (
            _TR,
            'log.error("task failed: %s: %s", type(exc).__name__, exc, exc_info=exc)',
            'log.error("task failed: %s: %s", type(exc).__name__, exc)',
        ),
    ),
    _m(
        "stray_reply_fatal",
        "a late reply to an abandoned request breaks the connection instead of being dropped",
        (
            _CONN,
            "            return StrayReply(request_id)\n",
            '            raise RemoteProtocolError(f"no request {request_id} is pending")\n',
        ),
    ),
    _m(
        "skip_reported_failed",
        "SkipTask ends the try as failed",
        (
            _TR,
            'TaskState(state="skipped", end_date=_now())',
            'TaskState(state="failed", end_date=_now())',
        ),
    ),
    _m(
        "branch_pushes_return_value",
        "a branch that skipped also pushes its return value (Airflow leaves it out)",
        (
            _TR,
            "            if not await after_return(task, ctx, client, value):\n",
            "            if not await after_return(task, ctx, client, value) or True:\n",
        ),
    ),
    _m(
        "skip_error_swallowed",
        "an error reply to SkipDownstreamTasks is logged and ignored: the try still succeeds",
        (
            _BRANCH,
            "    await client.skip_downstream_tasks(tasks)\n",
            "    try:\n"
            "        await client.skip_downstream_tasks(tasks)\n"
            "    except Exception:\n"
            '        log.warning("could not skip downstream tasks", exc_info=True)\n',
        ),
    ),
    _m(
        "skip_before_decision_xcom",
        "a branch sends SkipDownstreamTasks before recording its decision in skipmixin_key",
        (
            _BRANCH,
            '    await client.set_xcom(SKIPMIXIN_KEY, {"followed": follow})\n'
            "    return await _skip(client, ctx, skipped)\n",
            "    sent = await _skip(client, ctx, skipped)\n"
            '    await client.set_xcom(SKIPMIXIN_KEY, {"followed": follow})\n'
            "    return sent\n",
        ),
    ),
    _m(
        "defer_empty_next_kwargs_null",
        "a Defer without resume kwargs sends next_kwargs null (the API refuses it)",
        (
            _DEFER,
            'next_kwargs=serde.encode(defer.kwargs, "Defer kwargs"),',
            'next_kwargs=serde.encode(defer.kwargs, "Defer kwargs") or None,',
        ),
    ),
    _m(
        "reschedule_sent_as_retry",
        "a reschedule-mode sensor that is not done ends with RetryTask instead of RescheduleTask",
        (
            _SENSORS,
            "from ..protocol.messages import RescheduleTask\n",
            "from ..protocol.messages import RescheduleTask, RetryTask\n",
        ),
        (
            _SENSORS,
            "                RescheduleTask(reschedule_date=when, end_date=_now()),\n",
            "                RetryTask(end_date=_now()),\n",
        ),
    ),
    _m(
        "trigger_traceback_not_logged",
        "a resumed try whose trigger failed fails without logging the trigger's traceback",
        (
            _DEFER,
            '        log.error("Trigger failed:\\n%s", text.rstrip("\\n"))\n',
            "        pass\n",
        ),
    ),
)

#: What a run needs besides the mutated package: the model and the stateful tests.
COPIED = (
    "trio_coord",
    "model",
    "pyproject.toml",
    "mutants/run.py",
    "tests/conftest.py",
    "tests/test_stateful.py",
)
#: The two machines, and the scenarios that replay the rarest endings through the
#: runtime machine (test_stateful.py also checks this table, against the real tree).
TESTS = (
    "tests/test_stateful.py::TestConnectionVsModel",
    "tests/test_stateful.py::TestRuntimeVsModel",
    "tests/test_stateful.py::test_branch_skip_refused_fails_the_try",
    "tests/test_stateful.py::test_deferral_and_reschedule_endings",
)


#: Appended to the scratch copy's conftest: the ``ci`` profile (same examples, same
#: machines) without the shrink phase. A verdict needs the first failure, not the
#: smallest one; shrinking a failing conversation took minutes on a loaded machine.
_PROFILE = """

from hypothesis import Phase

settings.register_profile(
    "mutants",
    settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=False,
)
settings.load_profile("mutants")
"""


class StaleSnippet(Exception):
    """A snippet of the table no longer matches the source exactly once."""


def apply(mutation: Mutation, root: Path) -> None:
    """Apply ``mutation``'s edits to the tree at ``root`` (a scratch copy)."""
    for edit in mutation.edits:
        target = root / edit.path
        text = target.read_text()
        count = text.count(edit.old)
        if count != 1:
            raise StaleSnippet(
                f"{mutation.name}: {edit.path} contains the snippet {count} times, not once:\n"
                f"    {edit.old!r}\nupdate MUTATIONS in mutants/run.py to match the code"
            )
        target.write_text(text.replace(edit.old, edit.new))


def check_all(root: Path = ROOT) -> list[str]:
    """Problems with the table against the tree at ``root`` (empty when every edit applies).

    Edits of one mutation are applied in turn to in-memory texts, like :func:`apply`.
    """
    problems = []
    names = set()
    for mutation in MUTATIONS:
        if mutation.name in names:
            problems.append(f"{mutation.name}: duplicate name")
        names.add(mutation.name)
        texts: dict[str, str] = {}
        for edit in mutation.edits:
            text = texts.get(edit.path)
            if text is None:
                text = (root / edit.path).read_text()
            count = text.count(edit.old)
            if count != 1:
                problems.append(f"{mutation.name}: {edit.path}: snippet found {count} times")
                continue
            texts[edit.path] = text.replace(edit.old, edit.new)
    return problems


def scratch_copy(into: Path) -> None:
    for rel in COPIED:
        src, dst = ROOT / rel, into / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)


@dataclass
class Result:
    name: str
    files: str
    caught: bool
    by: str
    seconds: float
    #: The run itself broke (collection error, pytest usage error): no verdict.
    broken: bool = False


_SECTION = re.compile(r"^_{3,} (\S+) _{3,}$", re.M)
_FRAME = re.compile(r"^\S*?(model/\w+\.py):\d+: in (\w+)$", re.M)


def _failures(stdout: str) -> list[str]:
    """One line per failed test: the machine, the model/ function that raised, the error."""
    parts = _SECTION.split(stdout)
    found = []
    for test, body in zip(parts[1::2], parts[2::2], strict=True):
        first_error = re.search(r"^E +(.*)$", body, re.M)
        frames = _FRAME.findall(body[: first_error.start()] if first_error else body)
        where = frames[-1][1] if frames else "?"
        error = first_error.group(1) if first_error else "?"
        error = re.sub(r"^(?:[a-z_]+\.)+(?=[A-Z])", "", error)  # the exception's module
        machine = test.split(".")[0].removeprefix("Test")
        found.append(f"{machine}.{where}: {error}")
    return found


def run_one(mutation: Mutation | None, timeout: float, logs: Path | None = None) -> Result:
    """Run the machines against a scratch copy with ``mutation`` applied (None: unmutated)."""
    name = mutation.name if mutation else "(none: baseline)"
    files = (
        ", ".join(sorted({e.path.removeprefix("trio_coord/") for e in mutation.edits}))
        if (mutation)
        else "-"
    )
    with tempfile.TemporaryDirectory(prefix="trio-coord-mutant-") as tmp:
        scratch = Path(tmp)
        scratch_copy(scratch)
        if mutation is not None:
            apply(mutation, scratch)
        with (scratch / "tests" / "conftest.py").open("a") as conftest:
            conftest.write(_PROFILE)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(scratch), os.environ.get("PYTHONPATH", "")]),
            "HYPOTHESIS_PROFILE": "ci",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop("MODEL_STATS", None)
        # The scratch directory is the working directory, so the run also gets a fresh
        # Hypothesis example database: no mutation is caught by replaying another's example.
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:logging",
            "--tb=short", *TESTS,
        ]  # fmt: skip
        start = time.perf_counter()
        try:
            out = subprocess.run(
                cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return Result(name, files, True, f"timeout after {timeout:g} s", timeout)
        took = time.perf_counter() - start
        if logs is not None:
            stem = mutation.name if mutation else "baseline"
            (logs / f"{stem}.txt").write_text(out.stdout + out.stderr)
        where = _imported_from(scratch, env)
    if where is not None:
        raise SystemExit(f"the scratch run imported trio_coord from {where}, not the copy")
    failures = _failures(out.stdout)
    if out.returncode not in (0, 1) or (out.returncode == 1 and not failures):
        tail = "\n".join(out.stdout.splitlines()[-15:] + out.stderr.splitlines()[-15:])
        return Result(name, files, False, f"pytest exited {out.returncode}: {tail}", took, True)
    return Result(name, files, bool(failures), "; ".join(failures) or "-", took)


def _imported_from(scratch: Path, env: dict[str, str]) -> str | None:
    """None if ``python`` in ``env`` imports trio_coord from ``scratch``; else where from."""
    code = "import trio_coord, model; print(trio_coord.__file__); print(model.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=scratch, env=env, capture_output=True, text=True
    )
    paths = out.stdout.split()
    if len(paths) != 2 or not all(p.startswith(str(scratch)) for p in paths):
        return " ".join(paths) or out.stderr[-500:]
    return None


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(results: list[Result]) -> None:
    print()
    print("| mutation | file | caught | by (machine: first failure) | time |")
    print("|---|---|---|---|---|")
    for r in results:
        caught = "yes" if r.caught else "**ERROR**" if r.broken else "**NO**"
        if r.name.startswith("("):
            caught = "fails" if r.caught else "passes"
        print(f"| {r.name} | {r.files} | {caught} | {_short(r.by, 110)} | {r.seconds:.0f} s |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutations")
    parser.add_argument("--check", action="store_true", help="only check the snippets apply")
    parser.add_argument("--list", action="store_true", help="list the mutations")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--logs", type=Path, help="keep each run's pytest output here")
    args = parser.parse_args(argv)
    if args.list:
        for mutation in MUTATIONS:
            files = ", ".join(sorted({e.path for e in mutation.edits}))
            print(f"{mutation.name:32} {files}\n{'':32} {mutation.description}")
        return 0
    problems = check_all()
    if problems:
        print("mutation table out of date with the code:", *problems, sep="\n  ")
        return 2
    if args.check:
        print(f"all {len(MUTATIONS)} mutations apply")
        return 0
    chosen = list(MUTATIONS)
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutations: {sorted(unknown)}")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    results = []
    total = time.perf_counter()
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    if not args.no_baseline:
        base = run_one(None, args.timeout, args.logs)
        print(
            f"baseline: {'FAILS' if base.caught else 'passes'} ({base.seconds:.0f} s)", flush=True
        )
        if base.caught or base.broken:
            print(f"the unmutated copy fails, so no verdict means anything: {base.by}")
            return 1
        results.append(base)
    for mutation in chosen:
        result = run_one(mutation, args.timeout, args.logs)
        verdict = "caught" if result.caught else "RUN BROKEN" if result.broken else "SURVIVED"
        print(f"{mutation.name}: {verdict} "
              f"({result.seconds:.0f} s) {_short(result.by, 200)}", flush=True)  # fmt: skip
        results.append(result)
    print_table(results)
    broken = [r.name for r in results if r.broken]
    survivors = [r.name for r in results if r.name in {m.name for m in chosen} and not r.caught]
    survivors = [name for name in survivors if name not in broken]
    print(f"{len(chosen) - len(survivors)}/{len(chosen)} caught in "
          f"{time.perf_counter() - total:.0f} s")  # fmt: skip
    if survivors:
        print("SURVIVORS (the machines did not notice these bugs):", ", ".join(survivors))
    if broken:
        print("RUNS THAT BROKE (no verdict; see their row):", ", ".join(broken))
    if survivors or broken:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
