"""Human in the loop in ``trio-coord run``: keep the question, and answer it on request.

The embedded supervisor stores the question a try creates (``CreateHITLDetailPayload``)
and answers with it, as the API server does. A try that ends awaiting input stops there,
unless ``--hitl-answer`` gives the answer a person would have given: the task is then
resumed once, in the method its ``AwaitInputTask`` named, with the ``event`` airflow-core
builds from a stored response (chosen options, params input, when, by whom).
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..protocol import serde
from ..protocol.messages import AwaitInputTask, CreateHITLDetailPayload, HITLDetailRequestResult

if TYPE_CHECKING:
    from .logs import Printer
    from .options import RunOptions
    from .session import Report

__all__ = ["HITLAnswer", "LocalHITL", "parse_answer", "resume_kwargs", "run_answering"]


@dataclass(frozen=True)
class HITLAnswer:
    """What ``--hitl-answer`` says a person chose."""

    chosen_options: list[str]
    params_input: dict[str, Any] = field(default_factory=dict)


def parse_answer(text: str) -> HITLAnswer:
    """``--hitl-answer``: ``OPTION[,OPTION...]`` or a JSON object with ``chosen_options``
    (and optionally ``params_input``).

    Raises:
        UsageError: neither form.
    """
    accepted = (
        "--hitl-answer takes OPTION[,OPTION...] or a JSON object "
        '{"chosen_options": [...], "params_input": {...}}'
    )
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{accepted}: {exc}") from None
        chosen = data.get("chosen_options")
        params = data.get("params_input") or {}
        extra = set(data) - {"chosen_options", "params_input"}
        if (
            extra
            or not isinstance(chosen, list)
            or not chosen
            or not all(isinstance(c, str) for c in chosen)
            or not isinstance(params, dict)
        ):
            raise UsageError(f"{accepted}; got {text!r}")
        return HITLAnswer(list(chosen), dict(params))
    options = [o.strip() for o in text.split(",")]
    if not all(options):
        raise UsageError(f"{accepted}; got {text!r}")
    return HITLAnswer(options)


@dataclass
class LocalHITL:
    """The questions of one local try (the last one is the one answered)."""

    questions: list[CreateHITLDetailPayload] = field(default_factory=list)

    def create(self, msg: CreateHITLDetailPayload) -> tuple[Any, Any]:
        self.questions.append(msg)
        fields = {k: getattr(msg, k) for k in HITLDetailRequestResult.__dataclass_fields__}
        return HITLDetailRequestResult(**fields), None

    def check(self, answer: HITLAnswer) -> None:
        """Refuse an answer the API server would refuse (as a usage error).

        Raises:
            UsageError: no question was asked, or an option it does not offer.
        """
        if not self.questions:
            raise UsageError("--hitl-answer: the task awaited input without creating a question")
        q = self.questions[-1]
        unknown = [c for c in answer.chosen_options if c not in q.options]
        if unknown:
            raise UsageError(
                f"--hitl-answer: {', '.join(unknown)} not offered; the options of "
                f"{q.subject!r} are {', '.join(q.options)}"
            )
        if not q.multiple and len(answer.chosen_options) > 1:
            raise UsageError(f"--hitl-answer: {q.subject!r} accepts a single option")


def resume_kwargs(
    terminal: AwaitInputTask, answer: HITLAnswer, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The resumed try's ``next_kwargs``: the parked kwargs plus the answer as ``event``,
    encoded as airflow-core encodes them (``responded_at`` a pendulum UTC datetime)."""
    moment = now or datetime.datetime.now(datetime.UTC)
    user = getpass.getuser()
    event: Mapping[str, Any] = {
        "chosen_options": list(answer.chosen_options),
        "params_input": serde.encode(dict(answer.params_input), "params_input"),
        "responded_at": serde.encode_datetime(
            moment.astimezone(datetime.UTC),
            classname="pendulum.datetime.DateTime",
            zone_class=serde.PENDULUM_ZONE,
        ),
        "responded_by_user": {"id": user, "name": user},
        "timedout": False,
    }
    return {**dict(terminal.next_kwargs), "event": dict(event)}


def answered(opts: RunOptions, hitl: LocalHITL, terminal: Any) -> RunOptions | None:
    """The options of the resumed try when ``--hitl-answer`` answers a try that ended
    awaiting input; None when there is nothing to answer.

    Raises:
        UsageError: the answer does not fit the question.
    """
    if opts.hitl_answer is None or not isinstance(terminal, AwaitInputTask):
        return None
    hitl.check(opts.hitl_answer)
    return dataclasses.replace(
        opts,
        next_method=terminal.next_method,
        next_kwargs=resume_kwargs(terminal, opts.hitl_answer),
    )


async def run_answering(opts: RunOptions, printer: Printer) -> Report:
    """One try of the task; if it awaits input and ``--hitl-answer`` is given, the resumed
    try too (its report is the one shown).

    Raises:
        UsageError: the answer does not fit the question.
    """
    from .session import Session
    from .supervisor import run_local

    session = Session(opts, masker=printer.masker)
    report = await run_local(opts, printer, session=session)
    if report.state != "awaiting_input":
        return report
    resumed = answered(opts, session.hitl, session.terminal)
    if resumed is None:
        if session.hitl.questions:
            q = session.hitl.questions[-1]
            printer.notice(
                f"awaiting input: {q.subject!r} (options: {', '.join(q.options)}); "
                "answer it with --hitl-answer"
            )
        return report
    resumed = dataclasses.replace(resumed, run_id=session.details.ti.run_id)
    printer.notice(
        f"answering {session.hitl.questions[-1].subject!r} with "
        f"{', '.join(opts.hitl_answer.chosen_options if opts.hitl_answer else [])}; "
        f"resuming in {resumed.next_method!r}"
    )
    return await run_local(resumed, printer)
