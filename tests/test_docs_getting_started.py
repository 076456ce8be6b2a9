"""docs/getting-started.md works as written: its commands run, in order, and print what it shows.

The page's ``console`` blocks are run one command at a time with bash in a fresh directory
(after writing the ``python`` blocks headed ``# file: NAME``), and each command's output is
matched against the lines the page shows under it. ``console install`` blocks (set-up of a
virtual environment) and ``console airflow`` blocks (which need running Airflow services) are
not run here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "getting-started.md"

_BLOCK = re.compile(r"^```([\w-]*)(?: ([\w-]+))?\n(.*?)^```", re.M | re.S)
#: A placeholder in an expected line: matches any text (times, run ids, sizes, paths).
_PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")


@dataclass(frozen=True)
class Step:
    """One ``$ command`` and the output lines the page shows for it."""

    command: str
    expected: tuple[str, ...]


def _blocks(kind: str, marker: str | None = None) -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    return [m.group(3) for m in _BLOCK.finditer(text) if (m.group(1), m.group(2)) == (kind, marker)]


def steps(marker: str | None = None) -> list[Step]:
    """The commands of the page's ``console`` blocks (with ``marker``), in page order."""
    out: list[Step] = []
    for block in _blocks("console", marker):
        command: str | None = None
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    out.append(Step(command, tuple(lines)))
                command, lines = line[2:], []
            else:
                lines.append(line)
        if command is not None:
            out.append(Step(command, tuple(lines)))
    return out


def files() -> dict[str, str]:
    """``# file: NAME`` python blocks: NAME -> content."""
    found = {}
    for block in _blocks("python"):
        first, _, rest = block.partition("\n")
        m = re.fullmatch(r"# file: (\S+)", first)
        if m:
            found[m.group(1)] = rest
    return found


def _line_pattern(expected: str, workdir: Path) -> re.Pattern[str]:
    """``<dir>`` is the directory the commands run in; any other ``<...>`` is any text."""
    pieces = []
    for i, part in enumerate(re.split(f"({_PLACEHOLDER.pattern})", expected)):
        if i % 2 == 0:
            pieces.append(re.escape(part))
        else:
            pieces.append(re.escape(str(workdir)) if part == "<dir>" else ".*")
    return re.compile("".join(pieces))


def matches(expected: tuple[str, ...], actual: list[str], workdir: Path) -> bool:
    """Whether ``actual`` is ``expected`` line by line; a ``...`` line stands for any lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[i:], workdir) for i in range(len(actual) + 1))
    if not actual:
        return False
    pattern = _line_pattern(head, workdir)
    return bool(pattern.fullmatch(actual[0])) and matches(rest, actual[1:], workdir)


def test_the_page_has_runnable_steps_and_marked_airflow_steps() -> None:
    """The page's blocks parse into the steps this test runs and the ones it leaves to e2e."""
    commands = [s.command for s in steps()]
    assert commands[0].startswith("trio-coord run my_tasks.py my_etl extract")
    assert any(c.startswith("trio-coord pack ") for c in commands)
    assert any(c.startswith("trio-coord run bundles/") for c in commands)
    assert [s.command for s in steps("airflow")][-1].startswith("airflow tasks states-for-dag-run")
    assert steps("install")[0].command.startswith("python3 -m venv")
    assert "my_tasks.py" in files()


def test_matcher_rejects_wrong_output(tmp_path: Path) -> None:
    """The output matcher fails on a changed line, a missing line and an extra line."""
    shown = ("state:     success", "...", "time:      <seconds> s")
    assert matches(shown, ["state:     success", "x", "time:      0.4 s"], tmp_path)
    assert not matches(shown, ["state:     failed", "time:      0.4 s"], tmp_path)
    assert not matches(shown, ["state:     success"], tmp_path)
    assert not matches(("a",), ["a", "b"], tmp_path)
    assert matches(("in <dir>/b",), [f"in {tmp_path}/b"], tmp_path)
    assert not matches(("in <dir>/b",), ["in /elsewhere/b"], tmp_path)


@pytest.mark.slow
def test_every_command_on_the_page_prints_what_the_page_shows(tmp_path: Path) -> None:
    """Run each console command of the page in order in a fresh directory; its output matches."""
    for name, content in files().items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    env = {
        **os.environ,
        # The installed console script first, as after the page's install step.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TRIO_COORD_CACHE_DIR": str(tmp_path / ".cache"),
    }
    env.pop("TRIO_COORD_PYTHON", None)
    for step in steps():
        proc = subprocess.run(
            ["bash", "-c", step.command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        actual = (proc.stdout + proc.stderr).splitlines()
        assert matches(step.expected, actual, tmp_path), (
            f"$ {step.command}\n(exit {proc.returncode})\n--- shown on the page:\n"
            + "\n".join(step.expected)
            + "\n--- printed:\n"
            + "\n".join(actual)
        )
