"""The ``trio-coord`` command line (sub-commands arrive with their issues)."""

from __future__ import annotations

import argparse

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-coord",
        description="A Trio runtime for Apache Airflow's coordinator protocol.",
    )
    parser.add_argument("--version", action="version", version=f"trio-coord {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0
