"""``nox -s e2e``: trio-coord under a real, running Airflow 3.3.2; fails unless every check passes.

Steps: build (or reuse) the Airflow venv; deploy as docs/deployment.md says (pack the
example bundles into ``executables_root``, copy the bundle files and a native DAG into the
DAG folder); start scheduler, DAG processor, API server and triggerer; run every scenario
of e2e/scenarios.py through the REST API; check the components are still healthy; measure
no-op task cost; tear everything down. Nothing is skipped: a missing Airflow, a component
that does not start, a scenario that does not end as expected all fail the run.

By default every packed bundle but one gets a warm server (``trio-coord warm``, as
docs/warm-start.md tells a user), started after packing with the worker's settings and
stopped at teardown; the run fails unless each server served its bundle's tries (a run
that silently went cold is a failure). ``--cold`` runs without any server.

Usage: python -m e2e [--cold] [--sequential N] [--concurrent N] [--record]
(--record writes the measured figures to docs/performance-e2e.md.)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from . import perf
from .api import ApiError
from .cluster import ROOT, Cluster, ClusterError, running_cluster
from .scenarios import SCENARIOS, Run, Scenario
from .venv import VenvError, ensure_venv
from .warm import served_problems

EXAMPLES = ROOT / "examples"
#: Bundle files packed into executables_root (name in the root -> source).
PACKED = {"hello": "hello_bundle.py", "e2e": "e2e_bundle.py"}
#: Files in the DAG folder: the packed bundles' files, one never packed, a native DAG.
DAG_FILES = (
    EXAMPLES / "hello_bundle.py",
    EXAMPLES / "e2e_bundle.py",
    EXAMPLES / "e2e_unpacked_bundle.py",
    # The native baseline is no trio-coord example: it lives with the harness.
    Path(__file__).resolve().parent / "native_noop_dag.py",
)
#: The perf bundle's two deployments (name in the root), see perf_noop_bundle.py.
PERF_WARM, PERF_COLD = "perf-noop-warm", "perf-noop-cold"
#: Packed bundles that get a warm server unless --cold: all but PERF_COLD.
WARM_BUNDLES = (*PACKED, PERF_WARM)
DAG_PARSE_TIMEOUT_S = 240.0
PERF_DOC = ROOT / "docs" / "performance-e2e.md"


def say(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def deploy(cluster: Cluster) -> None:
    """docs/deployment.md §3-§4: pack into executables_root, bundle files into the DAG folder."""
    cluster.install_trio_coord_for_dag_processor()
    for name, source in PACKED.items():
        cluster.pack(EXAMPLES / source, name)
    for name in DAG_FILES:
        cluster.add_dag_file(name)
    # The perf bundle twice: the same code under two DAG ids (two hashes), one served warm.
    text = perf.BUNDLE_SOURCE.read_text()
    sources = cluster.tmp / "perf-src"
    sources.mkdir()
    for name, dag_id, content in (
        (PERF_WARM, perf.WARM_DAG, text),
        (PERF_COLD, perf.COLD_DAG, perf.cold_variant(text)),
    ):
        path = sources / f"{dag_id}.py"
        path.write_text(content)
        cluster.pack(path, name)
        cluster.add_dag_file(path)
    # docs/warm-start.md: the server is the last step of a deployment.
    if cluster.warm:
        for name in WARM_BUNDLES:
            server = cluster.start_warm(name)
            say(f"warm server for {name}: pid {server.pid}")


def check_served(cluster: Cluster, at_least: dict[str, int]) -> str | None:
    """The warm servers named in ``at_least`` each served at least that many tries."""
    status = cluster.warm_status()
    counts = {
        name: status[s.bundle].served if s.bundle in status else "gone"
        for name, s in cluster.warm_servers.items()
    }
    problems = served_problems(cluster.warm_servers, status, at_least)
    if problems:
        return "warm start: " + "; ".join(problems)
    say(f"PASS every try of {sorted(at_least)} started warm (tries served: {counts})")
    return None


def run_scenarios(
    cluster: Cluster, scenarios: tuple[Scenario, ...]
) -> list[tuple[Scenario, Run, str | None]]:
    """Start every scenario's run, then see each through; returns (scenario, run, failure)."""
    api = cluster.api
    stamp = time.strftime("%H%M%S")
    runs: list[tuple[Scenario, Run, str | None]] = []
    for sc in scenarios:
        r = Run(cluster, sc.dag_id, f"e2e-{sc.name}-{stamp}")
        try:
            api.trigger(sc.dag_id, r.run_id)
            if sc.before:
                sc.before(r)
            api.set_paused(sc.dag_id, False)
        except Exception as exc:  # reported as this scenario's failure
            runs.append((sc, r, f"could not start: {exc}"))
            continue
        runs.append((sc, r, None))
    results: list[tuple[Scenario, Run, str | None]] = []
    for sc, r, failure in runs:
        if failure is None:
            failure = _see_through(sc, r)
        results.append((sc, r, failure))
        say(f"{'PASS' if failure is None else 'FAIL'} {sc.name}: {sc.doc}")
        for k, v in r.notes.items():
            say(f"     {k}: {v}")
        if failure is not None:
            say("     " + failure.replace("\n", "\n     "))
    return results


def _see_through(sc: Scenario, r: Run) -> str | None:
    try:
        if sc.during:
            sc.during(r)
        r.cluster.api.wait_run(sc.dag_id, r.run_id, sc.timeout)
        tis = r.cluster.api.task_instances(sc.dag_id, r.run_id)
        states = {t: tis[t]["state"] if t in tis else "(no task instance)" for t in sc.expect}
        if states != dict(sc.expect):
            logs = "".join(
                f"\n--- log of {t} ---\n"
                + "\n".join(r.log(t, max(1, tis[t]["try_number"])).splitlines()[-15:])
                for t in sc.expect
                if t in tis and states[t] != sc.expect[t]
            )
            return f"task states {states}, expected {dict(sc.expect)}{logs}"
        if sc.check:
            sc.check(r)
    except AssertionError as exc:
        return str(exc)
    except Exception:  # an unexpected error fails this scenario, not the others
        return traceback.format_exc(limit=5)
    return None


def check_components(cluster: Cluster) -> str | None:
    """After the scenarios: every component still runs, and all four report healthy."""
    try:
        cluster.check_alive()
        health = cluster.wait_healthy()
    except ClusterError as exc:
        return str(exc)
    say(f"PASS components healthy after the scenarios: {health}")
    return None


def write_perf_doc(text: str, when: str, env: str) -> None:
    PERF_DOC.write_text(
        "# End to end under Airflow: per-task cost\n\n"
        "Generated by `nox -s e2e -- --record` (e2e/perf.py); rerun it rather than editing.\n\n"
        "**Goal:** a trio-coord task goes from queued to finished no slower than a native "
        "Airflow task, one at a time and 5 at once (*vs native* <= 1.00x).\n\n"
        "A no-op trio-coord task (e2e/perf_noop_bundle.py, packed, run by Airflow's "
        "`ExecutableCoordinator`) beside a no-op native `@task` (e2e/native_noop_dag.py), on "
        "the same throw-away Airflow 3.3.2 deployment (scheduler with LocalExecutor, DAG "
        "processor, API server, triggerer; SQLite). The trio-coord bundle is deployed twice, "
        "under two DAG ids: one has a warm server (`trio-coord warm`, see "
        "[warm-start.md](warm-start.md)), the other none, so its tries start cold; the run "
        "fails unless the warm server served every try of its bundle. "
        "Times are from each task instance's `queued_when`, `start_date` and `end_date` as the "
        "REST API reports them: *queued -> finished* is what a user waits for once the "
        "scheduler has queued the task. Median (min - max) in seconds; *vs native* is the "
        'ratio of the medians. "One at a time" interleaves the three DAGs, one run finishing '
        'before the next is triggered; "at once" triggers that many runs of one DAG together.\n\n'
        f"Run: {when}, {env}. The machine is shared with other builds, so the figures are "
        "rough: compare rows of the same run, not runs.\n\n"
        f"{text}\n\n{PERF_NOTES}"
    )


#: What the figures mean; kept beside the generated table (e2e/perf.py measures).
PERF_NOTES = """\
## What the time goes to

The two columns split the task's time where Airflow records `start_date`, and that point
is not the same for both kinds of task. A native task's supervisor forks its child and
tells the Execution API the task started at once, so its *queued -> started* is only the
LocalExecutor taking the task. A coordinator's supervisor first finds the bundle under
`executables_root` (it reads the metadata of every executable there), starts the bundle's
process and waits until both of its connections are accepted, and only then records the
start: so a trio-coord task's *queued -> started* also holds the process start, and its
*started -> finished* only the task's run over the protocol. Compare the totals.

Cold, the process start is a new interpreter importing Trio, msgpack, trio-coord and the
bundle: a few hundred milliseconds one at a time on this machine, and several seconds
when five start together on two busy cores. Warm, the bundle's launcher only connects
and hands its try to the warm server, which forks a process that has all of that
imported already (tens of milliseconds), so the five tries at once no longer compete for
the CPU to import the same modules. What remains between a warm try and a native one is
the supervisor's own work around a coordinator process (finding and checking the bundle,
starting the launcher from a large Python process, accepting its connections), which is
Airflow's; `python bench/supervised.py --trace` breaks a try down under the same
supervisor (see [performance.md](performance.md)).
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=10, help="one-at-a-time runs per runtime")
    ap.add_argument("--concurrent", type=int, default=5, help="runs started at once per runtime")
    ap.add_argument("--record", action="store_true", help="write docs/performance-e2e.md")
    ap.add_argument("--cold", action="store_true", help="no warm servers: every try starts cold")
    ap.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help="development: run only these scenarios and no measurement; never a pass",
    )
    args = ap.parse_args()
    if args.cold and args.record:
        ap.error("--record measures warm and cold side by side: it cannot be used with --cold")
    started = time.monotonic()
    failures: list[str] = []
    scenarios = SCENARIOS
    if args.only:
        unknown = set(args.only) - {sc.name for sc in SCENARIOS}
        if unknown:
            ap.error(f"unknown scenarios {sorted(unknown)}; known: {[sc.name for sc in SCENARIOS]}")
        scenarios = tuple(sc for sc in SCENARIOS if sc.name in args.only)
    try:
        venv, built = ensure_venv()
    except VenvError as exc:
        say(f"FAIL cannot install Airflow, so nothing was tested: {exc}")
        return 1
    say(f"Airflow venv {venv} ({f'built in {built:.0f} s' if built else 'cached'})")
    perf_text = None
    try:
        with running_cluster(venv, deploy, warm=not args.cold) as cluster:
            say(f"components healthy after {time.monotonic() - started:.0f} s ({cluster.tmp})")
            wanted = {sc.dag_id for sc in SCENARIOS} | {perf.NATIVE_DAG}
            wanted |= set(perf.runtimes(warm=True).values())
            for dag_id in sorted(wanted):
                cluster.api.wait_dag(dag_id, DAG_PARSE_TIMEOUT_S)
            errors = cluster.api.get("/api/v2/importErrors")["import_errors"]
            if errors:
                failures.append(f"DAG import errors: {errors}")
            results = run_scenarios(cluster, scenarios)
            failures += [f"scenario {sc.name}" for sc, _, f in results if f is not None]
            if len(results) != len(scenarios):
                failures.append("not every scenario ran")
            bad = check_components(cluster)
            if bad:
                failures.append(bad)
            if cluster.warm and not args.only:
                # Every scenario bundle has scenarios; each of their tries must have gone warm.
                bad = check_served(cluster, dict.fromkeys(PACKED, 1))
                if bad:
                    failures.append(bad)
            if not args.only:
                t = time.monotonic()
                kinds = perf.runtimes(cluster.warm)
                figures = perf.measure(cluster.api, args.sequential, args.concurrent, kinds)
                perf_text = perf.table(figures)
                say(f"per-task cost ({time.monotonic() - t:.0f} s):\n{perf_text}")
                if cluster.warm:
                    # The warm-up run, the sequential runs and the concurrent ones: all warm.
                    runs = 1 + args.sequential + args.concurrent
                    bad = check_served(cluster, {PERF_WARM: runs})
                    if bad:
                        failures.append(bad)
    except (ClusterError, ApiError) as exc:  # an expected kind of failure: its message says it all
        failures.append(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # anything else fails the run too, with its traceback
        failures.append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    total = time.monotonic() - started
    if perf_text and args.record and not failures:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        env = (
            f"{_cpus()} CPUs, load average {load} at the end, Python "
            f"{platform.python_version()}, Airflow venv {'built in this run' if built else 'cached'}"
        )
        write_perf_doc(perf_text, when, env)
        say(f"wrote {PERF_DOC}")
    if failures:
        for f in failures:
            if "\n" in f:
                print(f, flush=True)
        say(f"FAILED after {total:.0f} s: " + "; ".join(f.splitlines()[0] for f in failures))
        say("set TRIO_COORD_E2E_KEEP_LOGS=DIR to keep the component and task logs of a run")
        return 1
    if args.only:
        say(
            f"partial run (--only {' '.join(args.only)}): the selected scenarios passed, but a "
            f"partial run is never a pass"
        )
        return 2
    mode = "cold (--cold)" if args.cold else "warm servers on"
    say(f"all {len(SCENARIOS)} scenarios and the component checks passed in {total:.0f} s, {mode}")
    return 0


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
