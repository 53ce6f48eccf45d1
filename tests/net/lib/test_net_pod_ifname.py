"""An ADD whose CNI_IFNAME is already taken in the pod: only a leftover that is provably ours is removed.

Ours means: the host veth of this very pod, or a pod veth whose peer lives in the node namespace under a
name with our veth prefix. Anything else holding the name (a bridge with an address, ``lo``, a veth pair
inside the pod, another plugin's veth, even a veth whose peer carries our prefix but in another
namespace) fails the ADD with :class:`~vpccni.errors.InterfaceExists` and stays exactly as it was, on the
pod's side and the node's; a teardown afterwards (ipamd's rollback) leaves it alone too.

Its own namespaces (prefix ``pi5``): a node namespace and pods, no VPC, since the question is only which
links survive. Everything is removed at the end, even after a failure.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from vpccni.errors import InterfaceExists
from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, sweep
from vpccni.net.names import MAIN_TABLE, host_veth_name
from vpccni.net.pod import PodAttachment, check_pod, setup_pod, teardown_pod

PREFIX = "pi5"
VETH_PREFIX = "pi5v"
POD_IP = "10.9.0.7"


@pytest.fixture(scope="module")
def nsf() -> Iterator[NetnsFactory]:
    sweep(PREFIX)
    with NetnsFactory(PREFIX) as factory:
        yield factory
    assert sweep(PREFIX) == [], "the module left namespaces behind"


@pytest.fixture(scope="module")
def node(nsf: NetnsFactory) -> Netns:
    return nsf.netns("node")


@pytest.fixture
def pod(nsf: NetnsFactory) -> Iterator[Netns]:
    ns = nsf.netns("pod")
    yield ns
    ns.remove()


def attachment(ns: Netns, ifname: str = "eth0") -> PodAttachment:
    return PodAttachment(
        pod_netns=ns.path,
        ifname=ifname,
        host_ifname=host_veth_name(VETH_PREFIX, "default", f"web-{secrets.token_hex(3)}"),
        ipv4=POD_IP,
        table=MAIN_TABLE,
    )


def snapshot(ns: Netns) -> str:
    """Links (index, name, kind, flags, MAC, peer), addresses, rules and routes of a namespace, as text."""
    with ns.iproute() as ipr:
        links = [
            (
                link["index"],
                link.get_attr("IFLA_IFNAME"),
                link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
                link["flags"],
                link.get_attr("IFLA_ADDRESS"),
                link.get_attr("IFLA_LINK"),
            )
            for link in ipr.link("dump")
        ]
    addresses = ns.run("ip", "-o", "addr", "show").stdout
    rules = ns.run("ip", "-4", "rule", "show").stdout
    routes = ns.run("ip", "-4", "route", "show", "table", "all").stdout
    return "\n".join((repr(sorted(links, key=repr)), addresses, rules, routes))


def bridge_with_address(nsf: NetnsFactory, node: Netns, pod: Netns) -> None:
    pod.run("ip", "link", "add", "eth0", "type", "bridge")
    pod.run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
    pod.run("ip", "link", "set", "eth0", "up")


def veth_inside_the_pod(nsf: NetnsFactory, node: Netns, pod: Netns) -> None:
    """A veth pair the pod made for itself: its peer is in the pod, not the node."""
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "pi5in")


def veth_to_the_node_not_ours(nsf: NetnsFactory, node: Netns, pod: Netns) -> None:
    """Another plugin's veth: its peer is in the node namespace, under a name without our prefix."""
    node.run("ip", "link", "add", "pi5other", "type", "veth", "peer", "name", "eth0", "netns", pod.name)


def veth_to_elsewhere_named_like_ours(nsf: NetnsFactory, node: Netns, pod: Netns) -> None:
    """A veth whose peer carries our prefix, but in a third namespace: not the node's, so not ours."""
    elsewhere = nsf.netns("else")
    elsewhere.run("ip", "link", "add", "pi5vfake", "type", "veth", "peer", "name", "eth0", "netns", pod.name)


TAKEN: dict[str, Callable[[NetnsFactory, Netns, Netns], None]] = {
    "bridge with an address": bridge_with_address,
    "veth inside the pod": veth_inside_the_pod,
    "veth to the node, not ours": veth_to_the_node_not_ours,
    "veth elsewhere, named like ours": veth_to_elsewhere_named_like_ours,
}


@pytest.mark.parametrize("make", TAKEN.values(), ids=TAKEN.keys())
def test_an_interface_we_did_not_create_fails_the_add_and_is_left_alone(
    nsf: NetnsFactory, node: Netns, pod: Netns, make: Callable[[NetnsFactory, Netns, Netns], None]
) -> None:
    make(nsf, node, pod)
    att = attachment(pod)
    pod_before, node_before = snapshot(pod), snapshot(node)
    with pytest.raises(InterfaceExists) as refused:
        setup_pod(att, netns=node.path)
    assert "eth0 already exists" in str(refused.value) and "did not create" in str(refused.value)
    assert snapshot(pod) == pod_before
    assert snapshot(node) == node_before
    teardown_pod(att, netns=node.path)  # what ipamd does after a failed ADD: still nothing of it goes
    assert snapshot(pod) == pod_before
    assert snapshot(node) == node_before


def test_cni_ifname_lo_fails_as_already_existing_and_lo_stays_up(node: Netns, pod: Netns) -> None:
    att = attachment(pod, ifname="lo")
    pod_before, node_before = snapshot(pod), snapshot(node)
    with pytest.raises(InterfaceExists, match="lo already exists"):
        setup_pod(att, netns=node.path)
    teardown_pod(att, netns=node.path)
    assert snapshot(pod) == pod_before
    assert "LOOPBACK,UP" in pod.run("ip", "-o", "link", "show", "lo").stdout
    assert snapshot(node) == node_before


def test_a_leftover_of_ours_under_another_host_name_is_replaced(node: Netns, pod: Netns) -> None:
    """An earlier attempt whose host end had another name with our prefix: ours, removed, ADD succeeds."""
    node.run("ip", "link", "add", "pi5vold", "type", "veth", "peer", "name", "eth0", "netns", pod.name)
    att = attachment(pod)
    setup_pod(att, netns=node.path)
    try:
        assert check_pod(att, netns=node.path) == []
        assert "pi5vold" not in snapshot(node)
    finally:
        teardown_pod(att, netns=node.path)
    assert pod.run("ip", "-o", "link", "show").stdout.count("\n") == 1, "only lo is left in the pod"


def test_a_repeated_add_replaces_its_own_veth(node: Netns, pod: Netns) -> None:
    att = attachment(pod)
    first = setup_pod(att, netns=node.path)
    try:
        again = setup_pod(att, netns=node.path)
        assert again.host_mac != first.host_mac  # a new veth, where the first one was
        assert check_pod(att, netns=node.path) == []
    finally:
        teardown_pod(att, netns=node.path)
