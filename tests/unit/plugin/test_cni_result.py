"""ADD results per spec version (plugin.result) and the DEL fallback's reading of prevResult."""

from __future__ import annotations

from typing import Any

import pytest

from plugin import cni
from plugin.cni import CniError
from plugin.fallback import HostRouting, host_routing_from_prev_result
from plugin.result import render_add_result
from vpccni.errors import ProtocolError
from vpccni.wire.protocol import AllocationResult

NETNS = "/run/netns/pl7pod"
ALLOC = AllocationResult(
    ipv4="10.0.1.10",
    prefix_len=32,
    gateway="169.254.1.1",
    eni_id="eni-1",
    device_number=1,
    route_table=2,
    host_ifname="eni0123456789a",
    host_mac="0a:58:0a:00:01:0a",
    container_ifname="eth0",
    container_mac="0a:58:0a:00:01:0b",
    mtu=9001,
    netns=NETNS,
)


@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
def test_result_shape_per_version(version: str) -> None:
    result = render_add_result(ALLOC, version, "eth0", NETNS)
    mtu = {"mtu": 9001} if version == "1.1.0" else {}
    assert result["cniVersion"] == version
    assert result["interfaces"] == [
        {"name": "eni0123456789a", "mac": "0a:58:0a:00:01:0a", **mtu},
        {"name": "eth0", "mac": "0a:58:0a:00:01:0b", "sandbox": NETNS, **mtu},
    ]
    ip = {"address": "10.0.1.10/32", "gateway": "169.254.1.1", "interface": 1}
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        ip["version"] = "4"
    assert result["ips"] == [ip]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert "dns" not in result


def test_no_mtu_when_ipamd_gives_none() -> None:
    result = render_add_result(ALLOC._replace(mtu=0), "1.1.0", "eth0", NETNS)
    assert all("mtu" not in itf for itf in result["interfaces"])


def test_the_runtime_ifname_and_netns_win_and_dns_passes_through() -> None:
    result = render_add_result(ALLOC, "1.0.0", "net1", "/proc/42/ns/net", dns={"nameservers": ["10.0.0.2"]})
    assert (
        result["interfaces"][1]["name"] == "net1" and result["interfaces"][1]["sandbox"] == "/proc/42/ns/net"
    )
    assert result["dns"] == {"nameservers": ["10.0.0.2"]}


@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
def test_prev_result_is_kept_and_ours_appended_in_the_requested_version(version: str) -> None:
    prev: dict[str, Any] = {
        "cniVersion": version,
        "interfaces": [{"name": "lo0", "mac": "00:00:00:00:00:00", "sandbox": NETNS}],
        "ips": [
            {"address": "fd00::5/128", "interface": 0, "version": "6"},
            {"address": "192.168.9.9/24", "interface": 0},
        ],
        "routes": [{"dst": "192.168.0.0/16"}],
        "dns": {"nameservers": ["1.1.1.1"]},
    }
    result = render_add_result(ALLOC, version, "eth0", NETNS, prev_result=prev, dns={"nameservers": ["x"]})
    assert [i["name"] for i in result["interfaces"]] == ["lo0", "eni0123456789a", "eth0"]
    assert result["ips"][-1]["interface"] == 2 and result["ips"][-1]["address"] == "10.0.1.10/32"
    versions = [ip.get("version") for ip in result["ips"]]
    assert versions == (["6", "4", "4"] if cni.has_ip_version_field(version) else [None, None, None])
    assert result["routes"] == [{"dst": "192.168.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert result["dns"] == {"nameservers": ["1.1.1.1"]}  # the earlier plugin's DNS stays
    assert prev["ips"][1] == {"address": "192.168.9.9/24", "interface": 0}  # input not mutated


def test_malformed_prev_result_is_code_7() -> None:
    with pytest.raises(CniError) as info:
        render_add_result(ALLOC, "1.0.0", "eth0", NETNS, prev_result={"interfaces": {}})
    assert info.value.code == 7 and "prevResult" in info.value.msg


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ipv4": "10.0.1"}, "ipv4"),
        ({"ipv4": ""}, "ipv4"),
        ({"prefix_len": 33}, "prefix_len"),
        ({"gateway": "gw"}, "gateway"),
        ({"host_mac": ""}, "host_mac"),
        ({"container_mac": "0a:58"}, "container_mac"),
        ({"host_ifname": ""}, "host_ifname"),
    ],
)
def test_an_allocation_that_cannot_make_a_valid_result_is_refused(
    change: dict[str, object], named: str
) -> None:
    with pytest.raises(ProtocolError, match=named):
        render_add_result(ALLOC._replace(**change), "1.0.0", "eth0", NETNS)


# --- what the DEL fallback would remove -----------------------------------------------------------


def test_fallback_targets_come_from_our_container_interface() -> None:
    prev = render_add_result(ALLOC, "1.0.0", "eth0", NETNS)
    assert host_routing_from_prev_result(prev, "eth0") == [HostRouting("10.0.1.10", "eni0123456789a")]
    assert host_routing_from_prev_result(prev, "net1") == []


def test_fallback_ignores_other_plugins_addresses_ipv6_and_garbage() -> None:
    prev = {
        "interfaces": [
            {"name": "eni1", "mac": "m"},
            {"name": "eth0", "mac": "m", "sandbox": NETNS},
            {"name": "bwp1", "mac": "m"},
            {"name": "eth0", "mac": "m"},  # same name but host side: not a pod address
        ],
        "ips": [
            {"address": "10.0.1.10/32", "interface": 1},
            {"address": "fd00::1/128", "interface": 1},
            {"address": "10.0.9.9/32", "interface": 3},
            {"address": "10.0.9.8/32"},
            {"address": "10.0.9.7/32", "interface": 9},
            "junk",
        ],
    }
    assert host_routing_from_prev_result(prev, "eth0") == [HostRouting("10.0.1.10", "eni1")]


@pytest.mark.parametrize(
    "prev", [None, {}, {"interfaces": "x", "ips": []}, {"ips": [{"address": "10.0.0.1/32"}]}]
)
def test_fallback_without_usable_prev_result_removes_nothing(prev: dict[str, object] | None) -> None:
    assert host_routing_from_prev_result(prev, "eth0") == []


def test_fallback_without_a_host_interface_has_no_guard() -> None:
    prev = {
        "interfaces": [{"name": "eth0", "mac": "m", "sandbox": NETNS}],
        "ips": [{"address": "10.0.1.10/32", "interface": 0}],
    }
    assert host_routing_from_prev_result(prev, "eth0") == [HostRouting("10.0.1.10", None)]
