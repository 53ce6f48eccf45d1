"""vpccni.wire.wirejson parses and writes exactly what the json module does (it is the same C code), except
that it refuses the values JSON does not have (NaN, Infinity, numbers beyond a double)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from vpccni.wire import wirejson
from vpccni.wire.protocol import ErrorKind, NoIpReason

DOCUMENTS: list[Any] = [
    {},
    [],
    {"cniVersion": "1.0.0", "name": "vpccni", "plugins": [{"type": "vpccni", "ipamdSocket": "/run/x.sock"}]},
    {"a": [1, -2, 3.5, 1e-7, 12345678901234567890, True, False, None], "b": {"c": 'x\u00e9\u2603\n\t"\\'}},
    "just a string",
    42,
    [[[[]]]],
    {"prevResult": {"interfaces": [{"name": "eth0", "sandbox": "/proc/1/ns/net"}], "ips": []}},
]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_round_trip_matches_json(doc: Any) -> None:
    text = wirejson.dumps(doc)
    assert text == json.dumps(doc, separators=(",", ":"))
    assert wirejson.loads(text) == doc
    assert wirejson.loads(text.encode()) == doc
    assert wirejson.loads(json.dumps(doc, indent=2)) == doc  # whitespace anywhere a runtime puts it


def test_random_documents_agree_with_json() -> None:
    rng = random.Random(7)

    def make(depth: int) -> Any:
        kind = rng.randrange(6 if depth < 4 else 4)
        if kind == 0:
            return rng.randint(-(10**12), 10**12)
        if kind == 1:
            return "".join(
                chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)])) for _ in range(5)
            )
        if kind == 2:
            return rng.choice([True, False, None])
        if kind == 3:
            return rng.random() * 1000
        if kind == 4:
            return [make(depth + 1) for _ in range(rng.randrange(4))]
        return {f"k{i}": make(depth + 1) for i in range(rng.randrange(4))}

    for _ in range(300):
        doc = make(0)
        assert wirejson.loads(wirejson.dumps(doc)) == json.loads(json.dumps(doc))


@pytest.mark.parametrize(
    "bad", ['{"a": }', "{", '{"a": 1} trailing', "", "   ", b"\xff\xfe", "[1,]", '"\\q"']
)
def test_malformed_input_raises_jsons_own_error(bad: str | bytes) -> None:
    with pytest.raises(ValueError) as caught:
        wirejson.loads(bad)
    with pytest.raises(ValueError) as expected:
        json.loads(bad)
    assert str(caught.value) == str(expected.value)


def test_constants_serialize_as_their_value() -> None:
    assert wirejson.dumps({"kind": ErrorKind.NO_IP, "reason": NoIpReason.SUBNET_FULL}) == (
        '{"kind":"no_ip","reason":"subnet_full"}'
    )


def test_unserializable_and_nan_are_refused() -> None:
    with pytest.raises(TypeError, match="set"):
        wirejson.dumps({1, 2})
    with pytest.raises(ValueError):
        wirejson.dumps(float("nan"))


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e400", b'{"routes": -1e999}'])
def test_values_json_does_not_have_are_refused(text: str | bytes) -> None:
    """Python's json reads them; JSON has none of them, and dumps could not write them back."""
    with pytest.raises(ValueError, match="NaN or Infinity|out of a double's range"):
        wirejson.loads(text)
