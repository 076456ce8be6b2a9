"""The packer's small PEP 440 / PEP 508 implementation agrees with the ``packaging`` library."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.markers import Marker as PMarker
from packaging.specifiers import SpecifierSet
from packaging.version import Version as PVersion

from trio_coord.bundle.requirements import (
    InvalidRequirement,
    Marker,
    Requirement,
    Version,
    parse_requirements_txt,
    target_environment,
)
from trio_coord.errors import UsageError

releases = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda r: ".".join(map(str, r)))
versions = st.builds(
    lambda epoch, rel, pre, post, dev, local: f"{epoch}{rel}{pre}{post}{dev}{local}",
    st.sampled_from(["", "", "1!"]),
    releases,
    st.sampled_from(["", "", "a1", "b2", "rc0", "c3", ".alpha4", "-beta"]),
    st.sampled_from(["", "", ".post1", "-3", "post0"]),
    st.sampled_from(["", "", ".dev0", "dev2"]),
    st.sampled_from(["", "", "+local.7", "+2"]),
)


@given(versions, versions)
def test_version_order_matches_packaging(a: str, b: str) -> None:
    """Any two PEP 440 versions compare (<, ==) the way packaging.version orders them."""
    assert (Version.parse(a) < Version.parse(b)) == (PVersion(a) < PVersion(b))
    assert (Version.parse(a) == Version.parse(b)) == (PVersion(a) == PVersion(b))


specifiers = st.builds(
    lambda op, v, star: f"{op}{v}{star if op in ('==', '!=') and '+' not in v else ''}",
    st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~="]),
    releases.filter(lambda r: "." in r),
    st.sampled_from(["", ".*"]),
)


@given(specifiers, versions)
def test_specifiers_match_packaging(spec: str, version: str) -> None:
    """A clause accepts an installed version iff packaging does (pre-releases allowed)."""
    ours = Requirement.parse(f"x{spec}").accepts(version)
    assert ours == SpecifierSet(spec).contains(version, prereleases=True)


@pytest.mark.parametrize(
    "text",
    [
        'python_version < "3.11"',
        'python_version >= "3.11" and os_name == "posix"',
        'os_name == "nt" and implementation_name != "pypy"',
        '(sys_platform == "win32" or sys_platform == "linux") and python_full_version != "3.11.0"',
        '"linux" in sys_platform',
        'platform_machine not in "arm64 aarch64"',
        'extra == "all"',
        'python_version ~= "3.10"',
    ],
)
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.13"])
def test_markers_match_packaging(text: str, python: str) -> None:
    """Markers evaluate like packaging.markers for the packer's target environment."""
    env = target_environment(python)
    assert Marker.parse(text).evaluate(env) == PMarker(text).evaluate(env)


def test_extras_select_marked_requirements() -> None:
    """A requirement behind ``extra == "x"`` applies only when that extra was asked for."""
    r = Requirement.parse('ruff >= 0.16.0 ; extra == "all"')
    env = target_environment("3.11")
    assert not r.applies(env) and r.applies(env, ["all"]) and not r.applies(env, ["other"])


@pytest.mark.parametrize("text", ["", "not a version", "1..2", "x1.0"])
def test_invalid_versions_are_refused(text: str) -> None:
    """Strings that are not PEP 440 versions raise InvalidRequirement (a UsageError)."""
    with pytest.raises(InvalidRequirement):
        Version.parse(text)


def test_requirements_file_parsing(tmp_path: Path) -> None:
    """Comments, hashes, index options and -r includes are handled; each requirement keeps file:line."""
    (tmp_path / "base.txt").write_text("attrs>=20  # base\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "--index-url https://example.invalid/simple\n"
        "# a comment\n"
        "-r base.txt\n"
        "idna==3.* --hash=sha256:abc\n"
        'exceptiongroup; python_version < "3.11"\n'
        "sniffio @ https://example.invalid/sniffio.whl\n"
    )
    got = [
        (r.name, [str(s) for s in r.specifiers], where.rsplit("/", 1)[-1])
        for r, where in parse_requirements_txt(str(req))
    ]
    assert got == [
        ("attrs", [">=20"], "base.txt:1"),
        ("idna", ["==3.*"], "requirements.txt:4"),
        ("exceptiongroup", [], "requirements.txt:5"),
        ("sniffio", [], "requirements.txt:6"),
    ]


@pytest.mark.parametrize(
    "line", ["-e ./local", "-c constraints.txt", "https://example.invalid/x.whl", "foo>=>1"]
)
def test_requirements_file_refusals(tmp_path: Path, line: str) -> None:
    """Editable installs, constraints, nameless URLs and broken specifiers are refused with file:line."""
    req = tmp_path / "requirements.txt"
    req.write_text(f"attrs\n{line}\n")
    with pytest.raises(UsageError, match=r"requirements\.txt:2"):
        parse_requirements_txt(str(req))
