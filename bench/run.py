"""``nox -s bench``: measure trio-coord beside its baselines and write docs/performance.md.

Every figure is the median of ``--rounds`` interleaved rounds (each round runs every
variant once, in a rotating order, so a slow minute on a shared 2-core machine hits all
variants alike), reported with its min and max. Servers and clients are separate
processes. The hand-written findings between the markers in docs/performance.md are
kept; everything else in that file is regenerated.

Usage: python bench/run.py [--rounds N] [--quick] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from tryrun import run_try, startup_body, time_exit  # noqa: E402

PY = sys.executable
BEGIN = "<!-- findings:begin (hand-written; bench/run.py keeps this section) -->"
END = "<!-- findings:end -->"
XCOM_SIZES = (1, 16, 64)
LOG_RECORDS = 100_000


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- processes -------------------------------------------------------------------------


def _env(tree: str | None = None) -> dict[str, str]:
    """The environment of every child; ``tree`` puts another checkout of trio_coord first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRIO_COORD"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, str(ROOT), env.get("PYTHONPATH")]))
    return env


#: Prefix that runs a command on CPU 0 only, for the "one core" figures (None: no taskset).
PIN: Final[list[str] | None] = ["taskset", "-c", "0"] if shutil.which("taskset") else None


class Server:
    """bench/server.py in its own process (on CPU 0 only with ``pinned``)."""

    def __init__(self, *, pinned: bool = False) -> None:
        prefix = PIN if pinned and PIN else []
        self.proc = subprocess.Popen(
            [*prefix, PY, str(HERE / "server.py")], stdout=subprocess.PIPE, text=True, env=_env()
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _json_run(
    cmd: list[str],
    timeout: float = 120,
    tree: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    env = {**_env(tree), **(extra_env or {})}
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(HERE)
    )
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def compile_c(tmp: Path) -> str | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        log("no C compiler: the C floor is skipped")
        return None
    exe = tmp / "c_client"
    subprocess.run([cc, "-O2", "-o", str(exe), str(HERE / "c_client.c")], check=True)
    return str(exe)


# -- statistics ------------------------------------------------------------------------


class Samples:
    def __init__(self) -> None:
        self.data: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.data.setdefault(key, []).append(value)

    def med(self, key: str) -> float:
        return statistics.median(self.data[key])

    def has(self, key: str) -> bool:
        return bool(self.data.get(key))

    def cell(self, key: str, fmt: Callable[[float], str]) -> str:
        if not self.has(key):
            return "n/a"
        vals = self.data[key]
        return f"{fmt(self.med(key))} ({fmt(min(vals))} - {fmt(max(vals))})"


def rotate(items: list[Any], i: int) -> list[Any]:
    k = i % len(items)
    return items[k:] + items[:k]


# -- the six benchmarks, one round each -------------------------------------------------


def round_requests(
    s: Samples,
    i: int,
    port: int,
    c_exe: str | None,
    secs: float,
    before: str | None,
    pinned_port: int | None = None,
) -> None:
    variants: list[tuple[str, list[str]]] = [
        ("rt.blocking", [PY, "clients.py", "blocking", str(port), str(secs)]),
        ("rt.commsdecoder", [PY, "clients.py", "commsdecoder", str(port), str(secs)]),
        ("rt.triofloor", [PY, "clients.py", "trio-floor", str(port), str(secs)]),
        ("rt.trio", [PY, "clients.py", "trio", str(port), str(secs), "1"]),
        ("rt.trionopoll", [PY, "clients.py", "trio", str(port), str(secs), "1", "0"]),
        ("conc.trio64", [PY, "clients.py", "trio", str(port), str(secs), "64"]),
    ]
    if c_exe:
        variants.append(("rt.c", [c_exe, str(port), str(secs)]))
    if pinned_port is not None and PIN:
        # Supervisor and task on one core, as on a busy worker: no idle wake-ups, so
        # this is what each client's CPU per request buys.
        pp = str(pinned_port)
        variants += [
            ("core1.commsdecoder", [*PIN, PY, "clients.py", "commsdecoder", pp, str(secs)]),
            ("core1.trio", [*PIN, PY, "clients.py", "trio", pp, str(secs), "1"]),
        ]
    variants += [
        ("cost.trio", [PY, "inproc.py", "trio"]),
        ("cost.trioparked", [PY, "inproc.py", "trio-parked"]),
        ("cost.commsdecoder", [PY, "inproc.py", "commsdecoder"]),
    ]
    if before:
        variants += [
            ("before." + key, cmd)
            for key, cmd in variants
            if key in ("rt.trio", "conc.trio64", "cost.trio")
        ]
    for key, cmd in rotate(variants, i):
        tree = before if key.startswith("before.") else None
        r = _json_run(cmd, tree=tree)
        s.add(key, r["us_per_request"] if "us_per_request" in r else r["rate"])
        if "cpu_us" in r:
            s.add(key + ".cpu", r["cpu_us"])
        if r.get("polls") is not None:
            s.add(key + ".hits", 100 * r["poll_hits"] / max(1, r["ops"]))


def round_coldstart(s: Samples, i: int, bundle_exe: str, warm_dir: str | None = None) -> None:
    env = {**_env(), "TRIO_COORD_WARM": "0"}
    serve = [
        str(Path(PY).with_name("trio-coord")),
        "serve",
        "--bundle",
        f"{HERE / 'bench_bundle.py'}:bundle",
    ]
    if not Path(serve[0]).exists():
        serve = [PY, "-m", "trio_coord", *serve[1:]]
    body = startup_body("noop")

    def runtime(key: str, cmd: list[str], env: dict[str, str] = env) -> Callable[[], None]:
        def go() -> None:
            r = run_try(cmd, startup_body=body, env=env)
            if r.returncode != 0 or r.terminal_type != "SucceedTask":
                raise RuntimeError(f"{key}: {r.returncode} {r.terminal_type}\n{r.stderr[-2000:]}")
            s.add(f"{key}.connected", r.connected)
            s.add(f"{key}.terminal", r.terminal)
            s.add(f"{key}.exited", r.exited)

        return go

    def baseline(key: str, code: str) -> Callable[[], None]:
        return lambda: s.add(key, time_exit([PY, "-c", code], env))

    variants = [
        runtime("cold.serve", serve),
        runtime("cold.packed", [bundle_exe]),
        baseline("cold.import", "import trio, msgpack"),
        baseline("cold.pass", "pass"),
    ]
    if warm_dir is not None:  # the same bundle, its try forked by a warm server
        warm_env = {**_env(), "TRIO_COORD_WARM_DIR": warm_dir}
        variants.append(runtime("warm.packed", [bundle_exe], warm_env))
    for go in rotate(variants, i):
        go()


def round_parse(s: Samples, i: int, variants: dict[str, Callable[[], float]]) -> None:
    """DAG parse, 100 DAGs x 10 tasks: native (serve, packed) vs Airflow's (parse_bench.py)."""
    for key in rotate(list(variants), i):
        s.add(key, variants[key]())


def round_supervised(s: Samples, i: int, bundle_dir: str, warm_dir: str | None = None) -> None:
    cold = {"TRIO_COORD_WARM": "0"}
    variants = [
        ("sup.serve", [PY, "supervised.py", "serve", f"{HERE / 'bench_bundle.py'}:bundle"], {}),
        ("sup.packed", [PY, "supervised.py", "packed", bundle_dir], cold),
        # The baseline: Airflow's own runner, forked by the same supervisor (no sockets).
        ("sup.native", [PY, "supervised.py", "native", str(HERE)], {}),
    ]
    if warm_dir is not None:  # the same packed bundle, its try forked by a warm server
        warm = {"TRIO_COORD_WARM_DIR": warm_dir}
        pre = [PY, "supervised.py", "packed", bundle_dir, "--preload"]
        variants += [
            ("sup.warm", [PY, "supervised.py", "packed", bundle_dir], warm),
            # A worker that ran a coordinator task before: the supervisor's lazy imports done.
            ("sup.packedpre", pre, cold),
            ("sup.warmpre", pre, warm),
        ]
    for key, cmd, extra in rotate(variants, i):
        r = _json_run(cmd, timeout=180, extra_env=extra)
        if r["state"] != "success":
            raise RuntimeError(f"{key}: the supervised no-op task ended {r}")
        if r["spawn_to_connected"] is not None:
            s.add(f"{key}.connected", r["spawn_to_connected"])
        s.add(f"{key}.terminal", r["spawn_to_terminal"])
        s.add(f"{key}.total", r["supervise_total"])


def start_warm(bundle_exe: str, tmp: Path) -> str:
    """Start a warm server for the benchmark bundle (``trio-coord warm``); its directory."""
    warm_dir = tmp / "warm"
    env = {**_env(), "TRIO_COORD_WARM_DIR": str(warm_dir)}
    cmd = [PY, "-m", "trio_coord", "warm", bundle_exe, "--idle-timeout", "3600"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return str(warm_dir)


def stop_warm(warm_dir: str) -> None:
    env = {**_env(), "TRIO_COORD_WARM_DIR": warm_dir}
    subprocess.run([PY, "-m", "trio_coord", "warm", "--stop"], env=env, stdout=subprocess.DEVNULL)


def round_xcom(s: Samples, i: int, port: int, before: str | None) -> None:
    kinds = ("trio", "commsdecoder", "before") if before else ("trio", "commsdecoder")
    variants = [(kind, mib) for kind in kinds for mib in XCOM_SIZES]
    for kind, mib in rotate(variants, i):
        client = "trio" if kind == "before" else kind
        tree = before if kind == "before" else None
        r = _json_run([PY, "clients.py", f"xcom-{client}", str(port), str(mib)], tree=tree)
        s.add(f"xcom.{kind}.{mib}.set", r["set_s"] / mib)
        s.add(f"xcom.{kind}.{mib}.get", r["get_s"] / mib)
        s.add(f"xcom.{kind}.{mib}.setrss", r["set_rss_mib"] / mib)
        s.add(f"xcom.{kind}.{mib}.getrss", r["get_rss_mib"] / mib)


def round_logs(s: Samples, i: int, bundle_exe: str) -> None:
    env = _env()
    env["TRIO_COORD_BENCH_RECORDS"] = str(LOG_RECORDS)
    variants = ["log_sync", "log_async"]
    for task in rotate(variants, i):
        r = run_try([bundle_exe], startup_body=startup_body(task), env=env, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{task}: exit {r.returncode}\n{r.stderr[-2000:]}")
        span = r.last_marked - r.first_marked
        s.add(f"logs.{task}.rate", r.marked_lines / span if span > 0 else float("nan"))
        s.add(f"logs.{task}.lost", LOG_RECORDS - r.marked_lines)
        own = r.xcoms.get("return_value")
        if isinstance(own, int | float):
            s.add(f"logs.{task}.own_us", own / LOG_RECORDS * 1e6)


# -- import time -----------------------------------------------------------------------


def import_offenders(top: int = 15) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) of the imports of `trio-coord serve` with the most
    time of their own, up to the first frame (``-X importtime``)."""
    env = _env()
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    serve = [PY, "-m", "trio_coord", "serve", "--bundle", f"{HERE / 'bench_bundle.py'}:bundle"]
    r = run_try(serve, startup_body=None, env=env)
    rows: list[tuple[str, int, int]] = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| \s*(\S+)", line)
        if m:
            rows.append((m.group(3), int(m.group(1)), int(m.group(2))))
    rows.sort(key=lambda row: -row[1])
    return rows[:top]


# -- the report ------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("trio-coord", "trio", "msgpack", "msgspec", "apache-airflow-task-sdk"):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "?"
    return out


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu})"


def k(v: float) -> str:
    return f"{v / 1000:.1f}k/s"


def ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def x(v: float) -> str:
    return f"{v:.2f}x"


def ratio_cell(s: Samples, num: str, den: str) -> str:
    if not (s.has(num) and s.has(den)):
        return "n/a"
    return x(s.med(num) / s.med(den))


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(s: Samples, meta: dict[str, Any], offenders: list[tuple[str, int, int]]) -> str:
    med = s.med
    lines: list[str] = []
    add = lines.append
    add("# Performance")
    add("")
    add(
        "Generated by `nox -s bench` (bench/run.py); do not edit outside the findings "
        "section, which the generator keeps. Each cell is the **median** of "
        f"{meta['rounds']} interleaved rounds, with (min - max). Everything runs over "
        "127.0.0.1, server and client in separate processes."
    )
    add("")
    add(f"- date: {meta['date']}")
    add(f"- machine: {meta['machine']}; load average at start/end: {meta['load']}")
    add("- versions: " + ", ".join(f"{n} {v}" for n, v in meta["versions"].items()))
    add(f"- run time of the whole benchmark: {meta['elapsed']:.0f} s")
    add(
        "- run it: `nox -s bench` (options after `--`: `--rounds N`, `--seconds S` per "
        "request client, `--quick`, `--only requests,coldstart,supervised,xcom,logs,parse`, "
        "`--before TREE` to measure an older trio_coord beside this one)"
    )
    add("")
    add("## Summary")
    add("")
    add("| # | figure | trio-coord | baseline | ratio | goal | |")
    add("|---|---|---|---|---|---|---|")
    rt = med("rt.trio") / med("rt.commsdecoder")
    add(
        f"| 1 | request round trip, one caller | {k(med('rt.trio'))} | CommsDecoder "
        f"{k(med('rt.commsdecoder'))} | {x(rt)} | ≥ 1.1x | {verdict(rt >= 1.1)} |"
    )
    if s.has("core1.trio") and s.has("core1.commsdecoder"):
        c1r = med("core1.trio") / med("core1.commsdecoder")
        add(
            f"| 1' | one caller, supervisor and task on one core | {k(med('core1.trio'))} | "
            f"CommsDecoder {k(med('core1.commsdecoder'))} | {x(c1r)} | (reported) | |"
        )
    conc = med("conc.trio64") / med("rt.commsdecoder")
    add(
        f"| 2 | 64 concurrent callers | {k(med('conc.trio64'))} | CommsDecoder sequential "
        f"{k(med('rt.commsdecoder'))} | {x(conc)} | ≥ 4x | {verdict(conc >= 4)} |"
    )
    c1 = med("cold.serve.connected") / med("cold.import")
    c2 = med("cold.packed.connected") / med("cold.serve.connected")
    add(
        f"| 3a | cold start, serve: exec → both sockets | {ms(med('cold.serve.connected'))} | "
        f"`import trio, msgpack` {ms(med('cold.import'))} | {x(c1)} | ≤ 1.3x | {verdict(c1 <= 1.3)} |"
    )
    add(
        f"| 3b | cold start, packed bundle | {ms(med('cold.packed.connected'))} | serve "
        f"{ms(med('cold.serve.connected'))} | {x(c2)} | ≤ 1.2x | {verdict(c2 <= 1.2)} |"
    )
    add(
        f"| 4 | real supervisor, spawn → terminal (serve / packed) | "
        f"{ms(med('sup.serve.terminal'))} / {ms(med('sup.packed.terminal'))} | native "
        f"`@task` {s.cell('sup.native.terminal', ms).split(' (')[0]} | "
        f"packed/native {ratio_cell(s, 'sup.packed.terminal', 'sup.native.terminal')} | "
        "(reported) | |"
    )
    if s.has("warm.packed.connected"):
        wc = med("warm.packed.connected")
        add(
            f"| 4b | warm start (`trio-coord warm`): exec → both sockets | {ms(wc)} | cold "
            f"packed {ms(med('cold.packed.connected'))} | "
            f"{x(wc / med('cold.packed.connected'))} | < 30 ms | {verdict(wc < 0.030)} |"
        )
    if s.has("sup.warmpre.terminal"):
        # The goal of the warm start: under the same supervisor, a warm try reaches its
        # terminal state no later than Airflow's own forked runner.
        wr = med("sup.warmpre.terminal") / med("sup.native.terminal")
        add(
            f"| 4c | warm start, real supervisor, spawn → terminal state (supervisor's lazy "
            f"imports done) | {ms(med('sup.warmpre.terminal'))} | native `@task` "
            f"{ms(med('sup.native.terminal'))} | warm/native {x(wr)} | ≤ 1.0x | "
            f"{verdict(wr <= 1.0)} |"
        )
        wt = med("sup.warmpre.total") / med("sup.native.total")
        add(
            f"| 4c' | the same, whole `supervise_task` | {ms(med('sup.warmpre.total'))} | "
            f"native `@task` {ms(med('sup.native.total'))} | warm/native {x(wt)} | "
            "(reported) | |"
        )
    if s.has("sup.warm.terminal"):
        fr = med("sup.warm.terminal") / med("sup.native.terminal")
        add(
            f"| 4d | warm start, fresh supervisor (its first coordinator task), spawn → "
            f"terminal state | {ms(med('sup.warm.terminal'))} | native `@task` "
            f"{ms(med('sup.native.terminal'))} | warm/native {x(fr)} | (reported) | |"
        )
    flat = max(med(f"xcom.trio.64.{op}") / med(f"xcom.trio.1.{op}") for op in ("set", "get"))
    rss = max(med(f"xcom.trio.{m}.{op}rss") for m in XCOM_SIZES for op in ("set", "get"))
    add(
        f"| 5a | XCom time per MiB, 64 MiB ÷ 1 MiB (worst of set/get) | {x(flat)} | - | - | "
        f"flat (≤ 1.5x) | {verdict(flat <= 1.5)} |"
    )
    add(
        f"| 5b | XCom peak RSS growth ÷ payload (worst) | {x(rss)} | CommsDecoder "
        f"{x(max(med(f'xcom.commsdecoder.{m}.{op}rss') for m in XCOM_SIZES for op in ('set', 'get')))} "
        f"| - | ≤ 3x | {verdict(rss <= 3)} |"
    )
    for task, where in (("log_sync", "worker thread"), ("log_async", "Trio thread")):
        rate = med(f"logs.{task}.rate")
        lost = max(s.data[f"logs.{task}.lost"])
        add(
            f"| 6 | logs, {LOG_RECORDS // 1000}k records from the {where}: delivered/s; lost "
            f"(worst round) | {k(rate)}; lost {lost:.0f} | - | - | ≥ 150k/s, 0 lost | "
            f"{verdict(rate >= 150_000 and lost == 0)} |"
        )
    if s.has("parse.serve") and s.has("parse.python"):
        pr = med("parse.serve") / med("parse.python")
        add(
            f"| 7 | DAG parse, 100 DAGs x 10 tasks, process start included (serve / packed) | "
            f"{ms(med('parse.serve'))} / {ms(med('parse.packed'))} | Airflow 3.3.2 DagBag + "
            f"serialization {ms(med('parse.python'))} | {x(pr)} | ≤ 1.0x | {verdict(pr <= 1.0)} |"
        )
    add("")
    add("![throughput and latency](performance.png)")
    add("")
    add("## 1-2. Requests (`GetVariable`)")
    add("")
    add(
        "The reply server (bench/server.py) answers like the 1.3.2 supervisor: the SDK's own "
        "`_ResponseFrame.as_bytes()` (msgspec) with `model_dump()` bodies, first frame "
        "`StartupDetails`. Round trips per second (the one-core rows, server and client "
        "both on CPU 0, are divided by CommsDecoder on one core):"
    )
    add("")
    add(
        "| client | round trips/s | ÷ CommsDecoder | client CPU per round trip "
        "| answered while polling |"
    )
    add("|---|---|---|---|---|")
    for key, name in (
        ("rt.c", "C, blocking socket (floor)"),
        ("rt.blocking", "Python, blocking socket + msgpack (floor)"),
        ("rt.commsdecoder", "task-sdk 1.3.2 `CommsDecoder.send` (native runner)"),
        ("rt.triofloor", "plain Trio loop: `send_all`, `receive_some`, msgpack (floor in Trio)"),
        ("rt.trio", "trio-coord `Client.get_variable`, one caller"),
        ("rt.trionopoll", "trio-coord, one caller, polling off (`TRIO_COORD_REPLY_SPIN_US=0`)"),
        ("conc.trio64", "trio-coord, 64 concurrent callers, pipelined"),
        ("core1.commsdecoder", "one core (`taskset -c 0`, server too): CommsDecoder"),
        ("core1.trio", "one core (`taskset -c 0`, server too): trio-coord, one caller"),
        ("before.rt.trio", "trio-coord before the fixes (`--before`), one caller"),
        ("before.conc.trio64", "trio-coord before the fixes (`--before`), 64 callers"),
    ):
        if not s.has(key):
            continue
        hits = s.cell(key + ".hits", lambda v: f"{v:.0f} %") if s.has(key + ".hits") else "-"
        base = "core1.commsdecoder" if key.startswith("core1.") else "rt.commsdecoder"
        add(
            f"| {name} | {s.cell(key, k)} | {ratio_cell(s, key, base)} | "
            f"{s.cell(key + '.cpu', lambda v: f'{v:.0f} µs')} | {hits} |"
        )
    add("")
    add(
        "The client's own cost per request, in one process (bench/inproc.py: the reply is "
        "already waiting in a socket pair, so no other process is scheduled; best of 5 "
        "batches of 4000):"
    )
    add("")
    add("| client | µs per request | ÷ CommsDecoder |")
    add("|---|---|---|")
    for key, name in (
        ("cost.commsdecoder", "task-sdk 1.3.2 `CommsDecoder.send`"),
        ("cost.trio", "trio-coord `Client.get_variable` (the reply is found by polling)"),
        ("cost.trioparked", "trio-coord, polling off (the reader task hands the reply over)"),
        ("before.cost.trio", "trio-coord before the fixes (`--before`)"),
    ):
        if s.has(key):
            add(
                f"| {name} | {s.cell(key, lambda v: f'{v:.1f}')} | "
                f"{ratio_cell(s, key, 'cost.commsdecoder')} |"
            )
    add("")
    add("## 3-4. Start-up")
    add("")
    add(
        "Cold start: from exec to both sockets accepted by a minimal supervisor "
        "(bench/tryrun.py), then to the terminal message of a no-op task and to exit. "
        "Baselines are exec → exit."
    )
    add("")
    add("| program | both connected | terminal message | exited |")
    add("|---|---|---|---|")
    add(
        f"| `trio-coord serve --bundle …` | {s.cell('cold.serve.connected', ms)} | "
        f"{s.cell('cold.serve.terminal', ms)} | {s.cell('cold.serve.exited', ms)} |"
    )
    add(
        f"| packed bundle | {s.cell('cold.packed.connected', ms)} | "
        f"{s.cell('cold.packed.terminal', ms)} | {s.cell('cold.packed.exited', ms)} |"
    )
    add(
        f"| packed bundle, warm server (`trio-coord warm`) | {s.cell('warm.packed.connected', ms)} | "
        f"{s.cell('warm.packed.terminal', ms)} | {s.cell('warm.packed.exited', ms)} |"
    )
    add(f'| `python -c "import trio, msgpack"` | | | {s.cell("cold.import", ms)} |')
    add(f"| `python -c pass` | | | {s.cell('cold.pass', ms)} |")
    add("")
    add(
        "Under the real supervisor (`supervise_task`, Execution API on `httpx.MockTransport`, "
        "bench/supervised.py): from `_PopenActivitySubprocess.start` to both sockets accepted, "
        "to the terminal-state API call, and the whole `supervise_task` call. The native row is "
        "the same no-op as a plain Airflow `@task` (bench/bench_native.py) run by Airflow's own "
        "task runner, which the supervisor forks (from `ActivitySubprocess.start`; it inherits "
        "its sockets, so it has no connect step) and which then parses the DAG file."
    )
    add("")
    add("| runtime | spawn → connected | spawn → terminal | supervise_task total |")
    add("|---|---|---|---|")
    for key, name in (
        ("sup.serve", "TrioCoordinator (`python -m trio_coord serve`)"),
        ("sup.packed", "ExecutableCoordinator (packed bundle)"),
        ("sup.warm", "ExecutableCoordinator (packed bundle, warm server)"),
        ("sup.packedpre", "packed bundle, supervisor's lazy imports done (`--preload`)"),
        ("sup.warmpre", "warm server, supervisor's lazy imports done (`--preload`)"),
        ("sup.native", "native Airflow `@task` (baseline, forked)"),
    ):
        add(
            f"| {name} | {s.cell(key + '.connected', ms)} | {s.cell(key + '.terminal', ms)} | "
            f"{s.cell(key + '.total', ms)} |"
        )
    add("")
    add(
        "Imports of `trio-coord serve` with the most time of their own, before the first "
        "frame (`-X importtime`, one run):"
    )
    add("")
    add("| module | self | cumulative |")
    add("|---|---|---|")
    for name, self_us, cum in offenders:
        add(f"| `{name}` | {self_us / 1000:.1f} ms | {cum / 1000:.1f} ms |")
    add("")
    add("## 5. Large values")
    add("")
    add(
        "One `SetXCom` then one `GetXCom` of a str of the given size, each in a fresh client "
        "process; time per MiB (lower is better) and peak RSS growth during the call ÷ "
        "payload (VmHWM reset before each call)."
    )
    add("")
    add(
        "| client | MiB | SetXCom s/MiB | GetXCom s/MiB | Set peak RSS ÷ payload | Get peak RSS ÷ payload |"
    )
    add("|---|---|---|---|---|---|")
    for kind, name in (
        ("trio", "trio-coord"),
        ("commsdecoder", "CommsDecoder"),
        ("before", "trio-coord before the fixes"),
    ):
        if not s.has(f"xcom.{kind}.1.set"):
            continue
        for mib in XCOM_SIZES:
            p = f"xcom.{kind}.{mib}"
            add(
                f"| {name} | {mib} | {s.cell(p + '.set', ms)} | {s.cell(p + '.get', ms)} | "
                f"{s.cell(p + '.setrss', x)} | {s.cell(p + '.getrss', x)} |"
            )
    add("")
    add("## 6. Logs")
    add("")
    add(
        f"A packed bundle's task logs {LOG_RECORDS} records (`log.info('bench record %d', i)`); "
        "the supervisor stand-in counts lines on the logs socket. Rate = records ÷ (last - "
        "first record received); own time = the task's loop time ÷ records."
    )
    add("")
    add("| task | delivered/s | lost | task's own time per record |")
    add("|---|---|---|---|")
    for task in ("log_sync", "log_async"):
        add(
            f"| `{task}` | {s.cell(f'logs.{task}.rate', k)} | {s.cell(f'logs.{task}.lost', lambda v: f'{v:.0f}')} | "
            f"{s.cell(f'logs.{task}.own_us', lambda v: f'{v:.1f} µs')} |"
        )
    add("")
    return "\n".join(lines)


def plot(s: Samples, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    keys = [
        ("rt.c", "C floor"),
        ("rt.blocking", "blocking py"),
        ("rt.commsdecoder", "CommsDecoder"),
        ("rt.trio", "trio-coord x1"),
        ("conc.trio64", "trio-coord x64"),
    ]
    keys = [(key, name) for key, name in keys if s.has(key)]
    meds = [s.med(key) / 1000 for key, _ in keys]
    lo = [m - min(s.data[key]) / 1000 for m, (key, _) in zip(meds, keys, strict=True)]
    hi = [max(s.data[key]) / 1000 - m for m, (key, _) in zip(meds, keys, strict=True)]
    colors = ["#999"] * len(keys)
    for i, (key, _) in enumerate(keys):
        if key.startswith(("rt.trio", "conc")):
            colors[i] = "#2a7"
        elif key == "rt.commsdecoder":
            colors[i] = "#36c"
    a1.bar([n for _, n in keys], meds, yerr=[lo, hi], color=colors, capsize=4)
    a1.set_ylabel("GetVariable round trips/s (thousands)")
    a1.set_title("Requests (median, min-max)")
    a1.tick_params(axis="x", rotation=20)
    for kind, style in (("trio", "-o"), ("commsdecoder", "--s")):
        for op in ("set", "get"):
            ys = [s.med(f"xcom.{kind}.{m}.{op}") * 1000 for m in XCOM_SIZES]
            a2.plot(XCOM_SIZES, ys, style, label=f"{kind} {op}")
    a2.set_xscale("log", base=2)
    a2.set_xticks(list(XCOM_SIZES), [str(m) for m in XCOM_SIZES])
    a2.set_xlabel("XCom size (MiB)")
    a2.set_ylabel("ms per MiB")
    a2.set_ylim(bottom=0)
    a2.set_title("Large values: time per MiB (flat is good)")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def write_report(text: str, out: Path) -> None:
    findings = f"{BEGIN}\n## Findings\n\n(none recorded yet)\n{END}"
    if out.exists():
        old = out.read_text()
        if BEGIN in old and END in old:
            findings = old[old.index(BEGIN) : old.index(END) + len(END)]
    out.write_text(text + "\n" + findings + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="measuring time per request client")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 0.3 s clients (a smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument("--only", default="requests,coldstart,supervised,xcom,logs,parse")
    ap.add_argument(
        "--before",
        metavar="TREE",
        help="also measure the trio-coord clients with TREE (a directory holding an older "
        "trio_coord package) first on PYTHONPATH, as before.* figures",
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    only = set(args.only.split(","))
    start = time.monotonic()
    load0 = os.getloadavg()[0]
    s = Samples()
    with tempfile.TemporaryDirectory(prefix="trio-coord-bench-") as tmpdir:
        tmp = Path(tmpdir)
        c_exe = compile_c(tmp)
        bundle_dir = tmp / "bundles"
        bundle_dir.mkdir()
        bundle_exe = str(bundle_dir / "bench.bundle")
        log("packing the benchmark bundle")
        subprocess.run(
            [PY, "-m", "trio_coord", "pack", str(HERE / "bench_bundle.py"), "-o", bundle_exe],
            check=True,
            env=_env(),
            stdout=subprocess.DEVNULL,
        )
        parse_variants: dict[str, Callable[[], float]] = {}
        if "parse" in only:
            from parse_bench import prepare

            log("writing and packing the parse benchmark bundle")
            (tmp / "parse").mkdir()
            parse_variants = prepare(tmp / "parse")
        server = Server()
        pinned = Server(pinned=True) if PIN else None
        warm_dir = start_warm(bundle_exe, tmp) if {"supervised", "coldstart"} & only else None
        try:
            for i in range(args.rounds):
                log(f"round {i + 1}/{args.rounds}")
                if "requests" in only:
                    round_requests(
                        s,
                        i,
                        server.port,
                        c_exe,
                        args.seconds,
                        args.before,
                        pinned.port if pinned else None,
                    )
                if "coldstart" in only:
                    round_coldstart(s, i, bundle_exe, warm_dir)
                if "supervised" in only:
                    round_supervised(s, i, str(bundle_dir), warm_dir)
                if "xcom" in only:
                    round_xcom(s, i, server.port, args.before)
                if "logs" in only:
                    round_logs(s, i, bundle_exe)
                if "parse" in only:
                    round_parse(s, i, parse_variants)
        finally:
            server.close()
            if pinned:
                pinned.close()
            if warm_dir is not None:
                stop_warm(warm_dir)
        offenders = import_offenders()
    meta = {
        "rounds": args.rounds,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "load": f"{load0:.2f} / {os.getloadavg()[0]:.2f}",
        "elapsed": time.monotonic() - start,
    }
    (args.out.with_name(args.out.stem + "-data.json")).write_text(
        json.dumps({"meta": meta, "samples": s.data}, indent=1)
    )
    if not {"requests", "coldstart", "supervised", "xcom", "logs"} <= only:
        for key in sorted(s.data):
            print(f"{key:32s} {s.cell(key, lambda v: f'{v:.4g}')}")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(s, args.out.with_suffix(".png"))
    write_report(render(s, meta, offenders), args.out)
    log(f"wrote {args.out} in {meta['elapsed']:.0f} s")


if __name__ == "__main__":
    main()
