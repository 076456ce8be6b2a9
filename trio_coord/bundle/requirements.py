"""Just enough PEP 440 / PEP 508 to resolve a bundle's dependencies from installed ones.

The packer vendors distributions from the environment it runs in (like shiv and PEX do
from a site-packages), so it needs to read requirement strings, decide which apply to
the target interpreter (environment markers) and check that the installed version
satisfies the declared specifiers. trio-coord's runtime depends only on trio and msgpack,
and the packing environment may lack ``packaging``, so this is a small self-contained
implementation: versions compare as PEP 440 orders them, specifiers support every
operator, markers every variable. Pre-releases that are installed are accepted (the
question is "is what is installed acceptable", not "which version to download").
"""

from __future__ import annotations

import operator
import os
import platform
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Final

from ..errors import UsageError

__all__ = [
    "InvalidRequirement",
    "Version",
    "Specifier",
    "Marker",
    "Requirement",
    "canonical_name",
    "target_environment",
    "parse_requirements_txt",
]


class InvalidRequirement(UsageError):
    """A version, specifier, marker or requirement string that does not parse."""


_VERSION_RE: Final = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRE_RANK: Final = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed PEP 440 version, ordered like ``packaging.version.Version``."""

    text: str
    epoch: int
    release: tuple[int, ...]
    pre: tuple[int, int] | None
    post: int | None
    dev: int | None
    local: tuple[str, ...] | None
    _key: tuple[object, ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.match(text)
        if m is None:
            raise InvalidRequirement(f"{text!r} is not a valid version (PEP 440)")
        pre = None
        if m["pre_l"]:
            pre = (_PRE_RANK[m["pre_l"].lower()], int(m["pre_n"] or 0))
        post = None
        if m["post_n1"] is not None:
            post = int(m["post_n1"])
        elif m["post_l"]:
            post = int(m["post_n2"] or 0)
        dev = int(m["dev_n"] or 0) if m["dev_l"] else None
        local = tuple(re.split(r"[-_.]", m["local"].lower())) if m["local"] else None
        epoch = int(m["epoch"] or 0)
        release = tuple(int(p) for p in m["release"].split("."))
        return cls(
            text,
            epoch,
            release,
            pre,
            post,
            dev,
            local,
            _sort_key(epoch, release, pre, post, dev, local),
        )

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    @property
    def public(self) -> Version:
        """The same version without its ``+local`` label."""
        if self.local is None:
            return self
        return Version.parse(self.text.split("+", 1)[0])

    @property
    def base(self) -> tuple[int, tuple[int, ...]]:
        return self.epoch, _strip_zeros(self.release)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text.strip()


def _strip_zeros(release: tuple[int, ...]) -> tuple[int, ...]:
    out = list(release)
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return tuple(out)


def _sort_key(
    epoch: int,
    release: tuple[int, ...],
    pre: tuple[int, int] | None,
    post: int | None,
    dev: int | None,
    local: tuple[str, ...] | None,
) -> tuple[object, ...]:
    # A dev release of X sorts before X's pre-releases, which sort before X, which sorts
    # before X's post-releases; a local label sorts after the same public version.
    if pre is None and post is None and dev is not None:
        pre_key: tuple[int, ...] = (-1,)
    elif pre is None:
        pre_key = (1,)
    else:
        pre_key = (0, *pre)
    post_key = (-1,) if post is None else (0, post)
    dev_key = (1,) if dev is None else (0, dev)
    local_key: tuple[tuple[int, int, str], ...] = ()
    if local is not None:
        local_key = tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in local)
    return (epoch, _strip_zeros(release), pre_key, post_key, dev_key, local_key)


_SPEC_RE: Final = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;]+)\s*$")


@dataclass(frozen=True)
class Specifier:
    """One clause such as ``>=1.2`` or ``==2.*``."""

    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Specifier:
        m = _SPEC_RE.match(text)
        if m is None:
            raise InvalidRequirement(f"{text!r} is not a version specifier")
        op, value = m.group(1), m.group(2)
        if op != "===":
            target = value[:-2] if value.endswith(".*") and op in ("==", "!=") else value
            parsed = Version.parse(target)
            if op == "~=" and len(parsed.release) < 2:
                raise InvalidRequirement(f"{text!r}: ~= needs at least two release numbers")
        return cls(op, value)

    def contains(self, version: Version) -> bool:
        """Whether ``version`` satisfies this clause (pre-releases allowed)."""
        if self.op == "===":
            return str(version) == self.value
        if self.op in ("==", "!="):
            return self._equal(version) == (self.op == "==")
        spec = Version.parse(self.value)
        cand = version.public
        if self.op == "~=":
            prefix = spec.release[:-1]
            return (
                cand >= spec and cand.epoch == spec.epoch and cand.release[: len(prefix)] == prefix
            )
        if self.op == "<=":
            return cand <= spec
        if self.op == ">=":
            return cand >= spec
        if self.op == "<":
            return cand < spec and not (
                cand.is_prerelease and not spec.is_prerelease and cand.base == spec.base
            )
        return cand > spec and not (
            cand.post is not None and spec.post is None and cand.base == spec.base
        )

    def _equal(self, version: Version) -> bool:
        if self.value.endswith(".*"):
            prefix = Version.parse(self.value[:-2])
            n = len(prefix.release)
            padded = version.release + (0,) * max(0, n - len(version.release))
            return version.epoch == prefix.epoch and padded[:n] == prefix.release
        spec = Version.parse(self.value)
        return (version if spec.local is not None else version.public) == spec

    def __str__(self) -> str:
        return f"{self.op}{self.value}"


# -- markers ----------------------------------------------------------------------------

_MARKER_VARS: Final = frozenset(
    {
        "python_version",
        "python_full_version",
        "os_name",
        "sys_platform",
        "platform_release",
        "platform_system",
        "platform_version",
        "platform_machine",
        "platform_python_implementation",
        "implementation_name",
        "implementation_version",
        "extra",
    }
)
_LEGACY_VARS: Final = {
    "os.name": "os_name",
    "sys.platform": "sys_platform",
    "platform.version": "platform_version",
    "platform.machine": "platform_machine",
    "platform.python_implementation": "platform_python_implementation",
    "python_implementation": "platform_python_implementation",
}
_VERSION_VARS: Final = frozenset(
    {"python_version", "python_full_version", "implementation_version"}
)
_TOKEN_RE: Final = re.compile(
    r"""\s*(?:
    (?P<lp>\()|(?P<rp>\))
    |(?P<op>===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b)
    |(?P<bool>and\b|or\b)
    |(?P<str>'[^']*'|"[^"]*")
    |(?P<var>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_STRING_OPS: Final[Mapping[str, Callable[[str, str], bool]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "===": operator.eq,
}


@dataclass(frozen=True)
class _Cmp:
    left: tuple[str, str]  # ("var", name) or ("str", literal)
    op: str
    right: tuple[str, str]


@dataclass(frozen=True)
class _Bool:
    op: str  # "and" / "or"
    left: _Cmp | _Bool
    right: _Cmp | _Bool


_Expr = _Cmp | _Bool


def target_environment(python: str) -> dict[str, str]:
    """Marker variables for a CPython ``python`` ("3.11") on this machine's platform."""
    major_minor = ".".join(python.split(".")[:2])
    full = python if python.count(".") >= 2 else f"{major_minor}.0"
    return {
        "python_version": major_minor,
        "python_full_version": full,
        "implementation_version": full,
        "os_name": os.name,
        "sys_platform": sys.platform,
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "platform_machine": platform.machine(),
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "extra": "",
    }


@dataclass(frozen=True)
class Marker:
    """A parsed environment marker; :meth:`evaluate` against a variable mapping."""

    text: str
    _tree: _Expr = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Marker:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN_RE.match(text, pos)
            if m is None or m.lastgroup is None:
                raise InvalidRequirement(f"cannot parse marker {text!r} at {text[pos:]!r}")
            tokens.append((m.lastgroup, re.sub(r"\s+", " ", m.group(m.lastgroup))))
            pos = m.end()
        parser = _MarkerParser(tokens, text)
        tree = parser.parse_or()
        if parser.pos != len(tokens):
            raise InvalidRequirement(
                f"cannot parse marker {text!r}: unexpected {tokens[parser.pos][1]!r}"
            )
        return cls(text, tree)

    def evaluate(self, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
        """True when the marker holds; ``extra`` is tested against each of ``extras``."""
        wanted = [canonical_name(e) for e in extras] or [""]
        return any(_eval(self._tree, {**env, "extra": e}) for e in wanted)


class _MarkerParser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def _next(self, *kinds: str) -> tuple[str, str]:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][0] not in kinds:
            raise InvalidRequirement(f"cannot parse marker {self.text!r}")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _peek(self, kind: str, value: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, v = self.tokens[self.pos]
        return k == kind and (value is None or v == value)

    def parse_or(self) -> _Expr:
        node = self.parse_and()
        while self._peek("bool", "or"):
            self.pos += 1
            node = _Bool("or", node, self.parse_and())
        return node

    def parse_and(self) -> _Expr:
        node = self.parse_atom()
        while self._peek("bool", "and"):
            self.pos += 1
            node = _Bool("and", node, self.parse_atom())
        return node

    def parse_atom(self) -> _Expr:
        if self._peek("lp"):
            self.pos += 1
            node = self.parse_or()
            self._next("rp")
            return node
        left = self._value()
        op = self._next("op")[1]
        right = self._value()
        return _Cmp(left, op, right)

    def _value(self) -> tuple[str, str]:
        kind, value = self._next("str", "var")
        if kind == "str":
            return ("str", value[1:-1])
        name = _LEGACY_VARS.get(value, value)
        if name not in _MARKER_VARS:
            raise InvalidRequirement(f"unknown marker variable {value!r} in {self.text!r}")
        return ("var", name)


def _eval(node: _Expr, env: Mapping[str, str]) -> bool:
    if isinstance(node, _Bool):
        if node.op == "or":
            return _eval(node.left, env) or _eval(node.right, env)
        return _eval(node.left, env) and _eval(node.right, env)
    (lk, lv), op, (rk, rv) = node.left, node.op, node.right
    left = env.get(lv, "") if lk == "var" else lv
    right = env.get(rv, "") if rk == "var" else rv
    if "extra" in (lv, rv) and "var" in (lk, rk):
        left, right = canonical_name(left), canonical_name(right)
    if op == "in":
        return bool(left in right)
    if op == "not in":
        return bool(left not in right)
    if (lk == "var" and lv in _VERSION_VARS) or (rk == "var" and rv in _VERSION_VARS):
        try:
            return Specifier.parse(f"{op}{right}").contains(Version.parse(left))
        except InvalidRequirement:
            pass
    return _STRING_OPS[op](left, right)


# -- requirements -----------------------------------------------------------------------

_REQ_RE: Final = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
    r"(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"(?P<rest>[^;]*?)\s*(?:;\s*(?P<marker>.*?))?\s*$"
)


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    """``name[extras] specifiers ; marker`` (or ``name @ url``; the URL is not used)."""

    text: str
    name: str
    extras: tuple[str, ...]
    specifiers: tuple[Specifier, ...]
    marker: Marker | None

    @classmethod
    def parse(cls, text: str) -> Requirement:
        m = _REQ_RE.match(text)
        if m is None:
            raise InvalidRequirement(
                f"{text!r} is not a requirement (name[extras] specifiers; marker)"
            )
        rest = m["rest"].strip()
        specs: tuple[Specifier, ...] = ()
        if rest.startswith("@"):
            pass  # a direct reference: whatever is installed under that name is it
        elif rest:
            if rest.startswith("(") and rest.endswith(")"):
                rest = rest[1:-1]
            specs = tuple(Specifier.parse(s) for s in rest.split(",") if s.strip())
        extras = tuple(
            canonical_name(e.strip()) for e in (m["extras"] or "").split(",") if e.strip()
        )
        marker = Marker.parse(m["marker"]) if m["marker"] else None
        return cls(text.strip(), canonical_name(m["name"]), extras, specs, marker)

    def applies(self, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
        return self.marker is None or self.marker.evaluate(env, extras)

    def accepts(self, version: str) -> bool:
        try:
            parsed = Version.parse(version)
        except InvalidRequirement:
            return not self.specifiers or all(
                s.op == "===" and s.value == version for s in self.specifiers
            )
        return all(s.contains(parsed) for s in self.specifiers)

    def __str__(self) -> str:
        return self.text


_IGNORED_OPTIONS: Final = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--trusted-host",
    "--pre",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "--use-feature",
)


def parse_requirements_txt(
    path: str, _seen: frozenset[str] = frozenset()
) -> list[tuple[Requirement, str]]:
    """Requirements of a pip requirements file, each with ``file:line`` for messages.

    Follows ``-r``; ignores index and download options (dependencies come from the
    packing environment); refuses editable installs, constraints files and bare URLs.

    Raises:
        UsageError: the file cannot be read or a line does not parse.
    """
    real = os.path.realpath(path)
    if real in _seen:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path!r}: {exc}") from None
    out: list[tuple[Requirement, str]] = []
    lines = raw.replace("\\\n", " ").splitlines()
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        line = re.sub(r"\s--hash[=\s]\S+", "", line).strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ", "-r", "--requirement=")):
            target = re.sub(r"^(-r|--requirement)[=\s]?", "", line).strip()
            nested = os.path.join(os.path.dirname(path), target)
            out += parse_requirements_txt(nested, _seen | {real})
            continue
        if line.startswith(("-e", "--editable", "-c", "--constraint")):
            raise UsageError(
                f"{where}: {line.split()[0]} is not supported in a bundle's requirements"
            )
        if line.startswith(_IGNORED_OPTIONS):
            continue
        if line.startswith("-") or "://" in line.split("@")[0]:
            raise UsageError(
                f"{where}: cannot use {line!r}: name each dependency (name @ url is fine)"
            )
        try:
            out.append((Requirement.parse(line), where))
        except InvalidRequirement as exc:
            raise UsageError(f"{where}: {exc}") from None
    return out
