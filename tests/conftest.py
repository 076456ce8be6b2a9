"""Shared pytest configuration. Fixtures that need the real supervisor live in tests/supervisor/."""

from __future__ import annotations

import os

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
