"""The sans-IO core stays sans-IO: importing trio_coord.protocol never imports trio (STYLE.md practice 1).

Each import runs in a fresh interpreter, because this test process has trio loaded already.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import trio_coord.protocol

MODULES = ["trio_coord.protocol"] + [
    f"trio_coord.protocol.{m.name}" for m in pkgutil.iter_modules(trio_coord.protocol.__path__)
]

_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
loaded = sorted(m for m in sys.modules if m == "trio" or m.startswith("trio."))
print(",".join(loaded))
"""


def test_the_probe_detects_trio() -> None:
    """The subprocess check really reports trio when a module imports it."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "trio"], capture_output=True, text=True, check=True
    )
    assert "trio" in out.stdout.strip().split(",")


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_without_trio(module: str) -> None:
    """Importing this protocol module in a fresh interpreter leaves "trio" out of sys.modules."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"


def test_every_module_is_listed() -> None:
    """The module list covers framing, codec, messages, states and connection at least."""
    names = {m.rsplit(".", 1)[-1] for m in MODULES}
    assert {"framing", "codec", "fields", "messages", "states", "connection"} <= names
