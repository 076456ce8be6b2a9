"""One session per job. The README's test command runs them with --no-venv --no-install
in the environment it has just installed, so a fresh machine installs Airflow once."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The default test run: unit, protocol, real-supervisor and short model/fuzz passes."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict against trio's own inline types (no trio-typing)."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks beside their baselines (issue 6); rewrites docs/performance.md. Not in the
    default run. Needs the test extras (the real task-sdk is a baseline) and a C compiler;
    matplotlib only for the plot. Pass options through: nox -s bench -- --rounds 3."""
    session.install("-e", ".[test]", "matplotlib")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, with its ASYNC rules."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "trio_coord", "model")
