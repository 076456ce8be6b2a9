"""One session per job. The README's test command runs them with --no-venv --no-install
in the environment it has just installed, so a fresh machine installs Airflow once."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The default test run: unit, protocol, real-supervisor and short model/fuzz passes.

    One worker per CPU (pytest-xdist), a test file per worker at a time: most of the time goes
    to real supervisor and bundle processes, and a module's expensive fixtures (the oracle's
    answer) are built once.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "auto", "--dist", "loadfile", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict against trio's own inline types (no trio-typing)."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks beside their baselines; rewrites docs/performance.md. Not in the
    default run. Needs the test extras (the real task-sdk is a baseline) and a C compiler;
    matplotlib only for the plot. Pass options through: nox -s bench -- --rounds 3."""
    session.install("-e", ".[test]", "matplotlib")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def model(session: nox.Session) -> None:
    """The protocol model's state machines with the long Hypothesis profile.
    Extra arguments go to pytest: nox -s model -- -x."""
    session.install("-e", ".[test]")
    stats = session.create_tmp() + "/model-stats.json"
    session.run(
        "pytest", "-p", "no:logging", "-q",
        "tests/test_stateful.py", "tests/test_stateful_model.py",
        "tests/test_stateful_regressions.py", *session.posargs,
        env={"HYPOTHESIS_PROFILE": "long", "MODEL_STATS": stats},
    )  # fmt: skip
    session.run("python", "-c", "import sys; print(open(sys.argv[1]).read())", stats)


@nox.session
def mutants(session: nox.Session) -> None:
    """Realistic bugs applied one at a time to a scratch copy of trio_coord, each run
    against the stateful machines (ci profile); prints which were caught, exits non-zero
    if one survives. Extra arguments go to mutants/run.py: nox -s mutants -- --only NAME."""
    session.install("-e", ".[test]")
    session.run("python", "mutants/run.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Frame and serve fuzzers, long: nox -s fuzz -- <inputs or seconds> (200000, or 600s).
    A count N runs N decoder inputs and N/100 in-process conversations; Ns gives each
    fuzzer N seconds. Then the fuzz tests under the long Hypothesis profile."""
    session.install("-e", ".[test]")
    budget = session.posargs[0] if session.posargs else "200000"
    serve = budget if budget.endswith("s") else str(max(int(budget) // 100, 10))
    session.run("python", "fuzz/frame_fuzz.py", budget)
    session.run("python", "fuzz/decode_bound.py", "600s" if budget.endswith("s") else "300")
    session.run("python", "fuzz/serve_fuzz.py", serve, "--subprocess", "20")
    session.run(
        "pytest", "-p", "no:logging", "-q", "tests/test_fuzz.py",
        env={"HYPOTHESIS_PROFILE": "long"},
    )  # fmt: skip


@nox.session
def atheris(session: nox.Session) -> None:
    """Coverage-guided fuzzing of the decoder: nox -s atheris -- <runs> (default 500000)."""
    session.install("-e", ".[test]", "atheris")
    runs = session.posargs[0] if session.posargs else "500000"
    corpus = session.create_tmp() + "/atheris-corpus"
    session.run("python", "fuzz/atheris_decoder.py", "--make-corpus", corpus)
    session.run(
        "python", "fuzz/atheris_decoder.py", corpus, f"-runs={runs}", "-print_final_stats=1"
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, with its ASYNC rules."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "trio_coord", "model")


@nox.session
def e2e(session: nox.Session) -> None:
    """trio-coord under a real, running Airflow 3.3.2 (e2e/): scheduler, DAG processor, API
    server and triggerer as separate processes, in a throw-away AIRFLOW_HOME, with Airflow in
    a venv of its own cached under ~/.cache/trio-coord-e2e. Fails, never skips, when Airflow
    cannot be installed or started. Options go to e2e: nox -s e2e -- --record."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "e2e", *session.posargs)
