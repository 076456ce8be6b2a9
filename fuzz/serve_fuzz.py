"""Serve fuzzer: fuzzed frames fed to a *running* runtime, in-process and as ``trio-coord serve``.

Each conversation starts like a real one (usually a valid ``StartupDetails``, sometimes a
broken first frame) and runs ``fuzz/fuzz_bundle.py``'s chatty task. Whenever the runtime
sends a request, the fuzz supervisor answers it properly, or writes fuzzed bytes instead
(a broken frame, a valid frame at the wrong moment - a second StartupDetails, a reply to
an id nobody asked for, a 2- or 4-element frame - or a byte-level mutation of either),
or answers late, or closes the channel. The invariants:

* the runtime returns an exit code (0 or 1) - it never raises, whatever it was sent;
* it never hangs: it ends within a bound of *virtual* seconds in-process (MockClock) and
  within a real-time bound as a subprocess;
* when it exits 1, an error-level record saying why reached the logs channel (fail
  closed, with a clear log line);
* every request it wrote is one the real supervisor decodes, every log line one it
  accepts;
* as a subprocess its peak RSS stays within a few frame limits of a clean run's, even
  after a length prefix claiming gigabytes followed by a flood of bytes.

Usage::

    python fuzz/serve_fuzz.py 2000                  # in-process conversations
    python fuzz/serve_fuzz.py 120s --subprocess 20  # for two minutes, plus 20 real processes
"""

from __future__ import annotations

import argparse
import math
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio.testing
from reproducers import save_reproducer  # this directory

from model.fake_supervisor import FakeSupervisor, Wire, encode, frame
from model.protocol_model import (
    TERMINAL_TYPES,
    Answer,
    AnswerKind,
    FirstFrame,
    LogVerdict,
    check_request,
)
from model.strategies import GARBAGE_KINDS, garbage_payload
from trio_coord.config import Config
from trio_coord.loader import load_bundle
from trio_coord.runtime import serve_streams

HERE = Path(__file__).resolve().parent
BUNDLE_SPEC = f"{HERE / 'fuzz_bundle.py'}:bundle"
WIRE = Wire(dag_id="fuzz_dag", task_id="chatty", run_id="fuzz-run")

#: Timeouts in-process (virtual seconds) and the bound past which a run is hung.
REQUEST_TIMEOUT = 30.5
TERMINAL_TIMEOUT = 30.5
HANG_BOUND = 10 * (REQUEST_TIMEOUT + TERMINAL_TIMEOUT)


@dataclass
class Stats:
    conversations: int = 0
    over_sockets: int = 0  # conversations whose comm channel was a socket pair
    requests: int = 0
    fuzzed_frames: int = 0
    exit_codes: dict[int, int] = field(default_factory=dict)
    subprocesses: int = 0
    max_rss_kb: int = 0
    baseline_rss_kb: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.conversations / self.seconds if self.seconds else math.inf
        return (
            f"{self.conversations} conversations ({rate:,.1f}/s; {self.over_sockets} over "
            f"sockets), {self.requests} requests, "
            f"{self.fuzzed_frames} fuzzed writes, exit codes {self.exit_codes}; "
            f"{self.subprocesses} subprocesses, peak RSS {self.max_rss_kb} KiB "
            f"(clean run {self.baseline_rss_kb} KiB) in {self.seconds:.1f} s"
        )


class Fuzz:
    """Seeded choices of what the fuzz supervisor writes."""

    def __init__(self, seed: int, limit: int) -> None:
        self.rng = random.Random(seed)
        self.limit = limit

    def first_frame(self) -> bytes | None:
        rng = self.rng
        if rng.random() < 0.85:
            return WIRE.first_frame(FirstFrame.STARTUP)
        kind = rng.choice([k for k in FirstFrame if k is not FirstFrame.STARTUP])
        return WIRE.first_frame(kind) if rng.random() < 0.7 else self.bad_bytes()

    def bad_bytes(self) -> bytes:
        """Fuzzed bytes: a broken frame, a valid frame at the wrong moment, or a mutation."""
        rng = self.rng
        pick = rng.randrange(6)
        if pick == 0:
            data = frame(garbage_payload(rng.choice(GARBAGE_KINDS), rng.randrange(2**16)))
        elif pick == 1:
            data = WIRE.first_frame(FirstFrame.STARTUP) or b""  # a second first frame
        elif pick == 2:
            rid = rng.choice([0, 10**6, 2**63 - 1, -1])
            data = frame(encode(rng.choice([[rid, None, None], [rid, None], [rid, None, None, 1]])))
        elif pick == 3:
            data = struct.pack(">I", rng.choice([0, self.limit + 1, 2**32 - 1]))
        else:
            data = bytearray(
                frame(encode([rng.randrange(1, 9), {"ok": True, "type": "OKResponse"}, None]))
            )
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(data))
                data[at] ^= 1 << rng.randrange(8)
            data = bytes(data)
        return data

    def answer(self, request_type: str) -> Answer:
        rng = self.rng
        if request_type in TERMINAL_TYPES:
            return Answer(rng.choice([AnswerKind.EMPTY] * 4 + [AnswerKind.ERROR_ELEMENT]))
        return rng.choice(
            [Answer(AnswerKind.RESULT)] * 6
            + [Answer(AnswerKind.ERROR_ELEMENT), Answer(AnswerKind.ERROR_BODY, "GENERIC_ERROR")]
        )


# -- in-process ------------------------------------------------------------------------------


async def conversation(fuzz: Fuzz, bundle: Any, stats: Stats) -> None:
    """One fuzzed conversation with serve_streams, in virtual time.

    The comm channel is a memory stream pair or, for every other conversation, a real
    socket pair: sockets take the channel's socket paths (non-blocking writes, the
    reader's ``readv``, reply polling, which always misses here because the fake
    supervisor runs in the same thread and so exercises the back-off).
    """
    rng = fuzz.rng
    if rng.random() < 0.5:
        a, b = trio.socket.socketpair()
        comm_sup, comm_rt = trio.SocketStream(a), trio.SocketStream(b)
        stats.over_sockets += 1
    else:
        comm_sup, comm_rt = trio.testing.memory_stream_pair()
    logs_sup, logs_rt = trio.testing.memory_stream_pair()
    sup = FakeSupervisor(comm_sup, logs_sup)
    config = Config(
        request_timeout=REQUEST_TIMEOUT,
        terminal_timeout=TERMINAL_TIMEOUT,
        max_frame_size=fuzz.limit,
    )
    result: list[int] = []
    done = trio.Event()

    async def runtime() -> None:
        try:
            result.append(await serve_streams(bundle, comm_rt, logs_rt, config, environ={}))
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.read_comm)
        nursery.start_soon(sup.read_logs)
        nursery.start_soon(runtime)
        first = fuzz.first_frame()
        if first is None:
            await sup.close_comm()
        else:
            await sup.send(first)
        seen = 0
        with trio.move_on_after(HANG_BOUND):
            while not done.is_set():
                await trio.testing.wait_all_tasks_blocked()
                if done.is_set():
                    break
                if seen < len(sup.requests):
                    req = sup.requests[seen]
                    seen += 1
                    stats.requests += 1
                    assert not req.problems, (req.body, req.problems)
                    roll = rng.random()
                    if roll < 0.12:
                        stats.fuzzed_frames += 1
                        await sup.send(fuzz.bad_bytes())
                    elif roll < 0.15:
                        await trio.sleep(rng.choice([1.0, REQUEST_TIMEOUT + 1]))  # late / never
                    elif roll < 0.17:
                        await sup.close_comm()
                    if roll >= 0.12 and not sup.comm_closed:
                        raw = WIRE.answer_frame(
                            req.request_id,
                            req.request_type,
                            req.body,
                            fuzz.answer(req.request_type),
                        )
                        await sup.send(raw)
                else:
                    await trio.sleep(1.0)  # let timeouts fire (virtual)
        assert done.is_set(), f"hang: still running {HANG_BOUND} virtual s later"
        if not sup.comm_closed:
            await sup.close_comm()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    [rc] = result
    assert rc in (0, 1), rc
    stats.exit_codes[rc] = stats.exit_codes.get(rc, 0) + 1
    for seen_log in sup.logs_seen:
        assert seen_log.verdict is LogVerdict.ACCEPTED, seen_log.line
    if rc == 1:
        assert any(
            x.record and x.record.get("level") in ("error", "critical") for x in sup.logs_seen
        ), "exit 1 without an error record on the logs channel"
    stats.conversations += 1


def run(budget: str, *, seed: int, limit: int, report_every: float = 10.0) -> Stats:
    """In-process conversations for ``budget`` (a count, or seconds as ``"60s"``)."""
    seconds = float(budget[:-1]) if budget.endswith("s") else math.inf
    count = int(budget) if not budget.endswith("s") else sys.maxsize
    bundle = load_bundle(BUNDLE_SPEC)
    fuzz = Fuzz(seed, limit)
    stats = Stats()
    start = last = time.perf_counter()
    while stats.conversations < count and time.perf_counter() - start < seconds:
        state = fuzz.rng.getstate()
        try:
            trio.run(
                conversation,
                fuzz,
                bundle,
                stats,
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
        except BaseException:
            save_reproducer(
                f"serve-{seed}-{stats.conversations}.txt",
                f"seed {seed} conversation {stats.conversations}\nrng {state!r}\n",
                "replay state",
            )
            raise
        now = time.perf_counter()
        if now - last >= report_every:
            last = now
            stats.seconds = now - start
            print(stats.line(), flush=True)
    stats.seconds = time.perf_counter() - start
    return stats


# -- as a process: trio-coord serve ------------------------------------------------------------

#: Real seconds a subprocess may take before it counts as hung (its timeouts are 2 s).
PROCESS_BOUND = 60.0


def serve_process(fuzz: Fuzz, *, flood: bool, clean: bool = False) -> tuple[int, int, str]:
    """Run ``trio-coord serve`` against a fuzzing supervisor; return (rc, peak RSS KiB, stderr).

    With ``flood``, the first request is answered by a length prefix far over the limit
    followed by 32 MiB of bytes, which a runtime that buffered them would have to hold.
    ``clean`` is the reference run: a valid conversation, every request answered.
    """
    rng = fuzz.rng
    comm_l = socket.create_server(("127.0.0.1", 0))
    logs_l = socket.create_server(("127.0.0.1", 0))
    env = {
        **os.environ,
        "TRIO_COORD_MAX_FRAME_SIZE": str(fuzz.limit),
        "TRIO_COORD_REQUEST_TIMEOUT": "2",
        "TRIO_COORD_TERMINAL_TIMEOUT": "2",
        "TRIO_COORD_DIAL_TIMEOUT": "10",
    }
    cmd = [
        sys.executable, "-m", "trio_coord", "serve", "--bundle", BUNDLE_SPEC,
        f"--comm=127.0.0.1:{comm_l.getsockname()[1]}",
        f"--logs=127.0.0.1:{logs_l.getsockname()[1]}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    reaped: list[tuple[int, int]] = []  # (exit code, peak RSS KiB), from wait4

    def running() -> bool:
        if not reaped:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped.append((os.waitstatus_to_exitcode(status), usage.ru_maxrss))
        return not reaped

    deadline = time.monotonic() + PROCESS_BOUND
    conns: list[socket.socket] = []
    try:
        comm_l.settimeout(PROCESS_BOUND)
        logs_l.settimeout(PROCESS_BOUND)
        comm, _ = comm_l.accept()
        logs, _ = logs_l.accept()
        conns += [comm, logs]
        first = WIRE.first_frame(FirstFrame.STARTUP) if clean else fuzz.first_frame()
        if first is not None:
            comm.sendall(first)
        buf = b""
        flooded = False
        while running() and time.monotonic() < deadline:
            ready, _, _ = select.select([c for c in (comm, logs) if c in conns], [], [], 0.2)
            if logs in ready and not logs.recv(65536):
                conns.remove(logs)
                logs.close()
            if comm not in ready:
                continue
            data = comm.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                size = int.from_bytes(buf[:4], "big")
                payload, buf = buf[4 : 4 + size], buf[4 + size :]
                msg = msgspec.msgpack.decode(payload)
                assert check_request(msg) == [], (msg, check_request(msg))
                try:
                    if flood and not flooded:
                        flooded = True
                        comm.sendall(struct.pack(">I", 2**32 - 1))
                        chunk = b"\xa5" * (1 << 20)
                        for _ in range(32):
                            comm.sendall(chunk)
                    elif not clean and rng.random() < 0.15:
                        comm.sendall(fuzz.bad_bytes())
                    else:
                        kind = msg[1]["type"]
                        answer = Answer(AnswerKind.RESULT) if clean else fuzz.answer(kind)
                        if clean and kind in TERMINAL_TYPES:
                            answer = Answer(AnswerKind.EMPTY)
                        comm.sendall(WIRE.answer_frame(msg[0], kind, msg[1], answer))
                except OSError:
                    pass  # the runtime closed first: that is allowed
        for c in conns:
            c.close()
        conns.clear()
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if running():
            proc.kill()
            os.wait4(proc.pid, 0)
            raise AssertionError(f"hang: trio-coord serve still running after {PROCESS_BOUND} s")
    finally:
        for c in [*conns, comm_l, logs_l]:
            c.close()
    proc.returncode = reaped[0][0]  # reaped here, not by Popen
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return reaped[0][0], reaped[0][1], stderr


def run_processes(n: int, *, seed: int, limit: int, stats: Stats) -> None:
    """``n`` fuzzed ``trio-coord serve`` processes, each checked for exit code and memory."""
    base = serve_process(Fuzz(seed, limit), flood=False, clean=True)
    assert base[0] == 0, ("the clean reference run failed", base[2][-2000:])
    stats.baseline_rss_kb = base[1]
    fuzz = Fuzz(seed, limit)
    for i in range(n):
        rc, rss, stderr = serve_process(fuzz, flood=i % 2 == 0)
        assert rc in (0, 1), (rc, stderr[-2000:])
        # The frame limit bounds what one frame can pin; allow a few of them plus slack.
        allowed = base[1] + 4 * limit // 1024 + 16 * 1024
        assert rss <= allowed, f"peak RSS {rss} KiB > {allowed} KiB (clean run {base[1]} KiB)"
        stats.subprocesses += 1
        stats.max_rss_kb = max(stats.max_rss_kb, rss)
        stats.exit_codes[rc] = stats.exit_codes.get(rc, 0) + 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "budget", nargs="?", default="500", help="conversations (N) or seconds (Ns)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-frame-size", type=int, default=1 << 20)
    parser.add_argument("--subprocess", type=int, default=4, help="trio-coord serve processes")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"serve fuzz: budget {args.budget}, seed {seed}, max frame {args.max_frame_size}")
    stats = run(args.budget, seed=seed, limit=args.max_frame_size)
    start = time.perf_counter()
    run_processes(args.subprocess, seed=seed, limit=args.max_frame_size, stats=stats)
    stats.seconds += time.perf_counter() - start
    print("serve fuzz done:", stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
