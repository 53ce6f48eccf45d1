"""Fuzz of the plugin's inputs: whatever the runtime puts in the environment and on stdin, the plugin
answers with a result, or with CNI error JSON carrying a code the CNI spec (or our table) gives for bad
input -- never "internal error in the vpccni plugin" (999), which is what an exception we did not mean to
raise becomes.

The whole executable runs in-process (:func:`plugin.main.run`), against a stand-in for ipamd's socket
that answers as ipamd would (an allocation, a success, or any error kind and reason) and checks on the
way that the request the plugin built can be encoded and decodes back to itself. The log is kept in
memory: a fuzzed ``pluginLogFile`` never becomes a file. Inputs: CNI_* variables from their valid values
and arbitrary text, CNI_ARGS of known and unknown keys; stdin as raw bytes or as a conflist-shaped JSON
object whose values may be of any JSON type (NaN and Infinity included, which Python's JSON accepts),
with prevResult shaped like a real one or not. Budget and seed: :mod:`tests.fuzzing`.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any
from unittest import mock

from hypothesis import example, given
from hypothesis import strategies as st

from plugin import cni
from plugin.log import PluginLog
from plugin.main import run
from tests.fuzzing import fuzz
from vpccni.wire import client
from vpccni.wire.cnicodes import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INTERNAL,
    INVALID_CONFIG,
    INVALID_ENV,
    IO_FAILURE,
)
from vpccni.wire.protocol import (
    AllocationResult,
    ErrorKind,
    NoIpReason,
    Op,
    Request,
    Response,
    decode_request,
    encode_request,
)

TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
ENV_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=20)
# NaN and the infinities on their own too: Python's JSON reads them, no CNI runtime writes them.
SCALARS = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats()
           | st.sampled_from([math.nan, math.inf, -math.inf]) | TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Codes a bad input may get; with ipamd's answers, those of plugin.cni's table for each kind.
INPUT_CODES = {INCOMPATIBLE_VERSION, INVALID_ENV, DECODE_FAILURE, INVALID_CONFIG}
IPAMD_CODES = {11, 50, 100, 101, 102, 103, 104, IO_FAILURE}

ALLOCATION = AllocationResult(
    ipv4="10.0.1.7", prefix_len=32, gateway="169.254.1.1", eni_id="eni-1", device_number=1, route_table=2,
    host_ifname="eni0123456789a", host_mac="02:00:00:00:00:01", container_ifname="eth0",
    container_mac="02:00:00:00:00:02", mtu=9001, netns="/run/netns/x",
)


def one_of_or_any(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values) | ENV_TEXT


ENV_KEYS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS")
VARIANTS: dict[str, st.SearchStrategy[str]] = {
    "CNI_COMMAND": one_of_or_any([*cni.COMMANDS, "add", ""]),
    "CNI_CONTAINERID": one_of_or_any(["abc123", "-bad", "a/b", ""]),
    "CNI_NETNS": one_of_or_any(["/proc/self/ns/net", "/run/netns/x", "/proc/1/ns/net", "run/netns/x", ""]),
    "CNI_IFNAME": one_of_or_any(["eth0", "lo", "e" * 16, "a/b", ".", ""]),
    "CNI_PATH": one_of_or_any(["/opt/cni/bin", "/a:/b:", ""]),
    "CNI_ARGS": st.lists(
        st.tuples(one_of_or_any([*cni.KNOWN_CNI_ARGS, "Typo"]), ENV_TEXT).map("=".join) | ENV_TEXT, max_size=5
    ).map(";".join),
}


@st.composite
def envs(draw: st.DrawFn) -> dict[str, str]:
    """A valid environment for one verb, then a few variables dropped or changed: inputs that get past
    the first checks, so the later ones are reached too."""
    env = {
        "CNI_COMMAND": draw(st.sampled_from(cni.COMMANDS)),
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
    }
    for key in draw(st.lists(st.sampled_from(ENV_KEYS), max_size=3, unique=True)):
        if draw(st.booleans()):
            del env[key]
        else:
            env[key] = draw(VARIANTS[key])
    return env


ENVS = envs()

INTERFACES = st.lists(
    st.fixed_dictionaries({}, optional={"name": one_of_or_any(["eth0", "eni0"]) | JSON_VALUES,
                                        "sandbox": st.just("/run/netns/x") | JSON_VALUES,
                                        "mac": st.just("02:00:00:00:00:09") | JSON_VALUES,
                                        "mtu": JSON_VALUES}),
    max_size=3,
)
IPS = st.lists(
    st.fixed_dictionaries({}, optional={"address": st.just("10.0.9.9/24") | JSON_VALUES,
                                        "gateway": st.just("10.0.9.1") | JSON_VALUES,
                                        "interface": st.integers(-1, 3) | JSON_VALUES,
                                        "version": st.just("4") | JSON_VALUES}),
    max_size=3,
)
PREV_RESULTS = st.fixed_dictionaries(
    {},
    optional={
        "cniVersion": one_of_or_any(list(cni.SUPPORTED_VERSIONS)),
        "interfaces": INTERFACES | JSON_VALUES,
        "ips": IPS | JSON_VALUES,
        "routes": JSON_VALUES,
        "dns": JSON_VALUES,
    },
) | JSON_VALUES
CONFIG_VARIANTS: dict[str, st.SearchStrategy[Any]] = {
    "cniVersion": one_of_or_any(list(cni.SUPPORTED_VERSIONS)) | JSON_VALUES,
    "name": one_of_or_any(["vpccni", "bad name"]) | JSON_VALUES,
    "type": st.just("vpccni") | JSON_VALUES,
    "ipamdSocket": one_of_or_any(["/run/vpccni/ipamd.sock", "relative.sock"]) | JSON_VALUES,
    "ipamdTimeoutMs": st.integers(-5, 400_000) | JSON_VALUES,
    "pluginLogFile": one_of_or_any(["stderr", "/var/log/x.log", ""]) | JSON_VALUES,
    "pluginLogLevel": one_of_or_any(["debug", "info", "trace"]) | JSON_VALUES,
    "prevResult": PREV_RESULTS,
    "dns": JSON_VALUES,
    "runtimeConfig": JSON_VALUES,
    "cni.dev/valid-attachments": st.lists(
        st.fixed_dictionaries({}, optional={"containerID": one_of_or_any(["abc123"]) | JSON_VALUES,
                                            "ifname": one_of_or_any(["eth0"]) | JSON_VALUES})
    ) | JSON_VALUES,
}


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request configuration, then some keys dropped, added or changed to anything."""
    conf: dict[str, Any] = {"cniVersion": draw(st.sampled_from(cni.SUPPORTED_VERSIONS)), "name": "vpccni",
                            "type": "vpccni"}
    if draw(st.booleans()):  # what a runtime sends to DEL and CHECK, and to ADD in a chain
        conf["prevResult"] = draw(PREV_RESULTS)
    for key in draw(st.lists(st.sampled_from(sorted(CONFIG_VARIANTS)), max_size=4, unique=True)):
        if key in conf and draw(st.booleans()):
            del conf[key]
        else:
            conf[key] = draw(CONFIG_VARIANTS[key])
    return conf


CONFIGS = configs()
STDINS = CONFIGS.map(lambda c: json.dumps(c).encode()) | st.binary(max_size=300)
ANSWERS = st.none() | st.tuples(
    st.sampled_from(list(ErrorKind)), TEXT, st.none() | st.sampled_from(list(NoIpReason))
)


class MemoryLog(PluginLog):
    """The plugin's log, kept in memory whatever ``pluginLogFile`` says."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())

    def configure(self, path: str, level: str) -> None:
        super().configure("", level)


class FakeIpamd:
    """ipamd's side of one call: checks the request crosses the wire intact, then answers."""

    def __init__(self, failure: tuple[ErrorKind, str, NoIpReason | None] | None) -> None:
        self.failure = failure
        self.requests: list[Request] = []

    def call(self, socket_path: str, request: Request, timeout_s: float = 0.0,
             netns_fd: int | None = None) -> Response:
        assert decode_request(encode_request(request)) == request, "the request changed on the wire"
        self.requests.append(request)
        if self.failure is not None:
            return Response.failure(*self.failure)
        return Response(ok=True, allocation=ALLOCATION if request.op is Op.ADD else None)


ADD_ENV = {
    # A namespace the plugin can open (it passes it to ipamd open; this stand-in ignores it).
    "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"
}


@fuzz
@given(ENVS, STDINS, ANSWERS)
# What this test found first: Python's JSON reads Infinity (and NaN, 1e400), the plugin then could not
# encode its request to ipamd and answered 999.
@example(ADD_ENV, b'{"cniVersion": "0.3.0", "name": "vpccni", "prevResult": {"routes": Infinity}}', None)
@example(ADD_ENV, b'{"cniVersion": "1.0.0", "name": "vpccni", "dns": {"x": 1e400}}', None)
def test_any_input_gets_a_result_or_an_error_with_a_deliberate_code(
    env: dict[str, str], stdin: bytes, answer: tuple[ErrorKind, str, NoIpReason | None] | None
) -> None:
    ipamd = FakeIpamd(answer)
    out = io.StringIO()
    # DEL falls back to spooling a release record and removing host routing when ipamd fails it: both
    # are stood in for here (this test must change nothing on the machine).
    with mock.patch.object(client, "call", ipamd.call), \
            mock.patch("plugin.main.write_release_record", return_value="/nowhere"), \
            mock.patch("plugin.main._teardown_locally"):
        rc = run(env, lambda: stdin, out, MemoryLog())
    text = out.getvalue()
    assert rc in (0, 1) and text.count("\n") <= 1, text
    if rc == 0:
        if text:
            assert isinstance(json.loads(text), dict)
        return
    error: dict[str, Any] = json.loads(text)
    assert not error["msg"].startswith("internal error in the vpccni plugin"), error["msg"]
    ipamd_said_internal = answer is not None and answer[0] is ErrorKind.INTERNAL
    assert error["code"] in INPUT_CODES | IPAMD_CODES | ({INTERNAL} if ipamd_said_internal else set()), error
    assert isinstance(error["msg"], str) and error["msg"] and error["cniVersion"] in cni.SUPPORTED_VERSIONS
    if not ipamd.requests:
        assert error["code"] in INPUT_CODES, f"refused before ipamd, yet not for its input: {error}"


@fuzz
@given(st.dictionaries(one_of_or_any(list(cni.REQUIRED_ENV["ADD"])), ENV_TEXT) | ENVS)
def test_the_environment_parses_or_fails_with_code_4(env: dict[str, str]) -> None:
    try:
        inv = cni.parse_invocation(env)
    except cni.CniError as err:
        assert err.code == INVALID_ENV and err.msg
        return
    assert inv.command in cni.COMMANDS


@fuzz
@given(st.binary(max_size=300) | CONFIGS.map(lambda c: json.dumps(c).encode()))
def test_version_always_answers(stdin: bytes) -> None:
    reply = json.loads(cni.version_reply(stdin))
    assert reply["cniVersion"] in cni.SUPPORTED_VERSIONS
