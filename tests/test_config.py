"""Config.from_env: the TRIO_COORD_* overrides, and a clear UsageError for bad ones."""

from __future__ import annotations

import pytest

from trio_coord.config import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_REPLY_SPIN,
    DEFAULT_REQUEST_TIMEOUT,
    Address,
    Config,
)
from trio_coord.errors import UsageError

COMM, LOGS = Address("127.0.0.1", 1), Address("127.0.0.1", 2)


def test_defaults_without_overrides() -> None:
    config = Config.from_env(COMM, LOGS, {})
    assert config.request_timeout == DEFAULT_REQUEST_TIMEOUT
    assert config.max_frame_size == DEFAULT_MAX_FRAME_SIZE
    assert config.reply_spin == DEFAULT_REPLY_SPIN == 100e-6


@pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("250", 250e-6), ("10000", 0.01)])
def test_reply_spin_in_microseconds(raw: str, seconds: float) -> None:
    config = Config.from_env(COMM, LOGS, {"TRIO_COORD_REPLY_SPIN_US": raw})
    assert config.reply_spin == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "10001"])
def test_bad_reply_spin_is_a_usage_error(raw: str) -> None:
    with pytest.raises(UsageError, match="TRIO_COORD_REPLY_SPIN_US"):
        Config.from_env(COMM, LOGS, {"TRIO_COORD_REPLY_SPIN_US": raw})


def test_other_overrides() -> None:
    config = Config.from_env(
        COMM,
        LOGS,
        {"TRIO_COORD_REQUEST_TIMEOUT": "5", "TRIO_COORD_MAX_FRAME_SIZE": "1024"},
    )
    assert config.request_timeout == 5.0 and config.max_frame_size == 1024


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("TRIO_COORD_REQUEST_TIMEOUT", "0"),
        ("TRIO_COORD_DIAL_TIMEOUT", "soon"),
        ("TRIO_COORD_MAX_FRAME_SIZE", "0"),
        ("TRIO_COORD_MAX_FRAME_SIZE", str(2**32)),
    ],
)
def test_bad_overrides_are_usage_errors(name: str, raw: str) -> None:
    with pytest.raises(UsageError, match=name):
        Config.from_env(COMM, LOGS, {name: raw})
