"""Shared pytest configuration. Fixtures that need the real supervisor live in tests/supervisor/."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Two profiles for every property and stateful test: "ci" (the default run) and "long"
# (nox -s model / fuzz). Select with HYPOTHESIS_PROFILE.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: Names of the temporary files and directories trio-coord and its tests create.
LEFTOVER_PREFIX = "trio-coord-"


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir() -> Iterator[Path]:
    """Give the session (and every process it starts) its own TMPDIR, and fail if
    anything named ``trio-coord-*`` is left in it at the end.

    A per-session directory, not /tmp itself, because other runs share /tmp.
    """
    root = Path(tempfile.mkdtemp(prefix="tc-session-"))
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = str(root)
    try:
        yield root
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith(LEFTOVER_PREFIX))
        shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"the test session left temporary files behind: {leftovers}"
