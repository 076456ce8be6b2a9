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

_BOOTSTRAP_HEAD: Final = """\
import sys
if sys.version_info < {min_python!r}:
    sys.stderr.write("trio-coord bundle: needs Python >= {min_text}, got %s (%s); set TRIO_COORD_PYTHON\\n" % (sys.version.split()[0], sys.executable))
    sys.exit(3)
import os, _struct
def _tc_fail(why):
    sys.stderr.write("trio-coord bundle: %s: %s\\n" % (sys.argv[1], why))
    sys.exit(3)
try:
    f = open(sys.argv[1], "rb")
    size = os.fstat(f.fileno()).st_size
    if size < 64:
        _tc_fail("too short to be a bundle")
    f.seek(size - 64)
    t = f.read(64)
    slen, mlen, ver, digest, reserved, magic = _struct.unpack("<III32s12s8s", t)
    start = size - 64 - mlen - slen
    if magic != b"AFBNDL01" or ver != 1 or reserved != bytes(12) or start <= 0:
        _tc_fail("invalid bundle trailer")
except OSError as e:
    _tc_fail("cannot read the bundle: %s" % (e,))
"""

#: The launcher side of a warm start (docs/warm-start.md), run before anything is
#: hashed or imported, and only in coordinator mode. Raw modules only (``_socket`` and
#: ``_signal`` spare ``socket``'s and ``signal``'s enum imports, ~15 ms). It returns None
#: when no warm server is there (silently cold), a reason when one was there but could
#: not be used (cold, with a debug line), and never returns once a forked child runs
#: the try: it then relays signals and exits as the child did.
_WARM_CLIENT: Final = r"""
def _tc_warm_wanted(args):
    if os.environ.get("TRIO_COORD_WARM", "") in ("0", "off", "no", "false"):
        return False
    seen = set()
    i = 0
    while i < len(args):
        n, e, v = args[i].partition("=")
        if n not in ("--comm", "--logs", "--debug") or (n == "--debug" and e):
            return False
        if n != "--debug" and not e:
            i += 1
        seen.add(n)
        i += 1
    return i == len(args) and {"--comm", "--logs"} <= seen
def _tc_warm(h, args):
    import _socket, _signal, select
    uid = os.geteuid()
    d = os.environ.get("TRIO_COORD_WARM_DIR") or "%s/trio-coord-warm-%d" % (os.environ.get("XDG_RUNTIME_DIR") or "/tmp", uid)
    path = "%s/%s.sock" % (d, h[:32])
    try:
        st = os.lstat(path)
        dst = os.lstat(d)
    except OSError:
        return None
    if dst.st_mode & 0o170000 != 0o040000 or dst.st_mode & 0o077 or dst.st_uid != uid:
        return "the warm server directory %s is not private to uid %d" % (d, uid)
    if st.st_mode & 0o170000 != 0o140000 or st.st_uid != uid:
        return "%s is not a socket owned by uid %d" % (path, uid)
    c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        c.settimeout(10)
        c.connect(path)
        peer = _struct.unpack("3i", c.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12))
    except OSError as e:
        c.close()
        return "cannot reach the warm server at %s: %s" % (path, e.strerror or e)
    if peer[1] != uid:
        c.close()
        return "the warm server at %s runs as uid %d, not %d" % (path, peer[1], uid)
    want = {}
    i = 0
    while i < len(args):
        n, e, v = args[i].partition("=")
        if not e and n != "--debug":
            i += 1
            v = args[i]
        want[n] = v
        i += 1
    socks = []
    try:
        for n in ("--comm", "--logs"):
            host, _, port = want[n].rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            fam, typ, pro, cn, addr = _socket.getaddrinfo(host.encode(), int(port), 0, _socket.SOCK_STREAM)[0]
            s = _socket.socket(fam, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC, pro)
            socks.append(s)
            s.settimeout(10)
            s.connect(addr)
            s.settimeout(None)
    except (OSError, ValueError, KeyError) as e:
        for s in socks:
            s.close()
        c.close()
        return "could not dial the supervisor for the warm server: %s" % (e,)
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    def back(why):
        a.close()
        b.close()
        c.close()
        os.environ["TRIO_COORD_CONNECTED_FDS"] = "%d,%d" % (socks[0].detach(), socks[1].detach())
        return why
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return back("cannot open the working directory: %s" % (e,))
    um = os.umask(0o22)
    os.umask(um)
    argv = [os.fsencode(x) for x in [sys.argv[1]] + args]
    msg = b"\0".join([b"TCW1 run", h.encode(), b"%d" % um, b"%d" % len(argv)] + argv + [k + b"=" + v for k, v in os.environb.items()])
    fds = [0, 1, 2, cwd, socks[0].fileno(), socks[1].fileno(), b.fileno()]
    try:
        c.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _struct.pack("%di" % len(fds), *fds))])
    except OSError as e:
        os.close(cwd)
        return back("the warm server did not take the request: %s" % (e.strerror or e,))
    os.close(cwd)
    b.close()
    p = select.poll()
    p.register(a.fileno(), select.POLLIN)
    p.register(c.fileno(), select.POLLIN)
    refused = None
    pid = 0
    while not pid:
        ev = dict(p.poll(30000))
        if not ev:
            return back("the warm server did not start the task within 30 s")
        if c.fileno() in ev:
            r = c.recv(4096)
            if r.startswith(b"no "):
                refused = "the warm server refused: " + r[3:].decode("utf-8", "replace")
            if not r:
                p.unregister(c.fileno())
        if a.fileno() in ev:
            m = a.recv(64)
            if m.startswith(b"started "):
                pid = int(m[8:])
            elif not m:
                return back(refused or "the warm server closed the connection before the task started")
    def relay(n, frame):
        try:
            os.kill(pid, n)
        except OSError:
            pass
    for n in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2):
        _signal.signal(n, relay)
    a.settimeout(None)
    try:
        a.send(b"go")
    except OSError:
        pass
    code = None
    while code is None:
        try:
            m = a.recv(64)
        except OSError:
            m = b""
        if m.startswith(b"exit "):
            code = int(m[5:])
        elif not m:
            break
    if code is None:
        status = None
        try:
            c.settimeout(10)
            while status is None:
                r = c.recv(64)
                if not r:
                    break
                if r.startswith(b"exit "):
                    status = int(r[5:])
        except OSError:
            pass
        code = -9 if status is None else os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            _signal.signal(-code, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)
if _tc_warm_wanted(sys.argv[3:]):
    _tc_why = _tc_warm(digest.hex(), sys.argv[3:])
    if _tc_why:
        os.environ["TRIO_COORD_WARM_FALLBACK"] = _tc_why
"""

_BOOTSTRAP_TAIL: Final = """\
try:
    f.seek(0)
    binary = f.read(start)
    f.close()
except OSError as e:
    _tc_fail("cannot read the bundle: %s" % (e,))
import hashlib, io, json, types, zipfile
if len(binary) != start or hashlib.sha256(binary).digest() != digest:
    _tc_fail("the binary region does not match its SHA-256: the file is damaged or was modified")
z = zipfile.ZipFile(io.BytesIO(binary))
m = types.ModuleType("_trio_coord_boot")
m.__file__ = sys.argv[1] + "!/_tc/boot.py"
sys.modules[m.__name__] = m
exec(compile(z.read("_tc/boot.py"), m.__file__, "exec"), m.__dict__)
sys.exit(m.boot(z, sys.argv[1], json.loads(z.read("_tc/bundle.json")), sys.argv[3:], sys.argv[2], digest))
"""


def bootstrap_source(min_python: tuple[int, int] = MIN_PYTHON) -> str:
    """The ``-c`` program; it contains no single quote, so the shell can quote it."""
    head = _BOOTSTRAP_HEAD.format(min_python=min_python, min_text=".".join(map(str, min_python)))
    text = head + _WARM_CLIENT.lstrip("\n") + _BOOTSTRAP_TAIL
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
