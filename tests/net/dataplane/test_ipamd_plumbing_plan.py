"""The pure decisions behind HostNetwork and LinuxPodNetwork, over hand-made snapshots (no kernel).

The traffic tests next door show the plumbing works; these pin the edge cases traffic cannot reach
cheaply: the race an in-flight ADD would lose to stale-rule pruning, the back-off bound, naming.
"""

from __future__ import annotations

import hashlib

import pytest

from ipamd.dataplane.host_plan import (
    EniPlumbing,
    HostSnapshot,
    HostWanted,
    LinkState,
    RouteTuple,
    eni_drift,
    external_service_rules,
    fwmark_rule,
    host_drift,
    link_wait_delays,
    stale_pod_rules,
)
from ipamd.dataplane.pod_linux import pod_host_veth_name
from vpccni.net.rules import RuleKey
from vpccni.wire.cniresult import HostRouting, host_routing_from_prev_result
from vpccni.wire.protocol import PodRef

ENI = EniPlumbing("eni-1", "02:00:00:00:00:02", "10.0.1.7", "10.0.0.0/20", 1, 9001)
ETH1 = LinkState(3, "eth1", ENI.mac, True, 9001, frozenset({("10.0.1.7", 20)}))
HEALTHY_ROUTES: frozenset[RouteTuple] = frozenset({(2, "10.0.0.1", 32, None, 3), (2, None, 0, "10.0.0.1", 3)})


def _snap(
    rules: tuple[RuleKey, ...] = (ENI.rule,),
    links: tuple[LinkState, ...] = (ETH1,),
    routes: frozenset[RouteTuple] = HEALTHY_ROUTES,
    host_routes: dict[str, int] | None = None,
) -> HostSnapshot:
    return HostSnapshot(rules, links, routes, main_host_routes=host_routes or {})


def to_pod(ip: str) -> RuleKey:
    return RuleKey(priority=512, table=254, dst=f"{ip}/32")


def test_link_wait_is_bounded_and_backs_off() -> None:
    delays = link_wait_delays(15.0)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and max(delays) == 2.0
    assert sum(delays) == pytest.approx(15.0)
    assert sum(link_wait_delays(0.5)) == pytest.approx(0.5)
    assert link_wait_delays(0.0) == []


def test_stale_pod_rules_spare_known_pods_and_pods_plumbed_after_the_snapshot() -> None:
    rules = (
        to_pod("10.0.1.20"),
        to_pod("10.0.1.21"),
        to_pod("10.0.1.22"),
        to_pod("10.0.1.23"),
        RuleKey(priority=1536, table=2, src="10.0.1.23/32"),
        ENI.rule,
    )
    snap = _snap(rules, host_routes={"10.0.1.21": 3, "10.0.1.22": 99})
    stale = stale_pod_rules(snap, known_addresses=["10.0.1.20"])
    # .20 known; .21 routed to a live link (an ADD that finished after the caller's snapshot): kept.
    # .22 routed to a link that is gone, .23 not routed at all: both pods are gone.
    assert stale == (
        to_pod("10.0.1.22"),
        to_pod("10.0.1.23"),
        RuleKey(priority=1536, table=2, src="10.0.1.23/32"),
    )


def test_eni_drift_names_each_missing_or_extra_piece() -> None:
    assert eni_drift(ENI, _snap()) == []
    down = LinkState(3, "eth1", ENI.mac, False, 1500, frozenset({("10.0.1.99", 20)}))
    problems = eni_drift(
        ENI,
        _snap(
            rules=(),
            links=(down,),
            routes=frozenset({(2, "10.0.0.1", 32, None, 3), (254, "10.0.0.0", 20, None, 3)}),
        ),
    )
    assert problems == [
        "ENI eni-1: eth1 is down",
        "ENI eni-1: MTU of eth1 is 1500, expected 9001",
        "ENI eni-1: address 10.0.1.7/20 missing on eth1",
        "ENI eni-1: unexpected address 10.0.1.99/20 on eth1",
        "ENI eni-1: default via 10.0.0.1 dev eth1 missing in table 2",
        "ENI eni-1: main-table route 10.0.0.0/20 dev eth1 present (host traffic to the subnet would leave "
        "by this ENI)",
        "ENI eni-1: rule 32765 from 10.0.1.7 lookup 2 missing",
    ]
    assert eni_drift(ENI, _snap(links=())) == ["ENI eni-1: no link with MAC 02:00:00:00:00:02"]


def test_host_drift_adds_wanted_rules_and_removes_ours_that_are_not() -> None:
    wanted = HostWanted("eth0", fwmark_rule(0x80), external_service_rules(["192.0.2.0/24"]))
    snap = HostSnapshot((), (), frozenset(), rp_filter="1", ip_forward="0")
    assert host_drift(wanted, snap) == [
        "rp_filter of eth0 is 1, expected 2 (loose)",
        "net.ipv4.ip_forward is 0, expected 1",
        "rule 1024 fwmark 0x80/0x80 lookup main missing",
        "rule 1535 to 192.0.2.0/24 lookup main missing",
    ]
    external_snat_without_node_port = HostWanted("eth0", None, frozenset())
    stale = fwmark_rule(0x80)
    assert stale is not None
    leftover = HostSnapshot((stale,), (), frozenset(), rp_filter="2", ip_forward="1")
    assert host_drift(external_snat_without_node_port, leftover) == [
        "stale rule 1024 fwmark 0x80/0x80 lookup main present"
    ]


def test_host_veth_names() -> None:
    aws = "eni" + hashlib.sha1(b"default.web-0").hexdigest()[:11]
    assert pod_host_veth_name("eni", PodRef("default", "web-0"), "c1", "eth0") == aws
    assert pod_host_veth_name("eni", PodRef("default", "web-0"), "c1", "net1") != aws  # a 2nd attachment
    assert pod_host_veth_name("eni", PodRef(), "c1", "eth0") == "eni" + hashlib.sha1(b"c1").hexdigest()[:11]


def test_prev_result_routing_reads_our_layout_only() -> None:
    prev = {
        "interfaces": [{"name": "enia"}, {"name": "eth0", "sandbox": "/x"}, {"name": "other"}],
        "ips": [
            {"address": "10.0.1.5/32", "interface": 1},
            {"address": "fd00::1/128", "interface": 1},
            {"address": "10.9.9.9/32", "interface": 2},
            {"address": "10.0.1.6/32", "interface": 7},
        ],
    }
    assert host_routing_from_prev_result(prev, "eth0") == [HostRouting("10.0.1.5", "enia")]
    assert host_routing_from_prev_result(None, "eth0") == []
    assert host_routing_from_prev_result({"ips": 3}, "eth0") == []
