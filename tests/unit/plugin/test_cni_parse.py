"""CNI env + stdin parsing and version negotiation (plugin.cni, plugin.netconf), over every spec version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plugin import cni, netconf
from plugin.cni import CniError
from vpccni.wire.protocol import DEFAULT_SOCKET_PATH, CniAttachment, PodRef

ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee-1",
    "CNI_NETNS": "/run/netns/pl7pod",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def conf(**over: object) -> bytes:
    obj: dict[str, object] = {"cniVersion": "1.0.0", "name": "vpccni", "type": "vpccni"}
    obj.update(over)
    return json.dumps({k: v for k, v in obj.items() if v is not None}).encode()


def code_of(call: object) -> CniError:
    assert callable(call)
    with pytest.raises(CniError) as info:
        call()
    return info.value


# --- command and env -------------------------------------------------------------------------------


def test_add_env_parses_every_variable() -> None:
    inv = cni.parse_invocation(
        {
            **ADD_ENV,
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;"
            "K8S_POD_UID=u-1;K8S_POD_INFRA_CONTAINER_ID=c0ffee-1;FOO=bar",
        }
    )
    assert inv == cni.Invocation(
        command="ADD",
        container_id="c0ffee-1",
        netns="/run/netns/pl7pod",
        ifname="eth0",
        path=("/opt/cni/bin", "/usr/lib/cni"),
        pod=PodRef(namespace="ns", name="web-0", uid="u-1", infra_container_id="c0ffee-1"),
    )


@pytest.mark.parametrize("env", [{}, {"CNI_COMMAND": ""}])
def test_missing_command_is_code_4_naming_it(env: dict[str, str]) -> None:
    err = code_of(lambda: cni.parse_invocation(env))
    assert err.code == 4 and "CNI_COMMAND" in err.msg


def test_unknown_command_is_code_4_listing_the_valid_ones() -> None:
    err = code_of(lambda: cni.parse_invocation({**ADD_ENV, "CNI_COMMAND": "ATTACH"}))
    assert err.code == 4 and "'ATTACH'" in err.msg and "STATUS" in err.msg


@pytest.mark.parametrize(
    ("command", "drop", "named"),
    [
        ("ADD", ["CNI_CONTAINERID"], "[CNI_CONTAINERID]"),
        ("ADD", ["CNI_NETNS", "CNI_IFNAME"], "[CNI_NETNS,CNI_IFNAME]"),
        ("CHECK", ["CNI_NETNS"], "[CNI_NETNS]"),
        ("DEL", ["CNI_IFNAME"], "[CNI_IFNAME]"),
    ],
)
def test_missing_required_env_is_code_4_naming_each(command: str, drop: list[str], named: str) -> None:
    env = {k: v for k, v in ADD_ENV.items() if k not in drop} | {"CNI_COMMAND": command}
    err = code_of(lambda: cni.parse_invocation(env))
    assert err.code == 4 and named in err.msg


def test_del_does_not_need_a_netns_and_gc_status_need_no_container() -> None:
    env = {k: v for k, v in ADD_ENV.items() if k != "CNI_NETNS"} | {"CNI_COMMAND": "DEL"}
    assert cni.parse_invocation(env).netns == ""
    for command in ("GC", "STATUS"):
        assert cni.parse_invocation({"CNI_COMMAND": command}).container_id == ""


@pytest.mark.parametrize("cid", ["-leading-dash", "has space", "semi;colon", "slash/x", "ünïcode"])
def test_bad_container_id_is_code_4_naming_the_variable(cid: str) -> None:
    err = code_of(lambda: cni.parse_invocation({**ADD_ENV, "CNI_CONTAINERID": cid}))
    assert err.code == 4 and "CNI_CONTAINERID" in err.msg and repr(cid) in err.msg


@pytest.mark.parametrize("ifname", ["x" * 16, ".", "..", "a/b", "a:b", "a b", "tab\t"])
def test_bad_ifname_is_code_4_naming_the_variable(ifname: str) -> None:
    err = code_of(lambda: cni.parse_invocation({**ADD_ENV, "CNI_IFNAME": ifname}))
    assert err.code == 4 and "CNI_IFNAME" in err.msg


def test_fifteen_character_ifname_is_accepted() -> None:
    assert cni.parse_invocation({**ADD_ENV, "CNI_IFNAME": "x" * 15}).ifname == "x" * 15


@pytest.mark.parametrize("netns", ["run/netns/x", "relative"])
def test_relative_netns_is_code_4(netns: str) -> None:
    err = code_of(lambda: cni.parse_invocation({**ADD_ENV, "CNI_NETNS": netns}))
    assert err.code == 4 and "CNI_NETNS" in err.msg


# --- CNI_ARGS --------------------------------------------------------------------------------------


def test_unknown_cni_args_fail_without_ignore_unknown() -> None:
    err = code_of(lambda: cni.parse_cni_args("K8S_POD_NAME=a;FOO=1"))
    assert err.code == 4 and "FOO" in err.msg and "IgnoreUnknown" in err.msg


@pytest.mark.parametrize("flag", ["1", "true", "True"])
def test_ignore_unknown_accepts_other_keys(flag: str) -> None:
    assert cni.parse_cni_args(f"IgnoreUnknown={flag};FOO=1;K8S_POD_NAME=a").name == "a"


def test_malformed_cni_args_pair_is_code_4() -> None:
    err = code_of(lambda: cni.parse_cni_args("IgnoreUnknown=1;novalue"))
    assert err.code == 4 and "'novalue'" in err.msg


def test_empty_cni_args_is_an_empty_pod() -> None:
    assert cni.parse_cni_args("") == PodRef()
    assert cni.parse_cni_args(";;") == PodRef()


# --- stdin -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [b"", b"   \n", b"{not json", b"[1, 2]", b'"string"'])
def test_undecodable_stdin_is_code_6(stdin: bytes) -> None:
    assert code_of(lambda: netconf.parse_netconf(stdin, "ADD")).code == 6


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "2.0.0", "1.0", "latest", 1])
def test_unknown_cni_version_is_code_1_listing_ours(version: object) -> None:
    err = code_of(lambda: netconf.parse_netconf(conf(cniVersion=version), "ADD"))
    assert err.code == 1 and "1.1.0" in err.msg


def test_missing_cni_version_is_code_1_saying_so() -> None:
    err = code_of(lambda: netconf.parse_netconf(json.dumps({"name": "n"}).encode(), "ADD"))
    assert err.code == 1 and "no cniVersion" in err.msg


@pytest.mark.parametrize(
    ("over", "named"),
    [
        ({"name": None}, "name"),
        ({"name": "bad name"}, "name"),
        ({"ipamdSocket": "relative.sock"}, "ipamdSocket"),
        ({"ipamdSocket": 5}, "ipamdSocket"),
        ({"ipamdTimeoutMs": 5}, "ipamdTimeoutMs"),
        ({"ipamdTimeoutMs": True}, "ipamdTimeoutMs"),
        ({"pluginLogFile": "stdout"}, "pluginLogFile"),
        ({"pluginLogLevel": "chatty"}, "pluginLogLevel"),
        ({"prevResult": [1]}, "prevResult"),
        ({"dns": "8.8.8.8"}, "dns"),
    ],
)
def test_invalid_config_is_code_7_naming_the_key(over: dict[str, object], named: str) -> None:
    err = code_of(lambda: netconf.parse_netconf(conf(**over), "ADD"))
    assert err.code == 7 and named in err.msg


@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
def test_every_supported_version_parses_with_defaults(version: str) -> None:
    nc = netconf.parse_netconf(conf(cniVersion=version), "ADD")
    assert (nc.cni_version, nc.name, nc.ipamd_socket, nc.timeout_ms) == (
        version,
        "vpccni",
        DEFAULT_SOCKET_PATH,
        0,
    )
    assert nc.prev_result is None and nc.valid_attachments is None


def test_config_keys_are_read() -> None:
    nc = netconf.parse_netconf(
        conf(
            ipamdSocket="/run/x/ipamd.sock",
            ipamdTimeoutMs=2500,
            pluginLogFile="stderr",
            pluginLogLevel="Debug",
            prevResult={"ips": []},
            dns={"nameservers": ["10.0.0.2"]},
        ),
        "ADD",
    )
    assert (nc.ipamd_socket, nc.timeout_ms, nc.log_file, nc.log_level) == (
        "/run/x/ipamd.sock",
        2500,
        "",
        "debug",
    )
    assert nc.prev_result == {"ips": []} and nc.dns == {"nameservers": ["10.0.0.2"]}


def test_empty_prev_result_counts_as_none() -> None:
    assert netconf.parse_netconf(conf(prevResult={}), "DEL").prev_result is None


# --- GC attachments --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", netconf.VALID_ATTACHMENTS_KEYS)
def test_gc_reads_new_and_legacy_attachment_keys(key: str) -> None:
    nc = netconf.parse_netconf(
        conf(cniVersion="1.1.0", **{key: [{"containerID": "a", "ifname": "eth0"}]}), "GC"
    )
    assert nc.valid_attachments == (CniAttachment("a", "eth0"),)


def test_gc_prefers_the_new_key() -> None:
    body = conf(
        cniVersion="1.1.0",
        **{
            "cni.dev/valid-attachments": [{"containerID": "new", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "old", "ifname": "eth0"}],
        },
    )
    assert netconf.parse_netconf(body, "GC").valid_attachments == (CniAttachment("new", "eth0"),)


def test_gc_with_an_empty_list_keeps_nothing_but_without_the_key_fails() -> None:
    assert (
        netconf.parse_netconf(
            conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []}), "GC"
        ).valid_attachments
        == ()
    )
    err = code_of(lambda: netconf.parse_netconf(conf(cniVersion="1.1.0"), "GC"))
    assert err.code == 7 and "cni.dev/valid-attachments" in err.msg


@pytest.mark.parametrize(
    "items", [{"a": 1}, [{"containerID": "a"}], ["a"], [{"containerID": 1, "ifname": "e"}]]
)
def test_malformed_attachments_are_code_7(items: object) -> None:
    err = code_of(
        lambda: netconf.parse_netconf(conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": items}), "GC")
    )
    assert err.code == 7 and "cni.dev/valid-attachments" in err.msg


# --- versions and verbs ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
@pytest.mark.parametrize("verb", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_verb_gating_per_version(version: str, verb: str) -> None:
    since = {"CHECK": (0, 4, 0), "GC": (1, 1, 0), "STATUS": (1, 1, 0)}.get(verb, (0, 0, 0))
    allowed = cni.version_key(version) >= since  # type: ignore[operator]
    if allowed:
        cni.require_verb_allowed(verb, version)
    else:
        err = code_of(lambda: cni.require_verb_allowed(verb, version))
        assert err.code == 1 and err.msg.startswith(f"config version does not allow {verb}")


def test_version_reply_echoes_a_supported_version_and_lists_all() -> None:
    for asked in cni.SUPPORTED_VERSIONS:
        reply = json.loads(cni.version_reply(json.dumps({"cniVersion": asked}).encode()))
        assert reply == {"cniVersion": asked, "supportedVersions": list(cni.SUPPORTED_VERSIONS)}
    for stdin in (b"", b"garbage", b'{"cniVersion": "9.9.9"}'):
        assert json.loads(cni.version_reply(stdin))["cniVersion"] == "1.1.0"


def test_ip_version_field_only_before_1_0_0() -> None:
    assert [cni.has_ip_version_field(v) for v in cni.SUPPORTED_VERSIONS] == [True, True, True, False, False]


# --- CHECK's prevResult ----------------------------------------------------------------------------

PREV = {
    "interfaces": [
        {"name": "eni1", "mac": "aa:bb:cc:dd:ee:01"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/netns/pl7pod"},
    ],
    "ips": [{"address": "10.0.1.10/32", "gateway": "169.254.1.1", "interface": 1}],
}


def test_check_needs_prev_result_and_names_what_is_missing() -> None:
    inv = cni.parse_invocation({**ADD_ENV, "CNI_COMMAND": "CHECK"})
    assert (
        netconf.require_prev_result_for_check(netconf.parse_netconf(conf(prevResult=PREV), "CHECK"), inv)
        == PREV
    )
    cases: list[tuple[dict[str, Any] | None, str]] = [
        (None, "'prevResult'"),
        ({"interfaces": [], "ips": []}, "no interface 'eth0'"),
        ({**PREV, "ips": [{"address": "10.0.1.10/32", "interface": 0}]}, "no IP address on interface 'eth0'"),
        ({"ips": []}, "'interfaces' and 'ips'"),
    ]
    for prev, named in cases:
        nc = netconf.parse_netconf(conf(prevResult=prev), "CHECK")
        err = code_of(lambda nc=nc: netconf.require_prev_result_for_check(nc, inv))
        assert err.code == 7 and named in err.msg, err.msg
