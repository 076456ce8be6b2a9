"""Which files of which installed distributions go into a bundle's payload (§5.7).

Dependencies are resolved against the environment the packer runs in, as shiv and PEX
build from a site-packages: no index is contacted, and the bundle carries exactly the
versions the user ran and tested with. The roots are trio-coord's own requirements plus
the bundle's declared ones (a ``requirements.txt`` or ``pyproject.toml`` next to the
bundle file, or ``--requirements``); every requirement whose marker holds for the target
(CPython ``min_python`` on this platform) must be installed in a satisfying version, or
packing is refused.

From each distribution the payload takes what is importable: ``.py`` files, package data
and compiled extension modules (loaded through the extension cache at run time), but no
bytecode, stubs, C sources, metadata or test directories. trio-coord itself is copied
from its package directory, which also covers an editable install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final

from ..errors import CoordError
from .requirements import (
    InvalidRequirement,
    Requirement,
    canonical_name,
    parse_requirements_txt,
    target_environment,
)

__all__ = [
    "PackError",
    "Dist",
    "declared_requirements",
    "resolve",
    "package_files",
    "check_clashes",
]

_SKIP_SUFFIXES: Final = (".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".c", ".h", ".cpp", ".pth")
_TEST_DIRS: Final = frozenset({"tests", "_tests", "test"})
_SELF: Final = "trio-coord"


class PackError(CoordError):
    """The packer refuses: the message says what to fix; nothing was written."""


@dataclass
class Dist:
    """One vendored distribution: name, version and payload path -> file on disk."""

    name: str
    version: str
    files: dict[str, Path] = field(default_factory=dict)
    required_by: str = ""


def declared_requirements(
    bundle_file: Path | None, explicit: Iterable[str]
) -> list[tuple[Requirement, str]]:
    """The bundle's own dependencies with where each was declared.

    ``explicit`` are ``--requirements`` files (pip format, or a ``pyproject.toml``);
    without any, a ``requirements.txt`` next to ``bundle_file`` is used, else the
    ``[project] dependencies`` of a ``pyproject.toml`` there.
    """
    files = [Path(p) for p in explicit]
    if not files and bundle_file is not None:
        for candidate in ("requirements.txt", "pyproject.toml"):
            path = bundle_file.parent / candidate
            if path.is_file():
                files = [path]
                break
    out: list[tuple[Requirement, str]] = []
    for path in files:
        if path.name == "pyproject.toml" or path.suffix == ".toml":
            out += _pyproject_requirements(path)
        else:
            try:
                out += parse_requirements_txt(str(path))
            except CoordError as exc:
                raise PackError(str(exc)) from None
    return out


def _pyproject_requirements(path: Path) -> list[tuple[Requirement, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"cannot read {path}: {exc}") from None
    project = data.get("project", {})
    if "dependencies" in project.get("dynamic", []):
        raise PackError(
            f"{path}: [project] dependencies are dynamic; list them in a requirements file"
        )
    out = []
    for i, text in enumerate(project.get("dependencies", [])):
        try:
            out.append((Requirement.parse(str(text)), f"{path} [project] dependencies[{i}]"))
        except InvalidRequirement as exc:
            raise PackError(f"{path}: {exc}") from None
    return out


def _self_requirements() -> list[tuple[Requirement, str]]:
    try:
        texts = importlib.metadata.requires(_SELF) or []
    except importlib.metadata.PackageNotFoundError:
        texts = ["trio>=0.31", "msgpack>=1.0.7"]
    return [(Requirement.parse(t), _SELF) for t in texts]


def resolve(declared: list[tuple[Requirement, str]], *, min_python: str) -> list[Dist]:
    """trio-coord plus the transitive closure of its and the declared requirements.

    Raises:
        PackError: a requirement is not installed, or installed in a version that does
            not satisfy it.
    """
    env = target_environment(min_python)
    todo: list[tuple[Requirement, str, tuple[str, ...]]] = [
        (r, where, ()) for r, where in (*_self_requirements(), *declared)
    ]
    found: dict[str, Dist] = {}
    extras_done: dict[str, set[str]] = {}
    while todo:
        req, where, parent_extras = todo.pop(0)
        if not req.applies(env, parent_extras):
            continue
        key = req.name
        if key == _SELF:
            continue
        try:
            dist = importlib.metadata.distribution(key)
        except importlib.metadata.PackageNotFoundError:
            raise PackError(
                f"dependency {req} (from {where}) is not installed in the packing environment "
                f"({sys.prefix}); install it there and pack again"
            ) from None
        version = dist.version
        if not req.accepts(version):
            raise PackError(
                f"dependency {req} (from {where}) is not satisfied: {key} {version} is installed"
            )
        new_extras = set(req.extras) - extras_done.setdefault(key, set())
        if key in found and not new_extras:
            continue
        extras_done[key] |= new_extras
        found.setdefault(
            key, Dist(canonical_name(dist.metadata["Name"] or key), version, required_by=where)
        )
        for text in dist.requires or []:
            try:
                sub = Requirement.parse(text)
            except InvalidRequirement as exc:
                raise PackError(
                    f"{key} {version} declares an unreadable requirement: {exc}"
                ) from None
            todo.append((sub, f"{key} {version}", tuple(sorted(extras_done[key]))))
    dists = [Dist(_SELF, _self_version()), *sorted(found.values(), key=lambda d: d.name)]
    for d in dists:
        d.files = package_files(d.name)
    return dists


def _self_version() -> str:
    from .. import __version__

    return __version__


def package_files(name: str) -> dict[str, Path]:
    """Payload path (``lib/...``) -> installed file for one distribution."""
    if name == _SELF:
        return _walk_package(Path(__file__).resolve().parent.parent, "trio_coord")
    dist = importlib.metadata.distribution(name)
    out: dict[str, Path] = {}
    for entry in dist.files or []:
        rel = PurePosixPath(str(entry))
        if not _importable(rel):
            continue
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            out["lib/" + rel.as_posix()] = path
    if out:
        return out
    # An editable or unusual install: its RECORD does not list the modules themselves.
    for top in _top_level_names(dist):
        spec = importlib.util.find_spec(top)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                out.update(_walk_package(Path(location), top))
        elif spec.origin:
            origin = Path(spec.origin)
            out[f"lib/{origin.name}"] = origin
    if not out:
        raise PackError(f"cannot find the files of installed distribution {name}")
    return out


def _top_level_names(dist: importlib.metadata.Distribution) -> list[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [canonical_name(dist.metadata["Name"] or "").replace("-", "_")]


def _importable(rel: PurePosixPath) -> bool:
    parts = rel.parts
    if (
        not parts
        or parts[0] in ("..", "__pycache__")
        or parts[0].endswith((".dist-info", ".data", ".egg-info"))
    ):
        return False
    if len(parts) == 1 and not rel.name.endswith((".py", ".so", ".pyd")):
        return False
    if "__pycache__" in parts or any(p in _TEST_DIRS for p in parts[1:-1]):
        return False
    return not rel.name.endswith(_SKIP_SUFFIXES)


def _walk_package(directory: Path, top: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = Path(root) / name
            rel = PurePosixPath(top, path.relative_to(directory).as_posix())
            if _importable(rel):
                out["lib/" + rel.as_posix()] = path
    return out


def check_clashes(groups: Mapping[str, Mapping[str, Path]]) -> None:
    """Refuse a top-level name that two owners provide, or that the standard library has.

    Two distributions may share a top-level directory only when it is a namespace
    package (no ``__init__.py`` and no module of that name), and then no file twice.

    Args:
        groups: owner (a distribution, or "the bundle's own modules") -> payload files.
    """
    owners: dict[str, set[str]] = {}
    regular: set[str] = set()
    owner_of: dict[str, str] = {}
    for owner, files in groups.items():
        for member in files:
            first = member.split("/")[1]
            top = first.split(".")[0]
            if top in sys.stdlib_module_names:
                raise PackError(
                    f"{owner} provides top-level module {top!r}, which shadows the standard library"
                )
            owners.setdefault(top, set()).add(owner)
            if first != top or member == f"lib/{top}/__init__.py":
                regular.add(top)
            if member in owner_of and owner_of[member] != owner:
                raise PackError(f"{member[4:]} is provided by both {owner_of[member]} and {owner}")
            owner_of[member] = owner
    for top, who in owners.items():
        if len(who) > 1 and top in regular:
            raise PackError(f"top-level module {top!r} is provided by {' and '.join(sorted(who))}")
