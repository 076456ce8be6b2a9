"""The documentation stands on its own: links resolve, nothing cites files outside the
repository, and every number the docs state that the code defines equals the code's value.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from trio_coord import config
from trio_coord.bundle import packer
from trio_coord.local import options, supervisor
from trio_coord.protocol import framing
from trio_coord.runtime import logs, masking

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)

#: What a document must never cite: files that are not in the repository, internal
#: process documents and issue numbers (a user has none of them).
FORBIDDEN = {
    "../shared": re.compile(r"\.\./shared"),
    "shared/spec": re.compile(r"shared/spec"),
    "DECISIONS.md": re.compile(r"DECISIONS\.md"),
    "STYLE.md": re.compile(r"STYLE\.md"),
    "issue N": re.compile(r"\bissues? #?\d+", re.I),
    "a spec file's section": re.compile(r"\b(?:protocol|bundle|dag-parsing)\.md`? ?§"),
}


def _prose(path: Path) -> str:
    """The document without its fenced code blocks (links inside them are not links)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)|(?<=\w)_", "", heading.strip()).lower()
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in _prose(path).splitlines():
        m = re.match(r"^#{1,6} +(.*?) *#*$", line)
        if m:
            base = _anchor(m.group(1))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def _links() -> list[tuple[Path, str]]:
    out = []
    for doc in DOCS:
        for m in _LINK.finditer(_prose(doc)):
            out.append((doc, m.group(1) or m.group(2)))
    return out


LINKS = [(d, t) for d, t in _links() if not re.match(r"[a-z]+:", t)]


def test_the_docs_have_relative_links_to_check() -> None:
    """The link scan finds the README's documentation table (guards the scan itself)."""
    targets = {t for d, t in LINKS if d.name == "README.md"}
    assert "docs/getting-started.md" in targets and "docs/runtime.md" in targets


@pytest.mark.parametrize(("doc", "target"), LINKS, ids=[f"{d.name}->{t}" for d, t in LINKS])
def test_every_relative_link_resolves(doc: Path, target: str) -> None:
    """A relative link names a file in the repository and, with #anchor, one of its headings."""
    path, _, anchor = target.partition("#")
    dest = (doc.parent / path).resolve() if path else doc
    assert dest.exists(), f"{doc.name}: link to {target} - no such file"
    assert REPO in dest.parents or dest == REPO, f"{doc.name}: {target} leaves the repository"
    if anchor:
        assert dest.suffix == ".md", f"{doc.name}: anchor into a non-Markdown file: {target}"
        assert anchor in _anchors(dest), f"{doc.name}: {target}: no heading with that anchor"


def test_external_links_go_only_to_public_airflow_or_project_sites() -> None:
    """Links that leave the repository go to Airflow's public docs or a dependency's site."""
    allowed = (
        "https://airflow.apache.org/",
        "https://trio.readthedocs.io",
        "https://github.com/apache/airflow",
        "https://pypi.org/",
        "https://peps.python.org/",
    )
    external = [(d.name, t) for d, t in _links() if re.match(r"[a-z]+:", t)]
    assert [x for x in external if not x[1].startswith(allowed)] == []


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_no_doc_cites_what_a_reader_does_not_have(doc: Path) -> None:
    """No doc mentions ../shared, DECISIONS.md, STYLE.md, an issue number or a spec file's section."""
    text = doc.read_text(encoding="utf-8")
    hits = [
        f"{name}: line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for name, pattern in FORBIDDEN.items()
        for m in pattern.finditer(text)
    ]
    assert hits == []


def test_help_texts_and_nox_sessions_cite_no_issue_numbers() -> None:
    """--help texts (argparse and bundle mode) and noxfile docstrings do not say 'issue N'."""
    import subprocess
    import sys

    texts = [(REPO / "noxfile.py").read_text(encoding="utf-8")]
    for command in ("serve", "run", "pack", "inspect", "verify"):
        proc = subprocess.run(
            [sys.executable, "-m", "trio_coord", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        texts.append(proc.stdout)
    assert [t for t in texts if FORBIDDEN["issue N"].search(t)] == []


# -- numbers the docs state that the code defines ----------------------------------------------

_MIB = 1024 * 1024
_LIMITS = supervisor.Limits()

#: (doc, regex capturing the number as written, the code's value in the same unit).
#: A row per figure: when the code changes, the doc must change with it.
NUMBERS: list[Any] = [
    ("runtime.md", r"\| both dials \| (\d+) s \|", config.DEFAULT_DIAL_TIMEOUT),
    ("runtime.md", r"\| the first frame \| (\d+) s \|", config.DEFAULT_REQUEST_TIMEOUT),
    ("runtime.md", r"\| each request's reply \| (\d+) s \|", config.DEFAULT_REQUEST_TIMEOUT),
    (
        "runtime.md",
        r"\| the terminal message's reply \| (\d+) s \|",
        config.DEFAULT_TERMINAL_TIMEOUT,
    ),
    ("runtime.md", r"terminal \+ log drain \| (\d+) s \|", config.DEFAULT_SHUTDOWN_GRACE),
    ("runtime.md", r"inbound frame limit is (\d+) MiB", framing.DEFAULT_MAX_FRAME_SIZE / _MIB),
    ("runtime.md", r"for up to (\d+) µs", config.DEFAULT_REPLY_SPIN * 1e6),
    ("runtime.md", r"under one deadline \((\d+) s\)", config.DEFAULT_DIAL_TIMEOUT),
    (
        "decisions.md",
        r"\((\d+) s by default, `TRIO_COORD_REQUEST_TIMEOUT`",
        config.DEFAULT_REQUEST_TIMEOUT,
    ),
    ("decisions.md", r"\| Inbound frame limit \| (\d+) MiB", framing.DEFAULT_MAX_FRAME_SIZE / _MIB),
    ("decisions.md", r"within the (\d+) s grace", config.DEFAULT_SHUTDOWN_GRACE),
    ("decisions.md", r"for up to (\d+) µs before parking", config.DEFAULT_REPLY_SPIN * 1e6),
    ("protocol.md", r"`DEFAULT_MAX_FRAME_SIZE` = (\d+) MiB", framing.DEFAULT_MAX_FRAME_SIZE / _MIB),
    ("local-run.md", r"limit on the whole run \(default (\d+)\)", options.DEFAULT_TIMEOUT),
    ("local-run.md", r"within (\d+) s gets SIGTERM", _LIMITS.startup),
    ("local-run.md", r"\| both connections \| (\d+) s \|", _LIMITS.startup),
    ("local-run.md", r"then SIGKILL (\d+) s later\. \|", _LIMITS.grace),
    ("local-run.md", r"after its terminal reply \| (\d+) s \|", _LIMITS.overtime),
    ("local-run.md", r"still running (\d+) s after its terminal reply", _LIMITS.overtime),
    ("local-run.md", r"\| sockets and pipes, after exit \| (\d+) s \|", _LIMITS.cleanup),
    ("local-run.md", r"pipes still open (\d+) s after the process exited", _LIMITS.cleanup),
    ("local-run.md", r"\| writing one reply \| (\d+) s \|", _LIMITS.write),
    ("local-run.md", r"closed after (\d+) s, not 60 s", _LIMITS.cleanup),
    ("local-run.md", r"shorter than (\d+) characters are never masked", masking.DEFAULT_MIN_LENGTH),
    ("logging.md", r"fewer than (\d+) characters", masking.DEFAULT_MIN_LENGTH),
    ("logging.md", r"\(and (\d+) MiB\)", logs.DEFAULT_MAX_BUFFERED_BYTES / _MIB),
    ("logging.md", r"bounded by \*\*([\d ,_]+) records\*\*", logs.DEFAULT_CAPACITY),
    ("logging.md", r"waits up to ([\d.]+) s for room", logs.DEFAULT_WORKER_WAIT),
    ("logging.md", r"(\d+) ms \(`LINGER`\)", logs.LINGER * 1000),
    ("bundle-format.md", r"(\d+) s limit\.", packer.INTROSPECT_TIMEOUT),
]


def _value(text: str) -> float:
    return float(re.sub(r"[ ,_]", "", text))


@pytest.mark.parametrize(
    ("doc", "pattern", "expected"),
    NUMBERS,
    ids=[row.id if hasattr(row, "id") else f"{row[0]}-{i}" for i, row in enumerate(NUMBERS)],
)
def test_documented_numbers_equal_the_code(doc: str, pattern: str, expected: float) -> None:
    """Each figure a doc states (timeouts, limits, buffer sizes) equals the constant that defines it."""
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    found = re.findall(pattern, text)
    assert found, f"{doc}: no text matches {pattern!r}; update the table in this test"
    assert [_value(f) for f in found] == [pytest.approx(expected)] * len(found)
