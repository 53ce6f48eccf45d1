"""The emulated VPC carries traffic the way EC2 says it should — proven by packets and by the source
address the receiver saw, never by reading back the router's routes.

One cloud, dataplane and node per module (prefix ``vdt``); each test undoes its EC2 changes.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

import pytest

from tests.net.localcloud.vpc_dataplane_support import (
    Vpc,
    add_address,
    create_and_attach_eni,
    delete_rule,
    detach_and_delete_eni,
    link_mac,
    remove_address,
    setup_eni_like_ipamd,
    udp_source_seen,
    vpc_with_node,
)
from vpccni.localcloud.vpc.netns import WhoAmIServer, ping, whoami

PREFIX = "vdt"


@pytest.fixture(scope="module")
def vpc() -> Iterator[Vpc]:
    with vpc_with_node(PREFIX) as env:
        yield env


def test_remote_vpc_host_and_node_reach_each_other_at_the_primary_address(vpc: Vpc) -> None:
    assert ping(vpc.dp.remote, vpc.node.primary_ip)
    assert ping(vpc.node_ns, vpc.dp.remote_ip)
    with WhoAmIServer(vpc.dp.remote, vpc.dp.remote_ip) as server:
        assert whoami(vpc.node_ns, vpc.dp.remote_ip, server.port) == vpc.node.primary_ip
    with WhoAmIServer(vpc.node_ns, vpc.node.primary_ip) as server:
        assert whoami(vpc.dp.remote, vpc.node.primary_ip, server.port) == vpc.dp.remote_ip


def test_internet_host_sees_the_source_address_unchanged(vpc: Vpc) -> None:
    with WhoAmIServer(vpc.dp.internet, vpc.dp.internet_ip) as server:
        assert whoami(vpc.node_ns, vpc.dp.internet_ip, server.port) == vpc.node.primary_ip


def test_attached_eni_appears_with_its_mac_carries_traffic_and_goes_on_detach(vpc: Vpc) -> None:
    eni = create_and_attach_eni(vpc, vpc.node, 1)
    try:
        vpc.dp.wait_synced()
        assert link_mac(vpc.node_ns, "eth1") == eni.mac.lower()
        assert not ping(vpc.dp.remote, eni.primary_ip), "an unconfigured ENI must not answer"
        setup_eni_like_ipamd(vpc.node_ns, eni)
        assert ping(vpc.dp.remote, eni.primary_ip)

        vpc.ec2.detach_network_interface(AttachmentId=eni.attachment_id)
        vpc.dp.wait_synced()
        assert link_mac(vpc.node_ns, "eth1") is None
        assert not ping(vpc.dp.remote, eni.primary_ip)
    finally:
        detach_and_delete_eni(vpc, eni)


def test_secondary_address_goes_where_ec2_assigns_it(vpc: Vpc) -> None:
    """Assigned to node A's eth1: A gets the traffic; unassigned: nobody; assigned to node B's eth0: B.
    (And nodes of one subnet talk directly at their primary addresses.)"""
    node_b = vpc.cloud.add_node("t3.medium")
    b_ns = vpc.dp.attach_node(node_b.instance_id).netns
    eni = create_and_attach_eni(vpc, vpc.node, 1)
    with contextlib.ExitStack() as undo:
        undo.callback(vpc.ec2.terminate_instances, InstanceIds=[node_b.instance_id])
        undo.callback(vpc.dp.detach_node, node_b.instance_id)
        undo.callback(detach_and_delete_eni, vpc, eni)
        # Same subnet: A ARPs for B's address on eth0 and the router answers for it (proxy ARP).
        with WhoAmIServer(b_ns, node_b.primary_ip) as server:
            assert whoami(vpc.node_ns, node_b.primary_ip, server.port) == vpc.node.primary_ip
        assigned = vpc.ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni.eni_id, SecondaryPrivateIpAddressCount=1
        )
        address = assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
        vpc.dp.wait_synced()
        setup_eni_like_ipamd(vpc.node_ns, eni)
        add_address(vpc.node_ns, eni.ifname, address, eni.table)
        add_address(b_ns, "eth0", address)  # B is ready too, but EC2 says A owns it
        server_a = undo.enter_context(WhoAmIServer(vpc.node_ns, address))
        server_b = undo.enter_context(WhoAmIServer(b_ns, address, server_a.port))

        assert whoami(vpc.dp.remote, address, server_a.port) == vpc.dp.remote_ip
        assert (server_a.seen, server_b.seen) == ([vpc.dp.remote_ip], [])

        vpc.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni.eni_id, PrivateIpAddresses=[address])
        vpc.dp.wait_synced()
        assert not ping(vpc.dp.remote, address)

        vpc.ec2.assign_private_ip_addresses(
            NetworkInterfaceId=node_b.primary_eni_id, PrivateIpAddresses=[address]
        )
        vpc.dp.wait_synced()
        assert whoami(vpc.dp.remote, address, server_a.port) == vpc.dp.remote_ip
        assert (server_a.seen, server_b.seen) == ([vpc.dp.remote_ip], [vpc.dp.remote_ip])
        remove_address(vpc.node_ns, eni.ifname, address, eni.table)


def test_delegated_prefix_is_routed_to_its_eni_and_withdrawn(vpc: Vpc) -> None:
    eni_id = vpc.node.primary_eni_id
    assigned = vpc.ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)
    prefix = assigned["AssignedIpv4Prefixes"][0]["Ipv4Prefix"]
    base = prefix.split("/")[0]
    first, last = base, base.rsplit(".", 1)[0] + f".{int(base.rsplit('.', 1)[1]) + 15}"
    try:
        vpc.dp.wait_synced()
        for address in (first, last):
            add_address(vpc.node_ns, "eth0", address)
        assert ping(vpc.dp.remote, first) and ping(vpc.dp.remote, last)

        vpc.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=[prefix])
        vpc.dp.wait_synced()
        assert not ping(vpc.dp.remote, first) and not ping(vpc.dp.remote, last)
    finally:
        for address in (first, last):
            remove_address(vpc.node_ns, "eth0", address)
        with contextlib.suppress(Exception):
            vpc.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=[prefix])


def test_source_destination_check_drops_an_address_leaving_by_an_eni_that_does_not_own_it(vpc: Vpc) -> None:
    eni = create_and_attach_eni(vpc, vpc.node, 1)
    try:
        assigned = vpc.ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni.eni_id, SecondaryPrivateIpAddressCount=1
        )
        address = assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
        vpc.dp.wait_synced()
        setup_eni_like_ipamd(vpc.node_ns, eni)
        add_address(vpc.node_ns, eni.ifname, address, eni.table)
        # Leaving by eth1, the ENI that owns it: delivered with its own source address.
        assert udp_source_seen(vpc.node_ns, address, vpc.dp.remote, vpc.dp.remote_ip) == address
        # Without the rule, the main table sends it out of eth0, whose ENI does not own it: dropped.
        delete_rule(vpc.node_ns, address, eni.table)
        assert udp_source_seen(vpc.node_ns, address, vpc.dp.remote, vpc.dp.remote_ip) is None
        # The node's own address still leaves by eth0 (the drop is about ownership, not the path).
        assert udp_source_seen(vpc.node_ns, vpc.node.primary_ip, vpc.dp.remote, vpc.dp.remote_ip) == (
            vpc.node.primary_ip
        )
    finally:
        detach_and_delete_eni(vpc, eni)
        vpc.dp.wait_synced()


def test_how_fast_the_dataplane_follows_ec2(vpc: Vpc) -> None:
    """Figures for the report (printed, never asserted): EC2 call returned -> dataplane synced."""
    eni_id = vpc.node.primary_eni_id
    lags: list[float] = []
    for _ in range(10):
        assigned = vpc.ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1
        )
        returned = time.monotonic()
        vpc.dp.wait_synced()
        lags.append(time.monotonic() - returned)
        address = assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
        add_address(vpc.node_ns, "eth0", address)
        try:
            assert ping(vpc.dp.remote, address)
        finally:
            remove_address(vpc.node_ns, "eth0", address)
            vpc.ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[address])
    vpc.dp.wait_synced()
    print(
        f"\nvpc dataplane lag (EC2 call returned -> synced), {len(lags)} assignments: "
        f"median {statistics.median(lags) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms"
    )
