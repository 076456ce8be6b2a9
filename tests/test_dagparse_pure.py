"""The serializer stays pure: importing trio_coord.dagparse never imports trio or Airflow.

One fresh interpreter per check, because this test process may have both loaded already.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import trio_coord.dagparse

MODULES = ["trio_coord.dagparse", "trio_coord.authoring"] + [
    f"trio_coord.dagparse.{m.name}" for m in pkgutil.iter_modules(trio_coord.dagparse.__path__)
]

_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
banned = ("trio", "airflow")
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in banned)))
"""


def _loaded(*modules: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_probe_detects_trio_and_airflow() -> None:
    """The probe really reports trio and airflow when something imports them."""
    assert {"trio", "airflow"} <= set(_loaded("trio", "airflow"))


def test_dagparse_imports_neither_trio_nor_airflow() -> None:
    """Importing every dagparse module (and the authoring API) loads no trio and no airflow."""
    assert _loaded(*MODULES) == []


def test_every_part_of_the_document_has_its_module() -> None:
    """dag, tasks, timetables, groups and values each live in their own module."""
    names = {m.rsplit(".", 1)[-1] for m in MODULES}
    assert {"dag", "tasks", "timetables", "groups", "values"} <= names
