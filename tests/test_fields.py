"""The fast paths of fields.py agree with the encoders and decoders they stand in for.

``_encode_model``/``_decode_model`` skip a field's encoder or decoder when the value's
exact type is one the row says passes unchanged. That is only sound if the full
encoder/decoder would have accepted such a value and returned it as it is; this
checks every field of every message and nested model.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any

import msgpack
import pytest

from trio_coord.errors import LocalProtocolError
from trio_coord.protocol import fields, messages, models
from trio_coord.protocol.fields import Model, _schema_of

SAMPLES: dict[type, list[Any]] = {
    str: ["", "x", "2026-11-25T00:00:00+00:00", "00000000-0000-0000-0000-000000000000"],
    bool: [True, False],
    # Values some encoders refuse: a type listed as passing must pass all of them.
    int: [0, -1, 2**63 - 1, 2**64],
    float: [0.0, 1.5, float("nan"), float("inf")],
    type(None): [None],
    list: [[], [1, "a"]],
    dict: [{}, {"a": [1]}],
    bytes: [b"", b"x"],
    datetime.datetime: [
        datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC),
        datetime.datetime(2026, 11, 25),  # naive
    ],
}


def _models() -> list[type[Model]]:
    found = {
        obj
        for mod in (messages, models)
        for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, Model) and obj is not Model
    }
    return sorted((c for c in found if dataclasses.is_dataclass(c)), key=lambda c: c.__name__)


ROWS = [(cls, row) for cls in _models() for row in _schema_of(cls)]


@pytest.mark.parametrize(("cls", "row"), ROWS, ids=[f"{c.__name__}.{r.name}" for c, r in ROWS])
def test_passthrough_types_are_returned_unchanged(cls: type[Model], row: Any) -> None:
    name, _required, enc, dec, qualified, out_ok, in_ok = row
    assert qualified == f"{cls.__name__}.{name}"
    for kind in out_ok:
        for value in SAMPLES[kind]:
            assert enc(value, qualified) is value
    for kind in in_ok:
        for value in SAMPLES[kind]:
            assert dec(value, qualified) is value


def test_the_fast_paths_are_used() -> None:
    """Not vacuous: the common reply and request fields do take the fast path."""
    rows = {r.name: r for r in _schema_of(messages.VariableResult)}
    assert str in rows["key"].in_ok and type(None) in rows["value"].in_ok
    rows = {r.name: r for r in _schema_of(messages.GetVariable)}
    assert str in rows["key"].out_ok
    # Checked further when sent, so never passed through outbound.
    rows = {r.name: r for r in _schema_of(messages.SetXCom)}
    assert int not in rows["map_index"].out_ok


# -- JSON values we send: what check_json refuses, and where it says the fault is -------


def _cyclic_list() -> list[Any]:
    inner: list[Any] = [1]
    inner.append(inner)
    return [{"a": inner}]


def _cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"x": [1, 2]}
    d["x"].append({"back": d})
    return d


def _shared_dag(levels: int) -> list[Any]:
    """A value that refers to each level twice: 2**levels leaves, levels + 1 lists."""
    value: list[Any] = [1]
    for _ in range(levels):
        value = [value, value]
    return value


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


#: (value, the path its error names, what the error says), each as protocol.md §12 would
#: have a user mistake reported: one sentence, no traceback, the place in the value.
BAD_VALUES = {
    "list containing itself": (_cyclic_list(), r"V\[0\]\.a\[1\]", "contains itself"),
    "dict reached again through a list": (_cyclic_dict(), r"V\.x\[2\]\.back", "contains itself"),
    "object with no JSON form": ({"k": [1, object()]}, r"V\.k\[1\]", "a object is not"),
    "a set": ([{1, 2}], r"V\[0\]", "a set is not"),
    "bytes": ({"b": b"x"}, r"V\.b", "a bytes is not"),
    "non-string key": ({"a": {1: "x"}}, r"V\.a\[1\]", "map key 1 is not a string"),
    "NaN": ({"f": [0.5, math.nan]}, r"V\.f\[1\]", "nan is not a JSON number"),
    "infinity at the top": (math.inf, r"V", "inf is not a JSON number"),
    "integer beyond 64 bits": ([2**64], r"V\[0\]", "does not fit in 64 bits"),
    "lone surrogate": ({"s": "ok\ud800"}, r"V\.s", "lone surrogate at index 2"),
    "too deep": (_nested(fields.MAX_JSON_DEPTH + 1), r"V(\[0\]){254}", "nested deeper than 254"),
}


@pytest.mark.parametrize(("value", "path", "says"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_unsendable_value_is_refused_with_its_path(value: Any, path: str, says: str) -> None:
    """A value with no JSON form is a LocalProtocolError naming the path to the bad item."""
    with pytest.raises(LocalProtocolError, match=rf"^{path}: .*{says}") as caught:
        fields.check_json(value, "V")
    assert "\n" not in str(caught.value)


def test_value_as_deep_as_the_supervisor_takes_is_sent() -> None:
    """Nesting of exactly MAX_JSON_DEPTH containers passes (the line is not off by one)."""
    fields.check_json(_nested(fields.MAX_JSON_DEPTH), "V")


def test_shared_parts_are_sized_once() -> None:
    """A value that reuses one list 2**40 times is sized without walking each use."""
    size = fields.check_json(_shared_dag(24), "V")  # 2**24 leaves: walkable, to compare
    assert size == len(msgpack.packb(_shared_dag(24)))
    with pytest.raises(LocalProtocolError, match="encodes to more than"):
        fields.check_json(_shared_dag(40), "V")  # 2**40 leaves, 41 lists


def test_size_is_exact_for_strings_and_containers() -> None:
    """check_json's size equals msgpack's for values without large integers."""
    value = {"a": ["x" * 40, "é" * 300, [None, True, 1.5]], "b": {"c": "y" * 70000}}
    assert fields.check_json(value, "V") == len(msgpack.packb(value))


def test_oversized_value_is_refused_before_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value over MAX_JSON_BYTES fails in the encoder, naming the field, before any bytes exist."""
    monkeypatch.setattr(fields, "MAX_JSON_BYTES", 1000)
    msg = messages.SetXCom(
        key="k", value=["x" * 600, "y" * 600], dag_id="d", run_id="r", task_id="t"
    )
    with pytest.raises(LocalProtocolError, match=r"SetXCom\.value\[1\]: .*more than 1000 bytes"):
        messages.encode_body(msg)
    big = messages.SetXCom(key="k", value="z" * 1001, dag_id="d", run_id="r", task_id="t")
    with pytest.raises(LocalProtocolError, match=r"SetXCom\.value: .*more than 1000 bytes"):
        messages.encode_body(big)
    messages.encode_body(
        messages.SetXCom(key="k", value="z" * 900, dag_id="d", run_id="r", task_id="t")
    )


@pytest.mark.parametrize(
    "value",
    [list(range(10)), ["x" * (1 << 20)], "é" * (1 << 20), [[1] * 6, [2] * 6]],
    ids=["11 items", "a long str inside", "a long str", "13 items nested"],
)
def test_a_bounded_check_stops_on_large_values(value: Any) -> None:
    """check_json with max_items stops with CheckIncomplete on more items or a long string, and finishes without it."""
    with pytest.raises(fields.CheckIncomplete):
        fields.check_json(value, "V", max_items=10)
    assert fields.check_json(value, "V") > 0
    assert fields.check_json([1] * 8, "V", max_items=10) == 9
