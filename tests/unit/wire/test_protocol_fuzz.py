"""Fuzz of the socket codec (vpccni.wire.protocol): whatever arrives on ipamd's socket, or on the plugin's
side of it, decodes to a record or fails with ValueError naming the problem, never another exception
(which would kill the connection's task in ipamd, or print a traceback from the plugin); what decodes can
be encoded again; and every record survives encode -> decode unchanged.

Inputs: raw bytes; JSON objects whose keys are the records' wire names (and others) with values of any
JSON type, nested; valid encodings with bytes flipped, dropped or inserted. Budget and seed:
:mod:`tests.fuzzing` (CI: a fixed number of examples per test and a fixed seed; how to run longer is
written there).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz
from vpccni.wire.protocol import (
    AllocationResult,
    CniAttachment,
    ErrorInfo,
    ErrorKind,
    NoIpReason,
    Op,
    PodRef,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

# Text as JSON can carry it: any code point, lone surrogates included (an escaped \ud800 decodes to one).
TEXT = st.text(st.characters(exclude_categories=()), max_size=24)
COUNT = st.integers(min_value=0, max_value=2**63)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | FLOATS | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
# Text a record may hold: the decoder refuses a NUL or a lone surrogate anywhere in a message (a path or a
# name with either is an attack or a bug), so round trips are over text without them.
WIRE_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=24)
WIRE_JSON_OBJECTS = st.dictionaries(
    WIRE_TEXT,
    st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | FLOATS | WIRE_TEXT,
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WIRE_TEXT, inner, max_size=4),
                 max_leaves=12),
    max_size=4,
)

REQUEST_KEYS = ("v", "op", "network", "container_id", "ifname", "netns", "pod", "prev_result",
                "valid_attachments", "reason", "deadline_ms", "namespace", "name", "containerID")
RESPONSE_KEYS = ("v", "ok", "allocation", "released", "status", "error", "kind", "message", "reason",
                 "ipv4", "prefix_len", "gateway", "eni_id", "device_number", "route_table", "mtu")


def shaped(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the records' own keys (and others), each holding any JSON value or a nested object
    with such keys: closer to a real message than random bytes, so the decoder's field checks are hit."""
    names = st.sampled_from(keys) | TEXT
    enums = st.sampled_from([*Op, *ErrorKind, *NoIpReason]).map(str)
    # json.dumps writes NaN and Infinity, which JSON does not have: the decoder must refuse them.
    leaf = JSON_VALUES | enums | COUNT | st.sampled_from([math.nan, math.inf, -math.inf])
    nested = st.dictionaries(names, leaf, max_size=6)
    return st.dictionaries(names, leaf | nested | st.lists(nested, max_size=3), max_size=10)


@st.composite
def edited(draw: st.DrawFn, records: st.SearchStrategy[Any], keys: tuple[str, ...]) -> bytes:
    """A valid message with a few of its fields (or its nested fields) set to anything: inputs that pass
    most checks, so each field's own check is reached."""
    line = draw(records)
    obj = json.loads(encode_request(line) if isinstance(line, Request) else encode_response(line))
    values = shaped(keys)
    for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3)):
        target = obj
        if isinstance(obj.get(key), dict) and draw(st.booleans()):
            target = obj[key]  # one level down: pod, prev_result, allocation, error, status
            key = draw(st.sampled_from(sorted(target) or [key]))
        target[key] = draw(values | st.sampled_from([math.nan, math.inf, -math.inf, 10**400]))
    return json.dumps(obj).encode() + b"\n"


PODS = st.builds(PodRef, namespace=WIRE_TEXT, name=WIRE_TEXT, uid=WIRE_TEXT, infra_container_id=WIRE_TEXT)
REQUESTS = st.builds(
    Request,
    op=st.sampled_from(list(Op)),
    network=WIRE_TEXT,
    container_id=WIRE_TEXT,
    ifname=WIRE_TEXT,
    netns=WIRE_TEXT,
    pod=PODS,
    prev_result=st.none() | WIRE_JSON_OBJECTS,
    valid_attachments=st.lists(
        st.builds(CniAttachment, container_id=WIRE_TEXT, ifname=WIRE_TEXT), max_size=3
    ).map(tuple),
    reason=WIRE_TEXT,
    deadline_ms=COUNT,
    v=COUNT,
)
ALLOCATIONS = st.builds(
    AllocationResult,
    ipv4=WIRE_TEXT, prefix_len=COUNT, gateway=WIRE_TEXT, eni_id=WIRE_TEXT, device_number=COUNT,
    route_table=COUNT, host_ifname=WIRE_TEXT, host_mac=WIRE_TEXT, container_ifname=WIRE_TEXT,
    container_mac=WIRE_TEXT, mtu=COUNT, netns=WIRE_TEXT,
)
RESPONSES = st.builds(
    Response,
    ok=st.booleans(),
    allocation=st.none() | ALLOCATIONS,
    released=COUNT,
    status=st.none() | WIRE_JSON_OBJECTS,
    error=st.none() | st.builds(ErrorInfo, kind=st.sampled_from(list(ErrorKind)), message=WIRE_TEXT,
                                reason=st.none() | st.sampled_from(list(NoIpReason))),
    v=COUNT,
)


def decodes_or_says_why(decode: Any, line: bytes) -> None:
    """``line`` decodes, or fails with ValueError; what decodes can be written back, and reads the same."""
    try:
        decoded = decode(line)
    except ValueError as exc:
        assert str(exc), "a decode error names the problem"
        return
    if isinstance(decoded, Request):
        assert decode(encode_request(decoded)) == decoded
    else:
        assert isinstance(decoded, Response) and decode(encode_response(decoded)) == decoded


@fuzz
@given(st.binary(max_size=600))
def test_any_bytes_decode_to_a_request_or_a_value_error(line: bytes) -> None:
    decodes_or_says_why(decode_request, line)


@fuzz
@given(st.binary(max_size=600))
def test_any_bytes_decode_to_a_response_or_a_value_error(line: bytes) -> None:
    decodes_or_says_why(decode_response, line)


@fuzz
@given(shaped(REQUEST_KEYS))
def test_any_json_object_decodes_to_a_request_or_a_value_error(obj: dict[str, Any]) -> None:
    decodes_or_says_why(decode_request, json.dumps(obj).encode() + b"\n")


@fuzz
@given(shaped(RESPONSE_KEYS))
def test_any_json_object_decodes_to_a_response_or_a_value_error(obj: dict[str, Any]) -> None:
    decodes_or_says_why(decode_response, json.dumps(obj).encode() + b"\n")


@fuzz
@given(edited(REQUESTS, REQUEST_KEYS))
def test_a_request_with_fields_set_to_anything_decodes_or_says_why(line: bytes) -> None:
    decodes_or_says_why(decode_request, line)


@fuzz
@given(edited(RESPONSES, RESPONSE_KEYS))
def test_a_response_with_fields_set_to_anything_decodes_or_says_why(line: bytes) -> None:
    decodes_or_says_why(decode_response, line)


@fuzz
@given(st.one_of(REQUESTS.map(encode_request), RESPONSES.map(encode_response)), st.data())
def test_valid_lines_with_bytes_changed_decode_or_say_why(line: bytes, data: st.DataObject) -> None:
    edited = bytearray(line)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(edited)), label="at")
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]), label="action")
        if action == "insert" or at == len(edited):
            edited[at:at] = data.draw(st.binary(min_size=1, max_size=3), label="inserted")
        elif action == "flip":
            edited[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        else:
            del edited[at]
    decodes_or_says_why(decode_request, bytes(edited))
    decodes_or_says_why(decode_response, bytes(edited))


@fuzz
@given(REQUESTS)
def test_every_request_survives_encode_then_decode(req: Request) -> None:
    line = encode_request(req)
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one line per message, whatever the text"
    assert decode_request(line) == req


@fuzz
@given(RESPONSES)
def test_every_response_survives_encode_then_decode(resp: Response) -> None:
    line = encode_response(resp)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_response(line) == resp


@fuzz
@given(st.builds(PodRef, namespace=TEXT, name=TEXT, uid=TEXT, infra_container_id=TEXT), TEXT)
def test_a_nul_or_a_lone_surrogate_anywhere_is_refused_naming_the_field(pod: PodRef, netns: str) -> None:
    request = Request(op=Op.ADD, network="n", container_id="c", ifname="eth0", netns=netns, pod=pod)
    line = encode_request(request)
    texts = [netns, pod.namespace, pod.name, pod.uid, pod.infra_container_id]
    bad = any("\0" in t or any(0xD800 <= ord(c) <= 0xDFFF for c in t) for t in texts)
    try:
        decoded = decode_request(line)
    except ValueError as exc:
        assert bad and "field" in str(exc), str(exc)
        return
    assert not bad and decoded.pod == pod and decoded.netns == netns
