"""Pods on two emulated Azure VMs (ipamd with VPCCNI_CLOUD=azure), plumbed through the real libcni with
portmap, tuning and bandwidth chained after us, proven by traffic and by the source address each receiver
saw — tests/e2e/test_e2e_traffic.py's promises on the local Azure, with its fixtures and runtime.

Each pod's address is a secondary IP configuration of the NIC that ipamd names (checked against ARM); the
emulated virtual network delivers it to that NIC and drops a NIC's traffic from addresses it does not
own, so a pod whose traffic left with the wrong source fails a probe instead of passing by accident. A
burst of pods grows the pool one NIC write per batch of 16 and gives it back in batches; ipamd killed
with -9 comes back with every pod's address and no IP configuration ARM holds that ipamd does not.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest

from tests.e2e.support import Runtime, RuntimePod, wait_until
from vpccni.testing.cluster import ClusterNode, EmulatedCluster

pytestmark = pytest.mark.parametrize("cluster", ["azure"], indirect=True, scope="module")

VNET = ipaddress.IPv4Network("10.224.0.0/12")  # the local Azure's virtual network
PODS_PER_NODE = 3


def arm_cidrs(cluster: EmulatedCluster, node: ClusterNode) -> dict[str, set[str]]:
    """NIC -> its secondary IP configurations as /32s, per ARM."""
    return {e.eni_id: {f"{a}/32" for a in e.private_ips[1:]}
            for e in cluster.dataplane.fabric.instance_view(node.instance_id).enis}


def ipamd_cidrs(node: ClusterNode) -> dict[str, set[str]]:
    return {e["id"]: set(e["cidrs"]) for e in node.pool()["enis"]}


def nic_writes(cluster: EmulatedCluster) -> int:
    counters = cluster.azure.counters.snapshot().get("PutNetworkInterface")
    return counters.succeeded if counters is not None else 0


def settled(node: ClusterNode) -> bool:
    pool = node.pool()
    decision = pool["last_decision"]
    quiet = decision and not (decision["assign"] or decision["release"])
    counts = ("total", "assigned", "cooling")
    return bool(quiet and all(decision["basis"][k] == pool["totals"][k] for k in counts))


@pytest.fixture(scope="module")
def fleet(cluster: EmulatedCluster, runtime: Runtime) -> Iterator[list[RuntimePod]]:
    made = [runtime.add(node) for node in cluster.nodes for _ in range(PODS_PER_NODE)]
    yield made
    for pod in made:
        runtime.remove(pod)


def test_each_pod_address_is_an_ip_configuration_of_the_nic_ipamd_names(
    cluster: EmulatedCluster, fleet: list[RuntimePod]
) -> None:
    for pod in fleet:
        info = pod.node.address_info(pod.ip)
        assert info is not None and info.state == "assigned" and info.pod == f"default/{pod.name}"
        held = cluster.interface_of(pod.node, pod.ip)
        assert held == (info.eni_id, 0), "ARM holds it on the primary NIC, as ipamd says"
        assert ipaddress.IPv4Address(pod.ip) in VNET
    for node in cluster.nodes:
        assert ipamd_cidrs(node) == arm_cidrs(cluster, node), "the datastore is ARM, no more, no less"


def test_pod_addresses_are_the_same_inside_and_outside(
    cluster: EmulatedCluster, fleet: list[RuntimePod]
) -> None:
    a = [p for p in fleet if p.node is cluster.nodes[0]]
    b = [p for p in fleet if p.node is cluster.nodes[1]]
    for pod in fleet:
        assert cluster.pod_to_remote(pod) == pod.ip, "the remote VNet host saw the pod's own address"
        assert cluster.remote_to_pod(pod) == cluster.remote_ip, "and reached the pod at it"
        assert cluster.ping(pod, cluster.remote_ip)
    assert cluster.pod_to_pod(a[0], b[0]) == a[0].ip and cluster.pod_to_pod(b[1], a[1]) == b[1].ip


def test_internet_bound_traffic_leaves_as_the_node(cluster: EmulatedCluster, fleet: list[RuntimePod]) -> None:
    assert ipaddress.IPv4Address(cluster.internet_ip) not in VNET
    for pod in fleet:
        assert cluster.pod_to_internet(pod) == pod.node.primary_ip != pod.ip


def test_host_port_through_portmap_reaches_the_pod(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[1]
    pod = pods.add(node, cap_args={"portMappings": [{"hostPort": 18090, "containerPort": 8080,
                                                     "protocol": "tcp"}]})
    assert cluster.remote_to_host_port(node, 18090, pod, 8080) == cluster.remote_ip


def test_a_burst_costs_one_nic_write_per_batch_and_leaves_in_batches(
    cluster: EmulatedCluster, pods: Runtime
) -> None:
    node = cluster.nodes[0]
    wait_until("the pool to settle", lambda: settled(node))
    before, total = nic_writes(cluster), node.pool()["totals"]["total"]
    started = time.monotonic()
    burst = [pods.add(node) for _ in range(20)]
    took = time.monotonic() - started
    wait_until("the pool to settle", lambda: settled(node))
    grown = node.pool()["totals"]["total"] - total
    writes = nic_writes(cluster) - before
    assert grown % 16 == 0 and writes == grown // 16, (grown, writes)
    print(f"\n20 pods through libcni on one VM: {took:.2f}s, pool +{grown} addresses, {writes} NIC write(s)")

    before = nic_writes(cluster)
    for pod in burst:
        pods.remove(pod)
    wait_until("the pool to give the batches back", lambda: settled(node) and
               node.pool()["totals"]["total"] <= total, timeout_s=30)
    assert nic_writes(cluster) - before == 1, "every surplus batch back in one NIC write"
    refused = cluster.azure.counters.snapshot()["PutNetworkInterface"].errors
    assert refused == 0, "no NIC write was refused or repeated (etags, polls through the node's own ARM)"
    assert ipamd_cidrs(node) == arm_cidrs(cluster, node)


def test_kill_9_keeps_every_pod_its_address_and_leaks_no_ip_configuration(
    cluster: EmulatedCluster, fleet: list[RuntimePod]
) -> None:
    node = cluster.nodes[1]
    mine = [p for p in fleet if p.node is node]
    assert cluster.stop_ipamd(node, kill=True) == -9
    for pod in mine:  # the datapath does not need ipamd
        assert cluster.pod_to_remote(pod) == pod.ip
    cluster.start_ipamd(node)
    for pod in mine:
        info = node.address_info(pod.ip)
        assert info is not None and info.state == "assigned" and info.pod == f"default/{pod.name}"
        assert cluster.remote_to_pod(pod) == cluster.remote_ip
    wait_until("the pool to settle", lambda: settled(node))
    assert ipamd_cidrs(node) == arm_cidrs(cluster, node)
