"""The ``trio-coord`` command line, and the argument handling every bundle shares.

``trio-coord serve`` and a packed bundle executable accept the same flags with the same
precedence, messages and exit codes (bundle.md §6.2-6.3), because both call
:func:`bundle_main`; they differ only in where the bundle comes from (a ``--bundle``
spec vs the payload) and where its identity is read (the imported object vs the packed
``bundle.json``).

Exit codes in bundle mode: 0 metadata printed / coordinator mode finished (the runtime's
own code, protocol.md §9.9); 2 usage (unknown flag, bad address, incomplete
``--comm``/``--logs``); 4 the bundle could not be imported in a metadata mode. In
coordinator mode an import failure does not exit early: the task is run by a stand-in
whose only task raises the import error, so the reason reaches the task log instead of
vanishing with the process (1.3.2 drops the output of a child that exits before it
connects).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from . import __version__
from .authoring import Bundle
from .errors import UsageError
from .tracebacks import enable_debug, user_traceback

__all__ = ["BundleSource", "bundle_main", "main", "EXIT_USAGE", "EXIT_IMPORT"]

EXIT_USAGE: Final = 2
#: The bundle's entry module failed to import in a metadata mode (§6.3).
EXIT_IMPORT: Final = 4

_FORMATS: Final = ("yaml", "json")
_SWITCHES: Final = ("--bundle-metadata", "--dump-bundle-spec", "--airflow-metadata")
#: Shows trio-coord's own frames in import-error tracebacks (they are hidden otherwise).
_DEBUG: Final = "--debug"
_VALUED: Final = ("--comm", "--logs", "--format")


class _BadArgs(Exception):
    """A bundle-mode usage error: ``error: <message>``, usage, exit 2."""


class BundleLoadError(Exception):
    """The bundle could not be imported; ``__cause__`` holds the user's exception, if any."""


@dataclass(frozen=True, slots=True)
class BundleSource:
    """Where :func:`bundle_main` gets its bundle from.

    Attributes:
        prog: the program name shown in usage lines.
        load: imports the bundle; receives the ``--bundle`` value (always None when
            ``accepts_bundle_flag`` is False). Raises :class:`UsageError` for a usage
            mistake and :class:`BundleLoadError` (or anything else) when importing fails.
        identity: ``(name, version)`` without importing anything (the packed bundle
            reads its ``bundle.json``); None means "import the bundle and ask it".
        accepts_bundle_flag: ``trio-coord serve`` takes ``--bundle SPEC``; a packed
            bundle knows its own entry and treats the flag as unknown.
        launch_error: set by a packed bundle's launcher when the configured interpreter
            is missing and another one was used to report it.
    """

    prog: str
    load: Callable[[str | None], Bundle]
    identity: Callable[[], tuple[str, str | None]] | None = None
    accepts_bundle_flag: bool = False
    launch_error: str | None = None


@dataclass(slots=True)
class _BundleArgs:
    help: bool = False
    modes: tuple[str, ...] = ()
    comm: str | None = None
    logs: str | None = None
    format: str | None = None
    bundle: str | None = None


def _usage(source: BundleSource) -> str:
    bundle = " [--bundle MODULE:ATTR|FILE.py]" if source.accepts_bundle_flag else ""
    pad = " " * len(f"usage: {source.prog}")
    return (
        f"usage: {source.prog} [-h]{bundle}\n"
        f"{pad} [--bundle-metadata | --dump-bundle-spec | --airflow-metadata [--format yaml|json]]\n"
        f"{pad} [--comm HOST:PORT --logs HOST:PORT] [--debug]\n"
    )


def _help(source: BundleSource) -> str:
    bundle = (
        "  --bundle SPEC        the bundle: MODULE:ATTR, FILE.py[:ATTR] (default: $TRIO_COORD_BUNDLE)\n"
        if source.accepts_bundle_flag
        else ""
    )
    return (
        _usage(source)
        + "\nRun a trio-coord bundle's task for Airflow's coordinator, or describe the bundle.\n\n"
        "options:\n"
        "  -h, --help           show this help and exit\n"
        + bundle
        + "  --bundle-metadata    print the bundle's name and version as JSON\n"
        "  --dump-bundle-spec   import the bundle and print its DAGs and tasks as JSON\n"
        "  --airflow-metadata   the same document as --dump-bundle-spec, as YAML by default\n"
        "  --format yaml|json   output format of --airflow-metadata\n"
        "  --comm HOST:PORT     the supervisor's comm socket (coordinator mode)\n"
        "  --logs HOST:PORT     the supervisor's logs socket (coordinator mode)\n"
        "  --debug              show trio-coord's own frames in import-error tracebacks\n"
        "\nexit status: 0 success, 2 usage error, 4 the bundle failed to import\n"
    )


def _parse_bundle_args(argv: Sequence[str], source: BundleSource) -> _BundleArgs:
    args = _BundleArgs()
    valued = (*_VALUED, "--bundle") if source.accepts_bundle_flag else _VALUED
    modes: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help"):
            args.help = True
        elif arg == _DEBUG:
            enable_debug()
        elif name in _SWITCHES:
            if eq:
                raise _BadArgs(f"flag {name} takes no value")
            if name not in modes:
                modes.append(name)
        elif name in valued:
            if not eq:
                if i >= len(argv):
                    raise _BadArgs(f"flag needs a value: {name}")
                value = argv[i]
                i += 1
            setattr(args, name[2:], value)
        elif arg.startswith("-"):
            raise _BadArgs(f"unknown flag: {name}")
        else:
            raise _BadArgs(f"unexpected argument: {arg}")
    args.modes = tuple(modes)
    return args


def _write(text: str) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def _report_load_failure(exc: BaseException) -> None:
    cause = exc.__cause__ if isinstance(exc, UsageError | BundleLoadError) else exc
    if cause is not None:
        sys.stderr.write(user_traceback(cause))
    _err(f"error: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UsageError | BundleLoadError):
        return str(exc)
    return f"importing the bundle failed: {type(exc).__name__}: {exc}"


def bundle_main(argv: Sequence[str], source: BundleSource) -> int:
    """Run bundle mode: the §6.3 invocation matrix, shared by ``serve`` and packed bundles.

    Precedence: ``--help`` > ``--bundle-metadata`` > ``--dump-bundle-spec`` >
    ``--airflow-metadata`` > coordinator mode (``--comm`` and ``--logs``).

    Returns:
        The process exit code.
    """
    try:
        args = _parse_bundle_args(argv, source)
        if args.help:
            _write(_help(source))
            return 0
        if args.format is not None:
            if "--airflow-metadata" not in args.modes:
                raise _BadArgs("--format is only valid with --airflow-metadata")
            if args.format not in _FORMATS:
                raise _BadArgs(
                    f"unsupported --airflow-metadata format {args.format!r} (yaml or json)"
                )
        if not args.modes:
            if args.comm is None and args.logs is None:
                raise _BadArgs("--comm and --logs are required for bundle execution")
            if args.comm is None or args.logs is None:
                raise _BadArgs("--comm and --logs must be supplied together")
    except _BadArgs as exc:
        _err(f"error: {exc}\n{_usage(source)}")
        return EXIT_USAGE
    try:
        if args.modes:
            if source.launch_error:
                _err(f"warning: {source.launch_error}")
            return _metadata_mode(args, source)
        return _coordinator_mode(args, source)
    except UsageError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE


def _metadata_mode(args: _BundleArgs, source: BundleSource) -> int:
    from .bundle import manifest

    mode = min(args.modes, key=_SWITCHES.index)
    if mode == "--bundle-metadata" and source.identity is not None:
        name, version = source.identity()
        _write(manifest.render_json(manifest.identity(name, version)))
        return 0
    bundle = _load_or_none(args, source)
    if bundle is None:
        return EXIT_IMPORT
    if mode == "--bundle-metadata":
        _write(manifest.render_json(manifest.identity(bundle.name, bundle.version)))
    elif mode == "--airflow-metadata" and (args.format or "yaml") == "yaml":
        _write(manifest.render_yaml(manifest.bundle_spec(bundle)))
    else:
        _write(manifest.render_json(manifest.bundle_spec(bundle)))
    return 0


def _load_or_none(args: _BundleArgs, source: BundleSource) -> Bundle | None:
    _check_bundle_named(args, source)
    try:
        return source.load(args.bundle)
    except Exception as exc:
        _report_load_failure(exc)
        return None


def _check_bundle_named(args: _BundleArgs, source: BundleSource) -> None:
    from .loader import BUNDLE_ENV

    if source.accepts_bundle_flag and not (args.bundle or os.environ.get(BUNDLE_ENV)):
        raise UsageError(f"no bundle given: pass --bundle MODULE:ATTR or set {BUNDLE_ENV}")


def _coordinator_mode(args: _BundleArgs, source: BundleSource) -> int:
    from .bundle.unusable import UnusableBundle
    from .config import Config, parse_address

    if args.comm is None or args.logs is None:
        raise UsageError("--comm and --logs must be supplied together")
    config = Config.from_env(parse_address("--comm", args.comm), parse_address("--logs", args.logs))
    _check_bundle_named(args, source)

    def load() -> Bundle:
        # Called by the runtime once both sockets are connected, so a slow or failing
        # import cannot trip the supervisor's start-up timeout and its error reaches
        # the task log (runtime/entry.py).
        if source.launch_error:
            name = source.identity()[0] if source.identity else "bundle"
            return UnusableBundle(name, source.launch_error)
        try:
            return source.load(args.bundle)
        except Exception as exc:
            _err(f"error: {_describe(exc)}; every task of this run fails with it")
            name = source.identity()[0] if source.identity else "bundle"
            return UnusableBundle(name, _describe(exc), cause=exc.__cause__ or exc)

    from .runtime import run_coordinator

    return run_coordinator(load, config)


def _serve_load(spec: str | None) -> Bundle:
    from .loader import load_bundle

    return load_bundle(spec)


SERVE_SOURCE: Final = BundleSource(
    prog="trio-coord serve", load=_serve_load, accepts_bundle_flag=True
)


# -- the trio-coord command -------------------------------------------------------------


_COMMANDS: Final = {
    "serve": "run a bundle's task for the coordinator, or print its metadata",
    "run": "run one task (or a whole DAG) of a bundle locally against a fake supervisor",
    "pack": "build a self-contained executable bundle from a Python file",
    "inspect": "describe a packed bundle without running it",
    "verify": "check packed bundles the way Airflow's ExecutableCoordinator would",
    "dags": "list the DAGs a bundle (source or packed) declares, or print them serialized",
    "warm": "start, list or stop a warm server that starts a packed bundle's tasks fast",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _top_usage() -> str:
    lines = [f"usage: trio-coord [-h] [--version] {{{','.join(_COMMANDS)}}} ...", "", "commands:"]
    lines += [f"  {name:<9}{text}" for name, text in _COMMANDS.items()]
    lines.append("\nRun 'trio-coord COMMAND --help' for a command's options.")
    return "\n".join(lines) + "\n"


def build_parser(command: str) -> argparse.ArgumentParser:
    """The argparse parser of ``pack``, ``inspect``, ``verify``, ``dags`` or ``warm``."""
    parser = _Parser(prog=f"trio-coord {command}", description=_COMMANDS[command])
    if command == "pack":
        from .bundle.packer import add_arguments

        parser.add_argument(
            "--debug",
            action="store_true",
            help="show trio-coord's own frames when importing the bundle fails",
        )
    elif command == "inspect":
        from .bundle.inspection import add_arguments
    elif command == "dags":
        from .local.dags import add_arguments
    elif command == "warm":
        from .warm.command import add_arguments
    else:
        from .bundle.verify import add_arguments
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``trio-coord`` entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        _err(_top_usage() + "trio-coord: error: a command is required")
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    if command in ("-h", "--help"):
        _write(_top_usage())
        return 0
    if command == "--version":
        _write(f"trio-coord {__version__}\n")
        return 0
    try:
        if command == "serve":
            return bundle_main(rest, SERVE_SOURCE)
        if command == "run":
            local: Any = importlib.import_module("trio_coord.local")
            local_main: Callable[[list[str]], int] = local.main
            return local_main(rest)
        if command in _COMMANDS:
            ns = build_parser(command).parse_args(rest)
            if getattr(ns, "debug", False):
                enable_debug()
            handler: Callable[[Any], int] = ns.handler
            return handler(ns)
    except UsageError as exc:
        _err(f"trio-coord {command}: error: {exc}")
        return EXIT_USAGE
    _err(_top_usage() + f"trio-coord: error: unknown command {command!r}")
    return EXIT_USAGE
