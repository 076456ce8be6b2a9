"""The fast paths of fields.py agree with the encoders and decoders they stand in for.

``_encode_model``/``_decode_model`` skip a field's encoder or decoder when the value's
exact type is one the row says passes unchanged. That is only sound if the full
encoder/decoder would have accepted such a value and returned it as it is; this
checks every field of every message and nested model.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from trio_coord.protocol import messages, models
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
