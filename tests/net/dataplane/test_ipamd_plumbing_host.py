"""ipamd's host and ENI plumbing (HostNetwork) on an emulated m5.large node, proven by traffic.

The fabric drops a packet whose source the arrival ENI does not own, so "a secondary-ENI pod reaches the
internet SNAT'd to the primary address" holds only if connmark + rule 1024 sent it out of eth0, and "it
reaches the remote host with its own address" only if table 2 sent it out of eth1. Drift is made the
way it happens on real nodes (a rule or route deleted by hand, a chain flushed) and the repair is shown
by the traffic coming back.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from ipamd.dataplane.host import EniLinkMissing, HostNetwork
from tests.net.dataplane.test_ipamd_plumbing_support import NodeEnv, Pod, node_env, settings
from tests.net.localcloud.vpc_dataplane_support import udp_source_seen
from vpccni.localcloud.vpc.netns import WhoAmIServer, ping, whoami


@pytest.fixture(scope="module")
def env() -> Iterator[NodeEnv]:
    with node_env() as node:
        yield node


@pytest.fixture(scope="module")
def pods(env: NodeEnv) -> tuple[Pod, Pod]:
    """(pod on the primary ENI, pod on the secondary ENI), torn down with the node."""
    return env.add_pod(on_secondary=False), env.add_pod(on_secondary=True)


@pytest.fixture(scope="module")
def internet(env: NodeEnv) -> Iterator[WhoAmIServer]:
    with WhoAmIServer(env.vpc.dp.internet, env.internet_ip) as server:
        yield server


def _seen_by_internet(env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer) -> list[str]:
    return [whoami(pod.ns, env.internet_ip, internet.port) for pod in pods]


def test_setup_host_again_changes_nothing(
    env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer
) -> None:
    assert env.timed("host setup_host", env.hostnet.setup_host) == []
    assert _seen_by_internet(env, pods, internet) == [env.node.primary_ip] * 2


def test_external_snat_leaves_the_pod_address_and_setup_host_brings_snat_back(
    env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer
) -> None:
    external = HostNetwork(
        settings(AWS_VPC_K8S_CNI_EXTERNALSNAT="true"),
        primary_mac=env.node.mac,
        primary_ipv4=env.node.primary_ip,
        vpc_cidrs=[env.vpc_cidr],
        netns=env.ns.path,
    )
    try:
        external.setup_host()
        # No SNAT: each pod leaves by its own ENI with its own address (the fabric accepts that).
        assert _seen_by_internet(env, pods, internet) == [pod.ip for pod in pods]
    finally:
        env.hostnet.setup_host()
    assert _seen_by_internet(env, pods, internet) == [env.node.primary_ip] * 2


def test_reconcile_rewrites_a_flushed_snat_chain(
    env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer
) -> None:
    env.ns.run("iptables-nft", "-t", "nat", "-F", "VPCCNI-SNAT")
    assert whoami(pods[0].ns, env.internet_ip, internet.port) == pods[0].ip  # leaked unSNAT'd
    assert "SNAT/connmark rules had drifted: rewritten" in env.reconcile()
    assert _seen_by_internet(env, pods, internet) == [env.node.primary_ip] * 2


def test_reconcile_restores_the_fwmark_rule_a_secondary_eni_pod_needs_for_the_internet(
    env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer
) -> None:
    with env.ns.iproute() as ipr:
        ipr.rule("del", priority=1024, table=254, fwmark=0x80, fwmask=0x80)
    # Without it the SNAT'd packet leaves by eth1, whose ENI does not own the primary address: dropped.
    assert udp_source_seen(pods[1].ns, pods[1].ip, env.vpc.dp.internet, env.internet_ip) is None
    assert "host: rule 1024 fwmark 0x80/0x80 lookup main missing (restored)" in env.reconcile()
    assert _seen_by_internet(env, pods, internet) == [env.node.primary_ip] * 2


def test_reconcile_restores_a_deleted_eni_route_and_rp_filter(env: NodeEnv, pods: tuple[Pod, Pod]) -> None:
    table, gateway = env.eni.table, env.hostnet.enis[env.eni.eni_id].gateway
    with env.ns.iproute() as ipr:
        ipr.route("del", dst="0.0.0.0", dst_len=0, table=table)
    env.ns.sysctl("net.ipv4.conf.eth0.rp_filter", "1")
    assert udp_source_seen(pods[1].ns, pods[1].ip, env.vpc.dp.remote, env.remote_ip) is None
    fixed = env.reconcile()
    assert (
        f"ENI {env.eni.eni_id}: default via {gateway} dev eth1 missing in table {table} (restored)" in fixed
    )
    assert "host: rp_filter of eth0 is 1, expected 2 (loose) (restored)" in fixed
    assert udp_source_seen(pods[1].ns, pods[1].ip, env.vpc.dp.remote, env.remote_ip) == pods[1].ip


def test_update_vpc_cidrs_reapplies_snat(env: NodeEnv, pods: tuple[Pod, Pod], internet: WhoAmIServer) -> None:
    # Pretend the VPC gained the internet host's CIDR: traffic to it must now keep the pod's address.
    try:
        assert env.hostnet.update_vpc_cidrs([env.vpc_cidr, "203.0.113.0/24"])
        assert whoami(pods[0].ns, env.internet_ip, internet.port) == pods[0].ip
    finally:
        assert env.hostnet.update_vpc_cidrs([env.vpc_cidr])
    assert _seen_by_internet(env, pods, internet) == [env.node.primary_ip] * 2
    assert not env.hostnet.update_vpc_cidrs([env.vpc_cidr])  # unchanged: nothing rewritten


def test_setup_eni_waits_for_a_link_that_appears_late_and_teardown_eni_undoes_it(env: NodeEnv) -> None:
    ec2 = env.vpc.ec2
    created = ec2.create_network_interface(SubnetId=env.node.subnet_id)["NetworkInterface"]
    eni_id, mac, address = created["NetworkInterfaceId"], created["MacAddress"], created["PrivateIpAddress"]
    outcome: list[object] = []

    def setup() -> None:
        try:
            outcome.append(env.hostnet.setup_eni(eni_id, mac, address, env.eni.subnet_cidr, 2))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=setup, name="setup_eni")
    attachment = ""
    try:
        worker.start()
        time.sleep(0.3)  # setup_eni is now polling for a link no one has attached yet
        assert not outcome, outcome
        attachment = ec2.attach_network_interface(
            NetworkInterfaceId=eni_id, InstanceId=env.node.instance_id, DeviceIndex=2
        )["AttachmentId"]
        worker.join(timeout=20)
        assert outcome == ["eth2"]
        assert ping(env.vpc.dp.remote, address)  # configured: address, table 3, rule 32765
        env.timed("host teardown_eni", env.hostnet.teardown_eni, eni_id)
        assert not ping(env.vpc.dp.remote, address)
        assert eni_id not in env.hostnet.enis
    finally:
        worker.join(timeout=20)
        if attachment:
            ec2.detach_network_interface(AttachmentId=attachment, Force=True)
        ec2.delete_network_interface(NetworkInterfaceId=eni_id)
        env.vpc.dp.wait_synced()


def test_setup_eni_fails_clearly_when_the_link_never_appears(env: NodeEnv) -> None:
    impatient = HostNetwork(
        settings(),
        primary_mac=env.node.mac,
        primary_ipv4=env.node.primary_ip,
        vpc_cidrs=[env.vpc_cidr],
        netns=env.ns.path,
        link_wait_s=0.5,
    )
    mac = "02:" + ":".join(secrets.token_hex(1) for _ in range(5))
    with pytest.raises(EniLinkMissing) as caught:
        impatient.setup_eni("eni-0123456789abcdef0", mac, "10.0.3.3", env.eni.subnet_cidr, 3)
    message = str(caught.value)
    assert f"no usable link with MAC {mac}" in message and "is it attached to this instance?" in message
    assert "eni-0123456789abcdef0" in message


def test_zz_timings(env: NodeEnv, pods: tuple[Pod, Pod]) -> None:
    """Figures for the report (printed, never asserted)."""
    for _ in range(5):
        env.reconcile()
    env.print_timings()
