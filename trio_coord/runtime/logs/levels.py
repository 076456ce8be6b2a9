"""Which records are sent at all: the per-logger thresholds of protocol.md §8.3.

The supervisor re-logs whatever it receives at level NOTSET, so this filter, configured
from the same two settings the supervisor passes in the environment, is the only one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["LevelFilter", "level_name", "parse_level"]

_LEVELS: Final[Mapping[str, int]] = {
    "notset": logging.NOTSET,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

_ENV_LEVEL: Final = "AIRFLOW__LOGGING__LOGGING_LEVEL"
_ENV_NAMESPACES: Final = "AIRFLOW__LOGGING__NAMESPACE_LEVELS"
_NAMESPACE_SEPARATORS: Final = re.compile(r"[\s,]+")

# Logger names are normally a fixed set; the bound keeps a program that invents names
# (one per request id, say) from growing the cache forever.
_THRESHOLD_CACHE_MAX: Final = 4096


def parse_level(text: str) -> int | None:
    """Map a configured level name (any case, surrounding blanks allowed) to its number."""
    return _LEVELS.get(text.strip().lower())


def level_name(levelno: int) -> str:
    """Name a numeric level by range, the way the supervisor's table can read it.

    Levels below DEBUG become ``debug`` rather than ``notset``: the supervisor silently
    drops ``notset`` (level 0 is falsy), and a record that passed our filter is meant to be
    seen.
    """
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warning"
    if levelno < logging.CRITICAL:
        return "error"
    return "critical"


class LevelFilter:
    """Per-logger thresholds: a global level plus dotted-prefix overrides (protocol.md §8.3).

    The supervisor re-logs whatever it receives, so this filter is the only one.
    """

    def __init__(
        self,
        level: int = logging.INFO,
        namespaces: Mapping[str, int] | None = None,
        *,
        problems: Sequence[str] = (),
    ) -> None:
        self._level = level
        self._namespaces = dict(namespaces or {})
        self._cache: dict[str, int] = {}
        #: Human-readable descriptions of ignored configuration, reported once by the
        #: pipeline (it is the only place a report can reach the task log).
        self.problems: tuple[str, ...] = tuple(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LevelFilter:
        """Read ``AIRFLOW__LOGGING__LOGGING_LEVEL`` and ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``.

        An unset or invalid global level means INFO. Namespace entries are ``logger=LEVEL``
        separated by commas and/or whitespace; malformed ones are skipped and listed in
        :attr:`problems`.
        """
        problems: list[str] = []
        level = logging.INFO
        raw_level = environ.get(_ENV_LEVEL, "")
        if raw_level.strip():
            parsed = parse_level(raw_level)
            if parsed is None:
                problems.append(f"{_ENV_LEVEL}={raw_level!r} is not a level; using INFO")
            else:
                level = parsed
        namespaces: dict[str, int] = {}
        for entry in _NAMESPACE_SEPARATORS.split(environ.get(_ENV_NAMESPACES, "").strip()):
            if not entry:
                continue
            name, sep, raw = entry.partition("=")
            parsed = parse_level(raw) if sep else None
            if not name.strip() or parsed is None:
                problems.append(f"{_ENV_NAMESPACES} entry {entry!r} is not logger=LEVEL; ignored")
                continue
            namespaces[name.strip()] = parsed
        return cls(level, namespaces, problems=problems)

    @property
    def lowest(self) -> int:
        """The most permissive threshold in use: what a logger's own level may be set to."""
        return min([self._level, *self._namespaces.values()])

    def threshold(self, logger_name: str) -> int:
        """The minimum level a record from ``logger_name`` needs to be sent."""
        try:
            return self._cache[logger_name]
        except KeyError:
            pass
        found = self._lookup(logger_name)
        if len(self._cache) < _THRESHOLD_CACHE_MAX:
            self._cache[logger_name] = found
        return found

    def allows(self, logger_name: str, levelno: int) -> bool:
        """Whether a record at ``levelno`` from ``logger_name`` is sent."""
        found = self._cache.get(logger_name)
        if found is None:
            found = self.threshold(logger_name)
        return levelno >= found

    def _lookup(self, logger_name: str) -> int:
        if self._namespaces:
            candidate = logger_name
            while True:
                found = self._namespaces.get(candidate)
                if found is not None:
                    return found
                dot = candidate.rfind(".")
                if dot < 0:
                    break
                candidate = candidate[:dot]
        return self._level
