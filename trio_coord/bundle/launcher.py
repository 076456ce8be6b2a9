"""The start of a packed bundle's binary region: a ``/bin/sh`` launcher and its bootstrap.

The coordinator ``execve``\\ s the bundle, so the file starts with ``#!/bin/sh``. The shell
chooses an interpreter and replaces itself with it (``exec``: the supervisor's signals and
its process-tree ownership check then see Python as the launched process), running a
short ``-c`` bootstrap. The shell never reads past the marker line; the bytes after it are
the payload ZIP.

Interpreter choice: ``$TRIO_COORD_PYTHON`` when set, else the one recorded at pack time
(the packing interpreter's real binary, or ``trio-coord pack --python``), else ``python3``
from ``PATH``. Recording it avoids whatever ``python3`` resolves to on the worker: a
version-manager shim costs tens of milliseconds per start, and a different Python may
lack what the bundle was checked against.

A recorded interpreter that does not exist on the worker is a deployment difference, not
a reason to fail: ``python3`` from ``PATH`` runs instead, and the launcher exports
:data:`WARNING_ENV` so the runtime logs one warning in the task log (printed on stderr
in the metadata modes). An explicit ``$TRIO_COORD_PYTHON`` that does not exist is the
operator's mistake: ``python3`` is started only to *report* it (the bundle connects to
the supervisor and fails the task with that message, which lands in the task log; a
process that exits before connecting leaves nothing there). Only when no Python exists
at all does the launcher exit 127 with the message on stderr.

The bootstrap (stdlib only, written for any Python 3 so that an old one still prints the
version message) re-verifies the binary region's SHA-256 over the bytes it is about to
run, opens the payload from memory, and hands over to ``_tc/boot.py``.
"""

from __future__ import annotations

import shlex
from typing import Final

__all__ = ["MARKER", "MIN_PYTHON", "WARNING_ENV", "bootstrap_source", "launcher"]

#: The last line of the launcher; the payload ZIP starts right after it.
MARKER: Final = b"#@@TRIO-COORD-PAYLOAD@@\n"
#: Oldest interpreter a bundle runs on (docs/decisions.md: Python 3.11).
MIN_PYTHON: Final = (3, 11)
LAYOUT: Final = 1
#: Set by the launcher when it fell back from the recorded interpreter; logged once.
WARNING_ENV: Final = "TRIO_COORD_LAUNCH_WARNING"

_BOOTSTRAP: Final = """\
import sys
if sys.version_info < {min_python!r}:
    sys.stderr.write("trio-coord bundle: needs Python >= {min_text}, got %s (%s); set TRIO_COORD_PYTHON\\n" % (sys.version.split()[0], sys.executable))
    sys.exit(3)
import hashlib, io, json, os, struct, types, zipfile
def _tc_fail(why):
    sys.stderr.write("trio-coord bundle: %s: %s\\n" % (sys.argv[1], why))
    sys.exit(3)
try:
    with open(sys.argv[1], "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 64:
            _tc_fail("too short to be a bundle")
        f.seek(size - 64)
        t = f.read(64)
        slen, mlen, ver, digest, reserved, magic = struct.unpack("<III32s12s8s", t)
        start = size - 64 - mlen - slen
        if magic != b"AFBNDL01" or ver != 1 or reserved != bytes(12) or start <= 0:
            _tc_fail("invalid bundle trailer")
        f.seek(0)
        binary = f.read(start)
except OSError as e:
    _tc_fail("cannot read the bundle: %s" % (e,))
if len(binary) != start or hashlib.sha256(binary).digest() != digest:
    _tc_fail("the binary region does not match its SHA-256: the file is damaged or was modified")
z = zipfile.ZipFile(io.BytesIO(binary))
m = types.ModuleType("_trio_coord_boot")
m.__file__ = sys.argv[1] + "!/_tc/boot.py"
sys.modules[m.__name__] = m
exec(compile(z.read("_tc/boot.py"), m.__file__, "exec"), m.__dict__)
sys.exit(m.boot(z, sys.argv[1], json.loads(z.read("_tc/bundle.json")), sys.argv[3:], sys.argv[2]))
"""


def bootstrap_source(min_python: tuple[int, int] = MIN_PYTHON) -> str:
    """The ``-c`` program; it contains no single quote, so the shell can quote it."""
    text = _BOOTSTRAP.format(min_python=min_python, min_text=".".join(map(str, min_python)))
    if "'" in text:  # the shell quotes the program in single quotes
        raise RuntimeError("the bootstrap program must not contain a single quote")
    return text


def launcher(*, python: str | None = None, isolation: str = "hermetic") -> bytes:
    """The shell launcher, ending with :data:`MARKER`.

    Args:
        python: the interpreter recorded at pack time (a path, or a name looked up on
            ``PATH``); None means ``python3`` from ``PATH``.
        isolation: ``hermetic`` runs ``python -I -S`` (only the standard library and the
            payload are importable); ``site`` runs ``python -I`` (the interpreter's
            site-packages are visible behind the payload).

    The text depends only on these options and trio-coord's version: no hosts or dates,
    so packing the same file with the same interpreter is reproducible.
    """
    if isolation not in ("hermetic", "site"):
        raise ValueError(f"isolation must be hermetic or site, not {isolation!r}")
    flags = "-I -S" if isolation == "hermetic" else "-I"
    if python:
        default = f"_tc_py={shlex.quote(python)} _tc_from='recorded by trio-coord pack'"
    else:
        default = "_tc_py=python3 _tc_from=PATH"
    want = f"Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
    text = f"""#!/bin/sh
# trio-coord bundle launcher (layout {LAYOUT}). Generated by trio-coord pack: do not edit.
# Runs the payload below with $TRIO_COORD_PYTHON, else the interpreter recorded at pack
# time, else python3. Everything after the marker line is a ZIP archive.
if [ -n "${{TRIO_COORD_PYTHON:-}}" ]; then
  _tc_py=$TRIO_COORD_PYTHON _tc_from=TRIO_COORD_PYTHON
else
  {default}
fi
_tc_err=
if ! command -v "$_tc_py" >/dev/null 2>&1; then
  if [ "$_tc_from" = TRIO_COORD_PYTHON ]; then
    _tc_err="Python interpreter '$_tc_py' ($_tc_from) not found on this worker; set TRIO_COORD_PYTHON to a {want}"
  else
    {WARNING_ENV}="Python interpreter '$_tc_py' ($_tc_from) not found on this worker; using python3 from PATH instead (set TRIO_COORD_PYTHON to choose)"
    export {WARNING_ENV}
    case " $* " in *" --comm"*) ;; *) echo "trio-coord bundle: warning: ${WARNING_ENV}" >&2 ;; esac
  fi
  _tc_py=python3
  if ! command -v "$_tc_py" >/dev/null 2>&1; then
    echo "trio-coord bundle: ${{_tc_err:-${WARNING_ENV}}} (and there is no python3 on PATH)" >&2
    exit 127
  fi
fi
exec "$_tc_py" {flags} -c '{bootstrap_source()}' "$0" "$_tc_err" "$@"
"""
    return text.encode("ascii") + MARKER
