"""Parse-workload fuzzer: malformed DagFileParseRequest first frames fed to a running runtime.

Each conversation starts with a ``DagFileParseRequest`` that is valid, or damaged in one
or more ways (a field dropped, a field of the wrong type, unknown keys, a non-zero id, an
error element, callbacks of any shape, odd paths, a 2- or 4-element frame), against a
bundle with a good and a broken DAG, and a fake processor that acknowledges, errs,
stays silent or closes. The invariants:

* the runtime returns exit 0 or 1 and never hangs (a bound of *virtual* seconds);
* exit 1 means nothing was sent and an error-level log record says why;
* a request it accepts gets at most one frame, a ``DagFileParsingResult`` echoing the
  request's ``file``, whose import errors sit under a single key;
* unknown keys never change the answer (they are ignored).

Usage::

    python fuzz/parse_fuzz.py 2000      # conversations
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio_coord
from model.parse_machine import converse_parse
from model.parse_model import Ack

__all__ = ["run", "mutate_request"]

_ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**63,
    1.5,
    True,
    "",
    "x" * 300,
    b"\x00\xff",
    [],
    {},
    [1],
    {"a": 1},
]
_ODD_PATHS = [
    "/",
    "relative.py",
    "/srv/bundle",
    "/srv/bundle/../x.py",
    "/srv/bundle//a//b.py",
    "\u00e9t\u00e9.py",
]


def _bundle() -> trio_coord.Bundle:
    bundle = trio_coord.Bundle("fuzz")
    bundle.dag("good").task(task_id="t")(lambda: None)
    task = bundle.dag("loopy").task(task_id="t")(lambda: None)
    task.upstream.append("t")
    return bundle


def mutate_request(rng: random.Random) -> tuple[list[Any], bool]:
    """A first frame ``[id, body, error, ...]`` and whether it is still a valid request."""
    body: dict[str, Any] = {
        "file": "/srv/bundle/dags.py",
        "bundle_path": "/srv/bundle",
        "bundle_name": "fuzz",
        "callback_requests": [],
        "type": "DagFileParseRequest",
    }
    frame: list[Any] = [0, body, None]
    for _ in range(rng.randint(0, 3)):
        kind = rng.randrange(9)
        key = rng.choice(["file", "bundle_path", "bundle_name", "callback_requests", "type"])
        if kind == 0:
            body.pop(key, None)
        elif kind == 1:
            body[key] = rng.choice(_ODD_VALUES)
        elif kind == 2:
            body[rng.choice(["known_artifacts", "extra", "\u00fc"])] = rng.choice(_ODD_VALUES)
        elif kind == 3:
            frame[0] = rng.choice([1, -1, "0", None])
        elif kind == 4:
            frame[2] = {"error": "GENERIC_ERROR", "detail": None, "type": "ErrorResponse"}
        elif kind == 5:
            body["file"] = rng.choice(_ODD_PATHS)
        elif kind == 6:
            body["bundle_path"] = rng.choice(_ODD_PATHS)
        elif kind == 7:
            frame.append(rng.choice(_ODD_VALUES))  # extra elements are ignored
        else:
            body["callback_requests"] = [rng.choice([{"type": "DagCallbackRequest"}, {"x": 1}])]
    callbacks = body.get("callback_requests", [])
    valid = (
        frame[0] == 0
        and type(frame[0]) is int
        and frame[2] is None
        and body.get("type") == "DagFileParseRequest"
        and all(type(body.get(k)) is str for k in ("file", "bundle_path", "bundle_name"))
        and isinstance(callbacks, list)
        and all(isinstance(c, dict) for c in callbacks)
    )
    return frame, valid


def _check(
    frame: list[Any],
    valid: bool,
    code: int,
    sent: list[tuple[int, dict[str, Any]]],
    logs: list[bytes],
) -> None:
    assert code in (0, 1), code
    if code == 1 and not sent:
        levels = [json.loads(line).get("level") for line in logs if line.strip()]
        assert "error" in levels, logs
    if not valid:
        assert code == 1 and not sent, (frame, code, sent)
        return
    assert len(sent) <= 1, sent
    body = frame[1]
    if body.get("callback_requests"):
        assert not sent, (frame, sent)
        return
    assert len(sent) == 1, (frame, code, logs)
    _, result = sent[0]
    assert result["type"] == "DagFileParsingResult" and result["fileloc"] == body["file"]
    assert len(result.get("import_errors") or {}) == 1
    assert [d["data"]["dag"]["dag_id"] for d in result["serialized_dags"]] == ["good"]


def run(count: int, *, seed: int = 0) -> int:
    """Run ``count`` conversations; return how many there were (raises on a violation)."""
    rng = random.Random(seed)
    for _ in range(count):
        frame, valid = mutate_request(rng)
        payload = msgspec.msgpack.encode(frame)
        first = len(payload).to_bytes(4, "big") + payload
        ack = rng.choice(list(Ack))
        code, sent, _, logs = trio.run(
            converse_parse,
            _bundle(),
            first,
            ack,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        _check(frame, valid, code, sent, logs)
        if ack is Ack.ERROR and sent:
            assert code == 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    print(f"{run(ns.count, seed=ns.seed)} conversations, no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
