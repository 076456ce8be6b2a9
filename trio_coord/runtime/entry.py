"""The process entry point: log handler, signals, the dial, then everything else.

Order matters here. The supervisor gives a runtime ``startup_timeout`` (10 s) to
connect both sockets and throws away the output of a child that dies before it
connects (protocol.md §2.5). So this module imports only what the dial needs (trio,
the config, the log pipeline), connects, and only then imports the message catalogue
and the user's bundle. A slow or failing bundle import can therefore never trip the
start-up timeout, and its error reaches the task log through the logs socket.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import trio

from ..config import Config
from ..errors import ConnectTimeout, SupervisorGone
from .dial import adopt_connected, dial_both
from .exit_codes import EXIT_FAILURE, EXIT_SECOND_SIGNAL
from .logs import LevelFilter, LogPipeline
from .logs.stdio import masked_stdio
from .masking import Masker
from .proctitle import set_title, starting_title
from .trace import mark

if TYPE_CHECKING:
    from ..authoring import Bundle
    from .serve import Run

__all__ = [
    "LAUNCH_WARNING_ENV",
    "WARM_FALLBACK_ENV",
    "build_masker_and_pipeline",
    "run_coordinator",
]

log = logging.getLogger("trio_coord.runtime")

#: Equal to ``trio_coord.bundle.launcher.WARNING_ENV``; spelled out because importing the
#: bundle package here would add ~200 ms before the dial.
LAUNCH_WARNING_ENV: Final = "TRIO_COORD_LAUNCH_WARNING"
#: Set by the launcher when a warm server was there but could not be used (a debug line).
WARM_FALLBACK_ENV: Final = "TRIO_COORD_WARM_FALLBACK"


def run_coordinator(bundle: Bundle | Callable[[], Bundle], config: Config) -> int:
    """Dial ``config.comm``/``config.logs``, run one try, return the exit code.

    Args:
        bundle: the bundle, or a function that loads it; a function is called only
            once both sockets are connected.
        config: addresses and timeouts.

    The log handler is installed before anything else, so even a failed dial leaves
    its reason on stderr (which the supervisor turns into task-log lines).
    """
    mark("runtime started")
    _lean_logging()
    masker, pipeline = build_masker_and_pipeline(config)
    pipeline.install()
    _report_launch_warning()
    try:
        with masked_stdio(masker):
            try:
                return trio.run(_main, bundle, config, pipeline, masker)
            finally:
                # Records the pump never sent (a failed dial) go to stderr here.
                pipeline.close()
    finally:
        pipeline.uninstall()


def build_masker_and_pipeline(
    config: Config, environ: Mapping[str, str] = os.environ
) -> tuple[Masker, LogPipeline]:
    """The process's one masker and the log pipeline that uses it, from the environment.

    Every entry point builds them here (the runtime, ``serve_streams``, the tests), so the
    settings the supervisor passes (sensitive names, minimum length, levels) apply alike.
    The masker is then handed to the client, the terminal messages and stdout/stderr.
    """
    masker = Masker.from_env(environ)
    pipeline = LogPipeline(
        level_filter=LevelFilter.from_env(environ),
        masker=masker,
        max_record=config.max_log_record,
    )
    return masker, pipeline


def _report_launch_warning() -> None:
    """Log, once, that a packed bundle's launcher fell back from its recorded interpreter.

    The launcher cannot reach the task log itself, so it leaves the text in the
    environment; it is removed here so the task's own child processes do not repeat it.
    """
    text = os.environ.pop(LAUNCH_WARNING_ENV, "")
    if text:
        log.warning("%s", text)
    cold = os.environ.pop(WARM_FALLBACK_ENV, "")
    if cold:
        log.debug("warm start not used, started cold: %s", cold)


def _lean_logging() -> None:
    """Stop ``logging`` filling record fields no task-log line uses.

    Thread, process and source-file lookups cost about half of each ``log.info`` call
    (measured: ~100k records/s with them, ~160k/s without); the NDJSON records carry
    none of them. This process runs one try, so the global switch is ours to flip.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None


class _Shutdown:
    """Signals that arrive before the try exists are kept and applied when it does."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._run: Run | None = None

    def signal(self, name: str) -> None:
        if self.reason is not None:
            sys.stderr.write(f"trio-coord: second {name}; exiting now\n")
            sys.stderr.flush()
            os._exit(EXIT_SECOND_SIGNAL)
        log.warning("received %s; cancelling the task", name)
        self.reason = f"received {name}"
        if self._run is not None:
            self._run.terminate(self.reason)

    def attach(self, run: Run) -> None:
        self._run = run
        if self.reason is not None:
            run.terminate(self.reason)


async def _main(
    bundle: Bundle | Callable[[], Bundle], config: Config, pipeline: LogPipeline, masker: Masker
) -> int:
    shutdown = _Shutdown()
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_signals, shutdown)
        code = await _dial_and_serve(bundle, config, pipeline, masker, shutdown)
        nursery.cancel_scope.cancel("the try is over")
    return code


async def _dial_and_serve(
    bundle: Bundle | Callable[[], Bundle],
    config: Config,
    pipeline: LogPipeline,
    masker: Masker,
    shutdown: _Shutdown,
) -> int:
    if config.comm is None or config.logs is None:
        log.error("both --comm and --logs are needed to reach the supervisor")
        return EXIT_FAILURE
    adopted = adopt_connected(config.comm, config.logs)
    try:
        comm, logs = adopted or await dial_both(
            config.comm, config.logs, timeout=config.dial_timeout
        )
    except (ConnectTimeout, SupervisorGone) as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    mark("both sockets connected")
    # Connected: now the heavy imports (the message catalogue) and the user's code.
    from ..authoring import Bundle
    from .serve import Run

    loaded = bundle if isinstance(bundle, Bundle) else bundle()
    mark("bundle loaded")
    set_title(starting_title(loaded.name))  # the task's own title follows StartupDetails
    run = Run(loaded, config, pipeline, masker, retitle=True)
    shutdown.attach(run)
    return await run.serve(comm, logs)


async def _watch_signals(
    shutdown: _Shutdown, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """First SIGTERM/SIGINT cancels the task with its reason; a second exits at once (§9.6)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            shutdown.signal(signal.Signals(signum).name)
