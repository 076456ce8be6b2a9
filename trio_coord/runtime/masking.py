"""Secret masking for task-log records, before they leave the process.

The supervisor already masks every record it receives (protocol.md §8.5), so this is a
second line of defence, for two cases the supervisor cannot cover:

* secrets the runtime learns without the supervisor (environment fast path §9.8, external
  secret stores): the ``MaskSecret`` request for them travels on the comm socket while log
  lines travel on the logs socket, and nothing orders the two, so a line can arrive before
  the supervisor knows what to hide;
* the stderr fallback, taken when the logs socket is gone.

The rules follow the supervisor's, so that masking locally never changes a line the
supervisor would have shown differently:

* only strings are secrets; maps and sequences are walked;
* strings shorter than ``min_length`` (``[logging] min_length_masked_secret``, 5) are never
  masked -- masking ``"a"`` would shred every log line -- and this is reported once;
* a value registered under a *name* (a map key, a variable key) is masked only when the
  name looks sensitive (``password``, ``api_key``, ...); a value registered without a name
  is always masked;
* every occurrence is replaced by ``***``, trying the longest secret first, so that a secret
  containing another one is hidden whole.

Reads rarely take the lock: ``add`` only records the secret and marks the pattern stale;
the next ``mask`` compiles the alternation once (under the lock) and publishes it with one
attribute assignment. Registering many secrets in a row therefore costs one compilation,
not one per secret.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["DEFAULT_MIN_LENGTH", "DEFAULT_SENSITIVE_NAMES", "MASK", "Masker"]

#: What replaces each secret. The supervisor uses the same text.
MASK: Final = "***"

#: ``[logging] min_length_masked_secret`` default in Airflow 3.3.
DEFAULT_MIN_LENGTH: Final = 5

#: Fragments that make a key name sensitive (matched as substrings of the normalised name,
#: as the supervisor does). Extended by ``AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES``.
DEFAULT_SENSITIVE_NAMES: Final = frozenset(
    {
        "access_token",
        "access_key",
        "api_key",
        "apikey",
        "auth_header",
        "authorization",
        "bearer",
        "connection_string",
        "dsn",
        "keyfile_dict",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "proxies",
        "proxy",
        "secret",
        "service_account",
        "service_key",
        "token",
        "webhook_url",
    }
)

# Words that look like secrets to the length rule but appear in nearly every Airflow log line.
_NEVER_SECRET: Final = frozenset({"airflow"})

# Walking a registration deeper than this is either a cycle or an abuse.
_MAX_DEPTH: Final = 32
#: How many names :meth:`Masker.is_sensitive_name` remembers before starting over.
_MAX_CACHED_NAMES: Final = 4096

_log = logging.getLogger(__name__)


class Masker:
    """Remembers secrets and hides them in text and JSON-like values.

    Thread-safe: ``add`` may race with ``mask`` from any thread.
    """

    def __init__(
        self,
        *,
        min_length: int = DEFAULT_MIN_LENGTH,
        sensitive_names: Iterable[str] = DEFAULT_SENSITIVE_NAMES,
    ) -> None:
        self._min_length = max(1, min_length)
        self._sensitive = tuple(sorted({_normalise(n) for n in sensitive_names if n.strip()}))
        # name -> verdict. A task asks about the same few keys over and over (every
        # get_variable does), and the answer never changes; bounded, so a task that
        # invents keys cannot grow it without limit.
        self._verdicts: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False  # secrets were added since _pattern was compiled
        self._version = 0
        self._warned_short = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Masker:
        """Build a masker configured the way the supervisor is.

        Reads ``AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES`` (comma-separated names added to
        the defaults) and ``AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET``; invalid values
        are ignored.
        """
        extra = environ.get("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", "")
        names = DEFAULT_SENSITIVE_NAMES | {n for n in extra.split(",") if n.strip()}
        try:
            min_length = int(environ.get("AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET", ""))
        except ValueError:
            min_length = DEFAULT_MIN_LENGTH
        return cls(min_length=min_length, sensitive_names=names)

    @property
    def version(self) -> int:
        """Grows every time a new secret is registered; lets callers cache masked output."""
        return self._version

    def is_sensitive_name(self, name: str) -> bool:
        """Whether a value registered under ``name`` is treated as a secret."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            normalised = _normalise(name)
            verdict = any(fragment in normalised for fragment in self._sensitive)
            if len(self._verdicts) >= _MAX_CACHED_NAMES:
                self._verdicts.clear()
            self._verdicts[name] = verdict
        return verdict

    def add(self, secret: object, name: str | None = None) -> None:
        """Register ``secret`` (a string, or a map/sequence holding strings).

        Map values are registered under their key as ``name``; sequence items inherit
        ``name``. Non-string leaves, short strings and values under a non-sensitive name
        are ignored.
        """
        found: list[str] = []
        short = self._collect(secret, name, found, 0)
        if short and not self._warned_short:
            self._warned_short = True
            _log.warning(
                "Skipping masking for a secret shorter than %d characters", self._min_length
            )
        if not found:
            return
        with self._lock:
            new = set(found) - self._secrets
            if not new:
                return
            self._secrets |= new
            self._stale = True
            self._version += 1

    def mask(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        pattern = self._pattern if not self._stale else self._compile()
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def _compile(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._stale:
                # Alternation tries branches left to right, so longest first hides a secret
                # that contains another one in full.
                ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
                self._stale = False
            return self._pattern

    def mask_value(self, value: object) -> object:
        """Mask every string inside a JSON-like value (maps, lists, tuples), keeping its shape.

        Map keys are left alone: they name data rather than carry it, and masking them could
        merge two keys into one. Non-string leaves are returned unchanged.
        """
        if self._pattern is None and not self._stale:
            return value
        return self._mask_walk(value, 0)

    def _mask_walk(self, value: object, depth: int) -> object:
        if isinstance(value, str):
            return self.mask(value)
        if depth >= _MAX_DEPTH:
            # Too deep to be data we built on purpose (or a cycle): flatten it so that no
            # unmasked string can hide further down.
            return self.mask(_safe_str(value))
        if isinstance(value, Mapping):
            return {k: self._mask_walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask_walk(v, depth + 1) for v in value]
        return value

    def _collect(self, secret: object, name: str | None, out: list[str], depth: int) -> bool:
        """Append the strings of ``secret`` that qualify; return True if one was too short."""
        if depth >= _MAX_DEPTH:
            return False
        if isinstance(secret, str):
            if not secret or secret.lower() in _NEVER_SECRET:
                return False
            if len(secret) < self._min_length:
                return True
            if name is None or self.is_sensitive_name(name):
                out.append(secret)
            return False
        short = False
        if isinstance(secret, Mapping):
            for key, value in secret.items():
                short |= self._collect(value, str(key), out, depth + 1)
        elif isinstance(secret, list | tuple | set | frozenset):
            for item in secret:
                short |= self._collect(item, name, out, depth + 1)
        return short


def _normalise(name: str) -> str:
    return re.sub(r"\W+", "_", name.strip().lower())


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
