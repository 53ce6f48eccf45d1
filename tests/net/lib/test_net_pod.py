"""Pod plumbing proven by traffic in the mini VPC (see conftest.py for the topology)."""

from __future__ import annotations

import dataclasses
import errno

import pytest
from pyroute2.netlink.exceptions import NetlinkError

import vpccni.net.pod as pod_module
from tests.net.conftest import POD_IFNAME, PRIMARY, REMOTE_IP, SECONDARY, Topology
from vpccni.errors import PlumbingBusy, PlumbingFailed
from vpccni.localcloud.vpc.netns import Netns, ProbeFailed, WhoAmIServer, ping, whoami
from vpccni.net.hostroutes import install_pod_routing, reconcile_host_routing, remove_host_routing
from vpccni.net.pod import PodAttachment, check_pod, setup_pod, teardown_pod


def node_state(node: Netns) -> tuple[list[str], list[str], list[str]]:
    """Links, IPv4 rules and main-table routes of the node, as comparable text."""
    links = sorted(node.run("ip", "-o", "link", "show").stdout.split("\n"))
    links = sorted(line.split(":")[1].split("@")[0].strip() for line in links if line)
    rules = node.run("ip", "-4", "rule", "show").stdout.splitlines()
    routes = sorted(node.run("ip", "-4", "route", "show", "table", "main").stdout.splitlines())
    return links, rules, routes


def pod_links(ns: Netns) -> list[str]:
    with ns.iproute() as ipr:
        return sorted(link.get_attr("IFLA_IFNAME") for link in ipr.link("dump"))


def test_pods_on_the_node_reach_each_other_with_their_own_addresses(topo: Topology, add_pod):
    a = add_pod("10.0.1.20", PRIMARY)
    b = add_pod("10.0.1.30", SECONDARY)
    assert ping(a.ns, b.ip)
    assert ping(b.ns, a.ip)
    with WhoAmIServer(b.ns, b.ip) as server:
        assert whoami(a.ns, b.ip, server.port) == a.ip
    with WhoAmIServer(a.ns, a.ip) as server:
        assert whoami(b.ns, a.ip, server.port) == b.ip


@pytest.mark.parametrize("eni", [PRIMARY, SECONDARY], ids=["primary-eni", "secondary-eni"])
def test_pod_reaches_a_remote_vpc_host_with_its_own_address(topo: Topology, add_pod, eni):
    pod = add_pod("10.0.1.21", eni)
    assert whoami(pod.ns, REMOTE_IP, topo.remote_server.port) == pod.ip


@pytest.mark.parametrize("eni", [PRIMARY, SECONDARY], ids=["primary-eni", "secondary-eni"])
def test_remote_vpc_host_reaches_the_pod(topo: Topology, add_pod, eni):
    pod = add_pod("10.0.1.22", eni)
    with WhoAmIServer(pod.ns, pod.ip) as server:
        assert whoami(topo.remote, pod.ip, server.port) == REMOTE_IP


def test_pod_on_the_secondary_eni_leaves_through_that_eni(topo: Topology, add_pod):
    pod = add_pod("10.0.1.31", SECONDARY)
    before = {eni.ifname: topo.vpc.link_stats(eni.vpc_ifname).rx_packets for eni in (PRIMARY, SECONDARY)}
    for _ in range(3):
        assert whoami(pod.ns, REMOTE_IP, topo.remote_server.port) == pod.ip
    after = {eni.ifname: topo.vpc.link_stats(eni.vpc_ifname).rx_packets for eni in (PRIMARY, SECONDARY)}
    assert after[SECONDARY.ifname] - before[SECONDARY.ifname] >= 9  # >= 3 packets per connection
    assert after[PRIMARY.ifname] == before[PRIMARY.ifname]
    # Rule 1536 is what steers it: without it the packet takes the primary ENI and the fabric's
    # source check drops it.
    topo.node.run("ip", "rule", "del", "pref", "1536", "from", pod.ip)
    with pytest.raises(ProbeFailed):
        whoami(pod.ns, REMOTE_IP, topo.remote_server.port, timeout=1.0)


def test_check_pod_is_silent_when_healthy_and_names_what_was_removed_by_hand(topo: Topology, add_pod):
    pod = add_pod("10.0.1.32", SECONDARY)
    node = topo.node.path
    assert check_pod(pod.att, netns=node) == []

    pod.ns.run("ip", "route", "del", "default")
    assert check_pod(pod.att, netns=node) == [
        f"default route via 169.254.1.1 dev {POD_IFNAME} missing in the pod namespace"
    ]
    assert not ping(pod.ns, REMOTE_IP)

    topo.node.run("ip", "rule", "del", "pref", "512", "to", pod.ip)
    topo.node.run("ip", "rule", "del", "pref", "1536", "from", pod.ip)
    pod.ns.run("ip", "neigh", "del", "169.254.1.1", "dev", POD_IFNAME)
    assert sorted(check_pod(pod.att, netns=node)) == sorted(
        [
            f"default route via 169.254.1.1 dev {POD_IFNAME} missing in the pod namespace",
            f"rule 512 to {pod.ip} lookup main missing",
            f"rule 1536 from {pod.ip} lookup 2 missing",
            f"permanent neighbour 169.254.1.1 missing on {POD_IFNAME} in the pod namespace",
        ]
    )
    pod.ns.remove()
    assert f"pod network namespace {pod.att.pod_netns} does not exist" in check_pod(pod.att, netns=node)


def test_teardown_leaves_nothing_behind_and_is_idempotent(topo: Topology):
    ns = topo.nsf.netns("pod")
    before = node_state(topo.node)
    att = topo.attachment(ns, "10.0.1.33", SECONDARY, "teardown")
    setup_pod(att, netns=topo.node.path)
    assert node_state(topo.node) != before
    teardown_pod(att, netns=topo.node.path)
    assert node_state(topo.node) == before
    assert pod_links(ns) == ["lo"]
    teardown_pod(att, netns=topo.node.path)  # again: nothing to do, no error
    ns.remove()
    teardown_pod(att, netns=topo.node.path)  # pod namespace gone: still fine
    assert node_state(topo.node) == before


def test_setup_recovers_from_a_half_done_earlier_attempt(topo: Topology):
    ip = "10.0.1.34"
    ns = topo.nsf.netns("pod")
    topo.assign(ip, SECONDARY)
    att = topo.attachment(ns, ip, SECONDARY, "halfdone")
    before = node_state(topo.node)
    # The earlier attempt: a veth whose host end has another name, its peer already CNI_IFNAME in the pod;
    # rules 512 and 1536 into a wrong table.
    topo.node.run(
        "ip", "link", "add", "nt8vold", "type", "veth", "peer", "name", POD_IFNAME, "netns", ns.name
    )
    topo.node.run("ip", "rule", "add", "pref", "512", "to", ip, "lookup", "7")
    topo.node.run("ip", "rule", "add", "pref", "1536", "from", ip, "lookup", "7")
    try:
        setup_pod(att, netns=topo.node.path)
        assert check_pod(att, netns=topo.node.path) == []
        rules = topo.node.run("ip", "-4", "rule", "show").stdout
        assert rules.count(f"to {ip} lookup main") == 1 and f"to {ip} lookup 7" not in rules
        assert f"from {ip} lookup 2" in rules and f"from {ip} lookup 7" not in rules
        assert "nt8vold" not in node_state(topo.node)[0]
        assert whoami(ns, REMOTE_IP, topo.remote_server.port) == ip
        setup_pod(att, netns=topo.node.path)  # and a repeated ADD converges to the same
        assert check_pod(att, netns=topo.node.path) == []
        assert whoami(ns, REMOTE_IP, topo.remote_server.port) == ip
    finally:
        teardown_pod(att, netns=topo.node.path)
        topo.unassign(ip)
    assert node_state(topo.node) == before


@pytest.mark.parametrize(
    ("code", "error"), [(errno.EPERM, PlumbingFailed), (errno.EBUSY, PlumbingBusy)], ids=["permanent", "busy"]
)
def test_a_failed_setup_rolls_back_everything_it_created(topo: Topology, monkeypatch, code, error):
    ns = topo.nsf.netns("pod")
    att = topo.attachment(ns, "10.0.1.35", SECONDARY, "rollback")
    before = node_state(topo.node)
    real = install_pod_routing

    def add_rules_then_fail(*args, **kwargs):  # the last step: everything else exists by now
        real(*args, **kwargs)
        raise NetlinkError(code, "injected")

    monkeypatch.setattr(pod_module, "install_pod_routing", add_rules_then_fail)
    with pytest.raises(error) as failure:
        setup_pod(att, netns=topo.node.path)
    assert f"add host routing of {att.ipv4}" in str(failure.value)
    assert node_state(topo.node) == before
    assert pod_links(ns) == ["lo"]


def test_bad_pod_namespaces_are_refused_with_a_clear_error(topo: Topology, tmp_path):
    regular_file = tmp_path / "not-a-netns"
    regular_file.write_text("")
    cases = {
        "relative/path": "neither an absolute path nor a plain namespace name",
        "/run/netns/nt8-does-not-exist": "does not exist",
        str(regular_file): "is not a namespace file",
        "/proc/self/ns/uts": "is a namespace, but not a network one",
    }
    before = node_state(topo.node)
    for path, reason in cases.items():
        bad = dataclasses.replace(
            topo.attachment(Netns("unused"), "10.0.1.36", PRIMARY, "badns"), pod_netns=path
        )
        with pytest.raises(PlumbingFailed, match=reason):
            setup_pod(bad, netns=topo.node.path)
    assert node_state(topo.node) == before
    with pytest.raises(PlumbingFailed, match="'eth/0' is not a valid link name"):
        PodAttachment(pod_netns="/x", ifname="eth/0", host_ifname="nt8vx", ipv4="10.0.1.36")
    with pytest.raises(PlumbingFailed, match="'10.0.1.300' is not an IPv4 address"):
        PodAttachment(pod_netns="/x", ifname="eth0", host_ifname="nt8vx", ipv4="10.0.1.300")
    with pytest.raises(PlumbingFailed, match="MTU"):
        PodAttachment(pod_netns="/x", ifname="eth0", host_ifname="nt8vx", ipv4="10.0.1.36", mtu=100)


def test_reconcile_restores_lost_host_rules_and_routes(topo: Topology, add_pod):
    a = add_pod("10.0.1.23", PRIMARY)
    b = add_pod("10.0.1.37", SECONDARY)
    known = [a.att.host_route, b.att.host_route]
    assert reconcile_host_routing(known, netns=topo.node.path) == []

    topo.node.run("ip", "rule", "del", "pref", "1536", "from", b.ip)
    topo.node.run("ip", "route", "del", f"{a.ip}/32")
    with WhoAmIServer(a.ns, a.ip) as server, pytest.raises(ProbeFailed):
        whoami(topo.remote, a.ip, server.port, timeout=1.0)

    fixed = reconcile_host_routing(known, netns=topo.node.path)
    assert sorted(fixed) == sorted(
        [
            f"rule 1536 from {b.ip} lookup 2 restored",
            f"route {a.ip}/32 dev {a.att.host_ifname} restored in the main table",
        ]
    )
    assert whoami(b.ns, REMOTE_IP, topo.remote_server.port) == b.ip
    with WhoAmIServer(a.ns, a.ip) as server:
        assert whoami(topo.remote, a.ip, server.port) == REMOTE_IP
    assert reconcile_host_routing(known, netns=topo.node.path) == []


def test_remove_host_routing_is_idempotent_and_cuts_the_pod_off(topo: Topology, add_pod):
    pod = add_pod("10.0.1.38", SECONDARY)
    node = topo.node.path
    # A late DEL of an earlier pod that had this address: its veth was another one, so nothing goes.
    kept = remove_host_routing(pod.ip, host_ifname="nt8vearlier", netns=node)
    assert kept == [
        f"kept {pod.ip}: its /32 route leads to another interface than nt8vearlier (another pod's now)"
    ]
    assert check_pod(pod.att, netns=node) == []
    assert whoami(pod.ns, REMOTE_IP, topo.remote_server.port) == pod.ip

    assert sorted(remove_host_routing(pod.ip, host_ifname=pod.att.host_ifname, netns=node)) == sorted(
        [
            f"removed rule 512 to {pod.ip}",
            f"removed rule 1536 from {pod.ip}",
            f"removed route {pod.ip}/32",
        ]
    )
    assert remove_host_routing(pod.ip, netns=node) == []
    assert pod.ip not in topo.node.run("ip", "-4", "rule", "show").stdout
    assert sorted(check_pod(pod.att, netns=node)) == sorted(
        [
            f"route {pod.ip}/32 dev {pod.att.host_ifname} missing in the main table",
            f"rule 512 to {pod.ip} lookup main missing",
            f"rule 1536 from {pod.ip} lookup 2 missing",
        ]
    )
    assert not ping(topo.remote, pod.ip)
