"""A VPC that gains a CIDR block while the node runs: ipamd stops SNATing traffic to it (aws: every 30 s).

A host in the new block (10.1.0.10, behind the VPC router) reports the source address it saw. Before the
block is associated with the VPC it is outside the VPC, so the pod's traffic is SNAT'd to the node's primary
address; once EC2 (and so the node's IMDS) lists the block, the same connection arrives with the pod's own
address. Its own one-node cluster: the test changes the VPC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from vpccni.localcloud.vpc.netns import WhoAmIServer, whoami
from vpccni.testing.cluster import EmulatedCluster, sweep_cluster

PREFIX = "ev"
NEW_BLOCK = "10.1.0.0/16"
NEW_HOST = "10.1.0.10"


@pytest.fixture(scope="module")
def cidr_cluster() -> Iterator[EmulatedCluster]:
    sweep_cluster(PREFIX)
    with EmulatedCluster(
        ("m5.large",), prefix=PREFIX, settings={"VPCCNI_VPC_CIDR_CHECK_PERIOD": "0.5"}
    ) as made:
        yield made
    assert sweep_cluster(PREFIX) == [], "the cluster left something behind"


def test_a_new_vpc_block_is_reached_with_the_pods_own_address(cidr_cluster: EmulatedCluster) -> None:
    cluster = cidr_cluster
    node = cluster.nodes[0]
    pod = cluster.add_pod(node, "default", "cidr")
    # A host at NEW_HOST: an address on the remote VPC host, routed there by the VPC router.
    cluster.remote.run("ip", "addr", "add", f"{NEW_HOST}/32", "dev", "lo")
    cluster.dataplane.vpc.run("ip", "route", "add", f"{NEW_HOST}/32", "via", cluster.remote_ip)
    try:
        with WhoAmIServer(cluster.remote, NEW_HOST) as server:
            before = whoami(pod.netns, NEW_HOST, server.port, source=pod.ip)
            assert before == node.primary_ip, "outside the VPC: SNAT'd to the node's primary address"

            vpc_id = node.node.vpc_id
            cluster.cloud.client().associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=NEW_BLOCK)
            seen = before
            deadline = time.monotonic() + 20
            while seen != pod.ip and time.monotonic() < deadline:
                time.sleep(0.25)
                seen = whoami(pod.netns, NEW_HOST, server.port, source=pod.ip)
            assert seen == pod.ip, f"after {NEW_BLOCK} joined the VPC the host still saw {seen}"
    finally:
        cluster.dataplane.vpc.run("ip", "route", "del", f"{NEW_HOST}/32", check=False)
        cluster.remote.run("ip", "addr", "del", f"{NEW_HOST}/32", "dev", "lo", check=False)
        cluster.delete_pod(pod)
