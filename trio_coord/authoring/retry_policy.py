"""Retry policies: a task decides, from the exception it raised, whether a failure retries.

The names and the meaning are Airflow 3.3's (``airflow.sdk.RetryPolicy`` and friends), so a
policy written for Airflow reads the same here::

    retry_policy = ExceptionRetryPolicy(
        rules=[
            RetryRule(exception=ConnectionError, retry_delay=timedelta(seconds=30),
                      reason="the database was unreachable"),
            RetryRule(exception="mylib.errors.BadInput", action=RetryAction.FAIL),
        ],
    )

A policy runs in the runtime, after the task raised and before the terminal message is
chosen: ``FAIL`` ends the try failed whatever the retries left; ``RETRY`` sends a
``RetryTask`` carrying the decision's reason (stored by the API server and shown in the
UI) and its delay (which replaces ``retry_delay`` and the backoff for that one retry); it
cannot add retries beyond ``retries``. ``DEFAULT`` leaves the usual rule in place.
:class:`~.tasks.FailTask` and a task cancelled by the runtime never consult the policy.
"""

from __future__ import annotations

import abc
import datetime
import enum
import importlib
import logging
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

__all__ = ["ExceptionRetryPolicy", "RetryAction", "RetryDecision", "RetryPolicy", "RetryRule"]

log = logging.getLogger("trio_coord.runtime")


class RetryAction(enum.Enum):
    """What a failure leads to."""

    #: Retry, if the task still has retries left (a policy cannot add any).
    RETRY = "retry"
    #: Fail now, skipping the retries left.
    FAIL = "fail"
    #: The usual rule: retry while retries are left.
    DEFAULT = "default"


def _delay(where: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, datetime.timedelta) or value < datetime.timedelta(0)
    ):
        raise UsageError(f"{where}: retry_delay must be a non-negative timedelta, got {value!r}")


@dataclass(frozen=True)
class RetryDecision:
    """A policy's answer: the action, an optional delay for this retry, a reason for humans."""

    action: RetryAction = RetryAction.DEFAULT
    retry_delay: datetime.timedelta | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.action, RetryAction):
            raise UsageError(f"RetryDecision: action must be a RetryAction, got {self.action!r}")
        _delay("RetryDecision", self.retry_delay)
        if self.reason is not None and not isinstance(self.reason, str):
            raise UsageError(f"RetryDecision: reason must be a string, got {self.reason!r}")

    @classmethod
    def fail(cls, reason: str | None = None) -> RetryDecision:
        """Fail without retrying."""
        return cls(action=RetryAction.FAIL, reason=reason)

    @classmethod
    def retry(
        cls, delay: datetime.timedelta | None = None, reason: str | None = None
    ) -> RetryDecision:
        """Retry (within ``retries``), after ``delay`` when given."""
        return cls(action=RetryAction.RETRY, retry_delay=delay, reason=reason)

    @classmethod
    def default(cls) -> RetryDecision:
        """Apply the task's usual retry rule."""
        return cls(action=RetryAction.DEFAULT)


class RetryPolicy(abc.ABC):
    """Subclass and implement :meth:`evaluate` for a policy of your own."""

    @abc.abstractmethod
    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        """Decide what the failure ``exception`` of try ``try_number`` leads to.

        ``max_tries`` is the server's count of tries allowed; ``context`` the try's
        :class:`~trio_coord.TaskContext`. Runs in the runtime's event loop thread: keep
        it quick and free of I/O.
        """


ExceptionSpec = type[BaseException] | str


@dataclass
class RetryRule:
    """One mapping from exception classes (or their dotted import paths) to an action.

    A string is imported when the rule is first matched, so the class need not be
    importable where the DAG is declared; one that cannot be imported never matches (and
    says so in the task log).
    """

    exception: ExceptionSpec | list[ExceptionSpec]
    action: RetryAction = RetryAction.RETRY
    retry_delay: datetime.timedelta | None = None
    reason: str | None = None
    match_subclasses: bool = True

    def __post_init__(self) -> None:
        where = "RetryRule"
        specs = self.specs
        if not specs:
            raise UsageError(f"{where}: exception must name at least one exception class")
        for spec in specs:
            if isinstance(spec, str):
                if "." not in spec.strip(".") or " " in spec:
                    raise UsageError(
                        f"{where}: an exception given as text must be a dotted import path "
                        f"such as 'builtins.ValueError', got {spec!r}"
                    )
            elif not (isinstance(spec, type) and issubclass(spec, BaseException)):
                raise UsageError(
                    f"{where}: exception must be an exception class, a dotted import path "
                    f"or a list of them, got {spec!r}"
                )
        if not isinstance(self.action, RetryAction):
            raise UsageError(f"{where}: action must be a RetryAction, got {self.action!r}")
        _delay(where, self.retry_delay)
        if self.reason is not None and not isinstance(self.reason, str):
            raise UsageError(f"{where}: reason must be a string, got {self.reason!r}")
        if not isinstance(self.match_subclasses, bool):
            raise UsageError(f"{where}: match_subclasses must be True or False")

    @property
    def specs(self) -> list[ExceptionSpec]:
        """The exception classes or paths, always as a list."""
        return list(self.exception) if isinstance(self.exception, list) else [self.exception]

    def _classes(self) -> list[type[BaseException]]:
        out: list[type[BaseException]] = []
        for spec in self.specs:
            if not isinstance(spec, str):
                out.append(spec)
                continue
            module, _, name = spec.rpartition(".")
            try:
                found = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                log.warning(
                    "retry policy: cannot import exception class %r; it never matches", spec
                )
                continue
            if isinstance(found, type) and issubclass(found, BaseException):
                out.append(found)
        return out

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one of the rule's classes (or a subclass, by default)."""
        classes = self._classes()
        if self.match_subclasses:
            return isinstance(exc, tuple(classes))
        return type(exc) in classes


class ExceptionRetryPolicy(RetryPolicy):
    """Rules tried in order; the first that matches decides, else ``default`` applies."""

    def __init__(self, rules: list[RetryRule], default: RetryAction = RetryAction.DEFAULT):
        if not isinstance(rules, list) or not all(isinstance(r, RetryRule) for r in rules):
            raise UsageError("ExceptionRetryPolicy: rules must be a list of RetryRule")
        if not isinstance(default, RetryAction):
            raise UsageError(
                f"ExceptionRetryPolicy: default must be a RetryAction, got {default!r}"
            )
        self.rules = rules
        self.default = default

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        for rule in self.rules:
            if rule.matches(exception):
                reason = rule.reason or f"Matched rule for {type(exception).__name__}"
                return RetryDecision(rule.action, rule.retry_delay, reason)
        return RetryDecision(action=self.default)

    def __repr__(self) -> str:
        return f"ExceptionRetryPolicy(rules={self.rules!r}, default={self.default})"
