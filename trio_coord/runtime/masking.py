"""Secret masking: the one place that decides what is secret and hides it.

Every byte the runtime writes about a task passes through a :class:`Masker` first: log
records (socket and stderr fallback), the text of terminal messages, and the task's own
``print`` output (see ``runtime/logs/stdio.py``). The supervisor masks what it receives too,
but it only knows the secrets it handed out itself; a secret the runtime learns on its own
(environment fast paths, a key nested in a JSON variable or a connection's ``extra``) or a
line that bypasses its parser (stderr) would otherwise leave in clear.

The rules follow the supervisor's (task-sdk 1.3.2), so that local masking never shows a
line differently from how the supervisor would:

* only strings are secrets; maps and sequences are walked, a map's values registered under
  their key as *name*, a sequence's items under the sequence's name;
* strings shorter than ``min_length`` (``[logging] min_length_masked_secret``, 5) are never
  registered -- masking ``"a"`` would shred every log line -- and this is reported once;
  neither is the word ``airflow``, in any case;
* a value registered under a name counts only when the name is sensitive: the name is
  stripped, lower-cased and every run of non-word characters becomes ``_``, and it is
  sensitive when one of the configured fragments (the defaults plus
  ``AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES``, each only stripped) is a substring of it;
  ``AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS=False`` makes no name sensitive;
* a value registered without a name always counts;
* every occurrence is replaced by ``***``, the longest secret tried first, so that a secret
  containing another one is hidden whole;
* when a structure is written out (:meth:`Masker.redact`), every string under a
  sensitive key is replaced by ``***`` whatever its value, as the supervisor does.

Reads rarely take the lock: ``add`` only records the secret and marks the pattern stale;
the next ``mask`` compiles the alternation once (under the lock) and publishes it with one
attribute assignment. Registering many secrets in a row therefore costs one compilation.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "DEFAULT_MIN_LENGTH",
    "DEFAULT_SENSITIVE_NAMES",
    "MASK",
    "MAX_DEPTH",
    "Masker",
    "safe_str",
]

#: What replaces each secret. The supervisor uses the same text.
MASK: Final = "***"

#: ``[logging] min_length_masked_secret`` default in Airflow 3.3.
DEFAULT_MIN_LENGTH: Final = 5

#: Fragments that make a key name sensitive: task-sdk 1.3.2's default list, matched as
#: substrings of the normalised name. Extended by ``AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES``.
DEFAULT_SENSITIVE_NAMES: Final = frozenset(
    {
        "access_key",
        "access_token",
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
        "proxy_password",
        "secret",
        "service_account",
        "service_key",
        "token",
        "webhook_url",
    }
)

_ENV_NAMES: Final = "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES"
_ENV_HIDE: Final = "AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS"
_ENV_MIN_LENGTH: Final = "AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET"

# Words that look like secrets to the length rule but appear in nearly every Airflow log line.
_NEVER_SECRET: Final = frozenset({"airflow"})

#: Deeper structures are flattened to their masked ``str()``: a cycle or an abuse, not data.
MAX_DEPTH: Final = 24
#: How many names :meth:`Masker.is_sensitive_name` remembers before starting over.
_MAX_CACHED_NAMES: Final = 4096
# ``str(int)`` refuses more than 4300 digits; 14000 bits is just under that.
_MAX_INT_BITS: Final = 14_000

_log = logging.getLogger(__name__)


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder naming its type when ``__str__`` raises."""
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


class Masker:
    """Remembers secrets and hides them in text and JSON-like values.

    Thread-safe: ``add`` may race with ``mask`` from any thread. A process has one,
    built by :meth:`from_env`, shared by the log pipeline, the client, the terminal
    messages and the stdout/stderr writers.
    """

    def __init__(
        self,
        *,
        min_length: int = DEFAULT_MIN_LENGTH,
        sensitive_names: Iterable[str] = DEFAULT_SENSITIVE_NAMES,
        hide_sensitive_names: bool = True,
    ) -> None:
        self._min_length = max(1, min_length)
        # Only stripped, as the supervisor does: a configured name with capitals never
        # matches there (names are lower-cased before the comparison), so not here either.
        self._sensitive = tuple(sorted({n.strip() for n in sensitive_names}))
        self._hide_names = hide_sensitive_names
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
        """Build the masker configured the way the supervisor configures its own.

        Reads ``AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES`` (comma-separated names added to
        the defaults, each stripped, exactly as the supervisor splits them),
        ``AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS`` and
        ``AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET``; an invalid length means the default.
        """
        names = set(DEFAULT_SENSITIVE_NAMES)
        extra = environ.get(_ENV_NAMES, "")
        if extra:
            # A trailing comma adds "", which is a substring of every name: the supervisor
            # then hides every named value, and so do we.
            names |= {n.strip() for n in extra.split(",")}
        hide = environ.get(_ENV_HIDE, "true").strip().lower() not in ("false", "0", "f")
        try:
            min_length = int(environ.get(_ENV_MIN_LENGTH, ""))
        except ValueError:
            min_length = DEFAULT_MIN_LENGTH
        return cls(min_length=min_length, sensitive_names=names, hide_sensitive_names=hide)

    @property
    def version(self) -> int:
        """Grows every time a new secret is registered; lets callers cache masked output."""
        return self._version

    @property
    def active(self) -> bool:
        """Whether any secret is registered (else :meth:`mask` is the identity)."""
        return self._pattern is not None or self._stale

    def is_sensitive_name(self, name: str) -> bool:
        """Whether a value registered (or written) under ``name`` is treated as a secret."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            normalised = _normalise(name)
            verdict = self._hide_names and any(f in normalised for f in self._sensitive)
            if len(self._verdicts) >= _MAX_CACHED_NAMES:
                self._verdicts.clear()
            self._verdicts[name] = verdict
        return verdict

    def add(self, secret: object, name: str | None = None) -> list[str]:
        """Register ``secret`` (a string, or a map/sequence holding strings).

        Map values are registered under their key as ``name``; sequence items inherit
        ``name``. Non-string leaves, short strings and values under a non-sensitive name
        are ignored. Returns every string that qualifies, new or already known.
        """
        found: list[str] = []
        short = self._collect(secret, name, found, 0)
        if short and not self._warned_short:
            self._warned_short = True
            _log.warning(
                "Skipping masking for a secret shorter than %d characters", self._min_length
            )
        if found:
            with self._lock:
                new = set(found) - self._secrets
                if new:
                    self._secrets |= new
                    self._stale = True
                    self._version += 1
        return found

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

    def redact(self, value: object, name: str | None = None) -> object:
        """A JSON-safe copy of ``value`` with no secret left in it; never raises.

        The one walker for everything written out: strings (map keys included) are
        masked, every string under a sensitive key (``name`` for the top level) becomes
        ``***``, sequences become lists, ints too long for ``str()`` become hex, floats
        that JSON cannot carry become strings, and anything else its masked ``str()``.
        Past :data:`MAX_DEPTH` (or in a cycle) the rest is flattened to masked text.
        """
        hide = name is not None and self.is_sensitive_name(name)
        return self._walk(value, hide, 0)

    def _walk(self, value: object, hide: bool, depth: int) -> object:
        try:
            return self._convert(value, hide, depth)
        except Exception:
            return MASK if hide else self.mask(safe_str(value))

    def _convert(self, value: object, hide: bool, depth: int) -> object:
        if isinstance(value, str):
            if hide:
                return MASK
            # str.__str__ turns a subclass (an enum member, a lazy string) into a plain str.
            return self.mask(value if type(value) is str else str.__str__(value))
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            number = int(value)
            # json (and str()) refuse ints of more than 4300 digits; hex has no such limit.
            return number if number.bit_length() <= _MAX_INT_BITS else hex(number)
        if isinstance(value, float):
            real = float(value)
            return real if math.isfinite(real) else str(real)
        if hide:
            if isinstance(value, Mapping | list | tuple | set | frozenset) and depth < MAX_DEPTH:
                pass  # walked below, every string in it hidden
            else:
                return MASK
        if isinstance(value, bytes | bytearray | memoryview):
            return self.mask(bytes(value).decode("utf-8", "replace"))
        if depth >= MAX_DEPTH:
            return self.mask(safe_str(value))
        if isinstance(value, Mapping):
            out: dict[str, object] = {}
            for key, item in value.items():
                text = key if type(key) is str else safe_str(key)
                out[self.mask(text)] = self._walk(
                    item, hide or self.is_sensitive_name(text), depth + 1
                )
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self._walk(item, hide, depth + 1) for item in value]
        return self.mask(safe_str(value))

    def _collect(self, secret: object, name: str | None, out: list[str], depth: int) -> bool:
        """Append the strings of ``secret`` that qualify; return True if one was too short."""
        if depth >= MAX_DEPTH:
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
