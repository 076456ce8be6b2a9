"""docs/protocol.md's state diagram is the one docs/make_state_diagram.py renders from TRANSITIONS."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from trio_coord.protocol.states import TRANSITIONS, Input, State

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_state_diagram", DOCS / "make_state_diagram.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()


def test_committed_diagram_is_up_to_date() -> None:
    """The diagram in docs/protocol.md is exactly what the script renders from the current table."""
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    assert script.update(text) == text, "run: python docs/make_state_diagram.py"


def test_a_changed_table_makes_the_diagram_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding one transition changes the rendering, so the up-to-date check would fail."""
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    monkeypatch.setitem(TRANSITIONS, (State.DONE, Input.SEND_REQUEST), State.DONE)
    assert script.update(text) != text


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    """--check exits 1 on a stale copy and leaves it alone; a normal run fixes it, then --check exits 0."""
    stale = tmp_path / "protocol.md"
    stale.write_text(f"intro\n{script.BEGIN}\nold diagram\n{script.END}\noutro\n", encoding="utf-8")
    before = stale.read_text(encoding="utf-8")
    assert script.main(["--check", "--doc", str(stale)]) == 1
    assert stale.read_text(encoding="utf-8") == before
    assert script.main(["--doc", str(stale)]) == 0
    after = stale.read_text(encoding="utf-8")
    assert after.startswith("intro\n") and after.endswith("outro\n") and "old diagram" not in after
    assert script.main(["--check", "--doc", str(stale)]) == 0


def test_missing_markers_are_an_error() -> None:
    """A document without the markers is refused rather than silently left without a diagram."""
    with pytest.raises(ValueError, match="markers"):
        script.update("no markers here")


def test_every_transition_is_drawn() -> None:
    """Each table entry appears as a Mermaid edge, and every non-ERROR state can reach ERROR."""
    rendered = script.render()
    edges = re.findall(r"^    (\w+) --> (\w+) : (.+)$", rendered, flags=re.M)
    drawn = {
        (src, event, dst) for src, dst, label in edges for event in re.findall(r"[A-Z_]+", label)
    }
    for (src, event), dst in TRANSITIONS.items():
        assert (src.name, event.name, dst.name) in drawn
    assert {src for src, dst, _ in edges if dst == "ERROR"} == {
        s.name for s in State if s is not State.ERROR
    }
