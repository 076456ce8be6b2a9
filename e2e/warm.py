"""Reading ``trio-coord warm --status --json``, and deciding whether the run really went warm.

A warm server that is not there (or not found) costs nothing visible: every try quietly
starts cold and still succeeds. So the only evidence that the scenarios ran warm is each
server's count of tries it served, and the e2e run fails when a server it started served
fewer than it should have. Pure functions, so they are tested without Airflow
(tests/test_e2e_warm.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class WarmError(ValueError):
    """``trio-coord warm --status --json`` printed something that is not its status lines."""


@dataclass(frozen=True)
class WarmServer:
    """One line of ``--status --json``: the fields the e2e run relies on."""

    bundle: str
    sha256: str
    pid: int
    served: int
    running: int
    stopping: bool = False


def parse_status(text: str) -> dict[str, WarmServer]:
    """``{bundle path: server}`` from the JSON lines ``trio-coord warm --status --json`` prints.

    Raises:
        WarmError: a line is not a JSON object with the fields of a server's status, or two
            lines name the same bundle.
    """
    servers: dict[str, WarmServer] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            server = WarmServer(
                bundle=_field(row, "bundle", str),
                sha256=_field(row, "sha256", str),
                pid=_field(row, "pid", int),
                served=_field(row, "served", int),
                running=_field(row, "running", int),
                stopping=bool(row.get("stopping", False)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise WarmError(
                f"warm --status line {n} is not a server's status ({exc}): {line!r}"
            ) from None
        if server.bundle in servers:
            raise WarmError(f"warm --status lists {server.bundle} twice")
        servers[server.bundle] = server
    return servers


def _field(row: object, key: str, kind: type[T]) -> T:
    if not isinstance(row, dict):
        raise TypeError("not a JSON object")
    value = row[key]
    # bool is an int to isinstance, and a served count of True is not a count.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} is {value!r}, not {kind.__name__}")
    return value


def served_problems(
    started: Mapping[str, WarmServer],
    status: Mapping[str, WarmServer],
    at_least: Mapping[str, int],
) -> list[str]:
    """Why the tries did not all run warm; empty when they did.

    ``started`` are the servers the run started (by name), ``status`` what ``--status``
    says now (by bundle path), ``at_least`` how many tries each named server must have
    served by now. A server that is gone, was replaced (another pid), or served fewer is a
    problem: its bundle's tries went cold without anyone being told.
    """
    problems = []
    for name, want in sorted(at_least.items()):
        first = started.get(name)
        if first is None:
            problems.append(f"no warm server was started for {name}")
            continue
        now = status.get(first.bundle)
        if now is None:
            problems.append(f"the warm server of {name} (pid {first.pid}) is gone")
        elif now.pid != first.pid:
            problems.append(f"the warm server of {name} was pid {first.pid}, now pid {now.pid}")
        elif now.served < want:
            problems.append(
                f"the warm server of {name} served {now.served} tries, expected at least {want}:"
                " the others started cold"
            )
    return problems
