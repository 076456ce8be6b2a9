"""The protocol model's state machines against the real code.

The default run uses the ``ci`` settings profile (scaled per machine below); ``nox -s
model`` runs the same machines with ``HYPOTHESIS_PROFILE=long`` and, through
``MODEL_STATS``, writes the counts docs/testing.md quotes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from model.machines import STATS, ConnectionVsModel, RuntimeVsModel

#: The long profile runs for many minutes: no per-test timeout then (pytest-timeout).
pytestmark = pytest.mark.timeout(0 if settings.default.max_examples >= 1000 else 300)

#: Examples of the runtime machine per profile example: it is cheap per example (virtual
#: time) and most of its examples are short conversations, so the short run takes more.
RUNTIME_SCALE = 5 if settings.default.max_examples < 1000 else 2

TestConnectionVsModel = ConnectionVsModel.TestCase
TestConnectionVsModel.__doc__ = (
    "CommConnection keeps the model's conversation rules in every generated sequence."
)

TestRuntimeVsModel = RuntimeVsModel.TestCase
TestRuntimeVsModel.settings = settings(
    settings.default, max_examples=settings.default.max_examples * RUNTIME_SCALE
)
TestRuntimeVsModel.__doc__ = (
    "The runtime sends, resolves, logs and exits as the model says in every conversation."
)


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    """Write the machines' counters to $MODEL_STATS (nox -s model) when the module is done."""
    start = time.perf_counter()
    yield
    target = os.environ.get("MODEL_STATS")
    if target:
        figures = {**STATS, "seconds": round(time.perf_counter() - start, 1)}
        Path(target).write_text(json.dumps(figures, indent=1, sort_keys=True))
