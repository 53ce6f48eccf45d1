"""Host and ENI setup in the mini VPC: each test gets a fresh topology, since these change the node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.conftest import (
    INTERNET_IP,
    MTU,
    PRIMARY,
    REMOTE_IP,
    SECONDARY,
    SUBNET,
    Topology,
    topology_context,
)
from vpccni.errors import PlumbingBusy, PlumbingFailed
from vpccni.localcloud.vpc.netns import Netns, ProbeFailed, whoami
from vpccni.net.host import setup_eni, setup_host, teardown_eni
from vpccni.net.nsutil import read_sysctl_path


@pytest.fixture
def fresh(swept: None) -> Iterator[Topology]:
    with topology_context() as topology:
        yield topology


def eni_state(node: Netns) -> tuple[str, str, str, str]:
    """Rules, table 2, main table and the secondary ENI's addresses/MTU/state, as text."""
    return (
        node.run("ip", "-4", "rule", "show").stdout,
        node.run("ip", "-4", "route", "show", "table", "2").stdout,
        node.run("ip", "-4", "route", "show", "table", "main").stdout,
        node.run("ip", "-4", "-o", "addr", "show", "dev", SECONDARY.ifname).stdout
        + node.run("ip", "-o", "link", "show", "dev", SECONDARY.ifname).stdout,
    )


def test_secondary_eni_address_leaves_through_its_own_eni(fresh: Topology):
    # Strict source checking in the fabric: this only gets through if rule 32765 + table 2 send it via eth1.
    assert whoami(fresh.node, REMOTE_IP, fresh.remote_server.port, source=SECONDARY.ip) == SECONDARY.ip
    assert whoami(fresh.node, REMOTE_IP, fresh.remote_server.port) == PRIMARY.ip
    rules, table2, main, link = eni_state(fresh.node)
    assert f"32765:\tfrom {SECONDARY.ip} lookup 2" in rules
    assert f"default via 10.0.1.1 dev {SECONDARY.ifname}" in table2
    assert SECONDARY.ifname not in main  # the kernel's subnet route is gone from main
    assert f"{SECONDARY.ip}/24" in link and f"mtu {MTU}" in link and "state UP" in link


def test_setup_eni_is_idempotent_and_removes_stale_state(fresh: Topology):
    node = fresh.node
    good = eni_state(node)
    setup_eni(SECONDARY.mac, SECONDARY.ip, SUBNET, SECONDARY.table, MTU, netns=node.path)
    assert eni_state(node) == good

    # Stale leftovers: another address, a foreign route in table 2, a 32765 rule of a former ENI using
    # table 2, the kernel's subnet route back in main (link bounced), a lower MTU.
    node.run("ip", "addr", "add", "10.0.1.99/24", "dev", SECONDARY.ifname)
    node.run("ip", "route", "add", "10.7.0.0/16", "via", "10.0.1.1", "dev", SECONDARY.ifname, "table", "2")
    node.run("ip", "rule", "add", "pref", "32765", "from", "10.0.1.77", "lookup", "2")
    node.run("ip", "link", "set", SECONDARY.ifname, "down", "mtu", "1500")
    node.run("ip", "link", "set", SECONDARY.ifname, "up")
    assert eni_state(node) != good
    setup_eni(SECONDARY.mac.upper(), SECONDARY.ip, SUBNET, SECONDARY.table, MTU, netns=node.path)
    assert eni_state(node) == good
    assert whoami(node, REMOTE_IP, fresh.remote_server.port, source=SECONDARY.ip) == SECONDARY.ip


def test_setup_eni_reports_a_missing_link_as_retryable_and_bad_input_as_permanent(fresh: Topology):
    with pytest.raises(PlumbingBusy, match="no link with MAC 02:08:00:00:09:09"):
        setup_eni("02:08:00:00:09:09", "10.0.1.7", SUBNET, 3, MTU, netns=fresh.node.path)
    with pytest.raises(PlumbingFailed, match="10.0.2.6 is not inside the ENI subnet 10.0.1.0/24"):
        setup_eni(SECONDARY.mac, "10.0.2.6", SUBNET, 2, MTU, netns=fresh.node.path)
    with pytest.raises(PlumbingFailed, match="not main"):
        setup_eni(SECONDARY.mac, SECONDARY.ip, SUBNET, 254, MTU, netns=fresh.node.path)
    with pytest.raises(PlumbingFailed, match="not a MAC address"):
        setup_eni("02:08:00:00:01", SECONDARY.ip, SUBNET, 2, MTU, netns=fresh.node.path)


def test_teardown_eni_removes_its_rule_table_and_address_and_is_idempotent(fresh: Topology):
    node = fresh.node
    teardown_eni(SECONDARY.ip, SECONDARY.table, mac=SECONDARY.mac, netns=node.path)
    rules, table2, _, link = eni_state(node)
    assert "32765" not in rules and table2 == "" and SECONDARY.ip not in link
    with pytest.raises(ProbeFailed):
        whoami(node, REMOTE_IP, fresh.remote_server.port, source=SECONDARY.ip, timeout=1.0)
    teardown_eni(SECONDARY.ip, SECONDARY.table, mac=SECONDARY.mac, netns=node.path)
    setup_eni(SECONDARY.mac, SECONDARY.ip, SUBNET, SECONDARY.table, MTU, netns=node.path)
    assert whoami(node, REMOTE_IP, fresh.remote_server.port, source=SECONDARY.ip) == SECONDARY.ip


def test_setup_host_sets_sysctls_and_converges_the_fwmark_rule(fresh: Topology):
    node = fresh.node
    conf = f"/proc/sys/net/ipv4/conf/{PRIMARY.ifname}/rp_filter"
    assert read_sysctl_path(node.path, conf) == "2"
    assert read_sysctl_path(node.path, "/proc/sys/net/ipv4/ip_forward") == "1"

    def fwmark_rules() -> list[str]:
        return [line for line in node.run("ip", "-4", "rule", "show").stdout.splitlines() if "fwmark" in line]

    assert fwmark_rules() == ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
    setup_host(PRIMARY.ifname, connmark=0x80, netns=node.path)
    assert fwmark_rules() == ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
    setup_host(PRIMARY.ifname, connmark=0x4000, netns=node.path)
    assert fwmark_rules() == ["1024:\tfrom all fwmark 0x4000/0x4000 lookup main"]
    setup_host(PRIMARY.ifname, connmark=None, netns=node.path)
    assert fwmark_rules() == []
    with pytest.raises(PlumbingFailed, match="primary interface nt8eth9 missing"):
        setup_host("nt8eth9", connmark=0x80, netns=node.path)


def test_fwmark_rule_is_what_sends_a_secondary_eni_pod_to_the_internet_by_the_primary_eni(fresh: Topology):
    pod = fresh.add_pod("10.0.1.40", SECONDARY)
    assert whoami(pod.ns, INTERNET_IP, fresh.internet_server.port) == PRIMARY.ip
    setup_host(PRIMARY.ifname, connmark=None, netns=fresh.node.path)
    # Marked, but no rule reads the mark: it leaves by eth1 with the primary address and is dropped.
    with pytest.raises(ProbeFailed):
        whoami(pod.ns, INTERNET_IP, fresh.internet_server.port, timeout=1.0)
    setup_host(PRIMARY.ifname, connmark=0x80, netns=fresh.node.path)
    assert whoami(pod.ns, INTERNET_IP, fresh.internet_server.port) == PRIMARY.ip
